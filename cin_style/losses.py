"""The perceptual loss: content, Gram-matrix style and total variation.

Every function returns one value per example, `(batch,)`, so one batch can
mix styles and the caller chooses the reduction. The normalisation follows
Gatys et al. (2016): a Gram matrix is averaged over positions, a layer's style
loss is the mean squared difference of Gram entries, so layers of different
size and depth contribute on comparable scales.
"""

import keras
from keras import ops

from cin_style.vgg import VGGFeatures

#: Mean activation of VGG19 (Keras weights, caffe preprocessing) style layers
#: over photos and paintings of ../shared/data at 256 px. Gatys et al. (2016)
#: rescale VGG so each layer's mean activation is 1; with the raw Keras weights
#: the same balance is a per-layer weight of 1 / mean_activation**4 (a Gram
#: scales with the square of the features, its squared error with the fourth
#: power). Without it block4_conv1 outweighs block1_conv1 by 10^5.
VGG19_MEAN_ACTIVATIONS = {
    "block1_conv1": 20.6,
    "block2_conv1": 118.0,
    "block3_conv1": 122.0,
    "block4_conv1": 476.0,
    "block5_conv1": 40.8,
}
#: Style layers of Gatys et al. (2016), conv1_1 ... conv5_1, equal weight after
#: their activation normalisation.
DEFAULT_STYLE_LAYERS = {name: 1.0 / act**4 for name, act in VGG19_MEAN_ACTIVATIONS.items()}
#: Content layer of Gatys et al. (conv4_2), weighted by 1 / 7.6e5, the median
#: squared feature distance between two unrelated photos at 256 px: a content
#: loss of 1 means "as different as another photo".
DEFAULT_CONTENT_LAYERS = {"block4_conv2": 1.0 / 7.6e5}
#: Term weights. At style weight 1.0 a transformer trained on CPU budgets
#: painted texture over everything (content loss 0.75 after 245 steps); at 0.3
#: the photo's structure survives from step 100 (content ~0.6) and Gatys
#: optimisation is still strongly painted (style ~0.7 of ~13 after 300 steps).
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 0.3
DEFAULT_TV_WEIGHT = 10.0


def gram_matrix(features):
    """Per-example Gram matrix of feature maps, averaged over positions.

    Args:
        features: `(batch, height, width, channels)`.

    Returns:
        `(batch, channels, channels)`: `F^T F / (height * width)`, symmetric.
    """
    if len(features.shape) != 4:
        raise ValueError(
            f"gram_matrix expects (batch, height, width, channels). Received: features.shape={tuple(features.shape)}"
        )
    features = ops.cast(features, "float32")
    shape = ops.shape(features)
    positions = ops.cast(shape[1] * shape[2], "float32")
    return ops.einsum("bhwc,bhwd->bcd", features, features) / positions


def content_loss(features, target_features):
    """Mean squared difference of two feature maps, per example: `(batch,)`."""
    diff = ops.cast(features, "float32") - ops.cast(target_features, "float32")
    return ops.mean(ops.square(diff), axis=[1, 2, 3])


def layer_style_loss(features, target_gram):
    """Mean squared difference between the Gram of `features` and `target_gram`: `(batch,)`."""
    return ops.mean(ops.square(gram_matrix(features) - target_gram), axis=[1, 2])


def style_loss(features, target_grams, layer_weights):
    """Weighted sum over layers of `layer_style_loss`, per example.

    Args:
        features: `{layer: (batch, h, w, c)}`.
        target_grams: `{layer: (batch, c, c)}`, one target per example.
        layer_weights: `{layer: weight}`; the layers summed over.

    Returns:
        `(batch,)`.
    """
    total = 0.0
    for name, weight in layer_weights.items():
        total = total + weight * layer_style_loss(features[name], target_grams[name])
    return total


def gram_distances(grams, target_grams, layer_weights):
    """The style loss between Gram tables: for each row of `grams`, the weighted mean squared difference to
    `target_grams` (one row, or one per row), summed over `layer_weights`' layers: `(n,)`.

    What the style loss of a picture whose Gram matrices are `grams` would be; used to find the nearest of a
    model's styles to a new painting.
    """
    total = 0.0
    for name, weight in layer_weights.items():
        total = total + weight * ops.mean(ops.square(grams[name] - target_grams[name]), axis=[1, 2])
    return total


def total_variation_loss(images):
    """Mean squared difference of neighbouring pixels, per example: `(batch,)`.

    Penalises high-frequency noise in the output (Johnson et al. 2016).
    """
    images = ops.cast(images, "float32")
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return ops.mean(ops.square(dy), axis=[1, 2, 3]) + ops.mean(ops.square(dx), axis=[1, 2, 3])


def mix_targets(style_grams, style_weights):
    """Per-example Gram targets from per-style tables and style weights.

    Args:
        style_grams: `{layer: (num_styles, c, c)}` from `style_grams()`.
        style_weights: `(batch, num_styles)`; one-hot rows pick a style.

    Returns:
        `{layer: (batch, c, c)}`.
    """
    style_weights = ops.cast(style_weights, "float32")
    return {name: ops.einsum("bs,scd->bcd", style_weights, gram) for name, gram in style_grams.items()}


@keras.saving.register_keras_serializable(package="cin_style")
class PerceptualLoss(keras.layers.Layer):
    """Content + style + total-variation loss on frozen VGG19 features.

    `total = content_weight * content + style_weight * style + tv_weight * tv`,
    each term per example. Compute each style's Gram targets once with
    `style_grams`, then pass per-example targets (`mix_targets`) to every call.

    Args:
        content_layers: `{vgg_layer: weight}` for the content term. Defaults
            to `DEFAULT_CONTENT_LAYERS` (block4_conv2).
        style_layers: `{vgg_layer: weight}` for the style term. Defaults to
            `DEFAULT_STYLE_LAYERS` (block1_conv1 ... block5_conv1).
        content_weight: Defaults to `DEFAULT_CONTENT_WEIGHT`.
        style_weight: Defaults to `DEFAULT_STYLE_WEIGHT`.
        tv_weight: Defaults to `DEFAULT_TV_WEIGHT`.
        vgg_weights: VGG19 weights path, `"imagenet"` or `None` (see
            `cin_style.vgg.resolve_weights`). Defaults to `None`.
        **kwargs: Base layer arguments.

    Call arguments:
        stylized: `(batch, h, w, 3)` in [0, 1], the image being judged.
        content: `(batch, h, w, 3)` in [0, 1], the photos it should keep.
        target_grams: `{style_layer: (batch, c, c)}`.

    Returns:
        `{"total", "content", "style", "tv"}`, each `(batch,)` float32.
    """

    def __init__(
        self,
        content_layers=None,
        style_layers=None,
        content_weight=DEFAULT_CONTENT_WEIGHT,
        style_weight=DEFAULT_STYLE_WEIGHT,
        tv_weight=DEFAULT_TV_WEIGHT,
        vgg_weights=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.content_layers = dict(DEFAULT_CONTENT_LAYERS if content_layers is None else content_layers)
        self.style_layers = dict(DEFAULT_STYLE_LAYERS if style_layers is None else style_layers)
        for label, value in (
            ("content_weight", content_weight),
            ("style_weight", style_weight),
            ("tv_weight", tv_weight),
        ):
            if not value >= 0:
                raise ValueError(f"`{label}` must be a non-negative number. Received: {label}={value!r}")
        if not self.style_layers:
            raise ValueError("`style_layers` must name at least one VGG19 layer. Received: style_layers={}")
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.vgg_weights = vgg_weights
        names = list(dict.fromkeys([*self.content_layers, *self.style_layers]))
        self.vgg = VGGFeatures(names, weights=vgg_weights, name="vgg19")
        self.trainable = False
        # Gram targets and images stay float32 under a mixed-precision
        # policy; only VGG's convolutions run in the lower precision.
        self.autocast = False

    def build(self, *args, **kwargs):
        pass

    def style_grams(self, style_images):
        """Gram targets of each style image, computed once.

        Args:
            style_images: A sequence of images `(h, w, 3)` or `(1, h, w, 3)`
                in [0, 1]; sizes may differ.

        Returns:
            `{style_layer: (num_styles, c, c)}` float32 tensors.
        """
        per_layer = {name: [] for name in self.style_layers}
        for image in style_images:
            image = ops.convert_to_tensor(image, dtype="float32")
            if len(image.shape) == 3:
                image = image[None]
            features = self.vgg(image)
            for name in self.style_layers:
                per_layer[name].append(gram_matrix(features[name]))
        return {name: ops.concatenate(grams, axis=0) for name, grams in per_layer.items()}

    def call(self, stylized, content, target_grams):
        stylized = ops.cast(stylized, "float32")
        ours = self.vgg(stylized)
        # A separate pass without gradient: one concatenated batch made
        # backpropagation run through VGG for the photos too (1.3x slower step).
        theirs = self.vgg(ops.stop_gradient(ops.cast(content, "float32")))
        content_term = 0.0
        for name, weight in self.content_layers.items():
            content_term = content_term + weight * content_loss(ours[name], theirs[name])
        style_term = style_loss(ours, target_grams, self.style_layers)
        tv_term = total_variation_loss(stylized)
        total = self.content_weight * content_term + self.style_weight * style_term + self.tv_weight * tv_term
        return {"total": total, "content": content_term, "style": style_term, "tv": tv_term}

    def get_config(self):
        return {
            **super().get_config(),
            "content_layers": self.content_layers,
            "style_layers": self.style_layers,
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            "vgg_weights": self.vgg_weights,
        }
