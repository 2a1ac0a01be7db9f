"""cin-style-gatys: stylise one photo by optimising its pixels (Gatys et al. 2016).

cin-style-gatys --content=photo.jpg --style=painting.jpg --output=painted.png --steps=500
cin-style-gatys --content=photo.jpg --style=a.jpg,b.jpg --style_blend=0.7,0.3 --output=blend.png
"""

import importlib.util
import os

from absl import flags

from cin_style.cli._common import fail, reject_extra_args, run_tool, setup_logging, vgg_weights_or_fail

FLAGS = flags.FLAGS
flags.DEFINE_string("content", None, "The photo.")
flags.DEFINE_list("style", None, "Style image(s); several are blended.")
flags.DEFINE_list("style_blend", None, "One weight per style image (default: equal).")
flags.DEFINE_string("output", None, "Output image file (written atomically).")
flags.DEFINE_integer("steps", 500, "Optimisation steps.")
flags.DEFINE_integer("size", 512, "Longer side of the output.")
flags.DEFINE_integer("style_size", 256, "Shorter side of style images for the Gram targets.")
flags.DEFINE_enum("optimizer", "adam", ["adam", "lbfgs"], "Pixel optimiser.")
flags.DEFINE_string(
    "init",
    "content",
    "Where the optimisation starts: content (the photo), noise, or MODEL[:STYLE]: a cin_style model's painting of "
    "the photo (a model path, or default / slim), in STYLE (a name or index) or else in the model's style whose "
    "painting is nearest the given style image(s) by Gram distance (it needs the paintings the model carries).",
)
flags.DEFINE_float("learning_rate", 0.02, "Adam step size.")
flags.DEFINE_float("content_weight", None, "Content loss weight (default: the library's).")
flags.DEFINE_float("style_weight", None, "Style loss weight (default: the library's).")
flags.DEFINE_float("tv_weight", None, "Total-variation weight (default: the library's).")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.DEFINE_string(
    "vgg_weights",
    None,
    "Keras' VGG19 no-top weights file (default: $CIN_STYLE_VGG19_WEIGHTS, else Keras' cache ~/.keras/models); "
    "imagenet: let Keras download it (80 MB).",
)

#: What --help shows, in this order (a flag left out of every group is listed under "Other flags").
HELP_GROUPS = [
    ("Pictures", ["content", "style", "style_blend", "output", "overwrite", "size", "style_size"]),
    ("Optimisation", ["steps", "optimizer", "init", "learning_rate"]),
    ("Loss", ["content_weight", "style_weight", "tv_weight", "vgg_weights"]),
]


def main(argv):
    reject_extra_args(argv)
    for name in ("content", "style", "output"):
        if not getattr(FLAGS, name):
            fail(f"--{name} is required")
    for path in [FLAGS.content, *FLAGS.style]:
        if not os.path.isfile(path):
            fail(f"Image file not found: {path}")
    if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
        fail(f"{FLAGS.output} exists; pass --overwrite to replace it")
    from cin_style.image_io import image_format  # numpy and Pillow only: no Keras yet

    if not os.path.splitext(FLAGS.output)[1] or image_format(FLAGS.output) is None:
        fail(
            "--output must end in an image extension Pillow can write, such as .png, .jpg or .webp. "
            f"Received: --output={FLAGS.output}"
        )
    vgg_weights = vgg_weights_or_fail(FLAGS.vgg_weights)
    model_path, model_style = _split_model_spec(FLAGS.init) if FLAGS.init not in ("content", "noise") else (None, None)
    saved_model = model_path is not None and _is_saved_model(model_path)
    if saved_model and importlib.util.find_spec("tensorflow") is None:
        fail(
            f"--init={FLAGS.init}: {model_path} is a SavedModel, which needs TensorFlow; give a .keras model or a "
            "training folder instead, or install TensorFlow"
        )
    setup_logging(tensorflow=saved_model)
    from cin_style import image_io
    from cin_style.gatys import optimize
    from cin_style.losses import PerceptualLoss
    from cin_style.vgg import VGGWeightsError

    try:
        blend = [float(w) for w in FLAGS.style_blend] if FLAGS.style_blend else None
    except ValueError:
        fail(f"--style_blend must be numbers. Received: {','.join(FLAGS.style_blend)}")
    stylizer = _init_model(model_path, model_style) if model_path else None
    try:
        weights = {"content_weight": FLAGS.content_weight, "style_weight": FLAGS.style_weight}
        weights["tv_weight"] = FLAGS.tv_weight
        loss = PerceptualLoss(vgg_weights=vgg_weights, **{k: v for k, v in weights.items() if v is not None})
        photo = image_io.read_image(FLAGS.content)
        scale = FLAGS.size / max(photo.shape[:2])
        if scale != 1:  # as optimize sizes it, so a model's painting of it has its size
            photo = image_io.resize_shorter_side(photo, max(1, round(min(photo.shape[:2]) * scale)))
        init = _model_painting(stylizer, model_path, model_style, photo, loss, blend) if stylizer else FLAGS.init
        result = optimize(
            photo,
            list(FLAGS.style),
            steps=FLAGS.steps,
            style_size=FLAGS.style_size,
            optimizer=FLAGS.optimizer,
            init=init,
            learning_rate=FLAGS.learning_rate,
            style_blend=blend,
            perceptual_loss=loss,
        )
        image_io.write_image(FLAGS.output, result.image)
    except (ValueError, OSError, VGGWeightsError) as error:
        fail(str(error))
    parts = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    print(f"wrote {FLAGS.output} after {FLAGS.steps} {FLAGS.optimizer} steps in {result.seconds:.1f} s ({parts})")


def _split_model_spec(spec):
    """`MODEL[:STYLE]` as `(model path, STYLE or None)`; a path that exists (colons and all) is all model."""
    from cin_style.bundled import resolve_model_keyword

    if os.path.exists(resolve_model_keyword(spec)):
        return resolve_model_keyword(spec), None
    model, colon, style = spec.rpartition(":")
    if not colon or not style or not os.path.exists(resolve_model_keyword(model)):
        fail(f"--init must be content, noise or MODEL[:STYLE] with a model that exists. Received: --init={spec}")
    return resolve_model_keyword(model), style


def _is_saved_model(path):
    """A SavedModel version folder, or a base folder with numbered versions (read with TensorFlow)."""
    if not os.path.isdir(path):
        return False
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return True
    return any(
        name.isdigit() and os.path.isfile(os.path.join(path, name, "saved_model.pb")) for name in os.listdir(path)
    )


def _init_model(path, style):
    """The model of --init, checked before any work: its style exists, or it carries the paintings that the
    nearest style is chosen by."""
    from cin_style.paintings import PaintingsError
    from cin_style.stylizer import ModelLoadError, StyleError, Stylizer

    try:
        stylizer = Stylizer.load(path)
        if style is not None:
            stylizer.style_weights(_style_key(stylizer, style))
        else:
            for index in range(stylizer.num_styles):
                stylizer.style_image(index)
    except (ModelLoadError, StyleError) as error:
        fail(f"--init={FLAGS.init}: {error}")
    except PaintingsError:
        fail(
            f"--init={FLAGS.init}: {path} carries no paintings of its styles to find the nearest by; name the style "
            f"to start from (--init={FLAGS.init}:STYLE), or export the model again with them "
            "(cin-style-export --paintings=FOLDER)"
        )
    return stylizer


def _style_key(stylizer, style):
    """`STYLE` of --init as a Stylizer key: a name it has, else an index."""
    return int(style) if style.isdigit() and style not in stylizer.style_names else style


def _model_painting(stylizer, path, style, photo, loss, blend):
    """The model's painting of `photo`, in `style` or in the model's style whose painting is nearest the --style
    image(s) by Gram distance, both at the size the paintings are carried at (printed, with the runners-up)."""
    import numpy as np
    from keras import ops

    from cin_style.gatys import gram_targets
    from cin_style.losses import gram_distances

    if style is None:
        carried = [np.asarray(stylizer.style_image(i), np.float32) / 255.0 for i in range(stylizer.num_styles)]
        size = min(carried[0].shape[:2])  # the style-target size they are carried at: compared at one scale
        target = gram_targets(loss, list(FLAGS.style), blend, size)
        distances = ops.convert_to_numpy(gram_distances(loss.style_grams(carried), target, loss.style_layers))
        order = np.argsort(distances)
        index = int(order[0])
        ranked = ", ".join(f"{stylizer.style_names[i]} {distances[i]:.3g}" for i in order[:3])
        print(
            f"Starting from {path}'s painting in {stylizer.style_names[index]}, its style nearest the "
            f"given painting by Gram distance ({ranked})"
        )
        return stylizer.stylize(photo, index)
    key = _style_key(stylizer, style)
    print(f"Starting from {path}'s painting in {stylizer.style_names[int(np.argmax(stylizer.style_weights(key)))]}")
    return stylizer.stylize(photo, key)


def run():
    run_tool(main, __doc__, HELP_GROUPS, __name__)


if __name__ == "__main__":
    run()
