"""Large images painted layer by layer, so every CIN layer sees the whole image's statistics.

Instance normalisation makes each output pixel depend on statistics taken
over the whole image; tiles painted as separate images each get their own,
and neighbouring tiles then differ in tone (a visible step at every seam).
Here the network runs one layer at a time over the whole image: each
convolution is computed in tiles (each tile reads a halo of the layer's
input, mirrored at the image's borders as the layer itself would), the
statistics of its output are summed over all tiles, and only then is the
output normalised. The result is the untiled network's output up to float
rounding, while memory holds two activations of the image (the layer's input
and output), never the whole network's.
"""

import numpy as np
from keras import ops

from cin_style.layers import ResidualBlock
from cin_style.network import DECODER, ENCODER, NUM_RESIDUAL_BLOCKS, output_norm_of

#: Side of the output tiles each convolution is computed in, at its own resolution.
DEFAULT_LAYER_TILE = 512


def _reflect(positions, length):
    """Indices `positions` (may run past either end) mirrored into [0, length) as `ops.pad(mode="reflect")` does."""
    positions = np.abs(positions)
    period = 2 * length - 2
    positions = positions % period if period else np.zeros_like(positions)
    return np.where(positions < length, positions, period - positions)


def _source_indices(start, stop, conv, length, upsampled):
    """Rows (or columns) of the layer input that output rows [start, stop) of `conv` read."""
    pad = conv.kernel_size // 2
    padded = np.arange(start * conv.strides, (stop - 1) * conv.strides + conv.kernel_size)
    source = _reflect(padded - pad, 2 * length if upsampled else length)
    return source // 2 if upsampled else source


class _Moments:
    """Per-channel sums of x and x² over tiles, in float64: the whole image's mean and variance."""

    def __init__(self, channels):
        self.count, self.sum, self.squares = 0, np.zeros(channels), np.zeros(channels)

    def add(self, tile):
        """Adds a tile `(1, h, w, c)` tensor: its sums in float32 on the backend, accumulated here in float64."""
        self.count += int(np.prod(ops.shape(tile)[:3]))
        self.sum += ops.convert_to_numpy(ops.sum(tile, axis=(0, 1, 2))).astype(np.float64)
        self.squares += ops.convert_to_numpy(ops.sum(ops.square(tile), axis=(0, 1, 2))).astype(np.float64)

    def result(self):
        mean = self.sum / self.count
        variance = np.maximum(self.squares / self.count - np.square(mean), 0.0)
        return mean[None].astype(np.float32), variance[None].astype(np.float32)


class _Painter:
    def __init__(self, model, tile):
        self.model, self.tile = model, int(tile)

    def _tiles(self, height, width):
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                yield top, min(top + self.tile, height), left, min(left + self.tile, width)

    def conv(self, x, conv, upsampled=False):
        """`conv` (a `ReflectionConv2D`) of `x` (h, w, c), or of its ×2 upsampling, and the output's moments."""
        height, width = x.shape[:2]
        if upsampled:
            height, width = 2 * height, 2 * width
        out_height, out_width = -(-height // conv.strides), -(-width // conv.strides)
        out = np.empty((out_height, out_width, conv.filters), np.float32)
        moments = _Moments(conv.filters)
        for top, bottom, left, right in self._tiles(out_height, out_width):
            rows = _source_indices(top, bottom, conv, x.shape[0], upsampled)
            cols = _source_indices(left, right, conv, x.shape[1], upsampled)
            piece = conv.conv(x[np.ix_(rows, cols)][None])
            out[top:bottom, left:right] = ops.convert_to_numpy(piece)[0]
            moments.add(piece)
        return out, moments.result()

    def normalize(self, x, norm, statistics, weights, activation=None):
        """`norm` (a CIN layer) applied in place to `x` with the whole image's `statistics`, then `activation`."""
        mean, variance = statistics
        for top, bottom, left, right in self._tiles(*x.shape[:2]):
            w = weights if weights.ndim == 2 else weights[None, top:bottom, left:right]
            y = norm([x[None, top:bottom, left:right], w, mean, variance])
            if activation is not None:
                y = activation(y)
            x[top:bottom, left:right] = ops.convert_to_numpy(y)[0]
        return x

    def conv_norm(self, x, name, weights, activation, upsampled=False):
        conv = self.model.get_layer(f"{name}_conv")
        y, statistics = self.conv(x, conv, upsampled)
        return self.normalize(y, self.model.get_layer(f"{name}_cin"), statistics, weights, activation)

    def residual(self, x, block, weights):
        y, statistics = self.conv(x, block.conv1)
        y = self.normalize(y, block.norm1, statistics, weights, ops.relu)
        y, statistics = self.conv(y, block.conv2)
        x += self.normalize(y, block.norm2, statistics, weights)
        return x


def _levels(style_weights, pad):
    """Style weights for each resolution level: a row `(1, n)`, or a map padded like the image and averaged."""
    if style_weights.ndim == 1:
        row = style_weights[None].astype(np.float32)
        return [row, row, row]
    full = ops.convert_to_numpy(pad(style_weights[None].astype(np.float32)))[0]
    height, width = full.shape[:2]
    levels = [full]
    for level in (1, 2):
        f = 2**level
        levels.append(full.reshape(height // f, f, width // f, f, -1).mean(axis=(1, 3)))
    return levels


def paint_large(model, image, style_weights, tile=DEFAULT_LAYER_TILE):
    """One image painted by `model` layer by layer in tiles; equal to `model`'s untiled output.

    Args:
        model: A transformer from `build_transformer` (float32).
        image: `(h, w, 3)` float32 in [0, 1].
        style_weights: One row `(num_styles,)`, or a map `(h, w, num_styles)`
            (as `build_transformer(spatial=True)` takes), normalised.
        tile: Side of the tiles each layer's output is computed in. Defaults
            to `DEFAULT_LAYER_TILE`.

    Returns:
        The stylised image `(h, w, 3)` float32 in [0, 1].
    """
    height, width = image.shape[:2]
    pad = model.get_layer("pad")  # the network's own mirror padding, for the image and a map alike
    x = np.array(ops.convert_to_numpy(pad(np.asarray(image, np.float32)[None]))[0])
    levels = _levels(np.asarray(style_weights), pad)
    painter = _Painter(model, tile)
    level = 0
    for i, (_, _, strides) in enumerate(ENCODER, start=1):
        level += strides // 2
        x = painter.conv_norm(x, f"encoder{i}", levels[level], ops.relu)
    for i in range(1, NUM_RESIDUAL_BLOCKS + 1):
        block = model.get_layer(f"residual{i}")
        if not isinstance(block, ResidualBlock):
            raise ValueError(f"Layer residual{i} of {model.name} is not a ResidualBlock")
        x = painter.residual(x, block, levels[level])
    for i in range(1, len(DECODER) + 1):
        level -= 1
        x = painter.conv_norm(x, f"decoder{i}", levels[level], ops.relu, upsampled=True)
    if output_norm_of(model):
        x = painter.conv_norm(x, "output", levels[0], ops.sigmoid)
    else:
        conv = model.get_layer("output_conv")
        x, _ = painter.conv(x, conv)
        x = 1.0 / (1.0 + np.exp(-x))
    return np.clip(x[:height, :width], 0.0, 1.0)


__all__ = ["DEFAULT_LAYER_TILE", "paint_large"]
