"""Quality mode: the fast model's painting refined by a few steps of Gatys' optimisation.

The network paints in one pass, at about twice the loss Gatys et al. reach
in 500 steps; optimising the pixels from the network's painting, under the
model's own loss (its content, style and total-variation weights, Gram
targets from the paintings it carries), closes much of that gap in tens of
steps. Images with a longer side above `DEFAULT_WORKING_SIDE` are refined at
that size: the change the optimisation makes is upsampled and added to the
full-size painting (the style's texture lives at the working scale, and the
optimisation's cost grows with the pixels).
"""

import numpy as np

from cin_style import image_io
from cin_style.gatys import optimize
from cin_style.losses import PerceptualLoss

#: Longer side at which paintings are refined; larger ones get the upsampled change.
DEFAULT_WORKING_SIDE = 512
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
    working_side=DEFAULT_WORKING_SIDE,
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
        working_side: Longer side the optimisation runs at, at most.
        learning_rate: Adam's step size on pixels in [0, 1].
        verbose: 1 for a progress bar.
        callback: Called as `callback(step, losses)` after every step, with
            the loss parts of the image the step started from (at the
            working size); `optimize`'s callback.

    Returns:
        float32 `(h, w, 3)` in [0, 1].
    """
    if steps == 0:
        return painting
    height, width = photo.shape[:2]
    scale = min(1.0, working_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work_photo, work_painting = (image_io.resize(image, *size) for image in (photo, painting))
    else:
        work_photo, work_painting = photo, painting
    result = optimize(
        work_photo,
        list(paintings),
        style_blend=list(blend),
        steps=steps,
        init=work_painting,
        perceptual_loss=loss,
        style_size=style_size,
        learning_rate=learning_rate,
        verbose=verbose,
        callback=callback,
    )
    if scale == 1.0:
        return result.image
    change = image_io.resize(result.image - work_painting, width, height)
    return np.clip(painting + change, 0.0, 1.0).astype(np.float32)
