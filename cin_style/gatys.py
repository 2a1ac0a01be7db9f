"""Gatys et al. (2016): optimise the pixels of one image under the same loss.

This is the quality reference for the fast network: `optimize` minimises
exactly the `PerceptualLoss` that training uses (same layers, Gram
normalisation and weights), with Adam on the pixels or with L-BFGS-B through
SciPy, both fed by one compiled loss-and-gradient step: `tf.function` with
`tf.GradientTape` under TensorFlow, `jax.jit(jax.value_and_grad(...))` under
JAX (no TensorFlow needed). Other Keras backends are refused.

L-BFGS-B converges better per second here (TensorFlow, 2 CPU cores, 192 px:
total loss 1.31 after 45 s against Adam's 1.74; on CPU a JAX step took 2-4x
longer than TensorFlow's at 64 px); Adam stays the default for its fixed
cost per step and no SciPy dependency. `benchmarks/gatys_optimizers.py` measures both at equal
time budgets. L-BFGS needs SciPy (`pip install cin_style[gatys]`).

On GPUs, JAX may run float32 convolutions in TF32 by default; set
`JAX_DEFAULT_MATMUL_PRECISION=highest` for exact reference numbers.
"""

import dataclasses
import os
import time

import keras
import numpy as np
from keras import ops

from cin_style import image_io
from cin_style.checks import normalized_blend
from cin_style.losses import PerceptualLoss, mix_targets

OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise")
BACKENDS = ("tensorflow", "jax")


@dataclasses.dataclass
class GatysResult:
    """An optimised image and how it got there."""

    image: np.ndarray
    history: list
    seconds: float
    losses: dict


def _as_image(image, size, label):
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = image_io.read_image(image)
    elif hasattr(image, "mode") and hasattr(image, "size"):
        image = image_io.to_rgb_array(image)
    else:
        batch = image_io.array_to_rgb(image)
        if batch.shape[0] != 1:
            raise ValueError(f"The {label} must be one image. Received: shape={np.shape(image)}")
        image = batch[0]
    if size is not None:
        height, width = image.shape[:2]
        scale = size / max(height, width)
        if scale != 1:
            image = image_io.resize_shorter_side(image, max(1, round(min(height, width) * scale)))
    return image


def _blend(style, style_blend):
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise ValueError("Give at least one style image")
    if style_blend is None:
        style_blend = [1.0] * len(styles)
    weights = np.asarray(style_blend, np.float64)
    if weights.shape != (len(styles),):
        raise ValueError(
            f"`style_blend` needs one weight per style image ({len(styles)}). Received: {list(style_blend)}"
        )
    return styles, normalized_blend(weights, "`style_blend` weights")


def gram_targets(loss, style, style_blend=None, style_size=256):
    """The blended Gram targets `{layer: (1, c, c)}` of style image(s) `style` under `loss`, as `optimize` uses."""
    styles, blend = _blend(style, style_blend)
    style_images = [image_io.resize_shorter_side(_as_image(s, None, "style"), style_size) for s in styles]
    return mix_targets(loss.style_grams(style_images), blend[None])


def _loss_for(perceptual_loss, vgg_weights, content_weight, style_weight, tv_weight):
    """`perceptual_loss` as is, or a copy with some term weights replaced."""
    overrides = {
        k: v
        for k, v in (("content_weight", content_weight), ("style_weight", style_weight), ("tv_weight", tv_weight))
        if v is not None
    }
    if perceptual_loss is not None and not overrides:
        return perceptual_loss
    if perceptual_loss is None:
        return PerceptualLoss(vgg_weights=vgg_weights, **overrides)
    settings = {
        k: getattr(perceptual_loss, k)
        for k in ("content_layers", "style_layers", "content_weight", "style_weight", "tv_weight", "vgg_weights")
    }
    return PerceptualLoss(**{**settings, **overrides})


def _compile_loss_and_grad(loss, photo, targets):
    """`loss_and_grad(pixels) -> (parts, gradient)`, compiled by the Keras backend's own means.

    `parts` maps `"total"`, `"content"`, `"style"` and `"tv"` to scalars for
    the one image `pixels` `(1, h, w, 3)`; `gradient` is d total / d pixels.

    Raises:
        ValueError: Under a Keras backend other than TensorFlow or JAX.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def loss_and_grad(pixels):
            with tf.GradientTape() as tape:
                tape.watch(pixels)
                parts = loss(pixels, photo, targets)
                total = tf.reduce_sum(parts["total"])
            return {k: v[0] for k, v in parts.items()}, tape.gradient(total, pixels)

        return loss_and_grad
    if backend == "jax":
        import jax

        def total_and_parts(pixels, values, photo, targets):
            # VGG's weights enter the compiled step as arguments rather than as baked-in constants.
            with keras.StatelessScope(state_mapping=list(zip(loss.variables, values, strict=True))):
                parts = loss(pixels, photo, targets)
            return ops.sum(parts["total"]), {k: v[0] for k, v in parts.items()}

        step = jax.jit(jax.value_and_grad(total_and_parts, has_aux=True))
        values = [v.value for v in loss.variables]

        def loss_and_grad(pixels):
            (_, parts), grad = step(pixels, values, photo, targets)
            return {k: parts[k] for k in ("total", "content", "style", "tv")}, grad  # JAX sorts dict keys

        return loss_and_grad
    raise ValueError(f"Gatys optimisation supports the Keras backends {BACKENDS}. Received: backend={backend!r}")


def optimize(
    content,
    style,
    *,
    steps=500,
    content_weight=None,
    style_weight=None,
    tv_weight=None,
    init="content",
    optimizer="adam",
    size=None,
    style_size=256,
    learning_rate=0.02,
    style_blend=None,
    perceptual_loss=None,
    vgg_weights=None,
    callback=None,
    seed=0,
    verbose=1,
):
    """Stylises one image by optimising its pixels (Gatys et al. 2016).

    Args:
        content: The photo: path, PIL image or array (uint8 or float in [0, 1]).
        style: A style image, or a list of them to blend.
        steps: Optimisation steps (Adam steps or L-BFGS iterations).
        content_weight, style_weight, tv_weight: Term weights; default to
            those of `perceptual_loss` (or the library defaults).
        init: `"content"` (start from the photo), `"noise"`, or an image
            of the photo's size to start from (path, PIL image or array;
            e.g. a fast model's painting, to refine it).
        optimizer: `"adam"` (default) or `"lbfgs"` (SciPy's L-BFGS-B).
        size: Longer side of the content image; `None` keeps its size.
        style_size: Shorter side of style images for the Gram targets (as in
            training). Defaults to `256`.
        learning_rate: Adam's step size on pixels in [0, 1]. Defaults to `0.02`.
        style_blend: One weight per style image (blended Gram targets).
        perceptual_loss: A `PerceptualLoss` to use as is (e.g. a trained
            model's); its term weights are the defaults of the weights above.
        vgg_weights: VGG19 weights when `perceptual_loss` is not given.
        callback: Called as `callback(step, losses_dict)` after every step.
        seed: Seed of the noise initialisation.
        verbose: 1 for a progress bar.

    Returns:
        A `GatysResult` with the image `(h, w, 3)` float32 in [0, 1], the loss
        history, the seconds spent optimising and the final loss parts.

    Raises:
        ValueError: For unknown `optimizer` or `init`, bad images or blends,
            or a Keras backend other than TensorFlow or JAX.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={optimizer!r}")
    start_image = None
    if isinstance(init, str) and init in INITS:
        pass
    elif isinstance(init, str) and not os.path.exists(init):
        raise ValueError(f"`init` must be one of {INITS} or an image. Received: init={init!r}")
    else:
        start_image = _as_image(init, None, "init image")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive integer. Received: steps={steps!r}")
    _blend(style, style_blend)  # checked before any image is read
    photo = _as_image(content, size, "content")
    loss = _loss_for(perceptual_loss, vgg_weights, content_weight, style_weight, tv_weight)
    targets = gram_targets(loss, style, style_blend, style_size)
    if start_image is not None:
        if start_image.shape != photo.shape:
            raise ValueError(
                f"The init image must have the photo's size {photo.shape[1]}x{photo.shape[0]}. "
                f"Received: {start_image.shape[1]}x{start_image.shape[0]}"
            )
        start = start_image[None]
    elif init == "content":
        start = photo[None]
    else:
        start = np.random.default_rng(seed).random(photo[None].shape, dtype=np.float32)
    loss_and_grad = _compile_loss_and_grad(loss, ops.convert_to_tensor(photo[None]), targets)
    pixels = keras.Variable(start, dtype="float32", trainable=True, name="pixels")

    bar = keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=["loss", "content", "style", "tv"])
    history = []

    def record(step, parts):
        values = {k: float(v) for k, v in parts.items()}
        history.append({"step": step, **values})
        bar.update(step, values=[("loss", values["total"]), ("content", values["content"]), ("style", values["style"])])
        if callback is not None:
            callback(step, values)

    loss_and_grad(ops.convert_to_tensor(pixels))  # trace and compile outside the timed loop
    began = time.perf_counter()
    if optimizer == "adam":
        adam = keras.optimizers.Adam(learning_rate)
        for step in range(1, steps + 1):
            parts, grad = loss_and_grad(ops.convert_to_tensor(pixels))
            adam.apply_gradients([(grad, pixels)])
            pixels.assign(ops.clip(pixels, 0.0, 1.0))
            record(step, parts)
    else:
        try:
            from scipy.optimize import minimize
        except ImportError as error:
            raise ImportError("optimizer='lbfgs' needs SciPy: pip install scipy (or cin_style[gatys])") from error
        shape = start.shape
        state = {"step": 0, "parts": None}

        def fun(flat):
            pixels.assign(flat.reshape(shape).astype(np.float32))
            parts, grad = loss_and_grad(ops.convert_to_tensor(pixels))
            state["parts"] = parts
            return float(parts["total"]), ops.convert_to_numpy(grad).astype(np.float64).ravel()

        def on_iteration(_):
            state["step"] += 1
            record(state["step"], state["parts"])

        result = minimize(
            fun,
            start.astype(np.float64).ravel(),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * start.size,
            callback=on_iteration,
            options={"maxiter": steps, "maxfun": steps * 2},
        )
        pixels.assign(result.x.reshape(shape).astype(np.float32))
    seconds = time.perf_counter() - began
    final, _ = loss_and_grad(ops.convert_to_tensor(pixels))
    image = np.clip(ops.convert_to_numpy(pixels)[0], 0.0, 1.0)
    return GatysResult(image, history, seconds, {k: float(v) for k, v in final.items()})
