"""cin-style-gatys: stylise one photo by optimising its pixels (Gatys et al. 2016).

cin-style-gatys --content=photo.jpg --style=painting.jpg --output=painted.png --steps=500
cin-style-gatys --content=photo.jpg --style=a.jpg,b.jpg --style_blend=0.7,0.3 --output=blend.png
"""

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
flags.DEFINE_enum("init", "content", ["content", "noise"], "Start from the photo or from noise.")
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
    setup_logging(tensorflow=False)
    from cin_style import image_io
    from cin_style.gatys import optimize
    from cin_style.vgg import VGGWeightsError

    try:
        blend = [float(w) for w in FLAGS.style_blend] if FLAGS.style_blend else None
        result = optimize(
            FLAGS.content,
            list(FLAGS.style),
            steps=FLAGS.steps,
            size=FLAGS.size,
            style_size=FLAGS.style_size,
            optimizer=FLAGS.optimizer,
            init=FLAGS.init,
            learning_rate=FLAGS.learning_rate,
            content_weight=FLAGS.content_weight,
            style_weight=FLAGS.style_weight,
            tv_weight=FLAGS.tv_weight,
            style_blend=blend,
            vgg_weights=vgg_weights,
        )
        image_io.write_image(FLAGS.output, result.image)
    except (ValueError, OSError, VGGWeightsError) as error:
        fail(str(error))
    parts = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    print(f"wrote {FLAGS.output} after {FLAGS.steps} {FLAGS.optimizer} steps in {result.seconds:.1f} s ({parts})")


def run():
    run_tool(main, __doc__, HELP_GROUPS, __name__)


if __name__ == "__main__":
    run()
