"""cin-style-add-style: add styles to a trained model, fitting only their γ/β rows.

    cin-style-add-style --model=runs/my_model --styles=new_style.jpg \
        --content=path/to/photos --output_dir=runs/my_model_plus --steps=2000
"""

from absl import app, flags

from cin_style.cli import train as train_cli
from cin_style.cli._common import fail, reject_extra_args, setup_logging

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training output folder (with model.keras and styles.json) or a .keras file.")
flags.DEFINE_string("init_from", None, "Existing style whose γ/β start the new rows.")


def main(argv):
    reject_extra_args(argv)
    setup_logging()
    if not FLAGS.model:
        fail("--model is required: a training output folder or a .keras file")
    config = train_cli.config_from_flags()
    from cin_style.data import ContentSourceError
    from cin_style.image_io import ImageReadError
    from cin_style.training import add_styles, load_trained

    try:
        model, names = load_trained(FLAGS.model)
        init_from = FLAGS.init_from
        if init_from is not None and init_from not in names:
            fail(f"--init_from: unknown style {init_from!r}; the model has {names}")
        result = add_styles(
            model, names, config, resume=FLAGS.resume, vgg_weights=FLAGS.vgg_weights, init_from=init_from
        )
    except (ValueError, FileNotFoundError, ContentSourceError, ImageReadError) as error:
        fail(str(error))
    print(f"Model now has {len(result.style_names)} styles: {', '.join(result.style_names)}")
    print(f"Model: {result.model_path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
