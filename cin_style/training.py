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
from cin_style.checks import check_positive_integer, is_integer
from cin_style.layers import ReflectionConv2D
from cin_style.losses import (
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    PerceptualLoss,
)
from cin_style.metadata import STYLES_FILE, read_styles_file
from cin_style.network import (
    all_layers,
    alpha_of,
    build_transformer,
    num_styles_of,
    output_norm_of,
    with_more_styles,
)
from cin_style.schedules import LR_SCHEDULES, learning_rate_for
from cin_style.trainer import LOSS_PARTS, StyleTrainer

logger = logging.getLogger("cin_style")

#: Version of the checkpoint layout written by this module. 2: the optimiser's
#: step and slots by name, its learning rate left out (the config sets it).
CHECKPOINT_FORMAT = 2
#: Dtype policies training accepts. "mixed_bfloat16" runs the convolutions in
#: bfloat16 with float32 weights, statistics, Gram matrices and losses: on a
#: CPU with AVX512-BF16 a step takes ~0.6x the float32 time.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
#: File names inside an output folder.
MODEL_FILE = "model.keras"
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
        learning_rate: Adam learning rate (the peak of a schedule); a resumed
            run goes on at this rate, not the checkpoint's.
        lr_schedule: "constant" or "cosine" (see `LR_SCHEDULES`): cosine
            decays from `decay_start` to 1% of the rate at `steps`.
        warmup_steps: Steps of linear warm-up at the start (either schedule).
        decay_start: Step where the cosine decay starts (after warm-up).
        content_weight, style_weight, tv_weight: Loss term weights.
        style_image_size: Shorter side of style images for Gram targets. A
            run resumed with another value recomputes them from `styles`
            (a phase at another crop size, with targets at the matching scale).
        alpha: Width multiplier of the network (0.25: slim).
        output_norm: CIN on the RGB output layer (see `build_transformer`).
        init_weights: Start from a trained model's weights instead of random
            ones (a `.keras` file, a training folder, or a checkpoint): a
            second schedule for a model that has stopped improving, or
            fine-tuning on other photos. Styles, alpha and layout must match.
        checkpoint_every: Steps between checkpoints (and log lines).
        keep_checkpoints: How many checkpoints to keep.
        seed: Seed for data order, crops, style choice and initial weights.
        jit_compile: XLA under TensorFlow (JAX always compiles).
        steps_per_execution: Steps dispatched back to back before callbacks
            run (the host then waits for the device once per group, not per
            step: faster on GPUs). Checkpoints fall on multiples of it.
        max_minutes: Stop after this much wall-clock time, checkpointing and
            saving the model as at the end of the run (`None`: no limit).
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
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    decay_start: int = 0
    content_weight: float = DEFAULT_CONTENT_WEIGHT
    style_weight: float = DEFAULT_STYLE_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    style_image_size: int = 256
    alpha: float = 1.0
    output_norm: bool = True
    init_weights: str = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = None
    jit_compile: bool = False
    steps_per_execution: int = 1
    max_minutes: float = None
    dtype_policy: str = "float32"
    tfds_split: str = "train"
    tfds_data_dir: str = None
    tfds_image_key: str = "image"
    sample_every: int = 0
    tensorboard: bool = True

    def validate(self):
        """Raises ValueError naming the first setting that cannot work."""
        for name in (
            "steps",
            "batch_size",
            "checkpoint_every",
            "keep_checkpoints",
            "style_image_size",
            "steps_per_execution",
        ):
            check_positive_integer(name, getattr(self, name))
        from cin_style.data import MIN_IMAGE_SIZE

        if not is_integer(self.image_size) or self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"`image_size` must be at least {MIN_IMAGE_SIZE}: VGG19 halves it four times before "
                f"block5. Received: image_size={self.image_size!r}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive. Received: learning_rate={self.learning_rate!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"`lr_schedule` must be one of {', '.join(LR_SCHEDULES)}. Received: lr_schedule={self.lr_schedule!r}"
            )
        for name in ("warmup_steps", "decay_start"):
            value = getattr(self, name)
            if not is_integer(value) or not 0 <= value < self.steps:
                raise ValueError(f"`{name}` must be an integer in [0, steps={self.steps}). Received: {name}={value!r}")
        if self.checkpoint_every % self.steps_per_execution:
            raise ValueError(
                f"`checkpoint_every` ({self.checkpoint_every}) must be a multiple of `steps_per_execution` "
                f"({self.steps_per_execution}): callbacks only run between groups of steps"
            )
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"`max_minutes` must be positive or None. Received: max_minutes={self.max_minutes!r}")
        if not self.alpha > 0:
            raise ValueError(f"`alpha` must be positive. Received: alpha={self.alpha!r}")
        if self.dtype_policy not in DTYPE_POLICIES:
            raise ValueError(
                f"`dtype_policy` must be one of {', '.join(DTYPE_POLICIES)}. "
                f"Received: dtype_policy={self.dtype_policy!r}"
            )
        if not self.styles:
            raise ValueError("`styles` is empty: give style image paths or a folder of them")
        if not self.content:
            raise ValueError("`content` is empty: give a folder of photos or a tensorflow-datasets name")
        if self.init_weights is not None and not os.path.exists(self.init_weights):
            raise ValueError(f"`init_weights`: no such model, folder or checkpoint: {self.init_weights}")


# --------------------------------------------------------------------------
# Checkpoints


def _checkpoint_dirs(output_dir):
    pattern = os.path.join(output_dir, CHECKPOINT_DIR, "ckpt-*")
    found = [d for d in glob.glob(pattern) if os.path.isfile(os.path.join(d, "state.json"))]
    return sorted(found, key=lambda d: int(os.path.basename(d).split("-")[1]))


#: What a checkpoint folder holds; `state.json` is written last.
CHECKPOINT_FILES = ("transformer.weights.h5", "grams.npz", "optimizer.npz", "seed.npy", "state.json")


def checkpoint_problem(checkpoint):
    """Why `checkpoint` cannot be resumed from (a missing, truncated or corrupt file), or `None`."""
    import h5py

    try:
        with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as stream:
            state = json.load(stream)
        if not isinstance(state, dict) or not {"step", "style_names", "config"} <= set(state):
            return "state.json lacks step, style_names or config"
        for name in ("grams.npz", "optimizer.npz"):
            with np.load(os.path.join(checkpoint, name)) as saved:
                for key in saved.files:
                    saved[key]  # reads every array: checks sizes and CRCs
        np.load(os.path.join(checkpoint, "seed.npy"))
        with h5py.File(os.path.join(checkpoint, "transformer.weights.h5"), "r") as weights:
            weights.visit(lambda _: None)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def latest_checkpoint(output_dir):
    """The newest readable checkpoint folder under `output_dir`, or `None`.

    A newest checkpoint that cannot be read (a truncated file, bad JSON: a
    disk that filled up, a copy cut short) is skipped with a warning, and the
    one before it is used.
    """
    for checkpoint in reversed(_checkpoint_dirs(output_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        logger.warning("Skipping unreadable checkpoint %s (%s); trying the one before it", checkpoint, problem)
    return None


def _fsync_path(path):
    """Flushes a file's or a folder's entry to disk (folders: where the OS allows it)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a folder
    finally:
        os.close(descriptor)


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)
    _fsync_path(os.path.dirname(path) or ".")


def save_checkpoint(trainer, output_dir, state, keep=3):
    """Writes `ckpt-<step>/` atomically: a temporary folder, then one rename.

    Holds the transformer weights, the Gram tables, the optimiser and seed
    state, and `state.json` (config, style names, step, the learning rate at
    that step) last, so a folder without `state.json` is never taken for a
    checkpoint. Every file and the folder are synced to disk before the
    rename; an existing checkpoint of the same step is replaced only once the
    new one is complete, and old ones are deleted only after that.
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
    np.savez(os.path.join(tmp, "optimizer.npz"), **_optimizer_state(trainer.optimizer))
    np.save(os.path.join(tmp, "seed.npy"), ops.convert_to_numpy(trainer.seed_generator.state))
    rate = float(ops.convert_to_numpy(trainer.optimizer.learning_rate))
    for name in CHECKPOINT_FILES[:-1]:
        _fsync_path(os.path.join(tmp, name))
    _write_json_atomic(
        os.path.join(tmp, "state.json"),
        {**state, "step": step, "learning_rate": rate, "format": CHECKPOINT_FORMAT},
    )
    replaced = None
    if os.path.isdir(final):  # the same step again: keep the old one until the new one is in place
        replaced = os.path.join(root, f".old-ckpt-{step:08d}-{os.getpid()}")
        os.replace(final, replaced)
    os.replace(tmp, final)
    _fsync_path(root)
    if replaced:
        shutil.rmtree(replaced, ignore_errors=True)
    for old in _checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_stale_temporaries(output_dir):
    """Cleans what a killed run left: half-written `.tmp-*` files and folders are deleted; a
    checkpoint set aside for a rewrite of its step (`.old-ckpt-*`) goes back in place when the
    new one never arrived, else is deleted."""
    root = os.path.join(output_dir, CHECKPOINT_DIR)
    for old in sorted(glob.glob(os.path.join(root, ".old-ckpt-*"))):
        final = os.path.join(root, "ckpt-" + os.path.basename(old).split("-")[2])
        if not os.path.isdir(final):
            logger.warning("Restoring %s, set aside by a run killed while rewriting it", final)
            os.replace(old, final)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for path in glob.glob(os.path.join(root, ".tmp-*")) + glob.glob(os.path.join(output_dir, ".tmp-*")):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


#: The file that marks an output folder as in use by a running process.
LOCK_FILE = ".lock"


class OutputDirBusyError(ValueError):
    """Another live process is training into the same output folder."""


@contextlib.contextmanager
def output_dir_lock(output_dir):
    """Holds `output_dir` for this process: a second run there is refused while this one lives.

    The lock is a file with the holder's pid; one left by a killed process is
    taken over (and that run's half-written files removed).

    Raises:
        OutputDirBusyError: If a live process holds the folder.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as stream:
                    holder = int(stream.read().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and _process_alive(holder):
                raise OutputDirBusyError(
                    f"{output_dir} is in use by another training run (pid {holder}); wait for it to finish, stop "
                    f"it, or choose another output folder"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # left by a process that is gone
            continue
        with os.fdopen(descriptor, "w") as stream:
            stream.write(str(os.getpid()))
        break
    try:
        _remove_stale_temporaries(output_dir)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def _is_learning_rate(variable):
    return variable.path.rsplit("/", 1)[-1] == "learning_rate"


def _optimizer_state(optimizer):
    """The optimiser's step and slot variables, in order, without its learning rate."""
    slots = [v for v in optimizer.variables[1:] if not _is_learning_rate(v)]
    return {
        "iterations": ops.convert_to_numpy(optimizer.variables[0]),
        **{f"slot_{i:05d}": ops.convert_to_numpy(v) for i, v in enumerate(slots)},
    }


def _saved_optimizer_state(path):
    """`(iterations, [slot values])` from a checkpoint's optimizer.npz, either format."""
    with np.load(path) as saved:
        if "iterations" in saved.files:
            slots = sorted(k for k in saved.files if k.startswith("slot_"))
            return saved["iterations"], [saved[k] for k in slots]
        # Format 1: every variable by position; [0] the step, [1] the learning rate.
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        return values[0], values[2:]


def restore_checkpoint(trainer, checkpoint):
    """Loads transformer weights, Gram tables, optimiser and seed state into `trainer`.

    The optimiser's step count and Adam moments are restored; its learning
    rate (or schedule) stays what `trainer` was compiled with, so a run
    resumed with a new `--learning_rate` or `--lr_schedule` goes on under
    those.

    Args:
        trainer: The `StyleTrainer` to load into (compiled).
        checkpoint: A checkpoint folder.
    """
    trainer.transformer.load_weights(os.path.join(checkpoint, "transformer.weights.h5"))
    with np.load(os.path.join(checkpoint, "grams.npz")) as grams:
        for name, table in trainer.style_grams.items():
            table.assign(grams[name])
    optimizer = trainer.optimizer
    optimizer.build(trainer.trainable_variables)
    iterations, values = _saved_optimizer_state(os.path.join(checkpoint, "optimizer.npz"))
    slots = [v for v in optimizer.variables[1:] if not _is_learning_rate(v)]
    if len(values) != len(slots):
        raise ValueError(
            f"Checkpoint {checkpoint} holds {len(values)} optimiser slot variables; this model has "
            f"{len(slots)}. Was it written by another network width or style count?"
        )
    optimizer.variables[0].assign(iterations)
    for variable, value in zip(slots, values):
        variable.assign(value)
    trainer.seed_generator.state.assign(np.load(os.path.join(checkpoint, "seed.npy")))


# --------------------------------------------------------------------------
# Callbacks


class HostStepCallback(keras.callbacks.Callback):
    """A callback that knows the optimiser's step without asking the device.

    Reading `self.model` (or `optimizer.iterations`) after every batch makes
    Keras under JAX write the whole training state back into the model's
    variables and waits for the step to finish. The step is counted here on
    the host instead: `start_step` plus the batches `fit` reports, which also
    holds with `steps_per_execution` > 1. `self.model` is touched only when a
    subclass really needs the state (to save it).
    """

    def __init__(self, start_step=0):
        super().__init__()
        self.step = int(start_step)
        self._epoch_start = self.step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_end(self, batch, logs=None):
        previous, self.step = self.step, self._epoch_start + batch + 1
        self.on_steps(previous, logs)

    def on_steps(self, previous, logs):
        """Called after the steps `previous + 1 ... self.step` ran."""


class CheckpointCallback(HostStepCallback):
    """Checkpoints when the step crosses a multiple of `every`, and at the end of training."""

    def __init__(self, output_dir, state, every, keep, start_step=0):
        super().__init__(start_step)
        self.output_dir, self.state, self.every, self.keep = output_dir, state, every, keep
        self.last_step = int(start_step)

    def _save(self):
        if self.step != self.last_step:
            save_checkpoint(self.model, self.output_dir, self.state, self.keep)
            self.last_step = self.step

    def on_steps(self, previous, logs):
        if self.step // self.every > previous // self.every:
            self._save()

    def on_train_end(self, logs=None):
        self._save()


class StopAtStep(HostStepCallback):
    """Ends `fit` once the optimiser has taken `steps` steps in all, or after `max_minutes`."""

    def __init__(self, steps, start_step=0, max_minutes=None):
        super().__init__(start_step)
        self.steps, self.max_minutes = steps, max_minutes
        self.timed_out = False

    def on_train_begin(self, logs=None):
        self.clock = time.monotonic()

    def on_steps(self, previous, logs):
        if self.max_minutes is not None and time.monotonic() - self.clock > 60.0 * self.max_minutes:
            self.timed_out = True
            logger.info("Stopping at step %d: the %g-minute limit is reached", self.step, self.max_minutes)
        if self.step >= self.steps or self.timed_out:
            self._model.stop_training = True  # a flag: no state sync needed


class ProgressBar(HostStepCallback):
    """One `keras.utils.Progbar` over the whole run: losses and images/s."""

    def __init__(self, steps, batch_size, start_step=0, verbose=1):
        super().__init__(start_step)
        self.steps, self.batch_size, self.start_step, self.verbose = steps, batch_size, start_step, verbose
        self.history = []

    def on_train_begin(self, logs=None):
        self.bar = keras.utils.Progbar(
            self.steps,
            verbose=self.verbose,
            unit_name="step",
            stateful_metrics=["loss", *[f"{p}_loss" for p in LOSS_PARTS], "img/s"],
        )
        self.bar.update(self.start_step)
        self.clock = time.perf_counter()

    def on_steps(self, previous, logs):
        now = time.perf_counter()
        rate = self.batch_size * (self.step - previous) / max(now - self.clock, 1e-9)
        self.clock = now
        values = [
            (k, float(v)) for k, v in (logs or {}).items() if k in ("loss", "content_loss", "style_loss", "tv_loss")
        ]
        self.history.append({"step": self.step, **dict(values), "images_per_second": rate})
        self.bar.update(self.step, values=values + [("img/s", rate)])


class SampleSheet(HostStepCallback):
    """Writes a PNG sheet (rows: sample photos; columns: photo, each style) now and then.

    Also logs the sheet to TensorBoard when TensorFlow is importable.
    """

    def __init__(self, photos, output_dir, every, writer=None, start_step=0):
        super().__init__(start_step)
        self.photos, self.output_dir, self.every, self.writer = photos, output_dir, every, writer
        self.last_step = None

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
        if self.step == self.last_step:
            return
        self.last_step = step = self.step
        sheet = self.sheet()
        folder = os.path.join(self.output_dir, "samples")
        os.makedirs(folder, exist_ok=True)
        image_io.write_image(os.path.join(folder, f"step-{step:08d}.png"), sheet)
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default():
                tf.summary.image("samples/photo_then_each_style", sheet[None], step=step)
            self.writer.flush()

    def on_steps(self, previous, logs):
        if self.every and self.step // self.every > previous // self.every:
            self.write()

    def on_train_end(self, logs=None):
        self.write()


# --------------------------------------------------------------------------
# Runs


def _content_dataset(config):
    """Content batches: `PhotoCrops` for a folder (any backend), tf.data for tfds.

    A folder's crops are seeded by `config.seed` (0 if unset, so a resumed run
    continues the same stream); set `start_batch` to the step the run starts at.
    """
    from cin_style.data import ContentSourceError, check_content_source, photo_crops

    if check_content_source(config.content) == "folder":
        return photo_crops(
            config.content, config.image_size, config.batch_size, seed=0 if config.seed is None else config.seed
        )
    try:
        from cin_style.tf_data import tfds_dataset, with_style_draws
    except ImportError as error:
        raise ContentSourceError(
            f"Content '{config.content}' is not a folder, and tensorflow-datasets names need TensorFlow "
            f"({error}). Without TensorFlow, give a folder of photos."
        ) from error
    batches = tfds_dataset(
        config.content,
        image_size=config.image_size,
        batch_size=config.batch_size,
        seed=config.seed,
        split=config.tfds_split,
        data_dir=config.tfds_data_dir,
        image_key=config.tfds_image_key,
    )
    return with_style_draws(batches, config.batch_size, config.seed)


def _sample_photos(dataset, count=3):
    if isinstance(dataset, keras.utils.PyDataset):
        batch = dataset.batch(0)
    else:
        batch = next(iter(dataset.take(1).as_numpy_iterator()))["images"]
    return [np.asarray(p, "float32") for p in batch[:count]]


def _compile(trainer, config):
    """Adam under the configured schedule; JAX always jit-compiles the step."""
    rate = learning_rate_for(
        config.lr_schedule, config.learning_rate, config.steps, config.warmup_steps, config.decay_start
    )
    jit = True if keras.backend.backend() == "jax" else config.jit_compile
    trainer.compile(
        optimizer=keras.optimizers.Adam(rate), jit_compile=jit, steps_per_execution=config.steps_per_execution
    )


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
        copy = build_transformer(num_styles_of(model), alpha=alpha_of(model), output_norm=output_norm_of(model))
    copy.set_weights(model.get_weights())
    return copy


def _perceptual_loss(config, vgg_weights):
    return PerceptualLoss(
        content_weight=config.content_weight,
        style_weight=config.style_weight,
        tv_weight=config.tv_weight,
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
        # Keras' one private use here: TensorBoard has no public start step; its batch counter is
        # `_global_train_batch` (test_resumed_run_continues_its_tensorboard_loss_curve pins it).
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
    if isinstance(dataset, keras.utils.PyDataset):
        dataset.start_batch = start_step  # the batches a run without the stop would see next
    writer, extra = _tensorboard_writer(config, start_step)
    progress = ProgressBar(config.steps, config.batch_size, start_step, verbose)
    callbacks = [
        StopAtStep(config.steps, start_step, config.max_minutes),
        progress,
        CheckpointCallback(config.output_dir, state, every, config.keep_checkpoints, start_step),
        SampleSheet(_sample_photos(dataset), config.output_dir, config.sample_every or every, writer, start_step),
        *extra,
    ]
    if start_step < config.steps:
        trainer.fit(
            dataset,
            epochs=-(-config.steps // every),
            steps_per_epoch=every,
            initial_epoch=start_step // every,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
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
        ValueError: For settings that cannot work, a checkpoint whose
            styles differ from `config`'s or that an add-styles run wrote.
        OutputDirBusyError: If another live run trains into `output_dir`.
    """
    config.validate()
    with output_dir_lock(config.output_dir):
        return _train(config, resume, vgg_weights, strategy, verbose)


def _resume_point(output_dir, resume, kind):
    """`(checkpoint, its state.json)` a run of `kind` starts from (`(None, None)`: from scratch), after the checks.

    Refuses a folder holding checkpoints without `resume`, checkpoints that
    another kind of run wrote, and a folder whose checkpoints are all
    unreadable; unreadable ones newer than the chosen one are set aside as
    `unreadable-ckpt-*` (kept for inspection, never mistaken for the newest).
    """
    existing = _checkpoint_dirs(output_dir)
    if not resume:
        if existing:
            raise ValueError(
                f"{output_dir} already holds checkpoints; pass resume=True (--resume) to continue, "
                "or choose another output folder"
            )
        return None, None
    checkpoint = latest_checkpoint(output_dir)
    if existing and checkpoint is None:
        raise ValueError(f"No checkpoint in {output_dir} can be read (see the warnings above); nothing to resume")
    for newer in existing[existing.index(checkpoint) + 1 :] if checkpoint else []:
        os.replace(newer, os.path.join(os.path.dirname(newer), "unreadable-" + os.path.basename(newer)))
    if checkpoint is None:
        return None, None
    with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as stream:
        state = json.load(stream)
    written_by = state.get("kind", "train")
    if written_by != kind:
        command = {"train": "cin-style-train", "add_styles": "cin-style-add-style --model=<the base model>"}
        raise ValueError(
            f"{checkpoint} was written by a {written_by} run ({command.get(written_by, written_by)}); "
            f"resume it with `{command.get(written_by, written_by)} ... --resume`, not as a {kind} run"
        )
    return checkpoint, state


def _train(config, resume, vgg_weights, strategy, verbose):
    checkpoint, saved = _resume_point(config.output_dir, resume, "train")
    dataset = _content_dataset(config)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    style_images = None
    if checkpoint:
        style_names, grams = saved["style_names"], None
        if config.style_names and list(config.style_names) != style_names:
            raise ValueError(f"Checkpoint {checkpoint} was trained on styles {style_names}; got {config.style_names}")
        logger.info("Resuming from %s (step %d)", checkpoint, saved["step"])
        _log_rate_change(saved.get("config", {}), config, checkpoint)
        saved_side = saved.get("config", {}).get("style_image_size", config.style_image_size)
        if saved_side != config.style_image_size:
            # A new phase at another scale (e.g. 128-px crops, then 256): Gram targets to match.
            from cin_style.data import load_style_images

            logger.info("Gram targets recomputed at a %d-px style size (was %d)", config.style_image_size, saved_side)
            names, style_images = load_style_images(config.styles, config.style_image_size, config.style_names)
            if names != style_names:
                raise ValueError(f"Checkpoint {checkpoint} was trained on styles {style_names}; got {names}")
    else:
        from cin_style.data import load_style_images

        style_names, style_images = load_style_images(config.styles, config.style_image_size, config.style_names)
    scope = strategy.scope() if strategy is not None else _null_scope()
    with scope, dtype_policy_scope(config.dtype_policy):
        perceptual = _perceptual_loss(config, vgg_weights)
        new_grams = perceptual.style_grams(style_images) if style_images is not None else None
        if not checkpoint:
            grams = new_grams
        transformer = build_transformer(len(style_names), alpha=config.alpha, output_norm=config.output_norm)
        if config.init_weights and not checkpoint:
            load_initial_weights(transformer, config.init_weights)
        trainer = StyleTrainer(transformer, perceptual, grams, seed=config.seed)
        _compile(trainer, config)
        if checkpoint:
            restore_checkpoint(trainer, checkpoint)
            if new_grams is not None:
                for name, table in trainer.style_grams.items():
                    table.assign(ops.convert_to_numpy(new_grams[name]))
    start = int(ops.convert_to_numpy(trainer.optimizer.iterations))
    state = {"kind": "train", "style_names": list(style_names), "config": dataclasses.asdict(config)}
    if strategy is not None and isinstance(dataset, keras.utils.PyDataset):
        from cin_style.tf_data import indexed_batches

        dataset = indexed_batches(dataset, start)  # in order: the same batches on any number of replicas
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

    Raises:
        ValueError: For bad settings, an output folder that holds checkpoints
            (without `resume`) or those of a plain training run, or new style
            names the model has.
        OutputDirBusyError: If another live run trains into `output_dir`.
    """
    config.validate()
    old_count = num_styles_of(model)
    if len(style_names) != old_count:
        raise ValueError(f"The model holds {old_count} styles but {len(style_names)} names were given")
    with output_dir_lock(config.output_dir):
        return _add_styles(model, style_names, config, resume, vgg_weights, init_from, verbose)


def _add_styles(model, style_names, config, resume, vgg_weights, init_from, verbose):
    from cin_style.data import load_style_images

    old_count = num_styles_of(model)
    checkpoint, saved = _resume_point(config.output_dir, resume, "add_styles")
    new_names, new_images = load_style_images(config.styles, config.style_image_size, config.style_names)
    clash = sorted(set(new_names) & set(style_names))
    if clash:
        raise ValueError(f"The model already has styles named {clash}")
    if checkpoint:
        saved_names = saved["style_names"]
        if saved_names != [*style_names, *new_names]:
            raise ValueError(
                f"{checkpoint} adds styles to a model with styles {saved_names}; this run would make "
                f"{[*style_names, *new_names]}: give the same --model and --styles to resume it"
            )
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
    _compile(trainer, config)
    if checkpoint:
        restore_checkpoint(trainer, checkpoint)
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
    model = build_transformer(
        len(names), alpha=state["config"]["alpha"], output_norm=state["config"].get("output_norm", True)
    )
    model.load_weights(os.path.join(checkpoint, "transformer.weights.h5"))
    return model, names, state


def load_initial_weights(transformer, source):
    """Copies a trained model's weights into `transformer` (see `TrainConfig.init_weights`).

    Args:
        transformer: The freshly built network to fill.
        source: A `.keras` model, a training output folder (its `model.keras`,
            else its newest checkpoint), or a checkpoint folder. A model saved
            in another precision (say float16) is cast to the network's.

    Raises:
        ValueError: If the source's weights do not fit the network (another
            number of styles, width or output layer).
    """
    folder_model = os.path.join(source, MODEL_FILE) if os.path.isdir(source) else None
    if folder_model and os.path.isfile(folder_model):
        source = folder_model
    if os.path.isdir(source):
        model = model_from_checkpoint(source)[0]
    else:
        model = keras.saving.load_model(source, compile=False)
    theirs = [tuple(w.shape) for w in model.weights]
    ours = [tuple(w.shape) for w in transformer.weights]
    if theirs != ours:
        raise ValueError(
            f"Cannot start from {source}: its network ({num_styles_of(model)} styles, "
            f"{len(theirs)} weights) does not match this run's ({num_styles_of(transformer)} styles, "
            f"{len(ours)} weights); styles, alpha and output_norm must be the same"
        )
    transformer.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    logger.info("Started from the weights of %s", source)


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
    saved = read_styles_file(folder)
    names = saved["style_names"] if saved else [f"style_{i}" for i in range(num_styles_of(model))]
    return model, names


def _log_rate_change(saved, config, checkpoint):
    """Says so when a resumed run trains under another learning rate or schedule than its checkpoint."""
    was = (saved.get("learning_rate"), saved.get("lr_schedule", "constant"))
    now = (config.learning_rate, config.lr_schedule)
    if was[0] is not None and (not np.isclose(was[0], now[0], rtol=1e-6, atol=0) or was[1] != now[1]):
        logger.info("Learning rate %g, %s (was %g, %s in %s)", now[0], now[1], was[0], was[1], checkpoint)


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "add_styles",
    "load_trained",
    "latest_checkpoint",
    "model_from_checkpoint",
    "dtype_policy_scope",
    "OutputDirBusyError",
    "output_dir_lock",
]
