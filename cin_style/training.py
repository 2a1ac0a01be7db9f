"""Training runs: `train` a new multi-style transformer, `add_styles` to a trained one.

Both are one run skeleton (`_run`): hold the output folder, find the resume
point, build the data stream from the step the run starts at, build and
compile the `StyleTrainer` (the part each kind of run supplies), restore the
checkpoint, `fit` with checkpoints and progress, save `model.keras`. A run
checkpoints atomically every `checkpoint_every` steps and resumes from the
newest checkpoint with the same step count, optimiser state, style list, Gram
targets and data stream.

The settings are in `cin_style.config`, checkpoints in
`cin_style.checkpoints`, callbacks in `cin_style.callbacks`, loading trained
models in `cin_style.model_io`; their public names are re-exported here.
"""

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from cin_style import distribute
from cin_style.callbacks import (
    CheckpointCallback,
    HostStepCallback,
    ProgressBar,
    SampleSheet,
    StopAtStep,
    tensorboard_callbacks,
)
from cin_style.checkpoints import (
    OutputDirBusyError,
    latest_checkpoint,
    output_dir_lock,
    restore_checkpoint,
    resume_point,
    write_json_atomic,
)
from cin_style.config import DTYPE_POLICIES, TrainConfig
from cin_style.distillation import DistillTrainer
from cin_style.layers import ReflectionConv2D
from cin_style.losses import PerceptualLoss, style_loss
from cin_style.metadata import STYLES_FILE, read_styles_file
from cin_style.model_io import (
    MODEL_FILE,
    load_initial_weights,
    load_trained,
    load_transformer,
    model_from_checkpoint,
)
from cin_style.network import (
    all_layers,
    alpha_of,
    build_transformer,
    dtype_policy_scope,
    num_styles_of,
    output_norm_of,
    with_dtype_policy,
    with_more_styles,
)
from cin_style.paintings import RUN_FOLDER, copy_paintings, paintings_folder, write_paintings
from cin_style.schedules import learning_rate_for
from cin_style.spike_penalty import watch_spikes
from cin_style.trainer import StyleTrainer

logger = logging.getLogger("cin_style")


# --------------------------------------------------------------------------
# Pieces of a run


def _content_dataset(config, start_step=0):
    """Content batches from batch `start_step` on: `PhotoCrops` for a folder (any backend), tf.data for tfds.

    Both streams are seeded by `config.seed` (0 if unset) and the batch's
    position, so a run resumed at `start_step` sees the batches an
    uninterrupted run would have seen from there.
    """
    from cin_style.data import ContentSourceError, check_content_source, photo_crops

    seed = 0 if config.seed is None else config.seed
    if check_content_source(config.content) == "folder":
        return photo_crops(config.content, config.image_size, config.batch_size, seed=seed, start_batch=start_step)
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
        seed=seed,
        split=config.tfds_split,
        data_dir=config.tfds_data_dir,
        image_key=config.tfds_image_key,
        start_batch=start_step,
    )
    return with_style_draws(batches, config.batch_size, seed, start_batch=start_step)


def _sample_photos(dataset, count=3):
    if isinstance(dataset, keras.utils.PyDataset):
        batch = dataset.batch(0)
    else:
        batch = next(iter(dataset.take(1).as_numpy_iterator()))["images"]
    return [np.asarray(p, "float32") for p in batch[:count]]


def _sample_names(dataset, count=3):
    """Names of `_sample_photos`: the photos' file stems for a folder, else "photo 1", ..."""
    if isinstance(dataset, keras.utils.PyDataset) and hasattr(dataset, "paths"):
        return [os.path.splitext(os.path.basename(dataset.paths[i]))[0] for i in dataset.photo_indices(0)[:count]]
    return [f"photo {i + 1}" for i in range(count)]


@dataclasses.dataclass
class _Samples:
    """The photos of the sample sheets, with a name for each."""

    photos: list
    names: list


def _compile(trainer, config):
    """Adam under the configured schedule; JAX jit-compiles the step unless `config.run_eagerly`."""
    rate = learning_rate_for(
        config.lr_schedule, config.learning_rate, config.steps, config.warmup_steps, config.decay_start
    )
    jit = False if config.run_eagerly else True if keras.backend.backend() == "jax" else config.jit_compile
    trainer.compile(
        optimizer=keras.optimizers.Adam(rate),
        jit_compile=jit,
        run_eagerly=config.run_eagerly,
        steps_per_execution=config.steps_per_execution,
    )
    # Adam's slots made now, not inside the first compiled step: under TensorFlow a tf.function that creates
    # variables is traced twice, and tracing is most of a short run's time (once measured: a 4-step run 15 s -> 8 s).
    trainer.optimizer.build(trainer.trainable_variables)


def _float32_model(model):
    """`model` itself if it computes in float32, else a float32 copy with the same weights."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in all_layers(model)):
        return model
    return with_dtype_policy(model, "float32")


def _rebuilt(model):
    """A copy of transformer `model` under the current dtype policy, with its weights."""
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


def _fit(trainer, dataset, samples, config, state, start_step, verbose):
    """Runs `fit` from `start_step` to `config.steps` with checkpoints, progress and sheets of `samples`."""
    every = config.checkpoint_every
    writer, extra = (None, [])
    if config.tensorboard:
        writer, extra = tensorboard_callbacks(config.output_dir, every // 10, start_step)
    progress = ProgressBar(config.steps, config.batch_size, start_step, verbose)
    callbacks = [
        StopAtStep(config.steps, start_step, config.max_minutes),
        progress,
        CheckpointCallback(config.output_dir, state, every, config.keep_checkpoints, start_step),
        SampleSheet(
            samples.photos,
            config.output_dir,
            config.sample_every or every,
            writer,
            start_step,
            photo_names=samples.names,
            style_names=state["style_names"],
        ),
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
    write_json_atomic(
        os.path.join(output_dir, STYLES_FILE),
        {"style_names": list(style_names), "alpha": config.alpha, "training": dataclasses.asdict(config)},
    )
    return model_path


def _refuse_another_model(output_dir, style_names):
    """Refuses an output folder that holds a trained model with other styles than this run's."""
    saved = read_styles_file(output_dir) if os.path.isdir(output_dir) else None
    if saved is not None and list(saved["style_names"]) != list(style_names):
        raise ValueError(
            f"{output_dir} already holds another model (styles {saved['style_names']}); this run makes "
            f"{list(style_names)}. Choose another output folder"
        )


def _log_rate_change(saved, config, checkpoint):
    """Says so when a resumed run trains under another learning rate or schedule than its checkpoint."""
    was = (saved.get("learning_rate"), saved.get("lr_schedule", "constant"))
    now = (config.learning_rate, config.lr_schedule)
    if was[0] is not None and (not np.isclose(was[0], now[0], rtol=1e-6, atol=0) or was[1] != now[1]):
        logger.info("Learning rate %g, %s (was %g, %s in %s)", now[0], now[1], was[0], was[1], checkpoint)


#: `add_styles`' `init_from` values that are not style names.
INIT_KEYWORDS = ("mean", "nearest")


def nearest_styles(model, perceptual, grams, photos):
    """For each style of `grams`, the index of `model`'s style whose outputs on `photos` match its Grams best.

    Args:
        model: A trained transformer.
        perceptual: The `PerceptualLoss` whose VGG and style layers measure it.
        grams: `{style_layer: (k, c, c)}` Gram targets (from `style_grams`).
        photos: A few content crops `(h, w, 3)` of one size.

    Returns:
        A list of `k` style indices: the arg-min over the model's styles of
        the style loss of its outputs against each target, averaged over photos.
    """
    batch = np.stack(photos).astype("float32")
    count = int(next(iter(grams.values())).shape[0])
    num_styles = num_styles_of(model)
    distances = np.zeros((count, num_styles))
    for style in range(num_styles):
        weights = np.zeros((len(batch), num_styles), "float32")
        weights[:, style] = 1.0
        features = perceptual.vgg(model({"image": batch, "style_weights": weights}, training=False))
        for target in range(count):
            targets = {
                name: ops.repeat(table[target : target + 1], len(batch), axis=0) for name, table in grams.items()
            }
            loss = style_loss(features, targets, perceptual.style_layers)
            distances[target, style] = float(np.mean(ops.convert_to_numpy(loss)))
    return [int(i) for i in np.argmin(distances, axis=1)]


# --------------------------------------------------------------------------
# The run skeleton


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: keras.Model
    style_names: list
    model_path: str
    history: list
    resumed_from: str = None
    #: `add_styles` only: where the new γ/β rows started, as `with_more_styles`
    #: takes it (`None`, `"mean"`, or an index per new style), also after a resume.
    init_from: object = None
    #: The `TrainConfig` the run trained under, with the saved model's `alpha`
    #: (for `add_styles` also its `output_norm`): what its checkpoints record.
    config: TrainConfig = None


@dataclasses.dataclass
class _Setup:
    """What a kind of run builds before `fit`.

    Attributes:
        trainer: The compiled `StyleTrainer`, not yet restored.
        style_names: Every style of the model it trains.
        finish: Returns the model to save once `fit` is done.
        restore_grams: Whether a checkpoint's Gram tables replace the trainer's.
    """

    trainer: StyleTrainer
    style_names: list
    finish: Callable[[], keras.Model]
    restore_grams: bool = True
    #: Kept in every checkpoint's state, and read back by `build` on resume.
    state: dict = dataclasses.field(default_factory=dict)


def _run(kind, config, resume, build, strategy=None, verbose=1):
    """The steps every run shares; `build(checkpoint, state, dataset)` supplies its `_Setup`.

    `build` runs with the seed set, under `strategy`'s scope when given (see
    `cin_style.distribute`), and the checkpoint (if any) is restored into its
    trainer afterwards. Of several workers only the chief holds and writes
    `config.output_dir`; the others read its checkpoints and write elsewhere.
    """
    distribute.check(strategy, config)
    chief, _ = distribute.role(strategy)
    with (
        distribute.run_scope(strategy),
        output_dir_lock(config.output_dir) if chief else contextlib.nullcontext(),
        distribute.writable_dir(config.output_dir, strategy) as write_dir,
    ):
        checkpoint, saved = resume_point(config.output_dir, resume, kind, set_aside=chief)
        start = int(saved["step"]) if checkpoint else 0
        if config.seed is not None:  # first: tf.data's seeded shuffles also read the global seed
            keras.utils.set_random_seed(config.seed)
        dataset = _content_dataset(config, start)
        # The sample sheets show the run's first photos, also after a resume (a tfds stream starts part-way).
        first = dataset if start == 0 or isinstance(dataset, keras.utils.PyDataset) else _content_dataset(config, 0)
        photos = _sample_photos(first)
        samples = _Samples(photos, _sample_names(first)[: len(photos)])
        with distribute.build_scope(strategy):
            setup = build(checkpoint, saved, dataset)
            if checkpoint:
                logger.info("Resuming from %s (step %d)", checkpoint, start)
                _log_rate_change(saved.get("config", {}), config, checkpoint)
                restore_checkpoint(setup.trainer, checkpoint, grams=setup.restore_grams)
        restored = int(ops.convert_to_numpy(setup.trainer.optimizer.iterations))
        if restored != start:
            raise ValueError(f"{checkpoint} says step {start} but its optimiser holds step {restored}")
        if distribute.uses_tf_distribute(strategy):
            from cin_style.tf_data import indexed_batches
            from cin_style.tf_distribute import for_data_split

            if isinstance(dataset, keras.utils.PyDataset):
                dataset = indexed_batches(dataset, start)  # in order: the same batches on any number of replicas
            dataset = for_data_split(dataset)
        state = {
            "kind": kind,
            "style_names": list(setup.style_names),
            "config": dataclasses.asdict(config),
            **setup.state,
        }
        writes = dataclasses.replace(config, output_dir=write_dir)
        history = _fit(setup.trainer, dataset, samples, writes, state, start, verbose)
        model = setup.finish()
        config = dataclasses.replace(config, alpha=alpha_of(model))
        _save_final(model, write_dir, setup.style_names, config)
        model_path = os.path.join(config.output_dir, MODEL_FILE)  # the chief's, on every worker
        return TrainResult(
            model, list(setup.style_names), model_path, history, checkpoint, setup.state.get("init_from"), config
        )


# --------------------------------------------------------------------------
# The two kinds of run


def train(config, resume=False, vgg_weights=None, strategy=None, verbose=1):
    """Trains a multi-style transformer; see `TrainConfig` for the settings.

    Args:
        config: A `TrainConfig`.
        resume: Continue from the newest checkpoint in `config.output_dir`
            (same step count, optimiser state, styles, Gram targets and data
            stream). With no checkpoint there, starts afresh. Defaults to
            `False`.
        vgg_weights: VGG19 weights (see `cin_style.vgg.resolve_weights`).
        strategy: Where to train: a `tf.distribute.Strategy` (TensorFlow;
            `cin_style.tf_distribute.tf_strategy` makes one by name) or a
            `keras.distribution.DataParallel` (JAX; e.g.
            `cin_style.distribute.data_parallel()`). The global
            `config.batch_size` is split over the replicas and the learning
            rate is used as given. Of several workers only the chief writes
            `config.output_dir`, which every worker must see. Defaults to
            `None`: the default device.
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
    if config.teacher is not None and not config.styles:
        return _distill(config, resume, vgg_weights, strategy, verbose)
    teacher, teacher_names = None, None
    if config.teacher is not None:
        teacher, teacher_names, _ = load_transformer(config.teacher)

    def build(checkpoint, saved, dataset):
        from cin_style.data import load_style_images

        style_images = None
        if checkpoint:
            style_names = saved["style_names"]
            if config.style_names and list(config.style_names) != style_names:
                raise ValueError(
                    f"Checkpoint {checkpoint} was trained on styles {style_names}; got {config.style_names}"
                )
            saved_side = saved.get("config", {}).get("style_image_size", config.style_image_size)
            if saved_side != config.style_image_size:
                # A new phase at another scale (e.g. 128-px crops, then 256): Gram targets to match.
                logger.info(
                    "Gram targets recomputed at a %d-px style size (was %d)", config.style_image_size, saved_side
                )
                names, style_images = load_style_images(config.styles, config.style_image_size, config.style_names)
                if names != style_names:
                    raise ValueError(f"Checkpoint {checkpoint} was trained on styles {style_names}; got {names}")
        else:
            style_names, style_images = load_style_images(config.styles, config.style_image_size, config.style_names)
        _refuse_another_model(config.output_dir, style_names)
        if teacher is not None and list(teacher_names) != list(style_names):
            raise ValueError(
                f"The teacher {config.teacher} paints styles {list(teacher_names)}; the paintings are "
                f"{list(style_names)}: give the teacher's styles, in its order"
            )
        with dtype_policy_scope(config.dtype_policy):
            perceptual = _perceptual_loss(config, vgg_weights)
            grams = perceptual.style_grams(style_images) if style_images is not None else None
            transformer = build_transformer(len(style_names), alpha=config.alpha, output_norm=config.output_norm)
            if config.init_weights and not checkpoint:
                load_initial_weights(transformer, config.init_weights, style_names)
            trainer = StyleTrainer(
                transformer,
                perceptual,
                grams,
                seed=config.seed,
                teacher=_rebuilt(teacher) if teacher is not None else None,
                teacher_weight=config.teacher_weight,
                spike_weight=config.spike_weight,
                spike_limit=config.spike_limit,
            )
            _compile(trainer, config)
        if style_images is not None:  # after every check and VGG19: a refused run writes nothing
            write_paintings(os.path.join(config.output_dir, RUN_FOLDER), style_images, config.style_image_size)

        def finish():
            watch_spikes(transformer, 0.0)  # the penalty is for training: the finished model paints without it
            return _float32_model(transformer)

        return _Setup(trainer, list(style_names), finish, restore_grams=grams is None)

    return _run("train", config, resume, build, strategy=strategy, verbose=verbose)


def _distill(config, resume, vgg_weights, strategy, verbose):
    """`train` with `config.teacher` and no styles: the network learns the teacher's outputs (`DistillTrainer`)."""
    teacher, teacher_names, _ = load_transformer(config.teacher)

    def build(checkpoint, saved, dataset):
        style_names = list(saved["style_names"]) if checkpoint else list(config.style_names or teacher_names)
        if len(style_names) != len(teacher_names):
            raise ValueError(
                f"The teacher {config.teacher} has {len(teacher_names)} styles; {len(style_names)} names were given"
            )
        if checkpoint and style_names != list(config.style_names or teacher_names):
            raise ValueError(f"Checkpoint {checkpoint} was distilled with styles {style_names}")
        _refuse_another_model(config.output_dir, style_names)
        with dtype_policy_scope(config.dtype_policy):
            teacher_copy = _rebuilt(teacher)
            student = build_transformer(len(style_names), alpha=config.alpha, output_norm=config.output_norm)
            if config.init_weights and not checkpoint:
                load_initial_weights(student, config.init_weights, style_names)
            trainer = DistillTrainer(
                student, teacher_copy, feature_weight=config.feature_weight, vgg_weights=vgg_weights, seed=config.seed
            )
            _compile(trainer, config)
        # The teacher's paintings: the student paints its styles.
        copy_paintings(paintings_folder(config.teacher), os.path.join(config.output_dir, RUN_FOLDER), len(style_names))
        return _Setup(trainer, style_names, lambda: _float32_model(student), restore_grams=False)

    return _run("distill", config, resume, build, strategy=strategy, verbose=verbose)


def _start_record(start, count):
    """`with_more_styles`' `init_from` as plain JSON: `None`, `"mean"`, or one index per new style."""
    if start is None or start == "mean":
        return start
    if isinstance(start, (list, tuple, np.ndarray)):
        return [int(index) for index in start]
    return [int(start)] * count


def add_styles(model, style_names, config, resume=False, vgg_weights=None, init_from=None, verbose=1, paintings=None):
    """Adds styles to a trained transformer by fitting only their γ/β rows.

    Every other weight (all convolutions, the old styles' γ/β rows) is left
    bit-for-bit as it was, so old styles give identical outputs.

    Args:
        model: A trained transformer (from `build_transformer`/`train`).
        style_names: Names of the model's existing styles.
        config: A `TrainConfig` whose `styles` are the new style images;
            `alpha` and `output_norm` are ignored: the model's are kept, and
            recorded in the checkpoints (export and `init_weights` rebuild
            the network from them).
        resume: Continue from the newest checkpoint in `config.output_dir`.
        vgg_weights: VGG19 weights.
        init_from: How the new γ/β rows start: `None` for γ=1, β=0; an
            existing style (index or name) to copy; `"mean"`, the mean of the
            existing rows; or `"nearest"`, for each new painting the existing
            style whose outputs on a few content crops have the Gram matrices
            nearest the painting's (16 forward passes). Ignored on resume.
        verbose: Progress bar on (1) or off (0).
        paintings: The paintings folder of the model's existing styles
            (`cin_style.paintings.paintings_folder`), copied into the run
            beside the new paintings, so the grown model carries them all.
            Defaults to `None` (only the new ones).

    Returns:
        A `TrainResult` with the grown model, all style names, and in
        `init_from` where the new rows started (an index per new style for a
        style or `"nearest"`; also recorded in every checkpoint).

    Raises:
        ValueError: For bad settings, an output folder that holds checkpoints
            (without `resume`) or those of a plain training run, or new style
            names the model has.
        OutputDirBusyError: If another live run trains into `output_dir`.
    """
    config.validate()
    config = dataclasses.replace(config, alpha=alpha_of(model), output_norm=output_norm_of(model))
    old_count = num_styles_of(model)
    if len(style_names) != old_count:
        raise ValueError(f"The model holds {old_count} styles but {len(style_names)} names were given")
    if isinstance(init_from, str) and init_from not in INIT_KEYWORDS:
        if init_from not in style_names:
            raise ValueError(
                f"`init_from`: the model has no style named {init_from!r} (nor is it one of {INIT_KEYWORDS})"
            )
        init_from = list(style_names).index(init_from)

    def build(checkpoint, saved, dataset):
        from cin_style.data import load_style_images

        new_names, new_images = load_style_images(config.styles, config.style_image_size, config.style_names)
        clash = sorted(set(new_names) & set(style_names))
        if clash:
            raise ValueError(f"The model already has styles named {clash}")
        all_names = [*style_names, *new_names]
        _refuse_another_model(config.output_dir, all_names)
        if checkpoint and saved["style_names"] != all_names:
            raise ValueError(
                f"{checkpoint} adds styles to a model with styles {saved['style_names']}; this run would make "
                f"{all_names}: give the same --model and --styles to resume it"
            )
        with dtype_policy_scope(config.dtype_policy):  # VGG only: the given transformer keeps its own
            perceptual = _perceptual_loss(config, vgg_weights)
        kept = os.path.join(config.output_dir, RUN_FOLDER)  # after the checks and VGG19: a refused run writes none
        copy_paintings(paintings, kept, old_count)
        write_paintings(kept, new_images, config.style_image_size, first_index=old_count)
        new_grams = perceptual.style_grams(new_images)
        start = init_from
        if init_from == "nearest" and not checkpoint:
            start = nearest_styles(model, perceptual, new_grams, _sample_photos(dataset, count=4))
            for name, index in zip(new_names, start):
                logger.info(
                    "New style %s starts from the rows of %s, the nearest by Gram distance", name, style_names[index]
                )
        elif init_from == "nearest":
            start = None  # the checkpoint's rows replace them
        started = saved.get("init_from") if checkpoint else _start_record(start, len(new_names))
        grown = with_more_styles(model, len(new_names), init_from=start)
        for layer in all_layers(grown):
            if isinstance(layer, ReflectionConv2D):
                layer.trainable = False
        # Old styles are never sampled, so their Gram targets are never read: zeros.
        grams = {
            name: np.concatenate([np.zeros((old_count, *table.shape[1:]), "float32"), ops.convert_to_numpy(table)])
            for name, table in new_grams.items()
        }
        new_styles = range(old_count, len(all_names))
        trainer = StyleTrainer(
            grown,
            perceptual,
            grams,
            train_styles=new_styles,
            seed=config.seed,
            spike_weight=config.spike_weight,
            spike_limit=config.spike_limit,
        )
        _compile(trainer, config)

        def finish():
            for layer in all_layers(grown):
                layer.trainable = True
            watch_spikes(grown, 0.0)  # the penalty is for training: the finished model paints without it
            return grown

        return _Setup(trainer, all_names, finish, state={"init_from": started})

    return _run("add_styles", config, resume, build, verbose=verbose)


__all__ = [
    "DTYPE_POLICIES",
    "HostStepCallback",
    "OutputDirBusyError",
    "TrainConfig",
    "TrainResult",
    "add_styles",
    "dtype_policy_scope",
    "latest_checkpoint",
    "load_trained",
    "model_from_checkpoint",
    "output_dir_lock",
    "restore_checkpoint",
    "train",
]
