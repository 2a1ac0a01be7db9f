"""Conditional instance normalisation: one γ/β row per style."""

import keras
import numpy as np
from keras import ops

from cin_style.checks import check_positive_integer, is_integer


@keras.saving.register_keras_serializable(package="cin_style")
class ConditionalInstanceNormalization(keras.layers.Layer):
    """Instance normalisation whose scale and shift are picked by style.

    Each example is normalised over its spatial axes, then scaled and shifted by
    a mix of the rows of two tables, γ `(num_styles, channels)` and β
    `(num_styles, channels)` (Dumoulin, Shlens and Kudlur, "A Learned
    Representation for Artistic Style", 2017). The mix is given per example by
    `style_weights`: a one-hot row picks one style, a convex row blends styles.
    The weights may also be a per-pixel map `(batch, height, width, num_styles)`
    of the same spatial size as `x`, which blends styles region by region.

    The statistics are computed in float32 (`autocast = False`), also under a
    mixed-precision policy; the output is in the layer's compute dtype (the
    input's, under one policy; float32 for a float32 layer after bfloat16 ones).

    Args:
        num_styles: Number of rows of the γ and β tables; a positive integer.
        epsilon: Added to the variance before the square root. Defaults to
            `1e-5`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A list `[x, style_weights]`: `x` of shape
            `(batch, height, width, channels)` and `style_weights` of shape
            `(batch, num_styles)` or `(batch, height, width, num_styles)`.
            Or `[x, style_weights, mean, variance]`, each `(batch, channels)`:
            normalise with these statistics instead of `x`'s own, so tiles
            of a large image share the whole image's (see
            `cin_style.large_image`).

    Input shape:
        `[(batch, height, width, channels), (batch, num_styles)]`.

    Output shape:
        `(batch, height, width, channels)`, like `x`.

    Raises:
        ValueError: If `num_styles` is not a positive integer, `epsilon` is not
            positive, or the inputs have the wrong rank or number of styles.

    Example:

    >>> cin = ConditionalInstanceNormalization(num_styles=4)
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> picks = np.eye(4, dtype="float32")[[0, 3]]  # style 0, style 3
    >>> y = cin([x, picks])
    """

    def __init__(self, num_styles, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        check_positive_integer("num_styles", num_styles)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon!r}")
        self.num_styles = num_styles
        self.epsilon = float(epsilon)
        self.autocast = False
        self.supports_masking = False
        #: A training-time setting, not saved: a callable `x -> scalar` whose value each call adds to the
        #: layer's losses (`add_loss`), e.g. `cin_style.spike_penalty.watch_spikes`' penalty; `None`: nothing.
        self.input_penalty = None

    def _check_shapes(self, x_shape, weights_shape):
        if len(x_shape) != 4:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' expects x of rank 4 "
                "(batch, height, width, channels). "
                f"Received: x.shape={tuple(x_shape)}"
            )
        if len(weights_shape) not in (2, 4):
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' expects style_weights of "
                "rank 2 (batch, num_styles) or rank 4 (batch, height, width, "
                f"num_styles). Received: style_weights.shape={tuple(weights_shape)}"
            )
        if weights_shape[-1] is not None and weights_shape[-1] != self.num_styles:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' has num_styles="
                f"{self.num_styles}, so style_weights must have {self.num_styles} "
                "entries on its last axis. "
                f"Received: style_weights.shape={tuple(weights_shape)}"
            )
        if len(weights_shape) == 4:
            for axis, label in ((1, "height"), (2, "width")):
                a, b = x_shape[axis], weights_shape[axis]
                if a is not None and b is not None and a != b:
                    raise ValueError(
                        f"A per-pixel style_weights map must have the {label} of x "
                        f"({a}). Received: style_weights.shape={tuple(weights_shape)}"
                    )

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 4):
            raise ValueError(
                f"{self.__class__.__name__} is called on a list [x, style_weights] or [x, style_weights, mean, "
                f"variance]. Received: input_shape={input_shape}"
            )
        x_shape, weights_shape = input_shape[:2]
        self._check_shapes(x_shape, weights_shape)
        channels = x_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel axis of x must be known to build "
                f"{self.__class__.__name__}. Received: x.shape={tuple(x_shape)}"
            )
        self.gamma = self.add_weight(name="gamma", shape=(self.num_styles, channels), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(self.num_styles, channels), initializer="zeros")

    def call(self, inputs):
        x, style_weights = inputs[:2]
        self._check_shapes(x.shape, style_weights.shape)
        x = ops.cast(x, "float32")
        if self.input_penalty is not None:
            self.add_loss(self.input_penalty(x))
        style_weights = ops.cast(style_weights, "float32")
        if len(inputs) == 4:
            mean, variance = (ops.cast(t, "float32")[:, None, None, :] for t in inputs[2:])
        else:
            mean, variance = ops.moments(x, axes=[1, 2], keepdims=True)
        gamma = ops.matmul(style_weights, ops.cast(self.gamma, "float32"))
        beta = ops.matmul(style_weights, ops.cast(self.beta, "float32"))
        if len(style_weights.shape) == 2:
            gamma = gamma[:, None, None, :]
            beta = beta[:, None, None, :]
        # (x - mean) / std * gamma + beta as one scale and shift: two passes over x instead of four.
        scale = gamma * ops.rsqrt(variance + self.epsilon)
        return ops.cast(x * scale + (beta - mean * scale), self.compute_dtype)

    def add_styles(self, count=1, init_from=None):
        """Grows the γ/β tables by `count` rows, keeping the old rows unchanged.

        Args:
            count: Number of styles to add. Defaults to `1`.
            init_from: How the new rows start: `None` for γ=1, β=0 (the
                identity), a style index to copy that style's rows, `"mean"`
                for the mean of the existing rows, or a list of those, one
                per new row. Defaults to `None`.

        Raises:
            ValueError: If the layer is not built, `count` is not a positive
                integer, or `init_from` is out of range.
        """
        if not self.built:
            raise ValueError("add_styles() needs a built layer: call it on data first.")
        check_positive_integer("count", count)
        old_gamma = ops.convert_to_numpy(self.gamma)
        old_beta = ops.convert_to_numpy(self.beta)
        new_gamma, new_beta = new_style_rows(old_gamma, old_beta, count, init_from)
        trainable = self.gamma.trainable
        # A variable cannot change shape: untrack the old tables (``del`` does
        # that for Keras layers) and add larger ones in the same order.
        del self.gamma
        del self.beta
        # Keras' one private use here: a built layer's tracker refuses new weights, and there is no
        # public way to grow a table; test_add_styles_keeps_old_rows_bit_for_bit pins it.
        self._tracker.unlock()
        try:
            self.num_styles += count
            self.gamma = self.add_weight(
                name="gamma",
                shape=(self.num_styles, old_gamma.shape[1]),
                initializer="ones",
                trainable=trainable,
            )
            self.beta = self.add_weight(
                name="beta",
                shape=(self.num_styles, old_beta.shape[1]),
                initializer="zeros",
                trainable=trainable,
            )
        finally:
            self._tracker.lock()
        self.gamma.assign(np.concatenate([old_gamma, new_gamma], axis=0))
        self.beta.assign(np.concatenate([old_beta, new_beta], axis=0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        return {**config, "num_styles": self.num_styles, "epsilon": self.epsilon}


def new_style_rows(gamma, beta, count, init_from=None):
    """The γ and β rows `(count, channels)` of `count` new styles for the tables `gamma`, `beta`.

    `init_from` as in `ConditionalInstanceNormalization.add_styles`: `None`
    (γ=1, β=0), a style index, `"mean"`, or a list of those, one per new row.
    """
    num_styles = gamma.shape[0]
    starts = list(init_from) if isinstance(init_from, (list, tuple)) else [init_from] * count
    if len(starts) != count:
        raise ValueError(f"`init_from` lists {len(starts)} starts for {count} new styles")

    def row(start):
        if start is None:
            return np.ones(gamma.shape[1]), np.zeros(beta.shape[1])
        if isinstance(start, str) and start == "mean":
            return gamma.mean(axis=0), beta.mean(axis=0)
        if not is_integer(start) or not (0 <= start < num_styles):
            raise ValueError(
                f'`init_from` must be None, "mean" or a style index in [0, {num_styles}). Received: init_from={start!r}'
            )
        return gamma[start], beta[start]

    rows = [row(start) for start in starts]
    return np.stack([g for g, _ in rows]).astype(gamma.dtype), np.stack([b for _, b in rows]).astype(beta.dtype)
