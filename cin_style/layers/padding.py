"""Size fixing around the transformer: mirror-pad to a multiple, crop back."""

import keras
from keras import ops


def _padded_size(size, multiple, minimum):
    """`max(minimum, ceil(size / multiple) * multiple)`, for ints or tensors."""
    rounded = -(-size // multiple) * multiple
    if isinstance(size, int):
        return max(minimum, rounded)
    return ops.maximum(rounded, minimum)


def _mirror_indices(size, target):
    """Indices 0..target-1 folded back into [0, size) like a mirror."""
    positions = ops.arange(target, dtype="int32")
    size = ops.cast(size, "int32")
    folded = ops.mod(positions, 2 * size)
    return ops.where(folded < size, folded, 2 * size - 1 - folded)


@keras.saving.register_keras_serializable(package="cin_style")
class MirrorPadToMultiple(keras.layers.Layer):
    """Pads height and width at the bottom and right up to a multiple.

    The transformer halves the image twice and doubles it back, so it needs
    sides divisible by 4, and its reflection-padded convolutions need sides of
    at least a few pixels. This layer mirrors the image (symmetric padding,
    repeated as often as needed, so even a 1×1 image works) up to
    `max(minimum, ceil(side / multiple) * multiple)`; `CropToMatch` undoes it.

    Args:
        multiple: Each padded side is a multiple of this. Defaults to `4`.
        minimum: Smallest padded side. Defaults to `8`.
        **kwargs: Base layer arguments.
    """

    def __init__(self, multiple=4, minimum=8, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.minimum = int(minimum)

    def call(self, x):
        shape = ops.shape(x)
        for axis in (1, 2):
            target = _padded_size(shape[axis], self.multiple, self.minimum)
            if isinstance(shape[axis], int) and target == shape[axis]:
                continue  # a known side that needs no padding: no gather (a copy of the image) in the graph
            x = ops.take(x, _mirror_indices(shape[axis], target), axis=axis)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = _padded_size(shape[axis], self.multiple, self.minimum)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "minimum": self.minimum}


@keras.saving.register_keras_serializable(package="cin_style")
class CropToMatch(keras.layers.Layer):
    """Crops `[x, reference]` to the height and width of `reference`.

    Takes the top-left corner, which is where `MirrorPadToMultiple` left the
    original pixels.
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])
