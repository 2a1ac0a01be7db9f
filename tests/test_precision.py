"""Painting in bfloat16: the network copy, the Stylizer's precision, the CPU check."""

import warnings

import keras
import numpy as np
import pytest
from helpers import distinct_style_model, saved_style_model, xla_marks

from cin_style import Stylizer, build_transformer, precision
from cin_style.network import FLOAT32_OUTPUT_LAYERS, all_layers, with_dtype_policy


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    return saved_style_model(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def photo(shared_data, load_image):
    return load_image(shared_data / "content" / "test" / "kodim23.jpg", 64)[0]


def _paint(model, image, style):
    weights = np.eye(3, dtype="float32")[[style]]
    return keras.ops.convert_to_numpy(model({"image": image[None], "style_weights": weights})).astype("float32")[0]


@pytest.mark.parametrize("output_norm", [True, False])
def test_a_bfloat16_copy_convolves_in_bfloat16_keeps_the_weights_and_paints_the_output_in_float32(photo, output_norm):
    keras.utils.set_random_seed(0)
    model = distinct_style_model() if output_norm else build_transformer(3, alpha=0.25, output_norm=False)
    low = with_dtype_policy(model, "mixed_bfloat16")
    convolutions = [layer for layer in all_layers(low) if isinstance(layer, keras.layers.Conv2D)]
    assert len(convolutions) == 16  # 3 encoder, 10 in the residual blocks, 2 decoder, 1 to RGB
    assert {layer.dtype_policy.compute_dtype for layer in convolutions} == {"bfloat16"}
    kept = [name for name in FLOAT32_OUTPUT_LAYERS if name in {layer.name for layer in low.layers}]
    assert {low.get_layer(name).dtype_policy.compute_dtype for name in kept} == {"float32"}
    # What the last normalisation or activation hands on is float32 indeed, not bfloat16 relabelled.
    last = "output_cin" if output_norm else "output_sigmoid"
    probe = keras.Model(low.inputs, low.get_layer(last).output)
    out = probe({"image": photo[None], "style_weights": np.eye(3, dtype="float32")[[0]]})
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    for old, new in zip(model.weights, low.weights):
        assert old.path == new.path and new.dtype == "float32"
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(old), keras.ops.convert_to_numpy(new))
    for style in range(3):
        exact, rounded = _paint(model, photo, style), _paint(low, photo, style)
        assert rounded.dtype == np.float32
        difference = np.abs(exact - rounded)
        # bfloat16 keeps 8 bits of each operand's mantissa: the painting moves by about a uint8 level (this random
        # model: 1.4/255 on average; the bundled ones 0.4-0.6/255), and would sit on a 1/256 grid near white if
        # the output layers rounded too.
        assert 0 < difference.mean() < 2 / 255, difference.mean()
        near_white = rounded[rounded > 0.5]
        assert len(np.unique(near_white)) > 512


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_a_bfloat16_stylizer_paints_styles_blends_and_regions_as_the_float32_one_to_rounding(
    request, kind, keras_file, photo
):
    path = keras_file if kind == "keras" else request.getfixturevalue("exported_model")[0]
    exact = Stylizer.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without bfloat16 instructions warns; tested below
        low = Stylizer.load(path, precision="bfloat16")
    assert (exact.precision, low.precision) == ("float32", "bfloat16")
    left = np.zeros(photo.shape[:2], np.float32)
    left[:, :32] = 1
    for style, regions in ((0, None), ({0: 1, 2: 3}, None), (1, [(left, 2)])):
        a, b = exact.stylize(photo, style, regions=regions), low.stylize(photo, style, regions=regions)
        assert b.dtype == np.float32 and b.shape == a.shape
        assert 0 < np.abs(a - b).mean() < 2 / 255, (style, np.abs(a - b).mean())
    # Different styles stay different: the rows are picked, not lost in rounding.
    assert np.abs(low.stylize(photo, 0) - low.stylize(photo, 1)).mean() > 20 / 255
    assert repr(low).endswith(", bfloat16)") and "bfloat16" not in repr(exact)


@pytest.mark.tensorflow_only
def test_bfloat16_drops_the_exported_request_limit_but_keeps_the_callers(exported_model):
    path = exported_model[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = Stylizer.load(path, precision="bfloat16")
        limited = Stylizer.load(path, precision="bfloat16", call_pixels=4096)
    # The signatures enforce the exported limit; the bfloat16 tf.function is bounded like a .keras model's calls.
    assert Stylizer.load(path).call_pixels is not None
    assert (low.call_pixels, low.spatial_call_pixels) == (None, None)
    assert (limited.call_pixels, limited.spatial_call_pixels) == (4096, 4096)


@pytest.mark.tensorflow_only
def test_images_over_the_tile_size_are_painted_in_float32_and_that_is_logged_once(keras_file, photo, caplog):
    exact = Stylizer.load(keras_file, tile_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = Stylizer.load(keras_file, precision="bfloat16", tile_size=32)
    with caplog.at_level("WARNING", logger="cin_style"):
        for style in (0, 1):
            np.testing.assert_array_equal(low.stylize(photo, style), exact.stylize(photo, style))  # 64 px > 32
    told = [r.getMessage() for r in caplog.records if "painted layer by layer in float32" in r.getMessage()]
    assert told == ["Images with a side over tile_size (32 px) are painted layer by layer in float32, not bfloat16"]
    assert not np.array_equal(low.stylize(photo[:32, :32], 0), exact.stylize(photo[:32, :32], 0))


def test_bfloat16_is_refused_where_the_backend_is_not_tensorflow(keras_file, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(
        ValueError, match="precision='bfloat16' paints with TensorFlow's oneDNN kernels; under the 'jax'"
    ):
        Stylizer.load(keras_file, precision="bfloat16")
    assert Stylizer.load(keras_file, precision="float32").precision == "float32"


def test_an_unknown_precision_is_refused_naming_the_choices_before_loading(tmp_path):
    for bad in ("float16", "bf16", None, 16):
        with pytest.raises(ValueError, match=r"`precision` must be one of float32, bfloat16. Received: precision="):
            Stylizer.load(tmp_path / "missing", precision=bad)


def test_the_cpu_check_reads_the_bfloat16_flags(tmp_path):
    def cpuinfo(flags):
        path = tmp_path / f"cpuinfo-{len(flags)}"
        path.write_text(f"processor\t: 0\nflags\t\t: {' '.join(flags)}\nbugs\t\t: spectre_v1\n\n")
        return str(path)

    assert precision.cpu_runs_bfloat16(cpuinfo(["fpu", "avx2", "avx512f", "avx512_bf16"])) is True
    assert precision.cpu_runs_bfloat16(cpuinfo(["fpu", "amx_tile", "amx_bf16"])) is True
    assert precision.cpu_runs_bfloat16(cpuinfo(["fpu", "avx2", "avx512f", "avx512_vnni"])) is False
    assert precision.cpu_runs_bfloat16(str(tmp_path / "absent")) is None


@pytest.mark.tensorflow_only
def test_bfloat16_on_a_cpu_that_emulates_it_warns_that_it_is_slower(keras_file, monkeypatch):
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU paints bfloat16 natively")
    monkeypatch.setattr(precision, "cpu_runs_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="without AVX512-BF16 or AMX: bfloat16 is emulated there"):
        Stylizer.load(keras_file, precision="bfloat16")
    monkeypatch.setattr(precision, "cpu_runs_bfloat16", lambda: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Stylizer.load(keras_file, precision="bfloat16")
    assert not [w for w in caught if "bfloat16" in str(w.message)]


@pytest.mark.tensorflow_only
def test_a_global_mixed_policy_does_not_reach_the_network_rebuilt_from_a_saved_model(exported_model):
    from cin_style.model_io import model_from_saved_model
    from cin_style.network import dtype_policy_scope

    with dtype_policy_scope("mixed_bfloat16"):
        model = model_from_saved_model(exported_model[0])[0]
    assert {layer.dtype_policy.compute_dtype for layer in all_layers(model)} == {"float32"}


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_jit_compile_hands_xla_everything_between_the_convolutions_and_nothing_without_it(dtype):
    model = distinct_style_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without bfloat16 instructions warns
        fused = precision.network_painters(model, dtype, jit_compile=True)
        plain = precision.network_painters(model, dtype)
    for painter in fused:  # styles by rows and by maps
        marks = xla_marks(painter)
        # oneDNN's convolutions and matrix products stay TensorFlow's ...
        assert marks["Conv2D"] == {False} and marks["MatMul"] == {False}
        # ... the instance statistics, normalisations, activations and paddings between them are XLA's.
        for op_type in ("Mean", "SquaredDifference", "Rsqrt", "Mul", "AddV2", "Relu", "MirrorPad", "Sigmoid"):
            assert marks[op_type] == {True}, op_type
        assert {op_type for op_type, mark in marks.items() if False in mark} <= precision.NATIVE_OPS
    for painter in plain:
        assert xla_marks(painter) == {}


@pytest.mark.tensorflow_only
def test_xla_paints_by_rows_and_by_maps_as_the_same_graph_without_it_to_float_rounding(photo):
    model = distinct_style_model()
    fused, fused_spatial = precision.network_painters(model, "float32", jit_compile=True)
    plain, plain_spatial = precision.network_painters(model, "float32")
    images = np.stack([photo, photo[::-1]])  # a batch of two
    rows = np.eye(3, dtype="float32")[[0, 2]]
    maps = np.zeros((2, *photo.shape[:2], 3), np.float32)
    maps[:, :, :32, 1] = maps[:, :, 32:, 2] = 1
    for fast_painter, exact_painter, weights in ((fused, plain, rows), (fused_spatial, plain_spatial, maps)):
        for _ in range(3):  # XLA compiles a shape on its first or second call (TensorFlow's lazy compilation)
            fast = fast_painter(images, weights)
        exact = exact_painter(images, weights)
        # The same graph but for the XLA marks: XLA's fused sums run in another order, so it did paint, and the
        # paintings are float rounding apart.
        assert 0 < np.abs(fast - exact).max() < 1e-4, np.abs(fast - exact).max()


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_a_stylizer_loaded_with_jit_compile_paints_through_xla_and_large_images_without_it(
    request, kind, keras_file, photo, caplog
):
    path = keras_file if kind == "keras" else request.getfixturevalue("exported_model")[0]
    plain, fused = Stylizer.load(path), Stylizer.load(path, jit_compile=True, tile_size=32)
    assert (fused.precision, fused.jit_compile, plain.jit_compile) == ("float32", True, False)
    assert repr(fused).endswith(", jit_compile)") and "jit_compile" not in repr(plain)
    for run in (fused._run, fused._run_spatial):
        assert xla_marks(run)["Conv2D"] == {False} and True in xla_marks(run)["Mean"]
    assert (fused.call_pixels, fused.spatial_call_pixels) == (None, None)  # no exported signature paints
    small = photo[:32, :32]
    np.testing.assert_allclose(fused.stylize(small, {0: 1, 2: 1}), plain.stylize(small, {0: 1, 2: 1}), atol=1e-4)
    with caplog.at_level("WARNING", logger="cin_style"):
        np.testing.assert_array_equal(fused.stylize(photo, 1), Stylizer.load(path, tile_size=32).stylize(photo, 1))
    told = [r.getMessage() for r in caplog.records if "painted layer by layer" in r.getMessage()]
    assert told == ["Images with a side over tile_size (32 px) are painted layer by layer in float32, without XLA"]


def test_jit_compile_is_refused_unless_a_bool_under_tensorflow_before_loading(tmp_path, monkeypatch):
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match=r"`jit_compile` must be True or False. Received: jit_compile="):
            Stylizer.load(tmp_path / "missing", jit_compile=bad)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="jit_compile=True fuses TensorFlow graphs with XLA and needs the Tens"):
        Stylizer.load(tmp_path / "missing", jit_compile=True)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_painters_fold_upsamplings_into_convolutions_and_run_the_rgb_layer_by_space_to_depth_in_float32(photo, dtype):
    # Measured (the slim model, 512 / 1024 px, against the Keras model called whole): float32 with XLA 0.79x /
    # 0.78x of the time, bfloat16 0.92x / 0.96x, bfloat16 with XLA 0.95x / 0.91x.
    from cin_style.network import spatial_transformer

    model = distinct_style_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without bfloat16 instructions warns
        painters = precision.network_painters(model, dtype)
    for painter in painters:  # styles by rows and by maps
        graph = painter.tf_function.get_concrete_function().graph
        ops = [op.type for op in graph.get_operations()]
        filters = {tuple(op.inputs[1].shape) for op in graph.get_operations() if op.type == "Conv2D"}
        # The test model (alpha 0.25): upsampling + 3x3 32 -> 16 and 16 -> 8 as 3x3 convolutions with four times
        # the output channels at the low size; no 3x3 with 16 or 8 outputs is left.
        assert {(3, 3, 32, 64), (3, 3, 16, 32)} <= filters and not {(3, 3, 32, 16), (3, 3, 16, 8)} & filters
        # In float32 the 9x9 RGB layer (8 -> 3) as 5x5 on 2x2 blocks; the 9x9 first layer (3 -> 8) stays whole.
        assert ((5, 5, 32, 12) in filters) == (dtype == "float32") and (9, 9, 3, 8) in filters
        assert ops.count("SpaceToDepth") == (dtype == "float32")
    rows, maps = painters
    network = model if dtype == "float32" else with_dtype_policy(model, "mixed_bfloat16")
    images = np.stack([photo, photo[::-1]])
    weights = np.eye(3, dtype="float32")[[2, 0]]
    style_maps = np.zeros((2, *photo.shape[:2], 3), np.float32)
    style_maps[:, :, :32, 1] = style_maps[:, :, 32:, 2] = 1
    tolerance = 2e-5 if dtype == "float32" else 0.02  # bfloat16: the same network's rounding in another order
    for painter, whole, styles in ((rows, network, weights), (maps, spatial_transformer(network), style_maps)):
        expected = np.clip(keras.ops.convert_to_numpy(whole({"image": images, "style_weights": styles})), 0, 1)
        np.testing.assert_allclose(painter(images, styles), expected.astype("float32"), atol=tolerance)
