"""Training runs: data, model, optimiser, checkpoints, progress, `fit`.

`train(TrainConfig(...))` trains a new multi-style transformer;
`add_styles(model, ...)` fits only the γ/β rows of new styles on a trained
one. Both checkpoint atomically every `checkpoint_every` steps and resume
from the newest checkpoint with the same step count, optimiser state, style
list and Gram targets.
"""

import contextlib
import dataclasses
import glob
import json
import logging
import os
import shutil
import time

import keras
import numpy as np
from keras import ops

from cin_style import image_io
from cin_style.layers import ReflectionConv2D
from cin_style.losses import (
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    PerceptualLoss,
)
from cin_style.network import all_layers, alpha_of, build_transformer, num_styles_of, with_more_styles
from cin_style.trainer import LOSS_PARTS, StyleTrainer

logger = logging.getLogger("cin_style")

#: Version of the checkpoint layout written by this module.
CHECKPOINT_FORMAT = 1
#: Dtype policies training accepts. "mixed_bfloat16" runs the convolutions in
#: bfloat16 with float32 weights, statistics, Gram matrices and losses: on a
#: CPU with AVX512-BF16 a step takes ~0.6x the float32 time.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
#: File names inside an output folder.
MODEL_FILE = "model.keras"
STYLES_FILE = "styles.json"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; saved with every checkpoint.

    Defaults follow Dumoulin et al. (2017): 256-pixel crops, batch 16,
    Adam with learning rate 1e-3.

    Attributes:
        styles: Style image paths and/or folders (names: file stems).
        content: A folder of photos or a tensorflow-datasets name.
        output_dir: Where checkpoints, logs, samples and the model go.
        style_names: Optional names for the styles, one per image.
        image_size: Side of the square training crops.
        batch_size: Photos per step; each gets a random style.
        steps: Total optimisation steps.
        learning_rate: Adam learning rate; a resumed run goes on at this
            rate, not the checkpoint's (lower it to fine-tune).
        content_weight, style_weight, tv_weight: Loss term weights.
        style_image_size: Shorter side of style images for Gram targets.
        alpha: Width multiplier of the network (0.25: slim).
        checkpoint_every: Steps between checkpoints (and log lines).
        keep_checkpoints: How many checkpoints to keep.
        seed: Seed for data order, crops, style choice and initial weights.
        jit_compile: XLA under TensorFlow (JAX always compiles).
        dtype_policy: "float32" or "mixed_bfloat16" (see `DTYPE_POLICIES`);
            weights, checkpoints and saved models are float32 either way.
        tfds_split, tfds_data_dir, tfds_image_key: For tfds content.
        sample_every: Steps between sample sheets (0: only checkpoints).
        tensorboard: Write TensorBoard logs under output_dir/logs.
    """

    styles: list
    content: str
    output_dir: str
    style_names: list = None
    image_size: int = 256
    batch_size: int = 16
    steps: int = 40_000
    learning_rate: float = 1e-3
    content_weight: float = DEFAULT_CONTENT_WEIGHT
    style_weight: float = DEFAULT_STYLE_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    style_image_size: int = 256
    alpha: float = 1.0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = None
    jit_compile: bool = False
    dtype_policy: str = "float32"
    tfds_split: str = "train"
    tfds_data_dir: str = None
    tfds_image_key: str = "image"
    sample_every: int = 0
    tensorboard: bool = True

    def validate(self):
        """Raises ValueError naming the first setting that cannot work."""
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "style_image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        from cin_style.data import MIN_IMAGE_SIZE

        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"`image_size` must be at least {MIN_IMAGE_SIZE}: VGG19 halves it four times before "
                f"block5. Received: image_size={self.image_size!r}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive. Received: learning_rate={self.learning_rate!r}")
        if not self.alpha > 0:
            raise ValueError(f"`alpha` must be positive. Received: alpha={self.alpha!r}")
        if self.dtype_policy not in DTYPE_POLICIES:
            raise ValueError(
                f"`dtype_policy` must be one of {', '.join(DTYPE_POLICIES)}. Received: dtype_policy={self.dtype_policy!r}"
            )
        if not self.styles:
            raise ValueError("`styles` is empty: give style image paths or a folder of them")
        if not self.content:
            raise ValueError("`content` is empty: give a folder of photos or a tensorflow-datasets name")


# --------------------------------------------------------------------------
# Checkpoints


def _checkpoint_dirs(output_dir):
    pattern = os.path.join(output_dir, CHECKPOINT_DIR, "ckpt-*")
    found = [d for d in glob.glob(pattern) if os.path.isfile(os.path.join(d, "state.json"))]
    return sorted(found, key=lambda d: int(os.path.basename(d).split("-")[1]))


def latest_checkpoint(output_dir):
    """The newest complete checkpoint folder under `output_dir`, or `None`."""
    found = _checkpoint_dirs(output_dir)
    return found[-1] if found else None


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def save_checkpoint(trainer, output_dir, state, keep=3):
    """Writes `ckpt-<step>/` atomically: a temporary folder, then one rename.

    Holds the transformer weights, the Gram tables, the optimiser and seed
    state, and `state.json` (config, style names, step) last, so a folder
    without `state.json` is never taken for a checkpoint.
    """
    step = int(ops.convert_to_numpy(trainer.optimizer.iterations))
    root = os.path.join(output_dir, CHECKPOINT_DIR)
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"ckpt-{step:08d}")
    tmp = os.path.join(root, f".tmp-ckpt-{step:08d}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    trainer.transformer.save_weights(os.path.join(tmp, "transformer.weights.h5"))
    np.savez(
        os.path.join(tmp, "grams.npz"),
        **{name: ops.convert_to_numpy(table) for name, table in trainer.style_grams.items()},
    )
    np.savez(
        os.path.join(tmp, "optimizer.npz"),
        *[ops.convert_to_numpy(v) for v in trainer.optimizer.variables],
    )
    np.save(os.path.join(tmp, "seed.npy"), ops.convert_to_numpy(trainer.seed_generator.state))
    _write_json_atomic(os.path.join(tmp, "state.json"), {**state, "step": step, "format": CHECKPOINT_FORMAT})
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in _checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_checkpoint(trainer, checkpoint, learning_rate=None):
    """Loads transformer weights, Gram tables, optimiser and seed state into `trainer`.

    Args:
        trainer: The `StyleTrainer` to load into (compiled).
        checkpoint: A checkpoint folder.
        learning_rate: The learning rate to go on with. Adam keeps its rate
            among its variables, so without this a run resumed with a new
            `--learning_rate` (say, lower to fine-tune) would silently keep
            the checkpoint's. `None` keeps the checkpoint's.
    """
    trainer.transformer.load_weights(os.path.join(checkpoint, "transformer.weights.h5"))
    with np.load(os.path.join(checkpoint, "grams.npz")) as grams:
        for name, table in trainer.style_grams.items():
            table.assign(grams[name])
    optimizer = trainer.optimizer
    optimizer.build(trainer.trainable_variables)
    with np.load(os.path.join(checkpoint, "optimizer.npz")) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"Checkpoint {checkpoint} holds {len(values)} optimiser variables; this model has "
            f"{len(optimizer.variables)}. Was it written by another network width or style count?"
        )
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
    if learning_rate is not None:
        previous = float(ops.convert_to_numpy(optimizer.learning_rate))
        if not np.isclose(previous, learning_rate, rtol=1e-6, atol=0):
            logger.info("Learning rate %g (was %g in %s)", learning_rate, previous, checkpoint)
        optimizer.learning_rate = learning_rate
    trainer.seed_generator.state.assign(np.load(os.path.join(checkpoint, "seed.npy")))


# --------------------------------------------------------------------------
# Callbacks


class CheckpointCallback(keras.callbacks.Callback):
    """Checkpoints every `every` steps and at the end of training."""

    def __init__(self, output_dir, state, every, keep):
        super().__init__()
        self.output_dir, self.state, self.every, self.keep = output_dir, state, every, keep
        self.last_step = None

    def _save(self):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if step != self.last_step:
            save_checkpoint(self.model, self.output_dir, self.state, self.keep)
            self.last_step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(ops.convert_to_numpy(self.model.optimizer.iterations)) % self.every == 0:
            self._save()

    def on_train_end(self, logs=None):
        self._save()


class StopAtStep(keras.callbacks.Callback):
    """Ends `fit` once the optimiser has taken `steps` steps in all."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(ops.convert_to_numpy(self.model.optimizer.iterations)) >= self.steps:
            self.model.stop_training = True


class ProgressBar(keras.callbacks.Callback):
    """One `keras.utils.Progbar` over the whole run: losses and images/s."""

    def __init__(self, steps, batch_size, start_step=0, verbose=1):
        super().__init__()
        self.steps, self.batch_size, self.start_step, self.verbose = steps, batch_size, start_step, verbose
        self.history = []

    def on_train_begin(self, logs=None):
        self.bar = keras.utils.Progbar(
            self.steps, verbose=self.verbose, unit_name="step",
            stateful_metrics=["loss", *[f"{p}_loss" for p in LOSS_PARTS], "img/s"],
        )
        self.bar.update(self.start_step)
        self.clock = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        rate = self.batch_size / max(now - self.clock, 1e-9)
        self.clock = now
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        values = [(k, float(v)) for k, v in (logs or {}).items() if k in ("loss", "content_loss", "style_loss", "tv_loss")]
        self.history.append({"step": step, **dict(values), "images_per_second": rate})
        self.bar.update(step, values=values + [("img/s", rate)])


class SampleSheet(keras.callbacks.Callback):
    """Writes a PNG sheet (rows: sample photos; columns: photo, each style) now and then.

    Also logs the sheet to TensorBoard when TensorFlow is importable.
    """

    def __init__(self, photos, output_dir, every, writer=None):
        super().__init__()
        self.photos, self.output_dir, self.every, self.writer = photos, output_dir, every, writer

    def sheet(self):
        transformer = self.model.transformer
        num_styles = self.model.num_styles
        rows = []
        for photo in self.photos:
            batch = np.repeat(photo[None], num_styles, axis=0)
            out = ops.convert_to_numpy(
                transformer({"image": batch, "style_weights": np.eye(num_styles, dtype="float32")}, training=False)
            )
            rows.append(np.concatenate([photo, *out], axis=1))
        return np.concatenate(rows, axis=0)

    def write(self):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        sheet = self.sheet()
        folder = os.path.join(self.output_dir, "samples")
        os.makedirs(folder, exist_ok=True)
        image_io.write_image(os.path.join(folder, f"step-{step:08d}.png"), sheet)
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default():
                tf.summary.image("samples/photo_then_each_style", sheet[None], step=step)
            self.writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.every and int(ops.convert_to_numpy(self.model.optimizer.iterations)) % self.every == 0:
            self.write()

    def on_train_end(self, logs=None):
        self.write()


# --------------------------------------------------------------------------
# Runs


def _content_dataset(config):
    from cin_style.data import content_dataset

    return content_dataset(
        config.content, image_size=config.image_size, batch_size=config.batch_size, seed=config.seed,
        split=config.tfds_split, data_dir=config.tfds_data_dir, image_key=config.tfds_image_key,
    )


def _sample_photos(dataset, count=3):
    batch = next(iter(dataset.take(1).as_numpy_iterator()))
    return [np.asarray(p, "float32") for p in batch[:count]]


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Builds layers under Keras' global dtype policy `name`, then restores the old one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _float32_model(model):
    """`model` itself if it computes in float32, else a float32 copy with the same weights."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in all_layers(model)):
        return model
    with dtype_policy_scope("float32"):
        copy = build_transformer(num_styles_of(model), alpha=alpha_of(model))
    copy.set_weights(model.get_weights())
    return copy


def _perceptual_loss(config, vgg_weights):
    return PerceptualLoss(
        content_weight=config.content_weight, style_weight=config.style_weight, tv_weight=config.tv_weight,
        vgg_weights=vgg_weights,
    )


class ResumableTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback with batch scalars logged at the run's own step.

    Keras counts batches from 0 in every `fit`, so after `--resume` the loss
    curve restarted at step 0 and wrote over the first part of the run. Here
    the count starts at `start_step`, the step the run resumed from.
    """

    def __init__(self, start_step=0, **kwargs):
        super().__init__(**kwargs)
        self.start_step = int(start_step)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = self.start_step


def _tensorboard_writer(config, start_step=0):
    if not config.tensorboard:
        return None, []
    try:
        import tensorboard  # noqa: F401  (tf.summary needs it)
        import tensorflow as tf
    except ImportError:
        logger.warning("TensorFlow or TensorBoard is not installed: no TensorBoard logs (pip install tensorboard)")
        return None, []
    log_dir = os.path.join(config.output_dir, "logs")
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
    board = ResumableTensorBoard(start_step, log_dir=log_dir, update_freq=max(1, config.checkpoint_every // 10))
    return writer, [board]


def _fit(trainer, dataset, config, state, start_step, verbose):
    """Runs `fit` from `start_step` to `config.steps` with checkpoints and progress."""
    every = config.checkpoint_every
    writer, extra = _tensorboard_writer(config, start_step)
    progress = ProgressBar(config.steps, config.batch_size, start_step, verbose)
    callbacks = [
        StopAtStep(config.steps),
        progress,
        CheckpointCallback(config.output_dir, state, every, config.keep_checkpoints),
        SampleSheet(_sample_photos(dataset), config.output_dir, config.sample_every or every, writer),
        *extra,
    ]
    if start_step < config.steps:
        trainer.fit(
            dataset, epochs=-(-config.steps // every), steps_per_epoch=every,
            initial_epoch=start_step // every, callbacks=callbacks, verbose=0, shuffle=False,
        )
    return progress.history


def _save_final(model, output_dir, style_names, config):
    """Writes `model` (float32) as `model.keras`, and `styles.json`, atomically."""
    model_path = os.path.join(output_dir, MODEL_FILE)
    tmp = os.path.join(output_dir, f".tmp-{os.getpid()}-{MODEL_FILE}")
    model.save(tmp)
    os.replace(tmp, model_path)
    _write_json_atomic(
        os.path.join(output_dir, STYLES_FILE),
        {"style_names": list(style_names), "alpha": config.alpha, "training": dataclasses.asdict(config)},
    )
    return model_path


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: keras.Model
    style_names: list
    model_path: str
    history: list
    resumed_from: str = None


def train(config, resume=False, vgg_weights=None, strategy=None, verbose=1):
    """Trains a multi-style transformer; see `TrainConfig` for the settings.

    Args:
        config: A `TrainConfig`.
        resume: Continue from the newest checkpoint in `config.output_dir`
            (same step count, optimiser state, styles and Gram targets). With
            no checkpoint there, starts afresh. Defaults to `False`.
        vgg_weights: VGG19 weights (see `cin_style.vgg.resolve_weights`).
        strategy: A `tf.distribute` strategy to build and train under.
        verbose: 1 for a progress bar, 0 for none. Defaults to `1`.

    Returns:
        A `TrainResult`; the model is also saved as `output_dir/model.keras`
        with `output_dir/styles.json` (style names, alpha, config).

    Raises:
        ValueError: For settings that cannot work, or a checkpoint whose
            styles differ from `config`'s.
    """
    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    checkpoint = latest_checkpoint(config.output_dir) if resume else None
    if checkpoint is None and not resume and latest_checkpoint(config.output_dir):
        raise ValueError(
            f"{config.output_dir} already holds checkpoints; pass resume=True (--resume) to continue, "
            "or choose another output folder"
        )
    dataset = _content_dataset(config)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    if checkpoint:
        with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as stream:
            saved = json.load(stream)
        style_names, grams = saved["style_names"], None
        if config.style_names and list(config.style_names) != style_names:
            raise ValueError(f"Checkpoint {checkpoint} was trained on styles {style_names}; got {config.style_names}")
        logger.info("Resuming from %s (step %d)", checkpoint, saved["step"])
    else:
        from cin_style.data import load_style_images

        style_names, style_images = load_style_images(config.styles, config.style_image_size, config.style_names)
    scope = strategy.scope() if strategy is not None else _null_scope()
    with scope, dtype_policy_scope(config.dtype_policy):
        perceptual = _perceptual_loss(config, vgg_weights)
        if not checkpoint:
            grams = perceptual.style_grams(style_images)
        transformer = build_transformer(len(style_names), alpha=config.alpha)
        trainer = StyleTrainer(transformer, perceptual, grams, seed=config.seed)
        trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate), jit_compile=config.jit_compile)
        if checkpoint:
            restore_checkpoint(trainer, checkpoint, learning_rate=config.learning_rate)
    start = int(ops.convert_to_numpy(trainer.optimizer.iterations))
    state = {"kind": "train", "style_names": list(style_names), "config": dataclasses.asdict(config)}
    history = _fit(trainer, dataset, config, state, start, verbose)
    final = _float32_model(transformer)
    model_path = _save_final(final, config.output_dir, style_names, config)
    return TrainResult(final, list(style_names), model_path, history, checkpoint)


def add_styles(model, style_names, config, resume=False, vgg_weights=None, init_from=None, verbose=1):
    """Adds styles to a trained transformer by fitting only their γ/β rows.

    Every other weight (all convolutions, the old styles' γ/β rows) is left
    bit-for-bit as it was, so old styles give identical outputs.

    Args:
        model: A trained transformer (from `build_transformer`/`train`).
        style_names: Names of the model's existing styles.
        config: A `TrainConfig` whose `styles` are the new style images;
            `alpha` is ignored (the model's is kept).
        resume: Continue from the newest checkpoint in `config.output_dir`.
        vgg_weights: VGG19 weights.
        init_from: Optional existing style whose rows initialise the new
            ones (often converges faster than γ=1, β=0).
        verbose: Progress bar on (1) or off (0).

    Returns:
        A `TrainResult` with the grown model and all style names.
    """
    config.validate()
    from cin_style.data import load_style_images

    os.makedirs(config.output_dir, exist_ok=True)
    old_count = num_styles_of(model)
    if len(style_names) != old_count:
        raise ValueError(f"The model holds {old_count} styles but {len(style_names)} names were given")
    checkpoint = latest_checkpoint(config.output_dir) if resume else None
    new_names, new_images = load_style_images(config.styles, config.style_image_size, config.style_names)
    clash = sorted(set(new_names) & set(style_names))
    if clash:
        raise ValueError(f"The model already has styles named {clash}")
    if isinstance(init_from, str):
        init_from = list(style_names).index(init_from)
    dataset = _content_dataset(config)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    grown = with_more_styles(model, len(new_names), init_from=init_from)
    for layer in all_layers(grown):
        if isinstance(layer, ReflectionConv2D):
            layer.trainable = False
    with dtype_policy_scope(config.dtype_policy):  # VGG only: the given transformer keeps its own
        perceptual = _perceptual_loss(config, vgg_weights)
    # Old styles are never sampled, so their Gram targets are never read: zeros.
    new_grams = perceptual.style_grams(new_images)
    grams = {
        name: np.concatenate([np.zeros((old_count, *table.shape[1:]), "float32"), ops.convert_to_numpy(table)])
        for name, table in new_grams.items()
    }
    all_names = list(style_names) + list(new_names)
    trainer = StyleTrainer(grown, perceptual, grams, train_styles=range(old_count, len(all_names)), seed=config.seed)
    trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate), jit_compile=config.jit_compile)
    if checkpoint:
        restore_checkpoint(trainer, checkpoint, learning_rate=config.learning_rate)
    start = int(ops.convert_to_numpy(trainer.optimizer.iterations))
    state = {"kind": "add_styles", "style_names": all_names, "config": dataclasses.asdict(config)}
    history = _fit(trainer, dataset, config, state, start, verbose)
    for layer in all_layers(grown):
        layer.trainable = True
    config = dataclasses.replace(config, alpha=alpha_of(grown))
    model_path = _save_final(grown, config.output_dir, all_names, config)
    return TrainResult(grown, all_names, model_path, history, checkpoint)


def model_from_checkpoint(path):
    """A transformer and its style names and config from a checkpoint.

    Args:
        path: A checkpoint folder (`ckpt-*`) or a training output folder (its
            newest checkpoint is used).

    Returns:
        `(model, style_names, state)` where `state` is the checkpoint's
        `state.json` (config, step).
    """
    checkpoint = path if os.path.isfile(os.path.join(path, "state.json")) else latest_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"No checkpoint in '{path}'")
    with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as stream:
        state = json.load(stream)
    names = state["style_names"]
    model = build_transformer(len(names), alpha=state["config"]["alpha"])
    model.load_weights(os.path.join(checkpoint, "transformer.weights.h5"))
    return model, names, state


def load_trained(output_dir_or_model):
    """Loads `model.keras` and the style names from a training output folder.

    Returns:
        `(model, style_names)`.
    """
    path = output_dir_or_model
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No trained model at '{model_path}'")
    model = keras.saving.load_model(model_path)
    styles_path = os.path.join(folder, STYLES_FILE)
    if os.path.isfile(styles_path):
        with open(styles_path, encoding="utf-8") as stream:
            names = json.load(stream)["style_names"]
    else:
        names = [f"style_{i}" for i in range(num_styles_of(model))]
    return model, names


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = [
    "TrainConfig", "TrainResult", "train", "add_styles", "load_trained", "latest_checkpoint", "model_from_checkpoint",
    "dtype_policy_scope",
]
