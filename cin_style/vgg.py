"""Frozen VGG19 features for the perceptual loss, preprocessing included."""

import os

import keras
from keras import ops

from cin_style.vgg_weights import WEIGHTS_ENV, WEIGHTS_FILE_NAME

#: Caffe mean pixel, BGR order, on the 0-255 scale (keras.applications.vgg19).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

_HOW_TO_POINT = (
    f"Point cin_style at a local copy of Keras' '{WEIGHTS_FILE_NAME}': set the environment variable "
    f"{WEIGHTS_ENV}=/path/to/{WEIGHTS_FILE_NAME}, or pass --vgg_weights=/path/to/{WEIGHTS_FILE_NAME} "
    "to the command-line tools (weights=... in Python)."
)


class VGGWeightsError(RuntimeError):
    """The VGG19 weights could not be found, downloaded or read."""


def resolve_weights(weights=None):
    """Chooses the VGG19 weights: the argument, else $CIN_STYLE_VGG19_WEIGHTS, else "imagenet".

    Args:
        weights: A path to a weights file, `"imagenet"` (Keras' download) or
            `None` for the default chain. Defaults to `None`.

    Returns:
        An absolute file path, or `"imagenet"`.

    Raises:
        VGGWeightsError: If a path is given (as argument or environment
            variable) and no file exists there.
    """
    source = "weights argument"
    if weights is None:
        weights = os.environ.get(WEIGHTS_ENV) or None
        source = f"environment variable {WEIGHTS_ENV}"
    if weights is None or weights == "imagenet":
        return "imagenet"
    path = os.path.abspath(os.path.expanduser(os.fspath(weights)))
    if not os.path.isfile(path):
        raise VGGWeightsError(f"VGG19 weights file not found: {path} (from the {source}). {_HOW_TO_POINT}")
    return path


def _load_vgg19(weights):
    """`keras.applications.VGG19` without its top, with clear errors."""
    try:
        return keras.applications.VGG19(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as error:
        if weights == "imagenet":
            raise VGGWeightsError(
                f"Could not download the VGG19 ImageNet weights ({type(error).__name__}: {error}). {_HOW_TO_POINT}"
            ) from error
        raise VGGWeightsError(
            f"VGG19 weights file {weights} could not be read as Keras VGG19 no-top weights "
            f"({type(error).__name__}: {error}). Is it corrupt or truncated? {_HOW_TO_POINT}"
        ) from error


@keras.saving.register_keras_serializable(package="cin_style")
class VGGFeatures(keras.layers.Layer):
    """Named VGG19 activations of images in [0, 1], frozen.

    The caffe preprocessing of `keras.applications.vgg19.preprocess_input`
    (RGB→BGR, ×255, mean subtraction) is done inside, on tensors, so callers
    pass images as the rest of cin_style holds them. Only the VGG layers up to
    the deepest requested one are run. The weights never train.

    Args:
        layer_names: VGG19 layer names (`block{n}_conv{m}`, `block{n}_pool`)
            whose outputs are returned.
        weights: Weights file path, `"imagenet"`, or `None` for
            `resolve_weights`' chain. Defaults to `None`.
        **kwargs: Base layer arguments.

    Call arguments:
        images: `(batch, height, width, 3)` float RGB in [0, 1].

    Returns:
        A dict `{layer_name: (batch, h_l, w_l, c_l) float32}`.

    Raises:
        VGGWeightsError: If the weights cannot be found or read.
        ValueError: If a layer name is not a VGG19 layer, or images do not
            have 3 channels.
    """

    def __init__(self, layer_names, weights=None, **kwargs):
        super().__init__(**kwargs)
        layer_names = tuple(layer_names)
        if not layer_names:
            raise ValueError("`layer_names` must name at least one VGG19 layer. Received: layer_names=()")
        self.layer_names = layer_names
        self.weights_source = weights
        base = _load_vgg19(resolve_weights(weights))
        known = [layer.name for layer in base.layers]
        unknown = [name for name in layer_names if name not in known]
        if unknown:
            choices = ", ".join(n for n in known if n.startswith("block"))
            raise ValueError(f"Unknown VGG19 layer name(s) {unknown}. Known layers: {choices}")
        self.extractor = keras.Model(
            base.input,
            {name: base.get_layer(name).output for name in layer_names},
            name="vgg19_features",
        )
        self.extractor.trainable = False
        self.trainable = False

    def build(self, input_shape):
        pass

    def call(self, images):
        if images.shape[-1] is not None and images.shape[-1] != 3:
            raise ValueError(
                f"VGGFeatures expects RGB images with 3 channels. Received: images.shape={tuple(images.shape)}"
            )
        images = ops.cast(images, "float32") * 255.0
        bgr = ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype="float32")
        return self.extractor(bgr, training=False)

    def compute_output_spec(self, images):
        return self.extractor.compute_output_spec(images)

    def get_config(self):
        return {**super().get_config(), "layer_names": list(self.layer_names), "weights": self.weights_source}
