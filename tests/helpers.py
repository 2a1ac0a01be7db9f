"""Small builders shared by tests."""

import keras
import numpy as np

from cin_style import build_transformer
from cin_style.network import cin_layers

STYLE_NAMES = ["hokusai_great_wave", "munch_the_scream", "picabia_udnie"]


def distinct_style_model(num_styles=3, seed=0):
    """A slim transformer whose styles differ: random γ/β rows, fixed seed."""
    keras.utils.set_random_seed(seed)
    model = build_transformer(num_styles, alpha=0.25)
    rng = np.random.default_rng(seed)
    for layer in cin_layers(model):
        shape = keras.ops.convert_to_numpy(layer.gamma).shape
        layer.gamma.assign(rng.normal(1.0, 0.4, shape).astype("float32"))
        layer.beta.assign(rng.normal(0.0, 0.4, shape).astype("float32"))
    return model
