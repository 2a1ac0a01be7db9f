"""cin-style-add-style: add your own paintings to a trained model, fitting only their γ/β rows.

    cin-style-add-style --model=saved_models/cin_style_default --styles=my_painting.jpg \\
        --content=path/to/photos --output_dir=runs/with_my_painting

The base model is a SavedModel folder (the bundled one, a TF Serving base or a
version folder), a `.keras` file or a training folder; the loss weights default to
the ones it was trained with (its metadata). Every old style keeps
its outputs bit for bit. The result is written to --output_dir (model.keras,
checkpoints, samples) and exported as the next SavedModel version under
--export_dir (default: <output_dir>/saved_model), ready for
`Stylizer.load`, the CLI and TF Serving. Resume with the same command plus --resume.
"""

import dataclasses
import os

from absl import flags

from cin_style.cli import train as train_cli
from cin_style.cli._common import fail, reject_extra_args, run_tool, setup_logging

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    None,
    "The model to extend: a SavedModel folder (e.g. saved_models/cin_style_default, or one version of it), "
    "a .keras file, or a training output folder.",
)
flags.DEFINE_string(
    "init_from",
    "nearest",
    "How the new γ/β rows start: nearest (the existing style whose outputs are nearest the painting by Gram "
    "distance), mean (of the existing rows), identity (γ=1, β=0), or an existing style's name.",
)
flags.DEFINE_string(
    "export_dir",
    None,
    "SavedModel base folder for the result (default: <output_dir>/saved_model; '' to skip the export). "
    "The version is the base model's + 1 (or the next free one).",
)

#: What --help shows: this tool's flags and the training flags that apply to fitting new rows (not the
#: network's shape, distillation or tf.distribute).
HELP_GROUPS = [
    ("Model and paintings", ["model", "styles", "style_names", "init_from"]),
    ("Photos", ["content", "tfds_split", "tfds_data_dir", "tfds_image_key"]),
    ("Output and resuming", ["output_dir", "export_dir", "resume", "checkpoint_every", "keep_checkpoints"]),
    ("Monitoring", ["sample_every", "tensorboard", "max_minutes"]),
    ("Schedule", ["steps", "batch_size", "learning_rate", "lr_schedule", "warmup_steps", "decay_start", "seed"]),
    ("Loss", ["content_weight", "style_weight", "tv_weight", "image_size", "style_image_size", "vgg_weights"]),
    ("Speed", ["jit_compile", "run_eagerly", "steps_per_execution", "dtype_policy"]),
]

#: Training settings that suit fitting γ/β rows on a CPU (measured: see docs/adding_a_painting.md).
ADD_STYLE_DEFAULTS = {"steps": 300, "batch_size": 4, "checkpoint_every": 100, "learning_rate": 1e-2}


def main(argv):
    reject_extra_args(argv)
    if not FLAGS.model:
        fail("--model is required: a SavedModel folder, a .keras file or a training output folder")
    train_cli.check_required_flags()
    vgg_weights = train_cli.vgg_weights_from_flags()
    setup_logging()
    config = train_cli.config_from_flags()
    from cin_style.data import ContentSourceError
    from cin_style.image_io import ImageReadError
    from cin_style.model_io import load_transformer, recorded_training_config
    from cin_style.vgg import VGGWeightsError

    try:
        config.validate()
        model, names, base_version = load_transformer(FLAGS.model)
        config = _with_base_loss(config, recorded_training_config(FLAGS.model))
        init_from = None if FLAGS.init_from == "identity" else FLAGS.init_from
        from cin_style.bundled import resolve_model_keyword
        from cin_style.paintings import paintings_folder
        from cin_style.training import add_styles

        result = add_styles(
            model,
            names,
            config,
            resume=FLAGS.resume,
            vgg_weights=vgg_weights,
            init_from=init_from,
            paintings=paintings_folder(resolve_model_keyword(FLAGS.model)),
        )
    except (ValueError, FileNotFoundError, ContentSourceError, ImageReadError, VGGWeightsError) as error:
        fail(str(error))
    except ImportError as error:
        fail(f"{error}: reading a SavedModel needs TensorFlow; give a .keras file or a training folder instead")
    print(f"Model now has {len(result.style_names)} styles: {', '.join(result.style_names)}")
    print(f"Model: {result.model_path}")
    export_dir = os.path.join(config.output_dir, "saved_model") if FLAGS.export_dir is None else FLAGS.export_dir
    if export_dir:
        _export(result, export_dir, base_version, result.config)  # with the base model's alpha


def _with_base_loss(config, base_training):
    """`config` with the base model's loss weights wherever no flag set them: a new style is
    fitted under the loss the model's own styles were trained with."""
    recorded = {
        name: base_training[name]
        for name in ("content_weight", "style_weight", "tv_weight")
        if getattr(FLAGS, name) is None and base_training.get(name) is not None
    }
    return dataclasses.replace(config, **recorded)


def _export(result, export_dir, base_version, config):
    try:
        from cin_style.export import export_saved_model, next_version
        from cin_style.paintings import paintings_folder
    except ImportError as error:
        print(f"Not exported ({error}); export later with cin-style-export --model={config.output_dir}")
        return
    version = max(next_version(export_dir), (base_version or 0) + 1)  # after the base's and any existing one
    try:
        path = export_saved_model(
            result.model,
            export_dir,
            result.style_names,
            version=version,
            training_config=dataclasses.asdict(config),
            paintings=paintings_folder(config.output_dir),  # the base model's paintings and the new ones
        )
    except (ValueError, OSError) as error:
        fail(f"Trained, but the export failed: {error}")
    print(f"SavedModel: {path}")


def run():
    for name, value in ADD_STYLE_DEFAULTS.items():
        FLAGS.set_default(name, value)
    run_tool(main, __doc__, HELP_GROUPS, __name__)


if __name__ == "__main__":
    run()
