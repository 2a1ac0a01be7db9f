"""cin-style-export: export a trained model as a versioned SavedModel for TF Serving, or as TFLite.

cin-style-export --model=runs/my_model --export_dir=saved_models/my_model
cin-style-export --checkpoint=runs/my_model --export_dir=served/my_model --version=3
cin-style-export --model=runs/my_model --export_dir=served/my_model --memory_budget_mib=2048
cin-style-export --model=runs/my_model --export_dir=served/my_model --max_pixels=1000000
cin-style-export --model=old_export --export_dir=served/my_model --paintings=my_paintings  # for refining
cin-style-export --model=saved_models/cin_style_slim --format=tflite --output=slim.tflite --size=512 \\
    --quantization=float16
"""

import os

from absl import flags

from cin_style.cli._common import fail, reject_extra_args, run_tool, setup_logging

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    None,
    "Training output folder (model.keras + styles.json), a .keras file, a cin_style SavedModel, or `default` / "
    "`slim` for a bundled model.",
)
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "What to write.")
flags.DEFINE_string("output", None, "With --format=tflite: the .tflite file to write.")
flags.DEFINE_list("size", ["512"], "With --format=tflite: the input size, SIDE or HEIGHT,WIDTH (fixed).")
# tflite.QUANTIZATIONS, spelled out so --help needs no TensorFlow import (a test keeps them equal).
flags.DEFINE_enum("quantization", "none", ["none", "float16", "dynamic_range"], "With --format=tflite: weights.")
flags.DEFINE_string("checkpoint", None, "A checkpoint folder, or a training folder whose newest checkpoint to export.")
flags.DEFINE_string("export_dir", None, "TF Serving base folder; the version goes in a numbered subfolder.")
flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
flags.DEFINE_list("style_names", None, "Override the style names (one per style).")
flags.DEFINE_integer(
    "max_pixels",
    None,
    "Largest request the served model accepts: the sum over the batch of height x width, each side padded as "
    "the network pads it (to a multiple of 4, at least 8); at least 256 (one 16x16 image). Default: what "
    "--memory_budget_mib allows.",
    lower_bound=256,
)
flags.DEFINE_integer(
    "memory_budget_mib",
    None,
    "Instead of --max_pixels: memory (MiB) the largest accepted request may take; the limits follow from the "
    "model's measured bytes per pixel. Default: 4096 (4 GiB).",
    lower_bound=1,
)
flags.DEFINE_string(
    "paintings",
    None,
    "Folder of the styles' paintings, each named after its style (<style name>.jpg, .png, ...), for the "
    "SavedModel to carry (refining and Stylizer.style_image need them). Default: the paintings the model "
    "carries itself (a training run's, or an exported model's).",
)
# export.ENCODED_FORMATS, spelled out so --help needs no TensorFlow import (a test keeps them equal).
flags.DEFINE_enum("encoded_format", "png", ["png", "jpeg"], "What the stylize_bytes signatures answer in.")

#: What --help shows, in this order (a flag left out of every group is listed under "Other flags").
HELP_GROUPS = [
    ("What to export", ["model", "checkpoint", "style_names", "format"]),
    (
        "SavedModel for TF Serving (--format=saved_model)",
        ["export_dir", "version", "paintings", "max_pixels", "memory_budget_mib", "encoded_format"],
    ),
    ("TensorFlow Lite (--format=tflite)", ["output", "size", "quantization"]),
]


def main(argv):
    reject_extra_args(argv)
    setup_logging()
    if bool(FLAGS.model) == bool(FLAGS.checkpoint):
        fail("Give exactly one of --model or --checkpoint")
    tflite = FLAGS.format == "tflite"
    if tflite and not FLAGS.output:
        fail("--format=tflite needs --output=FILE.tflite")
    if not tflite and not FLAGS.export_dir:
        fail("--export_dir is required")
    try:
        size = [int(side) for side in FLAGS.size]
    except ValueError:
        fail(f"--size must be SIDE or HEIGHT,WIDTH in pixels. Received: {','.join(FLAGS.size)}")
    if len(size) not in (1, 2):
        fail(f"--size must be SIDE or HEIGHT,WIDTH in pixels. Received: {','.join(FLAGS.size)}")
    from cin_style.bundled import resolve_model_keyword
    from cin_style.metadata import read_metadata
    from cin_style.model_io import load_transformer, model_from_checkpoint, recorded_training_config

    try:
        if FLAGS.checkpoint:
            model, names, state = model_from_checkpoint(FLAGS.checkpoint)
            config = {**state["config"], "step": state["step"]}
        else:
            source = resolve_model_keyword(FLAGS.model)
            model, names, _ = load_transformer(source)
            config = recorded_training_config(source) or None
        if tflite:
            from cin_style.tflite import export_tflite

            quantization = None if FLAGS.quantization == "none" else FLAGS.quantization
            path = export_tflite(
                model,
                FLAGS.output,
                FLAGS.style_names or names,
                size=size[0] if len(size) == 1 else tuple(size),
                quantization=quantization,
            )
            print(f"Exported {len(FLAGS.style_names or names)} styles to {path} ({os.path.getsize(path):,} bytes)")
            return
        from cin_style.export import export_saved_model
        from cin_style.paintings import find_paintings, paintings_folder

        style_names = FLAGS.style_names or names
        if FLAGS.paintings:
            paintings = find_paintings(FLAGS.paintings, style_names)
        else:
            paintings = paintings_folder(FLAGS.checkpoint or source)
        path = export_saved_model(
            model,
            FLAGS.export_dir,
            FLAGS.style_names or names,
            version=FLAGS.version,
            training_config=config,
            max_pixels=FLAGS.max_pixels,
            encoded_format=FLAGS.encoded_format,
            memory_budget=FLAGS.memory_budget_mib and FLAGS.memory_budget_mib * 2**20,
            paintings=paintings,
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        fail(str(error))
    with_paintings = read_metadata(path).get("paintings", [])
    missing = [name for index, name in enumerate(style_names) if index not in with_paintings]
    print(f"Exported {len(style_names)} styles to {path}")
    if missing:
        where = f"in {FLAGS.paintings}" if FLAGS.paintings else "with the model (give --paintings=FOLDER)"
        print(f"No painting {where} for {len(missing)} of them, which cannot be refined: {', '.join(missing)}")


def run():
    run_tool(main, __doc__, HELP_GROUPS, __name__)


if __name__ == "__main__":
    run()
