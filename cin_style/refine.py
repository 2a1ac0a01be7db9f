"""Quality mode: the fast model's painting refined by a few steps of Gatys' optimisation.

The network paints in one pass, at about twice the loss Gatys et al. reach
in 500 steps; optimising the pixels from the network's painting, under the
model's own loss (its content, style and total-variation weights, Gram
targets from the paintings it carries), closes much of that gap in tens of
steps. The optimisation runs at the image's own resolution: a change made at
a smaller size and upsampled raises the full-size loss instead (measured by
`benchmarks/refine_working_size.py`: on 768 x 512 photos, 30 steps at 512 px
took the loss from 0.76 to 0.82, at full size to 0.42). Images with a side
over `DEFAULT_TILE` are refined in overlapping tiles of that side, each
against the same Gram targets, blended with feathered edges: VGG19's
activations and their gradients grow with the pixels optimised at once.
"""

import keras
import numpy as np

from cin_style import tiles
from cin_style.gatys import optimize
from cin_style.losses import PerceptualLoss

#: Longest side refined in one piece; larger images are refined in tiles of this side (1 Mpx: +3.5 GB peak on a CPU).
DEFAULT_TILE = 1024
#: Overlap of neighbouring tiles, blended linearly (at most a quarter of the tile).
DEFAULT_TILE_OVERLAP = 64
#: Adam's step on the pixels when refining (smaller than Gatys' 0.02 from the photo: the start is close).
DEFAULT_LEARNING_RATE = 0.01


def model_loss(training_config, vgg_weights=None):
    """The `PerceptualLoss` a model was trained under (the weights its training config records, else defaults).

    Raises:
        VGGWeightsError: If the VGG19 weights cannot be found or read.
    """
    keys = ("content_weight", "style_weight", "tv_weight")
    weights = {k: float(training_config[k]) for k in keys if training_config.get(k) is not None}
    return PerceptualLoss(vgg_weights=vgg_weights, **weights)


def refine(
    photo,
    painting,
    paintings,
    blend,
    steps,
    loss,
    style_size=256,
    tile=DEFAULT_TILE,
    learning_rate=DEFAULT_LEARNING_RATE,
    verbose=1,
    callback=None,
):
    """`painting` of `photo` after `steps` Adam steps on its pixels under `loss`.

    Args:
        photo, painting: float32 `(h, w, 3)` images in [0, 1], the same size.
        paintings: The style images whose blended Gram matrices are the
            targets (the styles with a weight above 0).
        blend: One weight per painting, summing to 1.
        steps: Optimisation steps; 0 returns `painting` as it is.
        loss: The model's `PerceptualLoss` (`model_loss`).
        style_size: Shorter side of the style images for the Gram targets.
        tile: Longest side optimised in one piece; a larger image is refined
            in the fewest overlapping tiles of at most this side (all of one
            size, spread evenly), one after the other, `steps` each.
        learning_rate: Adam's step size on pixels in [0, 1].
        verbose: 1 for a progress bar (over all tiles' steps).
        callback: Called as `callback(step, losses)` after every step, with
            the loss parts of the image (or tile) the step started from;
            `optimize`'s callback. Tiles are refined in turn, each counting
            its steps from 1.

    Returns:
        float32 `(h, w, 3)` in [0, 1].

    Raises:
        ValueError: If `photo` and `painting` differ in shape, or `tile` is
            not a positive integer.
    """
    if steps == 0:
        return painting
    if photo.shape != painting.shape:
        raise ValueError(f"`photo` and `painting` must have one shape. Received: {photo.shape} and {painting.shape}")
    height, width = photo.shape[:2]
    overlap = min(DEFAULT_TILE_OVERLAP, tile // 4)
    tile_height, tops = tiles.even_tiles(height, tile, overlap)
    tile_width, lefts = tiles.even_tiles(width, tile, overlap)
    corners = [(top, left) for top in tops for left in lefts]
    bar = keras.utils.Progbar(steps * len(corners), verbose=verbose, stateful_metrics=["loss"])
    done = [0]

    def on_step(step, parts):
        done[0] += 1
        bar.update(done[0], values=[("loss", parts["total"])])
        if callback is not None:
            callback(step, parts)

    def refined(top, left):
        window = (slice(top, top + tile_height), slice(left, left + tile_width))
        return optimize(
            photo[window],
            list(paintings),
            style_blend=list(blend),
            steps=steps,
            init=painting[window],
            perceptual_loss=loss,
            style_size=style_size,
            learning_rate=learning_rate,
            verbose=0,
            callback=on_step,
        ).image

    if len(corners) == 1:
        return refined(0, 0)
    placed = ((top, left, refined(top, left)) for top, left in corners)  # one tile refined at a time
    return np.clip(tiles.blend(painting.shape, placed, overlap), 0.0, 1.0)
