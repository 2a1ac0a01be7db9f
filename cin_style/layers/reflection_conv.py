"""A convolution that pads by reflection, so borders carry no dark frame."""

import contextlib
import contextvars

import keras
from keras import ops

_PAD_BY_SLICES = contextvars.ContextVar("cin_style_pad_by_slices", default=False)


@contextlib.contextmanager
def reflection_padding_by_slices():
    """Within it, `ReflectionConv2D` layers of known height and width pad by slicing and concatenating.

    The same values as `ops.pad(mode="reflect")`, in ops every TFLite delegate
    runs: XNNPACK has no MIRROR_PAD, which TFLite then runs on its own between
    delegated pieces (the slim model at 512 px: 0.170 s -> 0.113 s). For
    graphs traced at a fixed size, such as `cin_style.tflite.export_tflite`'s.
    """
    token = _PAD_BY_SLICES.set(True)
    try:
        yield
    finally:
        _PAD_BY_SLICES.reset(token)


def line(x, axis, i):
    """Row or column `i` of `x` along `axis` (-1: the last, also of an unknown size), kept as an axis of length 1."""
    return x[(slice(None),) * axis + (slice(i, i + 1 or None),)]


#: Most tensors one CONCATENATION joins where XNNPACK runs it (measured with LiteRT 2.3: nine ran outside it,
#: splitting the graph; four ran inside).
MAX_JOINED = 4


def concatenate_in_groups(pieces, axis):
    """`ops.concatenate(pieces, axis)` as a tree of concatenations of at most `MAX_JOINED` tensors each."""
    while len(pieces) > 1:
        groups = [pieces[i : i + MAX_JOINED] for i in range(0, len(pieces), MAX_JOINED)]
        pieces = [group[0] if len(group) == 1 else ops.concatenate(group, axis=axis) for group in groups]
    return pieces[0]


def reflect_by_slices(x, pad):
    """`x` (batch, height, width, channels) reflection-padded by `pad` on both sides of both spatial axes.

    Each side's lines are joined first (`concatenate_in_groups`), then the
    three parts: every concatenation holds at most `MAX_JOINED` tensors.
    """
    for axis in (1, 2):
        size = x.shape[axis]
        before = [line(x, axis, i) for i in range(pad, 0, -1)]
        after = [line(x, axis, size - 1 - i) for i in range(1, pad + 1)]
        x = ops.concatenate([concatenate_in_groups(before, axis), x, concatenate_in_groups(after, axis)], axis=axis)
    return x


def edge_pad_by_slices(x):
    """`x` (batch, height, width, channels) with its first and last rows and columns repeated once (edge padding),
    by slices and concatenations; any height and width, also unknown at tracing."""
    for axis in (1, 2):
        x = concatenate_in_groups([line(x, axis, 0), x, line(x, axis, -1)], axis)
    return x


@keras.saving.register_keras_serializable(package="cin_style")
class ReflectionConv2D(keras.layers.Layer):
    """2-D convolution preceded by reflection padding of `kernel_size // 2`.

    Zero padding darkens the borders of a stylised image; reflecting the image
    into the padding does not (Johnson et al. 2016; Dumoulin et al. 2017). With
    stride 1 the output has the input's size; with stride 2, half of it.

    Args:
        filters: Number of output channels; a positive integer.
        kernel_size: Odd, positive side of the square kernel.
        strides: Stride of the convolution. Defaults to `1`.
        use_bias: Whether the convolution adds a bias. Defaults to `False`,
            since a normalisation layer with its own shift follows.
        **kwargs: Base layer arguments.

    Input shape:
        `(batch, height, width, channels)`, height and width > `kernel_size // 2`.

    Output shape:
        `(batch, ceil(height / strides), ceil(width / strides), filters)`.
    """

    def __init__(self, filters, kernel_size, strides=1, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be an odd positive integer. Received: kernel_size={kernel_size!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.use_bias = use_bias
        self.conv = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="valid",
            use_bias=use_bias,
            kernel_initializer="glorot_uniform",
            name="conv",
        )

    @property
    def sublayers(self):
        """The inner convolution (`network.all_layers` walks it)."""
        return [self.conv]

    def build(self, input_shape):
        pad = self.kernel_size // 2
        shape = list(input_shape)
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] += 2 * pad
        self.conv.build(tuple(shape))

    def padded(self, x):
        """`x` reflection-padded by `kernel_size // 2`: what the inner convolution takes (by slices within
        `reflection_padding_by_slices` when the size is known)."""
        pad = self.kernel_size // 2
        if pad and _PAD_BY_SLICES.get() and all(isinstance(x.shape[axis], int) for axis in (1, 2)):
            return reflect_by_slices(x, pad)
        if pad:
            return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
        return x

    def call(self, x):
        return self.conv(self.padded(x))

    def compute_output_shape(self, input_shape):
        def out(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "use_bias": self.use_bias,
        }
