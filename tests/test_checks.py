"""The shared argument checks: one wording for one mistake, bools are not counts."""

import numpy as np
import pytest

from cin_style.checks import check_positive_integer, is_integer

pytestmark = pytest.mark.no_tensorflow


def test_bools_and_floats_are_not_integers():
    assert is_integer(3) and is_integer(0) and is_integer(-2)
    assert not is_integer(True) and not is_integer(2.0) and not is_integer("3") and not is_integer(np.float32(2))


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2", None])
def test_positive_integer_check_names_the_argument_and_the_value(value):
    with pytest.raises(ValueError, match=rf"^`steps` must be a positive integer. Received: steps={value!r}$"):
        check_positive_integer("steps", value)


def test_positive_integer_check_returns_the_value():
    assert check_positive_integer("steps", 7) == 7
