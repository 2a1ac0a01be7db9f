"""Distillation: a (slim) transformer learns to reproduce a trained one's outputs.

A perceptual-loss step runs VGG19 three times (the output up to block5, the
photo up to the content layer, and back through the first), which costs ~10x
the slim network itself. A distillation step runs the teacher forward once
and compares pixels, plus an optional light feature term (VGG19's first
layers only, on both outputs), so most of the step is the teacher. The
student gets the teacher's style list; each example takes one random style,
as in `StyleTrainer`, so checkpoints, resume and the sample sheets are the
same as for perceptual training.
"""

import keras
import numpy as np
from keras import ops

from cin_style.network import num_styles_of
from cin_style.trainer import frozen_teacher, images_and_styles, share_of_replicas
from cin_style.vgg import VGGFeatures

#: The VGG19 layer of the light feature term: two convolutions at full and one
#: at half resolution, ~1/5 of the perceptual loss' VGG work per image.
FEATURE_LAYER = "block2_conv1"
#: Default weight of the feature term next to the pixel L1 (both are relative errors).
DEFAULT_FEATURE_WEIGHT = 0.1
DISTILL_PARTS = ("pixel", "feature")


class DistillTrainer(keras.Model):
    """Trains `student` to paint as `teacher` does, one random style per example.

    The loss is the mean absolute pixel difference of the two outputs, plus
    `feature_weight` times the mean absolute difference of their VGG19
    `FEATURE_LAYER` activations relative to the teacher's mean activation (so
    both terms are errors of about the same scale). The teacher never trains.

    Args:
        student: A model from `build_transformer` (any width).
        teacher: A trained transformer with the same number of styles.
        feature_weight: Weight of the feature term; 0 runs no VGG at all.
            Defaults to `DEFAULT_FEATURE_WEIGHT`.
        vgg_weights: VGG19 weights (see `cin_style.vgg.resolve_weights`);
            unused when `feature_weight` is 0.
        seed: Seed of the per-example style choice. Defaults to `None`.
        **kwargs: Base model arguments.

    Call arguments:
        inputs: As `StyleTrainer`'s: `{"images", "style_draws"}` or images.

    Returns:
        `{"stylized": student outputs, "target": teacher outputs, "style_weights"}`.
    """

    def __init__(self, student, teacher, feature_weight=DEFAULT_FEATURE_WEIGHT, vgg_weights=None, seed=None, **kw):
        super().__init__(**kw)
        self.num_styles = num_styles_of(student)
        if not feature_weight >= 0:
            raise ValueError(f"`feature_weight` must be non-negative. Received: feature_weight={feature_weight!r}")
        self.transformer = student
        self.teacher = frozen_teacher(teacher, self.num_styles, "the student")
        self.feature_weight = float(feature_weight)
        self.features = VGGFeatures([FEATURE_LAYER], weights=vgg_weights) if self.feature_weight else None
        self._train_styles = ops.convert_to_tensor(np.arange(self.num_styles, dtype="int32"))
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {part: keras.metrics.Mean(name=f"{part}_loss") for part in DISTILL_PARTS}

    def build(self, input_shape):
        # Both networks and VGG are built in __init__.
        pass

    @property
    def style_grams(self):
        """No Gram targets: checkpoints hold an empty table set."""
        return {}

    def call(self, inputs, training=False):
        images, style_weights = images_and_styles(inputs, self._train_styles, self.num_styles, self.seed_generator)
        inputs = {"image": images, "style_weights": style_weights}
        target = ops.stop_gradient(self.teacher(inputs, training=False))
        stylized = self.transformer(inputs, training=training)
        return {"stylized": stylized, "target": target, "style_weights": style_weights}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        stylized = ops.cast(y_pred["stylized"], "float32")
        target = ops.cast(y_pred["target"], "float32")
        pixel = ops.mean(ops.abs(stylized - target))
        feature = ops.zeros(())
        if self.features is not None:
            ours = self.features(stylized)[FEATURE_LAYER]
            theirs = ops.stop_gradient(self.features(target)[FEATURE_LAYER])
            ours, theirs = ops.cast(ours, "float32"), ops.cast(theirs, "float32")
            feature = ops.mean(ops.abs(ours - theirs)) / (ops.mean(theirs) + 1e-3)
        self.trackers["pixel"].update_state(pixel)
        self.trackers["feature"].update_state(feature)
        return share_of_replicas(pixel + self.feature_weight * feature)


__all__ = ["DEFAULT_FEATURE_WEIGHT", "DISTILL_PARTS", "FEATURE_LAYER", "DistillTrainer"]
