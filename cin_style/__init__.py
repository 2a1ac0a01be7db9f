"""cin_style: fast multi-style neural style transfer with Keras 3.

One feed-forward network learns many styles at once through conditional
instance normalisation (Dumoulin, Shlens and Kudlur 2017). Layers, network and
losses use `keras.ops` only and run under the TensorFlow and JAX backends.
"""

__version__ = "0.1.0"

from cin_style import bundled  # noqa: F401  (cin_style.bundled.bundled_model_path() without an import)

# Everything that imports Keras (and so TensorFlow) loads on first use: a
# command-line tool's --help answers without it, and a tool quiets
# TensorFlow's log before it loads. Modules that need TensorFlow itself stay
# unloaded under KERAS_BACKEND=jax.
_LAZY = {
    "ConditionalInstanceNormalization": ("cin_style.layers", "ConditionalInstanceNormalization"),
    "build_transformer": ("cin_style.network", "build_transformer"),
    "Stylizer": ("cin_style.stylizer", "Stylizer"),
    "export_saved_model": ("cin_style.export", "export_saved_model"),
    "train": ("cin_style.training", "train"),
    "TrainConfig": ("cin_style.config", "TrainConfig"),
    "add_styles": ("cin_style.training", "add_styles"),
    "load_transformer": ("cin_style.model_io", "load_transformer"),
}


def __getattr__(name):
    import importlib
    import importlib.util

    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # `cin_style.network` etc. without an import
    raise AttributeError(f"module 'cin_style' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
