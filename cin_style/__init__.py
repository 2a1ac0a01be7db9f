"""cin_style: fast multi-style neural style transfer with Keras 3.

One feed-forward network learns many styles at once through conditional
instance normalisation (Dumoulin, Shlens and Kudlur 2017). Layers, network and
losses use `keras.ops` only and run under the TensorFlow and JAX backends.
"""

from cin_style.layers import ConditionalInstanceNormalization
from cin_style.network import build_transformer

__version__ = "0.1.0"

__all__ = ["ConditionalInstanceNormalization", "build_transformer", "__version__"]
