"""Keras callbacks of a training run: host-counted steps, checkpoints, the stop, progress, samples, TensorBoard.

Every callback counts optimiser steps on the host (see `HostStepCallback`):
under JAX, reading the model after each batch would pull the whole training
state back from the device.
"""

import importlib
import logging
import os
import time

import keras
import numpy as np
from keras import ops

from cin_style import image_io
from cin_style.checkpoints import save_checkpoint
from cin_style.distillation import DISTILL_PARTS
from cin_style.sheets import sample_sheet
from cin_style.trainer import LOSS_PARTS

logger = logging.getLogger("cin_style")


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

    def stop_training(self):
        """Makes `fit` stop after this step, without reading the training state.

        The flag needs no state, so it is set on the model Keras gave the
        callback (`_model`: Keras' public `model` property syncs the state
        under JAX). The one private use of these callbacks;
        test_callbacks_read_the_model_state_only_when_they_save pins it.
        """
        self._model.stop_training = True


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
            self.stop_training()


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
            stateful_metrics=[
                "loss",
                *[f"{p}_loss" for p in (*LOSS_PARTS, "teacher", "spike", *DISTILL_PARTS)],
                "img/s",
            ],
        )
        self.bar.update(self.start_step)
        self.clock = time.perf_counter()

    def on_steps(self, previous, logs):
        now = time.perf_counter()
        rate = self.batch_size * (self.step - previous) / max(now - self.clock, 1e-9)
        self.clock = now
        values = [(k, float(v)) for k, v in (logs or {}).items() if k == "loss" or k.endswith("_loss")]
        self.history.append({"step": self.step, **dict(values), "images_per_second": rate})
        self.bar.update(self.step, values=values + [("img/s", rate)])


class SampleSheet(HostStepCallback):
    """Writes a PNG sheet of the sample photos in every style now and then (see `cin_style.sheets`).

    Each photo starts a block of rows: the photo, then its painting in each
    style, every picture named beneath it. Also logs the sheet to TensorBoard
    when TensorFlow is importable.
    """

    def __init__(self, photos, output_dir, every, writer=None, start_step=0, photo_names=None, style_names=None):
        super().__init__(start_step)
        self.photos, self.output_dir, self.every, self.writer = photos, output_dir, every, writer
        self.photo_names = list(photo_names or [f"photo {i + 1}" for i in range(len(photos))])
        self.style_names = None if style_names is None else list(style_names)
        self.last_step = None

    def sheet(self):
        """The sheet as a PIL image, and its `cin_style.sheets.GridLayout`."""
        transformer = self.model.transformer
        num_styles = self.model.num_styles
        style_names = self.style_names or [f"style {i}" for i in range(num_styles)]
        paintings = []
        for photo in self.photos:
            batch = np.repeat(photo[None], num_styles, axis=0)
            paintings.append(
                ops.convert_to_numpy(
                    transformer({"image": batch, "style_weights": np.eye(num_styles, dtype="float32")}, training=False)
                )
            )
        return sample_sheet(self.photos, self.photo_names, style_names, paintings)

    def write(self):
        if self.step == self.last_step:
            return
        self.last_step = step = self.step
        sheet, _ = self.sheet()
        folder = os.path.join(self.output_dir, "samples")
        os.makedirs(folder, exist_ok=True)
        image_io.write_image(os.path.join(folder, f"step-{step:08d}.png"), sheet)
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default():
                tf.summary.image("samples/photo_then_each_style", np.asarray(sheet)[None], step=step)
            self.writer.flush()

    def on_steps(self, previous, logs):
        if self.every and self.step // self.every > previous // self.every:
            self.write()

    def on_train_end(self, logs=None):
        self.write()


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


def _tensorflow_for_tensorboard():
    """The `tensorflow` module when TensorBoard logs can be written (tf.summary needs TensorBoard too),
    else `None` with a warning that names what is missing."""
    names = {"tensorflow": "TensorFlow", "tensorboard": "TensorBoard"}
    missing = []
    for module in names:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        what = " and ".join(names[module] for module in missing)
        verb = "are" if len(missing) > 1 else "is"
        logger.warning(f"{what} {verb} not installed: no TensorBoard logs (pip install {' '.join(missing)})")
        return None
    return importlib.import_module("tensorflow")


def _tensorboard_writer(config, start_step=0):
    if not config.tensorboard:
        return None, []
    tf = _tensorflow_for_tensorboard()
    if tf is None:
        return None, []
    log_dir = os.path.join(config.output_dir, "logs")
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
    board = ResumableTensorBoard(start_step, log_dir=log_dir, update_freq=max(1, config.checkpoint_every // 10))
    return writer, [board]


def tensorboard_callbacks(output_dir, log_every, start_step=0):
    """`(image writer, [ResumableTensorBoard])` logging under `output_dir/logs`, or `(None, [])`
    with a warning naming TensorFlow or TensorBoard when one is not installed."""
    tf = _tensorflow_for_tensorboard()
    if tf is None:
        return None, []
    log_dir = os.path.join(output_dir, "logs")
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
    board = ResumableTensorBoard(start_step, log_dir=log_dir, update_freq=max(1, int(log_every)))
    return writer, [board]


__all__ = [
    "CheckpointCallback",
    "HostStepCallback",
    "ProgressBar",
    "ResumableTensorBoard",
    "SampleSheet",
    "StopAtStep",
    "tensorboard_callbacks",
]
