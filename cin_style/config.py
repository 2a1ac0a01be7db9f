"""`TrainConfig`: every setting of a training run, validated, saved with each checkpoint."""

import dataclasses
import os

from cin_style.checks import check_positive_integer, is_integer
from cin_style.distillation import DEFAULT_FEATURE_WEIGHT
from cin_style.losses import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT
from cin_style.schedules import LR_SCHEDULES
from cin_style.spike_penalty import DEFAULT_SPIKE_LIMIT
from cin_style.trainer import DEFAULT_TEACHER_WEIGHT

#: Dtype policies training accepts. "mixed_bfloat16" runs the convolutions in
#: bfloat16 with float32 weights, statistics, Gram matrices and losses: on a
#: CPU with AVX512-BF16 a step takes ~0.6x the float32 time.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")


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
            ones (a `.keras` file, a training folder, a checkpoint, or an
            exported SavedModel such as a bundled model's folder): a
            second schedule for a model that has stopped improving, or
            fine-tuning on other photos. Styles, alpha and layout must match.
        teacher: A trained model (SavedModel, `.keras` or training folder).
            Without `styles`: distil it (see `cin_style.distillation`), the
            network learns to reproduce its outputs, styles and names
            included, and the perceptual loss weights are unused. With
            `styles` (the teacher's, in its order): train on the paintings
            with the perceptual loss plus `teacher_weight` times the mean
            absolute pixel difference to the teacher's outputs.
        feature_weight: Distilling: weight of the VGG19 feature term next to
            the pixel term (0: pixels only, no VGG).
        teacher_weight: With `teacher` and `styles`: weight of the teacher
            term next to the perceptual loss.
        spike_weight: Training on paintings: weight of the spike penalty
            (`cin_style.spike_penalty`) against the activation spikes behind
            white ovals; 0 (the default): none.
        spike_limit: Kurtosis a channel may reach before the spike penalty
            counts it.
        checkpoint_every: Steps between checkpoints (and log lines).
        keep_checkpoints: How many checkpoints to keep.
        seed: Seed for data order, crops, style choice and initial weights.
        jit_compile: XLA under TensorFlow (JAX compiles unless `run_eagerly`).
        run_eagerly: Run each step op by op, not compiled (no `tf.function`,
            no `jax.jit`): to step through the loss in a debugger, and
            quicker than compiling for a run of a few tiny steps. The same
            losses, to float rounding; slower per step. Refused with
            `jit_compile`.
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
    teacher: str = None
    feature_weight: float = DEFAULT_FEATURE_WEIGHT
    teacher_weight: float = DEFAULT_TEACHER_WEIGHT
    spike_weight: float = 0.0
    spike_limit: float = DEFAULT_SPIKE_LIMIT
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = None
    jit_compile: bool = False
    run_eagerly: bool = False
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
        if self.run_eagerly and self.jit_compile:
            raise ValueError("`run_eagerly` and `jit_compile` exclude each other: an eager step is not compiled")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"`max_minutes` must be positive or None. Received: max_minutes={self.max_minutes!r}")
        if not self.alpha > 0:
            raise ValueError(f"`alpha` must be positive. Received: alpha={self.alpha!r}")
        if self.dtype_policy not in DTYPE_POLICIES:
            raise ValueError(
                f"`dtype_policy` must be one of {', '.join(DTYPE_POLICIES)}. "
                f"Received: dtype_policy={self.dtype_policy!r}"
            )
        if self.teacher is not None and not os.path.exists(self.teacher):
            raise ValueError(f"`teacher`: no such model: {self.teacher}")
        if not self.feature_weight >= 0:
            raise ValueError(f"`feature_weight` must be non-negative. Received: feature_weight={self.feature_weight!r}")
        if not self.teacher_weight >= 0:
            raise ValueError(f"`teacher_weight` must be non-negative. Received: teacher_weight={self.teacher_weight!r}")
        if not self.spike_weight >= 0:
            raise ValueError(f"`spike_weight` must be non-negative. Received: spike_weight={self.spike_weight!r}")
        if not self.spike_limit > 0:
            raise ValueError(f"`spike_limit` must be positive. Received: spike_limit={self.spike_limit!r}")
        if not self.styles and self.teacher is None:
            raise ValueError("`styles` is empty: give style image paths or a folder of them")
        if self.spike_weight and not self.styles:
            raise ValueError("`spike_weight` applies to training on paintings (`styles`), not to distillation")
        if not self.content:
            raise ValueError("`content` is empty: give a folder of photos or a tensorflow-datasets name")
        if self.init_weights is not None:
            self._check_init_weights()

    def _check_init_weights(self):
        """`init_weights` names something a run can start from, and this process can read it."""
        from cin_style.model_io import check_initial_weights

        if not os.path.exists(self.init_weights):
            raise ValueError(f"`init_weights`: no such model, folder or checkpoint: {self.init_weights}")
        check_initial_weights(self.init_weights)


__all__ = ["DTYPE_POLICIES", "TrainConfig"]
