import keras
import numpy as np
import pytest
from helpers import distinct_style_model

from cin_style import build_transformer
from cin_style.layers import CropToMatch, MirrorPadToMultiple, ReflectionConv2D
from cin_style.network import cin_layers, num_styles_of

pytestmark = pytest.mark.no_tensorflow  # also runs where TensorFlow is not installed


def run(model, image, style_weights):
    return keras.ops.convert_to_numpy(model({"image": image, "style_weights": style_weights}))


@pytest.fixture(scope="module")
def slim():
    keras.utils.set_random_seed(7)
    return build_transformer(num_styles=3, alpha=0.25)


@pytest.mark.parametrize("height, width", [(17, 31), (64, 64), (1, 1), (5, 9)])
def test_output_keeps_the_input_size_and_stays_in_unit_range(slim, rng, height, width):
    image = rng.random((2, height, width, 3), dtype=np.float32)
    out = run(slim, image, np.eye(3, dtype="float32")[[0, 2]])
    assert out.shape == (2, height, width, 3)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


def test_architecture_matches_dumoulin_et_al():
    model = build_transformer(num_styles=2)
    convs = [layer for layer in model.layers if isinstance(layer, ReflectionConv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (32, 9, 1),
        (64, 3, 2),
        (128, 3, 2),
        (64, 3, 1),
        (32, 3, 1),
        (3, 9, 1),
    ]
    assert len([layer for layer in model.layers if layer.name.startswith("residual")]) == 5
    # CIN after every convolution: 6 plain + 2 in each of 5 residual blocks.
    assert len(cin_layers(model)) == 16
    assert num_styles_of(model) == 2
    assert all(
        isinstance(layer, keras.layers.UpSampling2D) for layer in model.layers if layer.name.startswith("upsample")
    )


def test_alpha_scales_every_width():
    full = build_transformer(num_styles=1, alpha=1.0)
    slim = build_transformer(num_styles=1, alpha=0.25)
    full_widths = [layer.filters for layer in full.layers if isinstance(layer, ReflectionConv2D)]
    slim_widths = [layer.filters for layer in slim.layers if isinstance(layer, ReflectionConv2D)]
    assert slim_widths == [8, 16, 32, 16, 8, 3] and full_widths[:3] == [32, 64, 128]
    assert slim.count_params() < full.count_params() / 10


def test_style_choice_changes_the_output_once_the_tables_differ(rng):
    keras.utils.set_random_seed(3)
    model = build_transformer(num_styles=2, alpha=0.25)
    image = rng.random((1, 16, 16, 3), dtype=np.float32)
    a = run(model, image, np.eye(2, dtype="float32")[[0]])
    np.testing.assert_allclose(a, run(model, image, np.eye(2, dtype="float32")[[1]]), atol=1e-6)
    for layer in cin_layers(model):
        gamma = keras.ops.convert_to_numpy(layer.gamma).copy()
        gamma[1] *= 1.5
        layer.gamma.assign(gamma)
    assert np.abs(a - run(model, image, np.eye(2, dtype="float32")[[1]])).max() > 1e-3
    np.testing.assert_allclose(a, run(model, image, np.eye(2, dtype="float32")[[0]]), atol=1e-6)


def test_keras_file_round_trip_reproduces_outputs(tmp_path, rng):
    keras.utils.set_random_seed(11)
    model = build_transformer(num_styles=3, alpha=0.25)
    path = tmp_path / "transformer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    image = rng.random((1, 20, 12, 3), dtype=np.float32)
    weights = np.array([[0.2, 0.5, 0.3]], "float32")
    np.testing.assert_array_equal(run(model, image, weights), run(loaded, image, weights))


def test_mirror_padding_reaches_a_multiple_and_crop_undoes_it(rng):
    x = rng.random((1, 3, 10, 2), dtype=np.float32)
    padded = keras.ops.convert_to_numpy(MirrorPadToMultiple(multiple=4, minimum=8)(x))
    assert padded.shape == (1, 8, 12, 2)
    np.testing.assert_array_equal(padded[:, :3, :10], x)
    # mirrored: row 3 repeats row 2, row 4 row 1, ... then folds back again
    np.testing.assert_array_equal(padded[:, 3, :10], x[:, 2])
    np.testing.assert_array_equal(padded[:, 5, :10], x[:, 0])
    np.testing.assert_array_equal(padded[:, 6, :10], x[:, 0])
    cropped = keras.ops.convert_to_numpy(CropToMatch()([padded, x]))
    np.testing.assert_array_equal(cropped, x)


@pytest.mark.parametrize("kernel_size, strides", [(3, 1), (3, 2), (9, 1), (5, 2)])
def test_padding_by_slices_gives_the_reflection_paddings_convolution_bit_for_bit(rng, kernel_size, strides):
    from cin_style.layers.reflection_conv import reflection_padding_by_slices

    layer = ReflectionConv2D(4, kernel_size, strides=strides)
    x = rng.random((2, 13, 10, 3), dtype=np.float32)  # odd, unequal sides
    by_pad = keras.ops.convert_to_numpy(layer(x))
    with reflection_padding_by_slices():
        by_slices = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(by_slices, by_pad)
    assert by_pad.shape == (2, -(-13 // strides), -(-10 // strides), 4)


@pytest.mark.parametrize("num_styles", [0, 1.5, None])
def test_bad_num_styles_is_refused(num_styles):
    with pytest.raises(ValueError, match="`num_styles` must be a positive integer"):
        build_transformer(num_styles)


def test_bad_alpha_is_refused():
    with pytest.raises(ValueError, match=r"`alpha` must be a positive number. Received: alpha=0"):
        build_transformer(2, alpha=0)


def test_style_weights_of_the_wrong_length_name_the_problem(slim, rng):
    with pytest.raises(ValueError, match=r"style_weights.*\(1, 4\)"):
        run(slim, rng.random((1, 8, 8, 3), dtype=np.float32), np.ones((1, 4), "float32") / 4)


def test_image_with_four_channels_names_the_problem(slim, rng):
    with pytest.raises(ValueError, match=r"image.*\(None, None, None, 3\).*\(1, 8, 8, 4\)"):
        run(slim, rng.random((1, 8, 8, 4), dtype=np.float32), np.eye(3, dtype="float32")[[0]])


def test_image_without_batch_axis_names_the_problem(slim, rng):
    with pytest.raises(ValueError, match=r"\(None, None, None, 3\).*\(8, 8, 3\)"):
        run(slim, rng.random((8, 8, 3), dtype=np.float32), np.eye(3, dtype="float32")[[0]])


def test_with_more_styles_keeps_every_old_weight_and_output(rng):
    from cin_style.network import with_more_styles

    keras.utils.set_random_seed(5)
    model = build_transformer(num_styles=2, alpha=0.25)
    for layer in cin_layers(model):
        layer.gamma.assign(rng.normal(1.0, 0.3, layer.gamma.shape).astype("float32"))
    grown = with_more_styles(model, 2, init_from=1)
    assert num_styles_of(grown) == 4 and len(grown.weights) == len(model.weights)
    image = rng.random((1, 20, 20, 3), dtype=np.float32)
    for style in range(2):
        old = run(model, image, np.eye(2, dtype="float32")[[style]])
        np.testing.assert_array_equal(run(grown, image, np.eye(4, dtype="float32")[[style]]), old)
    # init_from=1: the new rows start as copies of style 1
    np.testing.assert_array_equal(
        run(grown, image, np.eye(4, dtype="float32")[[3]]), run(model, image, np.eye(2, dtype="float32")[[1]])
    )


@pytest.mark.parametrize("alpha", [0.3, 0.33, 0.7, 1.37, 0.125])
def test_odd_alphas_read_back_as_given_and_rebuild_the_same_network(alpha, rng):
    from cin_style.network import alpha_of, with_more_styles

    model = build_transformer(num_styles=2, alpha=alpha)
    assert alpha_of(model) == alpha  # not filters / 32 (0.3 read back as 0.3125 before)
    rebuilt = build_transformer(num_styles=2, alpha=alpha_of(model))
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]
    grown = with_more_styles(model, 1)
    image = rng.random((1, 20, 20, 3), dtype=np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(grown({"image": image, "style_weights": np.eye(3, dtype="float32")[[1]]})),
        keras.ops.convert_to_numpy(model({"image": image, "style_weights": np.eye(2, dtype="float32")[[1]]})),
        atol=1e-6,
    )


def test_spatial_view_with_a_constant_map_paints_exactly_like_that_style_row(rng):
    from cin_style.network import spatial_transformer

    model = distinct_style_model()
    spatial = spatial_transformer(model)
    assert [id(w) for w in spatial.weights] == [id(w) for w in model.weights]  # shared, not copied
    image = rng.random((2, 45, 61, 3), dtype=np.float32)  # odd sides: the map is padded like the image
    rows = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]], np.float32)
    constant = np.broadcast_to(rows[:, None, None, :], (2, 45, 61, 3)).copy()
    np.testing.assert_allclose(run(spatial, image, constant), run(model, image, rows), atol=1e-5)
    two_halves = constant.copy()
    two_halves[:, :, 30:] = [1.0, 0.0, 0.0]
    assert np.abs(run(spatial, image, two_halves) - run(model, image, rows)).max() > 0.05  # the map is read


def test_spatial_build_takes_per_pixel_maps_and_loads_a_plain_models_weights(rng):
    model = distinct_style_model()
    spatial = build_transformer(3, alpha=0.25, spatial=True)
    assert spatial.input["style_weights"].shape == (None, None, None, 3)
    spatial.set_weights(model.get_weights())
    image = rng.random((1, 32, 40, 3), dtype=np.float32)
    one_hot = np.zeros((1, 32, 40, 3), np.float32)
    one_hot[..., 1] = 1.0
    np.testing.assert_allclose(
        run(spatial, image, one_hot), run(model, image, np.eye(3, dtype=np.float32)[[1]]), atol=1e-5
    )
