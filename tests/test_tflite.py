"""TFLite export: signatures against the Keras model per quantization, metadata, the CLI."""

import os
import warnings

import keras
import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import STYLE_NAMES, distinct_style_model, run_cli

pytestmark = pytest.mark.tensorflow_only

SIZE = (40, 52)


@pytest.fixture(scope="module")
def model():
    return distinct_style_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """`exported(quantization)`: the model's TFLite file at SIZE, converted once in this module (the tests only
    read it)."""
    from cin_style.tflite import export_tflite

    folder = tmp_path_factory.mktemp("tflite")
    files = {}

    def export(quantization):
        if quantization not in files:
            path = folder / f"{quantization}.tflite"
            files[quantization] = export_tflite(model, path, STYLE_NAMES, size=SIZE, quantization=quantization)
        return files[quantization]

    return export


def _runner(path, signature):
    """The file's raw signature under LiteRT: no checks, as a phone app would run it."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_signature_runner(signature)


def _keras(model, image, weights):
    out = model({"image": image, "style_weights": weights}, training=False)
    return np.clip(keras.ops.convert_to_numpy(out), 0.0, 1.0)


# Largest |difference| to the Keras model allowed per quantization (measured: ~1e-6, ~1e-3, ~3e-2).
TOLERANCES = {None: 1e-4, "float16": 1e-2, "dynamic_range": 0.15}


@pytest.mark.parametrize("quantization", [None, "float16", "dynamic_range"])
def test_tflite_signatures_paint_as_the_keras_model_within_the_quantizations_tolerance(
    model, rng, exported, quantization
):
    path = exported(quantization)
    image = rng.uniform(size=(1, *SIZE, 3)).astype("float32")
    by_index = _runner(path, "stylize")(image=image, style_index=np.array([2], "int32"))["stylized_image"]
    expected = _keras(model, image, np.eye(3, dtype="float32")[[2]])
    assert by_index.shape == (1, *SIZE, 3)
    assert np.abs(by_index - expected).max() < TOLERANCES[quantization]
    # Blend weights are normalised inside: (2, 0, 2) paints as (0.5, 0, 0.5).
    blended = _runner(path, "stylize_blend")(image=image, style_weights=np.array([[2.0, 0.0, 2.0]], "float32"))
    expected = _keras(model, image, np.array([[0.5, 0.0, 0.5]], "float32"))
    assert np.abs(blended["stylized_image"] - expected).max() < TOLERANCES[quantization]
    if quantization is None:
        assert np.abs(by_index - _keras(model, image, np.eye(3, dtype="float32")[[0]])).mean() > 0.05


#: Ops XNNPACK runs (LiteRT 2.3), all the exported graph may hold but ONE_HOT: the `stylize` signature's index,
#: which TFLite computes once before the delegated graph.
XNNPACK_OPS = {
    "ADD", "CONCATENATION", "CONV_2D", "DEPTH_TO_SPACE", "DIV", "FULLY_CONNECTED", "LOGISTIC", "MAXIMUM", "MEAN",
    "MINIMUM", "MUL", "RELU", "RESHAPE", "RSQRT", "SPACE_TO_DEPTH", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB",
    "SUM",
}  # fmt: skip


def _operators(path):
    """(op name, op, its subgraph) for every op of the file."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    return [
        (names[model.operatorCodes[op.opcodeIndex].builtinCode], op, graph)
        for graph in model.subgraphs
        for op in graph.operators
    ]


def test_tflite_runs_wide_convolutions_2x2_pixels_at_a_time_and_folds_upsamplings_into_the_next(exported):
    # Measured with LiteRT 2.3, slim model at 512 px: 147 ms -> 82 ms (9x9 convolutions with 3 or 8 output
    # channels filled few of XNNPACK's vector lanes).
    ops = _operators(exported(None))
    filters = {tuple(graph.tensors[op.inputs[1]].shape) for name, op, graph in ops if name == "CONV_2D"}
    # The slim test model (alpha 0.25); TFLite filters are (out, height, width, in).
    assert {(32, 5, 5, 12), (12, 5, 5, 32)} <= filters  # 9x9 3 -> 8 and 8 -> 3 as 5x5 on 2x2 blocks
    assert {(64, 3, 3, 32), (32, 3, 3, 16)} <= filters  # upsampling + 3x3 32 -> 16 and 16 -> 8 at the low size
    assert all(shape[1] < 9 for shape in filters), filters


def test_tflite_graph_holds_only_ops_xnnpack_runs_but_the_index_lookup(model, exported, tmp_path):
    # Measured with LiteRT 2.3: MIRROR_PAD, GATHER (padding to a multiple of 4), TILE (UpSampling2D) and a
    # CONCATENATION of nine tensors (a 9x9 convolution's padding by slices) ran outside XNNPACK, each splitting the
    # graph (slim at 1024 px: 0.50 s in nine delegated pieces; 0.46 s in two).
    from cin_style.tflite import export_tflite

    odd = export_tflite(model, tmp_path / "odd.tflite", STYLE_NAMES, size=(42, 53))  # sides padded to 44 x 56
    for path in (exported(None), odd):
        ops = _operators(path)
        used = {name for name, _, _ in ops}
        assert {"CONV_2D", "CONCATENATION", "DEPTH_TO_SPACE"} <= used  # padding by slices, upsampling
        assert used - XNNPACK_OPS == {"ONE_HOT"}, used
        assert max(len(op.inputs) for name, op, _ in ops if name == "CONCATENATION") <= 4
    # The padding by slices paints as the model's gather.
    image = np.random.default_rng(5).uniform(size=(1, 42, 53, 3)).astype("float32")
    painted = _runner(odd, "stylize")(image=image, style_index=np.array([1], "int32"))["stylized_image"]
    assert np.abs(painted - _keras(model, image, np.eye(3, dtype="float32")[[1]])).max() < TOLERANCES[None]


def test_tflite_export_takes_a_mixed_precision_model_as_float32_and_refuses_the_spatial_view(model, rng):
    from cin_style.network import spatial_transformer, with_dtype_policy
    from cin_style.tflite import _float32_transformer

    assert _float32_transformer(model) is model
    mixed = with_dtype_policy(model, "mixed_bfloat16")
    copy = _float32_transformer(mixed)
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    image, weights = rng.uniform(size=(1, *SIZE, 3)).astype("float32"), np.eye(3, dtype="float32")[[1]]
    np.testing.assert_allclose(_keras(copy, image, weights), _keras(model, image, weights), atol=1e-5)
    with pytest.raises(ValueError, match="a spatial view: export the model it was made from"):
        _float32_transformer(spatial_transformer(model))


def test_tflite_metadata_names_the_styles_size_and_quantization(model, tmp_path, exported):
    from cin_style.metadata import weights_hash
    from cin_style.tflite import export_tflite, read_tflite_metadata

    small = export_tflite(model, tmp_path / "q.tflite", STYLE_NAMES, size=32, quantization="dynamic_range")
    full = exported(None)  # float32 weights; at SIZE, which changes no weight's size
    meta = read_tflite_metadata(small)
    assert meta["style_names"] == STYLE_NAMES and meta["input_size"] == [32, 32]
    assert meta["quantization"] == "dynamic_range" and meta["weights_sha256"] == weights_hash(model)
    assert meta["signatures"] == ["stylize", "stylize_blend"]
    assert os.path.getsize(small) < 0.5 * os.path.getsize(full)
    (tmp_path / "plain.tflite").write_bytes(_strip_metadata(full))
    with pytest.raises(ValueError, match="has no 'cin_style' metadata"):
        read_tflite_metadata(tmp_path / "plain.tflite")


def _strip_metadata(path):
    from tensorflow.lite.tools import flatbuffer_utils

    tflite = flatbuffer_utils.read_model(str(path))
    tflite.metadata = [m for m in tflite.metadata if m.name not in (b"cin_style", "cin_style")]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tflite))


def test_export_tflite_refuses_bad_settings_before_converting(model, tmp_path):
    from cin_style.tflite import export_tflite

    with pytest.raises(ValueError, match="`quantization` must be one of"):
        export_tflite(model, tmp_path / "a.tflite", STYLE_NAMES, quantization="int4")
    with pytest.raises(ValueError, match="`size` must be an int or \\(height, width\\)"):
        export_tflite(model, tmp_path / "a.tflite", STYLE_NAMES, size=(8, 64))
    with pytest.raises(ValueError, match="3 styles but 2 style names"):
        export_tflite(model, tmp_path / "a.tflite", STYLE_NAMES[:2])
    assert not list(tmp_path.iterdir())


def test_export_cli_writes_a_tflite_file(model, tmp_path, capsys):
    from cin_style.tflite import read_tflite_metadata

    model.save(tmp_path / "model.keras")
    out = tmp_path / "slim.tflite"
    args = [f"--model={tmp_path / 'model.keras'}", "--format=tflite", f"--style_names={','.join(STYLE_NAMES)}"]
    result = run_cli("cin_style.cli.export", *args, f"--output={out}", "--size=40,52", "--quantization=float16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"to {out}" in result.stdout
    meta = read_tflite_metadata(out)
    assert meta["input_size"] == [40, 52] and meta["quantization"] == "float16"
    # The refusals in this process: as a process, each would import TensorFlow (~5 s) to say no. An exception
    # other than the tool's exit would fail the test here, as a traceback would there.
    status, _, stderr = run_tool(capsys, "export", *args)
    assert status != 0 and "--format=tflite needs --output=FILE.tflite" in stderr
    for size in ("abc", "40,52,3"):
        status, _, stderr = run_tool(capsys, "export", *args, f"--output={tmp_path / 'bad.tflite'}", f"--size={size}")
        assert status != 0 and f"--size must be SIDE or HEIGHT,WIDTH in pixels. Received: {size}" in stderr
        assert "Traceback" not in stderr
    assert not (tmp_path / "bad.tflite").exists()


@pytest.fixture(scope="module")
def tflite_file(exported):
    return exported(None)


def test_tflite_stylizer_paints_as_the_raw_signatures_by_index_name_and_blend_without_warnings(model, tflite_file, rng):
    from cin_style.tflite import TFLiteStylizer

    image = rng.uniform(size=(*SIZE, 3)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        painter = TFLiteStylizer(tflite_file)
        by_name = painter.stylize(image, STYLE_NAMES[2])
        blended = painter.stylize_blend(image[None], {0: 2.0, STYLE_NAMES[2]: 2.0})
    assert not [w for w in caught if "deprecat" in str(w.message).lower()]  # tf.lite.Interpreter's notice
    assert (painter.input_size, painter.num_styles, painter.style_names) == (SIZE, 3, STYLE_NAMES)
    raw = _runner(tflite_file, "stylize")(image=image[None], style_index=np.array([2], "int32"))["stylized_image"]
    assert by_name.shape == (*SIZE, 3) and np.array_equal(by_name, raw[0])
    assert np.array_equal(painter.stylize(image, 2), by_name)
    expected = _runner(tflite_file, "stylize_blend")(image=image[None], style_weights=np.array([[1, 0, 1]], "float32"))
    assert blended.shape == (1, *SIZE, 3) and np.abs(blended - expected["stylized_image"]).max() < 1e-6


def test_tflite_stylizer_refuses_a_wrong_size_style_or_blend_before_running(tflite_file, rng):
    from cin_style.tflite import TFLiteStylizer

    painter = TFLiteStylizer(tflite_file)
    image = rng.uniform(size=(*SIZE, 3)).astype("float32")
    # The raw file fails deep inside on another size, and paints NaN for index 99: the runner says why first.
    with pytest.raises(ValueError, match=r"`image` must be \(40, 52, 3\).*--size=HEIGHT,WIDTH. Received: image.shape="):
        painter.stylize(image[:32], 0)
    with pytest.raises(ValueError, match=r"must be float RGB in \[0, 1\] \(uint8 photos: divide by 255\)"):
        painter.stylize(image * 255, 0)
    for style in (99, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"an index in \[0, 2\]. Received: style="):
            painter.stylize(image, style)
    with pytest.raises(ValueError, match="Unknown style name 'nope'"):
        painter.stylize(image, "nope")
    with pytest.raises(ValueError, match="must hold 3 weights"):
        painter.stylize_blend(image, [1.0, 1.0])
    for weights in ([0.0, 0.0, 0.0], [1.0, -0.5, 1.0], [np.nan, 1.0, 1.0]):
        with pytest.raises(ValueError, match="finite, non-negative and sum above zero"):
            painter.stylize_blend(image, weights)


def test_tflite_stylizer_names_the_package_to_install_without_litert(tflite_file, monkeypatch):
    import sys

    from cin_style.tflite import TFLiteStylizer

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install ai-edge-litert \(or cin_style\[tflite\]\)"):
        TFLiteStylizer(tflite_file)
