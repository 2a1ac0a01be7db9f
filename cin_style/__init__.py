"""cin_style: fast multi-style neural style transfer with Keras 3.

One feed-forward network learns many styles at once through conditional
instance normalisation (Dumoulin, Shlens and Kudlur 2017). Layers, network and
losses use `keras.ops` only and run under the TensorFlow and JAX backends.
"""

__version__ = "0.1.0"

from cin_style import bundled  # noqa: F401  (cin_style.bundled.bundled_model_path() without an import)
from cin_style.layers import ConditionalInstanceNormalization
from cin_style.network import build_transformer
from cin_style.stylizer import Stylizer

# Modules that need TensorFlow itself load on first use, so that layers,
# network and losses import under KERAS_BACKEND=jax without TensorFlow.
_LAZY = {
    "export_saved_model": ("cin_style.export", "export_saved_model"),
    "train": ("cin_style.training", "train"),
    "TrainConfig": ("cin_style.config", "TrainConfig"),
    "add_styles": ("cin_style.training", "add_styles"),
    "load_transformer": ("cin_style.model_io", "load_transformer"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'cin_style' has no attribute {name!r}")


__all__ = ["ConditionalInstanceNormalization", "Stylizer", "build_transformer", "__version__", *_LAZY]
