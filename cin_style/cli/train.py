"""cin-style-train: train one network on many styles.

    cin-style-train --styles=path/to/styles --content=path/to/photos \\
        --output_dir=runs/my_model --steps=40000

Resume a run after an interruption with the same command plus --resume.

Several GPUs or machines: --strategy=mirrored|multi_worker|tpu under
TensorFlow, --distribution=data_parallel under JAX (docs/training.md: "Training on
several GPUs or machines").
"""

import os

from absl import flags

from cin_style.cli._common import fail, reject_extra_args, run_tool, setup_logging, vgg_weights_or_fail

FLAGS = flags.FLAGS
flags.DEFINE_list("styles", None, "Style images and/or folders of them (names: file stems).")
flags.DEFINE_list("style_names", None, "Optional names, one per style image.")
flags.DEFINE_string("content", None, "Folder of content photos, or a tensorflow-datasets name (e.g. coco/2017).")
flags.DEFINE_string("output_dir", None, "Folder for checkpoints, logs, samples and model.keras.")
flags.DEFINE_integer("image_size", 256, "Side of the square training crops.")
flags.DEFINE_integer("batch_size", 16, "Photos per step.")
flags.DEFINE_integer("steps", 40000, "Total training steps.")
flags.DEFINE_float(
    "learning_rate", 1e-3, "Adam learning rate (a schedule's peak); with --resume the run goes on at this rate."
)
# schedules.LR_SCHEDULES, spelled out so --help needs no Keras import (a test keeps them equal).
flags.DEFINE_enum(
    "lr_schedule",
    "constant",
    ["constant", "cosine"],
    "cosine: decay from --decay_start to 1% of --learning_rate at --steps (resumes where it stopped).",
)
flags.DEFINE_integer("warmup_steps", 0, "Steps of linear learning-rate warm-up at the start.")
flags.DEFINE_integer("decay_start", 0, "Step where the cosine decay starts.")
flags.DEFINE_float("content_weight", None, "Content loss weight (default: the library's).")
flags.DEFINE_float("style_weight", None, "Style loss weight (default: the library's).")
flags.DEFINE_float("tv_weight", None, "Total-variation loss weight (default: the library's).")
flags.DEFINE_integer("style_image_size", 256, "Shorter side of style images for the Gram targets.")
flags.DEFINE_float("alpha", 1.0, "Width multiplier of the network (0.25: slim).")
flags.DEFINE_bool("output_norm", True, "Conditional instance norm on the RGB output layer (--nooutput_norm: none).")
flags.DEFINE_string(
    "init_weights",
    None,
    "Start from this trained model's weights (.keras file, training folder, checkpoint or exported SavedModel): "
    "a second schedule, or fine-tuning. Ignored when --resume finds a checkpoint.",
)
flags.DEFINE_string(
    "teacher",
    None,
    "A trained model (SavedModel, .keras or training folder). Without --styles: distil it, the network (e.g. "
    "--alpha=0.25) learns to reproduce its outputs for each of its styles. With --styles (the teacher's, in its "
    "order): the perceptual loss plus --teacher_weight times the pixel difference to the teacher's outputs.",
)
flags.DEFINE_float(
    "feature_weight",
    None,
    "With --teacher: weight of the VGG19 feature term (block2_conv1) next to the pixel term (default: the "
    "library's, 0.1); 0: pixels only, no VGG.",
)
flags.DEFINE_float(
    "teacher_weight",
    None,
    "With --teacher and --styles: weight of the teacher's pixel term next to the perceptual loss (default: the "
    "library's, 8.0).",
)
flags.DEFINE_float(
    "spike_weight",
    0.0,
    "Weight of the spike penalty, against the activation spikes that paint white ovals "
    "(kurtosis of the CIN inputs from the residual blocks on, over --spike_limit). 0: none.",
)
# spike_penalty.DEFAULT_SPIKE_LIMIT, spelled out so --help needs no Keras import (a test keeps them equal).
flags.DEFINE_float("spike_limit", 16.0, "Kurtosis a channel may reach before the spike penalty counts it.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.")
flags.DEFINE_integer("sample_every", 0, "Steps between sample sheets (0: at checkpoints).")
flags.DEFINE_integer("seed", None, "Random seed.")
flags.DEFINE_bool("resume", False, "Continue from the newest checkpoint in --output_dir.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the step under TensorFlow (JAX compiles unless --run_eagerly).")
flags.DEFINE_bool(
    "run_eagerly", False, "Run each step op by op, not compiled: for debugging, or a run of a few tiny steps."
)
flags.DEFINE_integer(
    "steps_per_execution", 1, "Steps run back to back between callbacks (GPUs: 10-50); divides --checkpoint_every."
)
flags.DEFINE_float("max_minutes", None, "Stop after this many minutes of training, checkpointing and saving the model.")
# training.DTYPE_POLICIES, spelled out so --help needs no Keras import (a test keeps them equal).
flags.DEFINE_enum(
    "dtype_policy",
    "float32",
    ["float32", "mixed_bfloat16"],
    "mixed_bfloat16: bfloat16 convolutions, float32 weights and losses (faster on CPUs with AVX512-BF16 and on GPUs).",
)
flags.DEFINE_string("tfds_split", "train", "tfds split.")
flags.DEFINE_string("tfds_data_dir", None, "tfds data folder.")
flags.DEFINE_string("tfds_image_key", "image", "tfds image feature.")
flags.DEFINE_string(
    "vgg_weights",
    None,
    "Keras' VGG19 no-top weights file (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) for the loss "
    "(default: $CIN_STYLE_VGG19_WEIGHTS, else Keras' cache ~/.keras/models); imagenet: let Keras download it "
    "(80 MB).",
)
flags.DEFINE_bool("tensorboard", True, "Write TensorBoard logs.")
# tf_distribute.STRATEGIES and distribute.DISTRIBUTIONS, spelled out so --help needs no TensorFlow import (a test
# keeps them equal).
_SPLIT = (
    "The global --batch_size is split evenly over the replicas (a multiple of their number); --learning_rate is "
    "used as given, not scaled."
)
flags.DEFINE_enum(
    "strategy",
    None,
    ["mirrored", "multi_worker", "tpu"],
    "TensorFlow: train under tf.distribute. mirrored: every local GPU. multi_worker: every worker of the cluster "
    "in TF_CONFIG; run the same command on each; only the chief writes --output_dir, which all must see. "
    "tpu: the TPU named by --tpu. " + _SPLIT,
)
flags.DEFINE_string("tpu", None, "With --strategy=tpu: the TPU's name or grpc:// address (default: this TPU VM's).")
flags.DEFINE_enum(
    "distribution",
    None,
    ["data_parallel"],
    "JAX: keras.distribution.DataParallel over every visible device (one process). " + _SPLIT,
)

#: What --help shows, in this order (a flag left out of every group is listed under "Other flags").
HELP_GROUPS = [
    ("Styles and photos", ["styles", "style_names", "content", "tfds_split", "tfds_data_dir", "tfds_image_key"]),
    ("Output and resuming", ["output_dir", "resume", "checkpoint_every", "keep_checkpoints", "sample_every"]),
    ("Monitoring", ["tensorboard", "max_minutes"]),
    ("Schedule", ["steps", "batch_size", "learning_rate", "lr_schedule", "warmup_steps", "decay_start", "seed"]),
    (
        "Loss",
        [
            "content_weight",
            "style_weight",
            "tv_weight",
            "spike_weight",
            "spike_limit",
            "image_size",
            "style_image_size",
            "vgg_weights",
        ],
    ),
    ("Network", ["alpha", "output_norm", "init_weights", "dtype_policy"]),
    ("Distilling a trained model", ["teacher", "feature_weight", "teacher_weight"]),
    ("Speed and devices", ["jit_compile", "run_eagerly", "steps_per_execution", "strategy", "tpu", "distribution"]),
]


def check_required_flags():
    """Ends the tool if a flag every run needs is missing (before any import of Keras)."""
    if not FLAGS.styles and not FLAGS.teacher:
        fail("--styles is required: style image files or a folder of them (or --teacher, to distil a model)")
    if not FLAGS.content:
        fail("--content is required: a folder of photos or a tensorflow-datasets name")
    if not FLAGS.output_dir:
        fail("--output_dir is required")
    for source in FLAGS.styles or ():
        if not os.path.exists(source):
            fail(f"--styles: no such file or folder: {source}")


def vgg_weights_from_flags():
    """The VGG19 weights file the run's loss needs, found before any work (`None`: distilling with
    --feature_weight=0 runs no VGG)."""
    if FLAGS.teacher and not FLAGS.styles and FLAGS.feature_weight == 0:
        return None
    return vgg_weights_or_fail(FLAGS.vgg_weights)


def config_from_flags():
    check_required_flags()
    from cin_style.config import TrainConfig

    optional = {
        k: getattr(FLAGS, k)
        for k in ("content_weight", "style_weight", "tv_weight", "feature_weight", "teacher_weight")
        if getattr(FLAGS, k) is not None
    }
    return TrainConfig(
        styles=list(FLAGS.styles or ()),
        content=FLAGS.content,
        output_dir=FLAGS.output_dir,
        style_names=FLAGS.style_names,
        image_size=FLAGS.image_size,
        batch_size=FLAGS.batch_size,
        steps=FLAGS.steps,
        learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule,
        warmup_steps=FLAGS.warmup_steps,
        decay_start=FLAGS.decay_start,
        style_image_size=FLAGS.style_image_size,
        alpha=FLAGS.alpha,
        output_norm=FLAGS.output_norm,
        init_weights=FLAGS.init_weights,
        teacher=FLAGS.teacher,
        spike_weight=FLAGS.spike_weight,
        spike_limit=FLAGS.spike_limit,
        checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints,
        seed=FLAGS.seed,
        jit_compile=FLAGS.jit_compile,
        run_eagerly=FLAGS.run_eagerly,
        steps_per_execution=FLAGS.steps_per_execution,
        max_minutes=FLAGS.max_minutes,
        dtype_policy=FLAGS.dtype_policy,
        tfds_split=FLAGS.tfds_split,
        tfds_data_dir=FLAGS.tfds_data_dir,
        tfds_image_key=FLAGS.tfds_image_key,
        sample_every=FLAGS.sample_every,
        tensorboard=FLAGS.tensorboard,
        **optional,
    )


def strategy_from_flags():
    """The `tf.distribute` strategy or Keras distribution the flags ask for (`None`: one device).

    Made first: a multi-worker strategy must exist before TensorFlow starts.
    """
    if FLAGS.strategy and FLAGS.distribution:
        fail("give --strategy (TensorFlow) or --distribution (JAX), not both")
    if FLAGS.tpu and FLAGS.strategy != "tpu":
        fail("--tpu needs --strategy=tpu")
    if not (FLAGS.strategy or FLAGS.distribution):
        return None
    import keras

    from cin_style.distribute import DistributionError, data_parallel

    backend = keras.backend.backend()
    if FLAGS.distribution:
        try:
            return data_parallel()
        except DistributionError as error:
            fail(str(error))
    if backend != "tensorflow":
        fail(
            f"--strategy uses tf.distribute, which needs KERAS_BACKEND=tensorflow (the backend is {backend!r}); "
            "under JAX use --distribution=data_parallel"
        )
    from cin_style.tf_distribute import DistributeSetupError, tf_strategy

    try:
        return tf_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
    except DistributeSetupError as error:
        fail(str(error))


def main(argv):
    reject_extra_args(argv)
    check_required_flags()
    vgg_weights = vgg_weights_from_flags()
    setup_logging(tensorflow=False)
    strategy = strategy_from_flags()
    config = config_from_flags()
    from cin_style.data import ContentSourceError
    from cin_style.image_io import ImageReadError
    from cin_style.training import train
    from cin_style.vgg import VGGWeightsError

    try:
        config.validate()
        result = train(config, resume=FLAGS.resume, vgg_weights=vgg_weights, strategy=strategy)
    except (ValueError, ContentSourceError, ImageReadError, VGGWeightsError) as error:
        fail(str(error))
    print(f"Trained {len(result.style_names)} styles: {', '.join(result.style_names)}")
    print(f"Model: {result.model_path}")


def run():
    run_tool(main, __doc__, HELP_GROUPS, __name__)


if __name__ == "__main__":
    run()
