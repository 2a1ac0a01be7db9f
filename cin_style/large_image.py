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

import keras
import numpy as np
from keras import ops

from cin_style.layers import (
    ConditionalInstanceNormalization,
    CropToMatch,
    MirrorPadToMultiple,
    ReflectionConv2D,
    ResidualBlock,
)
from cin_style.network import run_layers

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


class _Upsampled:
    """A ×2 nearest upsampling of `source`, left for the next convolution to read by index (never stored)."""

    def __init__(self, source):
        self.source = source


class _Convolved:
    """A convolution's output and its whole-image moments, for the CIN layer that follows."""

    def __init__(self, values, statistics):
        self.values, self.statistics = values, statistics


class _Normalizing:
    """A CIN layer still to apply to a convolution's output: the activation after it joins its pass."""

    def __init__(self, convolved, norm, weights):
        self.convolved, self.norm, self.weights = convolved, norm, weights


class _Painter:
    """Runs each layer of a transformer over a whole image held in numpy, tile by tile (`wrap`)."""

    def __init__(self, tile):
        self.tile = int(tile)

    def _tiles(self, height, width):
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                yield top, min(top + self.tile, height), left, min(left + self.tile, width)

    def conv(self, x, conv):
        """`conv` (a `ReflectionConv2D`) of `x` (h, w, c) or of an `_Upsampled` one, with the output's moments."""
        upsampled = isinstance(x, _Upsampled)
        if upsampled:
            x = x.source
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
        return _Convolved(out, moments.result())

    def normalize(self, convolved, norm, weights, activation=None):
        """`norm` (a CIN layer) applied in place to a convolution's output with the whole image's moments,
        then `activation`, in one pass over the tiles."""
        x = convolved.values
        mean, variance = convolved.statistics
        for top, bottom, left, right in self._tiles(*x.shape[:2]):
            w = weights if weights.ndim == 2 else weights[None, top:bottom, left:right]
            y = norm([x[None, top:bottom, left:right], w, mean, variance])
            x[top:bottom, left:right] = ops.convert_to_numpy(y if activation is None else activation(y))[0]
        return x

    def activate(self, x, activation):
        """`activation` of a CIN layer's output (fused into its pass) or of a convolution's (the RGB one
        of `output_norm=False`)."""
        if isinstance(x, _Normalizing):
            return self.normalize(x.convolved, x.norm, x.weights, activation)
        if isinstance(x, _Convolved):
            x = x.values
        for top, bottom, left, right in self._tiles(*x.shape[:2]):
            x[top:bottom, left:right] = ops.convert_to_numpy(activation(x[None, top:bottom, left:right]))[0]
        return x

    def residual(self, x, block, weights):
        y = self.normalize(self.conv(x, block.conv1), block.norm1, weights, ops.relu)
        x += self.normalize(self.conv(y, block.conv2), block.norm2, weights)
        return x

    def wrap(self, layer):
        """What runs in `layer`'s place (see `network.run_layers`)."""
        if isinstance(layer, MirrorPadToMultiple):
            return lambda image: np.array(ops.convert_to_numpy(layer(image[None]))[0])
        if isinstance(layer, ReflectionConv2D):
            return lambda x: self.conv(x, layer)
        if isinstance(layer, ConditionalInstanceNormalization):  # applied with the activation that follows
            return lambda inputs: _Normalizing(inputs[0], layer, inputs[1])
        if isinstance(layer, keras.layers.Activation):
            return lambda x: self.activate(x, layer)
        if isinstance(layer, ResidualBlock):
            return lambda inputs: self.residual(inputs[0], layer, inputs[1])
        if isinstance(layer, keras.layers.UpSampling2D):
            return _Upsampled
        if isinstance(layer, CropToMatch):
            return lambda inputs: inputs[0][: inputs[1].shape[0], : inputs[1].shape[1]]
        raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) is not one paint_large can run tile by tile")


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
    painter = _Painter(tile)
    levels = _levels(np.asarray(style_weights), model.get_layer("pad"))
    image = np.asarray(image, np.float32)
    # The network's own wiring and layers (`run_layers`), each run over the whole image in tiles.
    return np.clip(run_layers(model, image, levels.__getitem__, painter.wrap), 0.0, 1.0)


__all__ = ["DEFAULT_LAYER_TILE", "paint_large"]
