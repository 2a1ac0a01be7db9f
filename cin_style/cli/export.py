"""cin-style-export: export a trained model as a versioned SavedModel for TF Serving.

cin-style-export --model=runs/my_model --export_dir=saved_models/my_model
cin-style-export --checkpoint=runs/my_model --export_dir=served/my_model --version=3
cin-style-export --model=runs/my_model --export_dir=served/my_model --max_pixels=16000000
"""

from absl import app, flags

from cin_style.cli._common import fail, reject_extra_args
from cin_style.image_io import DEFAULT_MAX_PIXELS

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training output folder (model.keras + styles.json) or a .keras file.")
flags.DEFINE_string("checkpoint", None, "A checkpoint folder, or a training folder whose newest checkpoint to export.")
flags.DEFINE_string("export_dir", None, "TF Serving base folder; the version goes in a numbered subfolder.")
flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
flags.DEFINE_list("style_names", None, "Override the style names (one per style).")
flags.DEFINE_integer(
    "max_pixels",
    DEFAULT_MAX_PIXELS,
    "Largest request the served model accepts, as batch x height x width (default: the Stylizer's).",
    lower_bound=1,
)
# export.ENCODED_FORMATS, spelled out so --help needs no TensorFlow import (a test keeps them equal).
flags.DEFINE_enum("encoded_format", "png", ["png", "jpeg"], "What the stylize_bytes signatures answer in.")


def main(argv):
    reject_extra_args(argv)
    if bool(FLAGS.model) == bool(FLAGS.checkpoint):
        fail("Give exactly one of --model or --checkpoint")
    if not FLAGS.export_dir:
        fail("--export_dir is required")
    from cin_style.export import export_saved_model
    from cin_style.metadata import read_styles_file
    from cin_style.model_io import load_trained, model_from_checkpoint

    try:
        if FLAGS.checkpoint:
            model, names, state = model_from_checkpoint(FLAGS.checkpoint)
            config = {**state["config"], "step": state["step"]}
        else:
            model, names = load_trained(FLAGS.model)
            config = (read_styles_file(FLAGS.model) or {}).get("training")
        path = export_saved_model(
            model,
            FLAGS.export_dir,
            FLAGS.style_names or names,
            version=FLAGS.version,
            training_config=config,
            max_pixels=FLAGS.max_pixels,
            encoded_format=FLAGS.encoded_format,
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        fail(str(error))
    print(f"Exported {len(FLAGS.style_names or names)} styles to {path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
