"""The spike penalty: a training term against the activation spikes behind white ovals.

An undertrained transformer learns to steer its per-image instance statistics
with a spike: a small region of huge activations that holds most of a
channel's variance, so the normalisation shrinks every other pixel of it. The
spike itself comes out as a white oval (saved_models/README.md, "White
blobs"). A spike is what kurtosis measures: 3 for a Gaussian channel, about 1/a
for a channel whose variance sits in a share `a` of its positions. On Kodak
photos the default model's inputs to the CIN layers from the residual blocks
on have a median kurtosis of 3.5-4.7 per layer (99th percentile 7-21, so the
limit `DEFAULT_SPIKE_LIMIT` touches a few of its channels), while slim
version 2's decoder layers have a median of 23-38 and reach 190. The encoder
is left out: its inputs are the photo's own features, peaky in any photo.
"""

import math

from keras import ops

from cin_style.network import cin_layers

#: Kurtosis a channel may have before the penalty counts it.
DEFAULT_SPIKE_LIMIT = 16.0


def spatial_kurtosis(x):
    """Kurtosis over the spatial axes of each example's channels, `(batch, channels)`, in float32.

    `mean((x - mean)^4) / var^2` per example and channel of `x`
    `(batch, height, width, channels)`; 0 for a constant channel.
    """
    x = ops.cast(x, "float32")
    squared = ops.square(x - ops.mean(x, axis=(1, 2), keepdims=True))
    variance = ops.mean(squared, axis=(1, 2))
    return ops.mean(ops.square(squared), axis=(1, 2)) / ops.maximum(ops.square(variance), 1e-12)


def spike_penalty(x, limit=DEFAULT_SPIKE_LIMIT):
    """`max(0, log(kurtosis / limit))` averaged over examples and channels: 0 while no channel is spiked.

    The logarithm keeps a spike of kurtosis 200 from outweighing everything
    else (its term is 2.5 at the default limit) while its gradient still
    points at the spike's positions.
    """
    excess = ops.log(ops.maximum(spatial_kurtosis(x), 1e-12)) - math.log(limit)
    return ops.mean(ops.relu(excess))


def spike_layers(model):
    """The CIN layers whose inputs the penalty watches: those of the residual blocks, the decoder and the output."""
    return [layer for layer in cin_layers(model) if not layer.name.startswith("encoder")]


def watch_spikes(model, weight, limit=DEFAULT_SPIKE_LIMIT):
    """Makes each of `model`'s `spike_layers` add `weight / their count * spike_penalty(input)` to its losses.

    A training-time setting on these layer objects (`input_penalty`), not
    saved with the model; `weight=0` removes it.

    Raises:
        ValueError: If `weight` is negative or `limit` is not above 0.
    """
    if not weight >= 0:
        raise ValueError(f"`spike_weight` must be non-negative. Received: spike_weight={weight!r}")
    if not limit > 0:
        raise ValueError(f"`spike_limit` must be positive. Received: spike_limit={limit!r}")
    layers = spike_layers(model)
    if not layers:
        raise ValueError(f"Model '{model.name}' has no CIN layer after its encoder to watch")
    share = float(weight) / len(layers)
    for layer in layers:
        layer.input_penalty = (lambda x: share * spike_penalty(x, limit)) if weight > 0 else None
    return layers
