"""Painting in bfloat16: the network copy, the Stylizer's precision, the CPU check."""

import warnings

import keras
import numpy as np
import pytest
from helpers import distinct_style_model, saved_style_model

from cin_style import Stylizer, precision
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


def test_a_bfloat16_copy_convolves_in_bfloat16_keeps_the_weights_and_paints_the_output_in_float32(photo):
    model = distinct_style_model()
    low = with_dtype_policy(model, "mixed_bfloat16")
    computes = {layer.name: layer.dtype_policy.compute_dtype for layer in all_layers(low)}
    assert {computes[name] for name in computes if name.endswith("_conv")} == {"bfloat16"}
    assert {computes[name] for name in FLOAT32_OUTPUT_LAYERS} == {"float32"}
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


@pytest.mark.parametrize("kind", ["keras", pytest.param("saved_model", marks=pytest.mark.tensorflow_only)])
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


def test_bfloat16_on_a_cpu_that_emulates_it_warns_that_it_is_slower(keras_file, monkeypatch):
    if keras.backend.backend() == "tensorflow":
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
