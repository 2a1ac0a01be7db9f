"""Learning-rate schedules for training runs, as functions of the absolute step.

A run resumed from a checkpoint restores the optimiser's step count, so a
schedule picks up where it stopped: no hand-made `--resume --learning_rate`
drops.
"""

import math

import keras
from keras import ops

#: Names `TrainConfig.lr_schedule` accepts.
LR_SCHEDULES = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="cin_style")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, a constant stretch, then cosine decay to a floor.

    `rate(step)` is `peak * step / warmup_steps` during warm-up, `peak` until
    `decay_start`, then falls along half a cosine to `peak * final_fraction`
    at `decay_end`, and stays there.

    Args:
        peak: The learning rate after warm-up.
        decay_end: Step at which the decay ends (the run's last step).
        warmup_steps: Steps of linear warm-up from 0. Defaults to `0`.
        decay_start: Step at which the decay starts. Defaults to `0` (right
            after warm-up).
        final_fraction: Floor as a fraction of `peak`. Defaults to `0.01`.
    """

    def __init__(self, peak, decay_end, warmup_steps=0, decay_start=0, final_fraction=0.01):
        if not peak > 0:
            raise ValueError(f"`peak` must be positive. Received: peak={peak!r}")
        if warmup_steps < 0 or decay_start < 0:
            raise ValueError(
                f"Steps must be non-negative. Received: warmup_steps={warmup_steps}, decay_start={decay_start}"
            )
        if not 0 <= final_fraction <= 1:
            raise ValueError(f"`final_fraction` must be in [0, 1]. Received: final_fraction={final_fraction!r}")
        self.peak, self.warmup_steps, self.final_fraction = float(peak), int(warmup_steps), float(final_fraction)
        self.decay_start = max(int(decay_start), self.warmup_steps)
        self.decay_end = max(int(decay_end), self.decay_start + 1)
        if decay_end <= self.decay_start:
            raise ValueError(
                f"The decay must end after it starts: decay_end={decay_end}, decay_start={self.decay_start} "
                f"(after warm-up of {self.warmup_steps} steps)"
            )

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = ops.minimum(1.0, (step + 1.0) / max(self.warmup_steps, 1)) if self.warmup_steps else 1.0
        progress = ops.clip((step - self.decay_start) / (self.decay_end - self.decay_start), 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.peak * warm * (self.final_fraction + (1.0 - self.final_fraction) * cosine)

    def get_config(self):
        return {
            "peak": self.peak,
            "decay_end": self.decay_end,
            "warmup_steps": self.warmup_steps,
            "decay_start": self.decay_start,
            "final_fraction": self.final_fraction,
        }


def learning_rate_for(name, peak, steps, warmup_steps=0, decay_start=0):
    """The optimiser's `learning_rate` argument for a schedule name.

    Args:
        name: `"constant"` (a float: `peak` throughout) or `"cosine"`
            (`WarmupCosineDecay` ending at `steps`).
        peak: Base learning rate.
        steps: The run's total steps.
        warmup_steps, decay_start: See `WarmupCosineDecay`.

    Raises:
        ValueError: For an unknown name.
    """
    if name == "constant":
        if warmup_steps:
            return WarmupCosineDecay(
                peak, decay_end=steps + 1, warmup_steps=warmup_steps, decay_start=steps, final_fraction=1.0
            )
        return float(peak)
    if name == "cosine":
        return WarmupCosineDecay(peak, decay_end=steps, warmup_steps=warmup_steps, decay_start=decay_start)
    raise ValueError(f"`lr_schedule` must be one of {', '.join(LR_SCHEDULES)}. Received: lr_schedule={name!r}")
