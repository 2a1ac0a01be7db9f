"""Large images painted layer by layer: the untiled network's output, for rows, maps and both output layers."""

import keras
import numpy as np
import pytest
from helpers import distinct_style_model

from cin_style.large_image import paint_large
from cin_style.network import build_transformer, spatial_transformer

# The JAX path runs in test_stylizer (large images through a Stylizer); here, every tile shape compiles anew.
pytestmark = pytest.mark.tensorflow_only


def _whole(model, image, weights):
    out = model({"image": image[None], "style_weights": weights[None]}, training=False)
    return np.clip(keras.ops.convert_to_numpy(out)[0], 0.0, 1.0)


@pytest.mark.parametrize("tile", [33, 200])
def test_layer_by_layer_painting_equals_the_untiled_network_for_any_tile(rng, tile):
    model = distinct_style_model()
    image = rng.uniform(size=(75, 130, 3)).astype("float32")  # odd sides: mirror-padded to 76x132 inside
    weights = np.array([0.2, 0.5, 0.3], "float32")
    np.testing.assert_allclose(paint_large(model, image, weights, tile=tile), _whole(model, image, weights), atol=1e-5)


def test_a_style_map_is_averaged_to_each_level_as_the_spatial_network_does(rng):
    model = distinct_style_model()
    image = rng.uniform(size=(70, 54, 3)).astype("float32")
    style_map = rng.uniform(size=(70, 54, 3)).astype("float32")
    style_map /= style_map.sum(axis=-1, keepdims=True)
    expected = _whole(spatial_transformer(model), image, style_map)
    np.testing.assert_allclose(paint_large(model, image, style_map, tile=24), expected, atol=1e-5)


def test_a_network_without_output_normalisation_is_painted_alike(rng):
    keras.utils.set_random_seed(1)
    model = build_transformer(2, alpha=0.25, output_norm=False)
    image = rng.uniform(size=(40, 44, 3)).astype("float32")
    weights = np.array([1.0, 0.0], "float32")
    np.testing.assert_allclose(paint_large(model, image, weights, tile=16), _whole(model, image, weights), atol=1e-5)
