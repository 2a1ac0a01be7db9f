"""Argument checks shared by every module: one wording for one mistake.

This module imports nothing of cin_style, so any module may use it.
"""

import numbers


def is_integer(value):
    """Whether `value` is an int and not a bool (`True` is an int to Python, not to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_integer(name, value):
    """Returns `value`, or raises `ValueError` naming `name` unless it is an integer >= 1."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def check_count(name, value):
    """`value` as an int, or `ValueError` naming `name` unless it is a non-negative integer (numpy's too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


def normalized_blend(weights, label="Style weights", error=ValueError):
    """Blend weights divided by their sum, as float32; each mistake named on its own.

    Args:
        weights: A 1-D float array (its length is the caller's to check).
        label: How the message names the weights.
        error: The exception class to raise (a `ValueError` subclass).

    Raises:
        `error`: For NaN or infinite weights, negative ones, or weights that sum to zero.
    """
    import numpy as np

    weights = np.asarray(weights, np.float64)
    if not np.isfinite(weights).all():
        raise error(f"{label} must be finite; got NaN or infinity in {weights.tolist()}")
    if (weights < 0).any():
        raise error(f"{label} must be non-negative. Received: {weights.tolist()}")
    if weights.sum() <= 0:
        raise error(f"{label} sum to zero: give at least one positive weight")
    return (weights / weights.sum()).astype(np.float32)
