"""The multi-style training model: `fit` compiles its step on every backend.

`StyleTrainer` overrides `call` and `compute_loss` only, so `fit` runs the
backend's own compiled step (`tf.function`, optionally XLA, under TensorFlow;
`jax.jit` under JAX). Everything the loss touches (the transformer, the frozen
VGG19, the Gram tables, the style sampler's seed) is a variable of the model,
which JAX's stateless step needs.
"""

import keras
import numpy as np
from keras import ops

from cin_style.losses import PerceptualLoss, mix_targets
from cin_style.network import num_styles_of
from cin_style.spike_penalty import DEFAULT_SPIKE_LIMIT, watch_spikes

LOSS_PARTS = ("content", "style", "tv")
#: Default weight of the teacher term (mean absolute pixel difference to a
#: trained model's output) when training on paintings with a teacher.
DEFAULT_TEACHER_WEIGHT = 8.0


def frozen_teacher(teacher, num_styles, trained="the network"):
    """`teacher`, made non-trainable, after checking it has `num_styles` styles like the model `trained`.

    Raises:
        ValueError: When the style counts differ.
    """
    if num_styles_of(teacher) != num_styles:
        raise ValueError(f"The teacher has {num_styles_of(teacher)} styles and {trained} {num_styles}: they must match")
    teacher.trainable = False
    return teacher


class StyleTrainer(keras.Model):
    """Trains a transformer on N styles at once, one random style per example.

    Args:
        transformer: A model from `build_transformer`.
        perceptual_loss: A `PerceptualLoss`.
        style_grams: `{style_layer: array (num_styles, c, c)}` from
            `PerceptualLoss.style_grams`, or `None` to hold zeros until
            weights are loaded (resuming from a checkpoint).
        train_styles: Indices of the styles to sample; others are never
            picked, so their γ/β rows get no gradient. Defaults to all.
        seed: Seed of the per-example style choice. Defaults to `None`.
        teacher: A trained transformer with the same styles, or `None`. Its
            outputs anchor the network's: the loss adds `teacher_weight`
            times their mean absolute pixel difference (a slim network then
            learns the style from the paintings and, from the teacher, to
            paint without the white blobs of an undertrained one). Frozen.
        teacher_weight: Weight of that term. Defaults to
            `DEFAULT_TEACHER_WEIGHT`.
        spike_weight: Weight of the spike penalty on the inputs of the
            transformer's CIN layers from the residual blocks on
            (`cin_style.spike_penalty`), aimed at the activation spikes behind
            white ovals. `0` (the default) adds nothing. It is set on the
            transformer's layers; `cin_style.train` takes it off at the end.
            The `spike_loss` logged is the penalty before weighting.
        spike_limit: Kurtosis a channel may reach before the penalty counts
            it. Defaults to `DEFAULT_SPIKE_LIMIT`.
        **kwargs: Base model arguments.

    Call arguments:
        inputs: `{"images": (batch, h, w, 3) photos in [0, 1], "style_draws":
            (batch,) uniform draws in [0, 1)}` (style `floor(draw * len(train_styles))`
            of `train_styles` per example, so the choice comes with the data and
            does not depend on how the batch is split over replicas), or the
            images alone (draws then come from the model's seed generator).

    Returns:
        `{"stylized": (batch, h, w, 3), "style_weights": (batch, num_styles)}`,
        and `"target"`, the teacher's outputs, with a teacher.
    """

    def __init__(
        self,
        transformer,
        perceptual_loss,
        style_grams=None,
        train_styles=None,
        seed=None,
        teacher=None,
        teacher_weight=DEFAULT_TEACHER_WEIGHT,
        spike_weight=0.0,
        spike_limit=DEFAULT_SPIKE_LIMIT,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(perceptual_loss, PerceptualLoss):
            raise TypeError(f"`perceptual_loss` must be a PerceptualLoss. Received: {type(perceptual_loss).__name__}")
        self.transformer = transformer
        self.perceptual_loss = perceptual_loss
        self.num_styles = num_styles_of(transformer)
        train_styles = list(range(self.num_styles)) if train_styles is None else [int(i) for i in train_styles]
        if not train_styles or not all(0 <= i < self.num_styles for i in train_styles):
            raise ValueError(
                f"`train_styles` must be indices in [0, {self.num_styles}). Received: train_styles={train_styles}"
            )
        self.train_styles = train_styles
        self._train_styles = ops.convert_to_tensor(np.asarray(train_styles, "int32"))
        channels = {name: self._layer_channels(name) for name in perceptual_loss.style_layers}
        self.gram_names = list(perceptual_loss.style_layers)
        self.gram_tables = []
        for name in self.gram_names:
            shape = (self.num_styles, channels[name], channels[name])
            value = None if style_grams is None else np.asarray(ops.convert_to_numpy(style_grams[name]), "float32")
            if value is not None and value.shape != shape:
                raise ValueError(f"Gram targets for {name} must have shape {shape}. Received: {value.shape}")
            table = self.add_weight(
                name=f"gram_{name}",
                shape=shape,
                trainable=False,
                initializer="zeros" if value is None else keras.initializers.Constant(value),
            )
            self.gram_tables.append(table)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.spike_weight = float(spike_weight)
        if self.spike_weight > 0:
            watch_spikes(transformer, spike_weight, spike_limit)
        parts = (*LOSS_PARTS, "teacher") if teacher is not None else LOSS_PARTS
        parts = (*parts, "spike") if self.spike_weight > 0 else parts
        self.trackers = {part: keras.metrics.Mean(name=f"{part}_loss") for part in parts}
        self.teacher = teacher
        self.teacher_weight = float(teacher_weight)
        if teacher is not None:
            frozen_teacher(teacher, self.num_styles, "the network")
            if not self.teacher_weight >= 0:
                raise ValueError(f"`teacher_weight` must be non-negative. Received: teacher_weight={teacher_weight!r}")

    def _layer_channels(self, name):
        return self.perceptual_loss.vgg.extractor.get_layer(name).output.shape[-1]

    def build(self, input_shape):
        # The transformer, VGG and Gram tables are built in __init__.
        pass

    @property
    def style_grams(self):
        """`{style_layer: (num_styles, c, c)}`: the Gram tables held by the model."""
        return dict(zip(self.gram_names, self.gram_tables))

    def call(self, inputs, training=False):
        images, style_weights = images_and_styles(inputs, self._train_styles, self.num_styles, self.seed_generator)
        inputs = {"image": images, "style_weights": style_weights}
        outputs = {"stylized": self.transformer(inputs, training=training), "style_weights": style_weights}
        if self.teacher is not None:
            outputs["target"] = ops.stop_gradient(self.teacher(inputs, training=False))
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        targets = mix_targets(self.style_grams, y_pred["style_weights"])
        parts = self.perceptual_loss(y_pred["stylized"], images_of(x), targets)
        for part in LOSS_PARTS:
            self.trackers[part].update_state(parts[part])
        total = ops.mean(parts["total"])
        if self.teacher is not None:
            stylized, target = ops.cast(y_pred["stylized"], "float32"), ops.cast(y_pred["target"], "float32")
            anchor = ops.mean(ops.abs(stylized - target))
            self.trackers["teacher"].update_state(anchor)
            total = total + self.teacher_weight * anchor
        if self.spike_weight > 0:  # the spike penalty's terms, which the watched CIN layers add as losses
            spike = sum(self.losses)  # a Python sum: ops.sum of this list failed under jax.jit (TracerArrayConversion)
            self.trackers["spike"].update_state(spike / self.spike_weight)
            total = total + spike
        return share_of_replicas(total)


def images_and_styles(inputs, train_styles, num_styles, seed_generator):
    """A training batch's photos and one-hot style weights `(batch, num_styles)`.

    Each example's draw `d` (from the batch, else from `seed_generator`)
    picks style `train_styles[floor(d * len(train_styles))]`.
    """
    # A tensor of the backend: an eager JAX step gets the batch as NumPy, and a layer's inputs must not mix kinds.
    images = ops.convert_to_tensor(images_of(inputs))
    if isinstance(inputs, dict):
        draws = inputs["style_draws"]
    else:
        draws = keras.random.uniform((ops.shape(images)[0],), seed=seed_generator)
    count = int(train_styles.shape[0])
    pick = ops.clip(ops.cast(ops.floor(ops.cast(draws, "float32") * count), "int32"), 0, count - 1)
    return images, ops.one_hot(ops.take(train_styles, pick), num_styles, dtype="float32")


def images_of(inputs):
    """The photos of a training batch (a dict with "images", or the images)."""
    return inputs["images"] if isinstance(inputs, dict) else inputs


def share_of_replicas(loss):
    """One replica's share of the global batch's mean loss: its own mean / replicas.

    Under `tf.distribute`, gradients are summed over replicas and the logged
    loss multiplied back by their number, so each replica must return its
    mean divided by the replica count (Keras' own losses do the same; a
    `compute_loss` override must do it itself). Other backends: unchanged.
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / replicas
