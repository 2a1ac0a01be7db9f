import keras
import numpy as np
import pytest

from cin_style import ConditionalInstanceNormalization

pytestmark = pytest.mark.no_tensorflow  # also runs where TensorFlow is not installed


def instance_norm(x, gamma, beta, epsilon=1e-5):
    """Instance normalisation written out in numpy, per example and channel."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def built_layer(rng, num_styles=3, channels=5):
    layer = ConditionalInstanceNormalization(num_styles)
    layer.build([(None, None, None, channels), (None, num_styles)])
    layer.gamma.assign(rng.normal(1.0, 0.5, (num_styles, channels)).astype("float32"))
    layer.beta.assign(rng.normal(0.0, 0.5, (num_styles, channels)).astype("float32"))
    return layer


def test_layer_config_weights_and_short_fit(rng):
    inputs = [keras.Input((6, 6, 4)), keras.Input((3,))]
    layer = ConditionalInstanceNormalization(3, epsilon=1e-3)
    model = keras.Model(inputs, layer(inputs))
    assert [w.shape for w in layer.trainable_weights] == [(3, 4), (3, 4)]
    config = layer.get_config()
    assert config["num_styles"] == 3 and config["epsilon"] == 1e-3
    clone = ConditionalInstanceNormalization.from_config(config)
    assert clone.num_styles == 3 and clone.epsilon == 1e-3
    x = rng.normal(size=(8, 6, 6, 4)).astype("float32")
    w = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
    model.compile(optimizer="adam", loss="mse")
    history = model.fit([x, w], x * 2.0 + 1.0, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_fresh_layer_with_one_hot_row_is_plain_instance_norm(rng):
    x = rng.normal(2.0, 3.0, size=(2, 7, 5, 4)).astype("float32")
    layer = ConditionalInstanceNormalization(num_styles=3)
    y = keras.ops.convert_to_numpy(layer([x, np.eye(3, dtype="float32")[[1, 2]]]))
    np.testing.assert_allclose(y, instance_norm(x, 1.0, 0.0), atol=1e-4)


def test_given_statistics_replace_the_inputs_own(rng):
    layer = built_layer(rng)
    x = rng.normal(2.0, 3.0, size=(2, 6, 6, 5)).astype("float32")
    weights = np.eye(3, dtype="float32")[[0, 2]]
    gamma = keras.ops.convert_to_numpy(layer.gamma)[[0, 2]][:, None, None, :]
    beta = keras.ops.convert_to_numpy(layer.beta)[[0, 2]][:, None, None, :]
    own = keras.ops.convert_to_numpy(layer([x, weights]))
    mean, variance = x.mean(axis=(1, 2)), x.var(axis=(1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([x, weights, mean, variance])), own, atol=1e-4)
    # Another image's statistics (a tile normalised as the whole image): (x - m) / sqrt(v + eps) * gamma + beta.
    other_mean = rng.normal(size=(2, 5)).astype("float32")
    other_variance = rng.uniform(0.5, 2.0, size=(2, 5)).astype("float32")
    given = keras.ops.convert_to_numpy(layer([x, weights, other_mean, other_variance]))
    m, v = other_mean[:, None, None, :], other_variance[:, None, None, :]
    np.testing.assert_allclose(given, (x - m) / np.sqrt(v + 1e-5) * gamma + beta, rtol=1e-4, atol=1e-4)


def test_one_hot_row_applies_that_styles_gamma_and_beta(rng):
    layer = built_layer(rng)
    x = rng.normal(size=(1, 6, 6, 5)).astype("float32")
    gamma = keras.ops.convert_to_numpy(layer.gamma)
    beta = keras.ops.convert_to_numpy(layer.beta)
    for style in range(3):
        y = keras.ops.convert_to_numpy(layer([x, np.eye(3, dtype="float32")[[style]]]))
        np.testing.assert_allclose(y, instance_norm(x, gamma[style], beta[style]), atol=1e-4)


def test_half_half_blend_uses_the_mean_of_the_two_rows(rng):
    layer = built_layer(rng)
    x = rng.normal(size=(1, 6, 6, 5)).astype("float32")
    gamma = keras.ops.convert_to_numpy(layer.gamma)
    beta = keras.ops.convert_to_numpy(layer.beta)
    y = keras.ops.convert_to_numpy(layer([x, np.array([[0.5, 0.0, 0.5]], "float32")]))
    expected = instance_norm(x, (gamma[0] + gamma[2]) / 2, (beta[0] + beta[2]) / 2)
    np.testing.assert_allclose(y, expected, atol=1e-4)


def test_each_example_of_a_batch_gets_its_own_style(rng):
    layer = built_layer(rng)
    x = rng.normal(size=(3, 4, 4, 5)).astype("float32")
    styles = [2, 0, 1]
    batched = keras.ops.convert_to_numpy(layer([x, np.eye(3, dtype="float32")[styles]]))
    for i, style in enumerate(styles):
        single = keras.ops.convert_to_numpy(layer([x[i : i + 1], np.eye(3, dtype="float32")[[style]]]))
        np.testing.assert_allclose(batched[i : i + 1], single, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])


def test_per_pixel_weight_map_blends_regions(rng):
    layer = built_layer(rng)
    x = rng.normal(size=(1, 4, 6, 5)).astype("float32")
    weight_map = np.zeros((1, 4, 6, 3), "float32")
    weight_map[:, :, :3, 0] = 1.0  # left half: style 0
    weight_map[:, :, 3:, 2] = 1.0  # right half: style 2
    y = keras.ops.convert_to_numpy(layer([x, weight_map]))
    left = keras.ops.convert_to_numpy(layer([x, np.eye(3, dtype="float32")[[0]]]))
    right = keras.ops.convert_to_numpy(layer([x, np.eye(3, dtype="float32")[[2]]]))
    np.testing.assert_allclose(y[:, :, :3], left[:, :, :3], atol=1e-5)
    np.testing.assert_allclose(y[:, :, 3:], right[:, :, 3:], atol=1e-5)


def test_statistics_in_float32_under_mixed_precision(rng):
    layer = ConditionalInstanceNormalization(2, dtype="mixed_float16")
    x = (rng.normal(size=(1, 8, 8, 3)) * 300 + 1000).astype("float16")
    y = layer([x, np.eye(2, dtype="float16")[[0]]])
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    expected = instance_norm(x.astype("float64"), 1.0, 0.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y).astype("float64"), expected, atol=1e-2)


def test_add_styles_keeps_old_rows_bit_for_bit(rng):
    layer = built_layer(rng)
    old_gamma = keras.ops.convert_to_numpy(layer.gamma).copy()
    old_beta = keras.ops.convert_to_numpy(layer.beta).copy()
    layer.add_styles(2)
    gamma = keras.ops.convert_to_numpy(layer.gamma)
    beta = keras.ops.convert_to_numpy(layer.beta)
    assert layer.num_styles == 5 and gamma.shape == (5, 5) and beta.shape == (5, 5)
    assert np.array_equal(gamma[:3], old_gamma) and np.array_equal(beta[:3], old_beta)
    assert np.array_equal(gamma[3:], np.ones((2, 5))) and np.array_equal(beta[3:], np.zeros((2, 5)))
    assert len(layer.trainable_weights) == 2
    layer.add_styles(1, init_from=1)
    assert np.array_equal(keras.ops.convert_to_numpy(layer.gamma)[5], old_gamma[1])
    x = rng.normal(size=(1, 4, 4, 5)).astype("float32")
    y = keras.ops.convert_to_numpy(layer([x, np.eye(6, dtype="float32")[[1]]]))
    np.testing.assert_allclose(y, instance_norm(x, old_gamma[1], old_beta[1]), atol=1e-4)


def test_new_rows_can_start_at_the_mean_of_the_old_rows(rng):
    layer = built_layer(rng)
    old_gamma = keras.ops.convert_to_numpy(layer.gamma).copy()
    old_beta = keras.ops.convert_to_numpy(layer.beta).copy()
    layer.add_styles(2, init_from="mean")
    gamma, beta = keras.ops.convert_to_numpy(layer.gamma), keras.ops.convert_to_numpy(layer.beta)
    assert np.array_equal(gamma[:3], old_gamma) and np.array_equal(beta[:3], old_beta)
    np.testing.assert_allclose(gamma[3:], [old_gamma.mean(axis=0)] * 2, rtol=1e-6)
    np.testing.assert_allclose(beta[3:], [old_beta.mean(axis=0)] * 2, rtol=1e-6)
    assert not np.allclose(gamma[3], old_gamma[0]) and not np.allclose(gamma[3], 1.0)


def test_keras_file_round_trip_reproduces_outputs(rng, tmp_path):
    inputs = [keras.Input((None, None, 4)), keras.Input((3,))]
    model = keras.Model(inputs, ConditionalInstanceNormalization(3, name="cin")(inputs))
    layer = model.get_layer("cin")
    layer.gamma.assign(rng.normal(size=(3, 4)).astype("float32"))
    layer.beta.assign(rng.normal(size=(3, 4)).astype("float32"))
    path = tmp_path / "cin.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = rng.normal(size=(2, 5, 5, 4)).astype("float32")
    w = np.array([[1, 0, 0], [0.2, 0.3, 0.5]], "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model([x, w])), keras.ops.convert_to_numpy(loaded([x, w])))


@pytest.mark.parametrize("num_styles", [0, -2, 2.5, True, "4"])
def test_bad_num_styles_is_refused(num_styles):
    with pytest.raises(ValueError, match=r"`num_styles` must be a positive integer. Received: num_styles="):
        ConditionalInstanceNormalization(num_styles)


def test_non_positive_epsilon_is_refused():
    with pytest.raises(ValueError, match="`epsilon` must be positive. Received: epsilon=0"):
        ConditionalInstanceNormalization(2, epsilon=0)


def test_style_weights_of_the_wrong_length_name_the_problem(rng):
    layer = ConditionalInstanceNormalization(4)
    x = rng.normal(size=(1, 4, 4, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"num_styles=4.*Received: style_weights.shape=\(1, 3\)"):
        layer([x, np.ones((1, 3), "float32") / 3])


def test_style_weights_of_the_wrong_rank_name_the_problem(rng):
    layer = ConditionalInstanceNormalization(4)
    x = rng.normal(size=(1, 4, 4, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"rank 2 \(batch, num_styles\).*Received: style_weights.shape=\(4,\)"):
        layer([x, np.ones((4,), "float32") / 4])


def test_x_of_the_wrong_rank_names_the_problem():
    layer = ConditionalInstanceNormalization(2)
    with pytest.raises(ValueError, match=r"x of rank 4.*Received: x.shape=\(4, 4, 3\)"):
        layer([np.ones((4, 4, 3), "float32"), np.ones((1, 2), "float32")])


def test_weight_map_of_another_size_names_the_problem(rng):
    layer = ConditionalInstanceNormalization(2)
    with pytest.raises(ValueError, match=r"per-pixel style_weights map must have the height"):
        layer([np.ones((1, 4, 4, 3), "float32"), np.ones((1, 2, 4, 2), "float32")])


def test_add_styles_rejects_bad_counts_and_sources(rng):
    layer = built_layer(rng)
    with pytest.raises(ValueError, match="`count` must be a positive integer. Received: count=0"):
        layer.add_styles(0)
    with pytest.raises(
        ValueError, match=r'`init_from` must be None, "mean" or a style index in \[0, 3\). Received: init_from=3'
    ):
        layer.add_styles(1, init_from=3)
    with pytest.raises(ValueError, match="Received: init_from='median'"):
        layer.add_styles(1, init_from="median")
    with pytest.raises(ValueError, match="needs a built layer"):
        ConditionalInstanceNormalization(2).add_styles(1)
