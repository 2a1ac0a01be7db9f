"""Convolutions rewritten into equivalent ones that CPU kernels run faster: wider, on fewer pixels.

Matrix-multiply kernels (XNNPACK's, oneDNN's) fill their vector registers
with output channels. The transformer's full-size layers have few: the first
convolution 9x9 3 -> 8 channels and the last 9x9 8 -> 3 in the slim model,
where a 16-wide register holds 8 or 3 useful lanes. Measured with LiteRT 2.3
on this project's 2-core CPU at 512 px, those two took 47 and 40 ms of the
slim model's 150 ms. Two exact rewrites give the kernels more channels:

- `conv_by_space_to_depth`: a stride-1 convolution computed `block` x `block`
  output pixels at a time. Space-to-depth turns the input into one of
  `block**2` times the channels, a convolution with a rearranged kernel of
  side `ceil((k + block - 1) / block)` gives every block's outputs as
  `block**2` times the output channels, and depth-to-space puts them back
  (47 -> 8 ms and 40 -> 14 ms for the two above).
- `upsampled_conv`: nearest x2 upsampling followed by a reflection-padded
  3x3 convolution, computed at the low resolution. Each of the four output
  phases sees a fixed 2x2 neighbourhood of low-resolution pixels, so one 3x3
  convolution with four times the output channels on the edge-padded input,
  then depth-to-space, gives the same values without the upsampled tensor.

Both give the original's values up to float rounding (tests pin this). The
rearranged kernels are tensor ops on the original ones, which converters
fold into constants. `rewritten_layers` applies them to a transformer's
layers as `network.run_layers`' `wrap`: for `cin_style.tflite.export_tflite`
and for the Stylizer's TensorFlow painters (`cin_style.precision`).
"""

import keras
import numpy as np
import tensorflow as tf

from cin_style.layers.reflection_conv import ReflectionConv2D, edge_pad_by_slices


def _check_shape(kernel):
    shape = tuple(kernel.shape)
    if len(shape) != 4 or shape[0] != shape[1]:
        raise ValueError(f"Expected a square kernel (side, side, in, out); received shape {shape}")
    return shape


def _taps_of_block(side, block):
    """`taps[t, r, a, u]` = 1 where output offset `a` of a block reads kernel tap `u` at input row `t`, offset `r`."""
    count = -(-(side + block - 1) // block)
    taps = np.zeros((count, block, block, side), np.float32)
    for t in range(count):
        for r in range(block):
            for a in range(block):
                if 0 <= block * t + r - a < side:
                    taps[t, r, a, block * t + r - a] = 1
    return taps


def space_to_depth_kernel(kernel, block):
    """The kernel of `conv_by_space_to_depth`: `kernel` (k, k, in, out) as (t, t, block² in, block² out).

    Output pixel `block * i + a` of the original reads padded input rows
    `block * i + a + u` for taps `u < k`; in space-to-depth rows that is row
    `i + t` at offset `r` within its block, with `block * t + r = a + u`.
    Channel orders are TensorFlow's: (row offset, column offset, channel).
    A tensor op on `kernel` (a variable or array), so traced graphs keep it
    tied to the weights (converters fold it into a constant).
    """
    side, _, channels_in, channels_out = _check_shape(kernel)
    taps = tf.constant(_taps_of_block(side, block))
    wide = tf.einsum("TRAu,SCBv,uvio->TSRCiABo", taps, taps, tf.cast(kernel, tf.float32))
    count = taps.shape[0]
    return tf.reshape(wide, (count, count, block * block * channels_in, block * block * channels_out))


def conv_by_space_to_depth(padded, kernel, block):
    """`tf.nn.conv2d(padded, kernel, 1, "VALID")`, computed `block` x `block` output pixels at a time.

    Args:
        padded: `(batch, height + k - 1, width + k - 1, in)`: the input with
            the convolution's padding already added, `height` and `width`
            multiples of `block` (when unknown at tracing, the caller's
            promise).
        kernel: `(k, k, in, out)`, a variable or array.
        block: Output pixels per block side, e.g. 2.

    Returns:
        `(batch, height, width, out)`.
    """
    side = _check_shape(kernel)[0]
    sizes = [padded.shape[axis] for axis in (1, 2)]
    if any(size is not None and (size - side + 1) % block for size in sizes):
        raise ValueError(f"Output size {[s - side + 1 for s in sizes]} is not a multiple of block={block}")
    wide = space_to_depth_kernel(kernel, block)
    extra = block * (wide.shape[0] - 1) - (side - 1)  # rows the wide kernel reads beyond the padding: weight 0
    if extra:
        padded = tf.pad(padded, [[0, 0], [0, extra], [0, extra], [0, 0]])
    out = tf.nn.conv2d(tf.nn.space_to_depth(padded, block), tf.cast(wide, padded.dtype), 1, "VALID")
    return tf.nn.depth_to_space(out, block)


def upsampled_conv_kernel(kernel):
    """The kernel of `upsampled_conv`: a 3x3 `kernel` (3, 3, in, out) as (3, 3, in, 4 out).

    Upsampled row `2i + a` with reflection padding 1 reads low-resolution rows
    `floor((2i + a + u - 1) / 2)` for taps `u` in 0..2, i.e. row `i + t - 1`
    of the edge-padded input with `t = floor((a + u - 1) / 2) + 1`: phase 0
    reads rows (i-1, i, i), phase 1 rows (i, i, i+1).
    """
    shape = _check_shape(kernel)
    if shape[0] != 3:
        raise ValueError(f"upsampled_conv rewrites 3x3 kernels; received shape {shape}")
    # taps[a, t, u]: 1 where tap u of output phase a reads edge-padded row i + t - 1.
    taps = np.zeros((2, 3, 3), np.float32)
    for a in range(2):
        for u in range(3):
            taps[a, (a + u - 1) // 2 + 1, u] = 1
    wide = tf.einsum("atu,bsv,uvio->tsiabo", taps, taps, tf.cast(kernel, tf.float32))
    return tf.reshape(wide, (3, 3, shape[2], 4 * shape[3]))


def upsampled_conv(x, kernel):
    """Nearest x2 upsampling of `x`, reflection padding 1, then a 3x3 `kernel`: computed at `x`'s size.

    Args:
        x: `(batch, height, width, in)`, any height and width (also unknown
            at tracing).
        kernel: `(3, 3, in, out)`, a variable or array.

    Returns:
        `(batch, 2 height, 2 width, out)`: the values of
        `conv2d(reflect_pad(upsample(x), 1), kernel, "VALID")`.
    """
    out = tf.nn.conv2d(edge_pad_by_slices(x), tf.cast(upsampled_conv_kernel(kernel), x.dtype), 1, "VALID")
    return tf.nn.depth_to_space(out, 2)


class Upsampled:
    """An x2 nearest upsampling of `low`, left to the convolution after it (`upsampled_conv`)."""

    def __init__(self, low):
        self.low = low

    def materialized(self):
        """The upsampled tensor itself (depth-to-space of four copies: no TILE, which XNNPACK lacks)."""
        return tf.nn.depth_to_space(tf.concat([self.low] * 4, axis=-1), 2)


def rewritten_layers(space_to_depth, block=2):
    """`wrap(layer)` for `network.run_layers`: the transformer's layers with the rewrites above.

    Each x2 nearest `UpSampling2D` gives an `Upsampled`, which the 3x3
    `ReflectionConv2D` after it (always, in `build_transformer`'s network)
    computes by `upsampled_conv`; a stride-1 `ReflectionConv2D` for which
    `space_to_depth(layer)` is true runs by `conv_by_space_to_depth` with
    `block`; every other layer is itself.

    Raises:
        ValueError: From `wrap`, for an upsampling other than x2 nearest; when
            called, for an upsampling followed by anything but a convolution.
    """

    def conv(layer):
        def call(x):
            if isinstance(x, Upsampled) and layer.kernel_size == 3 and layer.strides == 1:
                out = upsampled_conv(tf.cast(x.low, layer.compute_dtype), layer.conv.kernel)
            else:
                x = tf.cast(x.materialized() if isinstance(x, Upsampled) else x, layer.compute_dtype)
                sides = [x.shape[axis] for axis in (1, 2)]
                if layer.strides != 1 or not space_to_depth(layer) or any(s is not None and s % block for s in sides):
                    return layer(x)
                out = conv_by_space_to_depth(layer.padded(x), layer.conv.kernel, block)
            return out + tf.cast(layer.conv.bias, out.dtype) if layer.use_bias else out

        return call

    def other(layer):
        def call(inputs):
            if any(isinstance(value, Upsampled) for value in keras.tree.flatten(inputs)):
                raise ValueError(f"Cannot rewrite {layer.name}: an upsampling must be followed by a ReflectionConv2D")
            return layer(inputs)

        return call

    def wrap(layer):
        if isinstance(layer, keras.layers.UpSampling2D):
            if tuple(layer.size) != (2, 2) or layer.interpolation != "nearest":
                raise ValueError(
                    f"Cannot rewrite {layer.name}: x2 nearest upsampling expected, got {layer.get_config()}"
                )
            return Upsampled
        if isinstance(layer, ReflectionConv2D):
            return conv(layer)
        return other(layer)

    return wrap
