import os

import keras
import numpy as np
import pytest

from cin_style import vgg
from cin_style.vgg import VGGFeatures, VGGWeightsError, resolve_weights

LAYERS = ("block1_conv1", "block3_conv1")


@pytest.fixture(scope="module")
def features(vgg_weights):
    return VGGFeatures(LAYERS, weights=vgg_weights)


def test_features_are_named_deterministic_and_frozen(features, rng):
    images = rng.random((2, 32, 40, 3), dtype=np.float32)
    first = {k: keras.ops.convert_to_numpy(v) for k, v in features(images).items()}
    second = {k: keras.ops.convert_to_numpy(v) for k, v in features(images).items()}
    assert set(first) == set(LAYERS)
    assert first["block1_conv1"].shape == (2, 32, 40, 64)
    assert first["block3_conv1"].shape == (2, 8, 10, 256)
    for name in LAYERS:
        np.testing.assert_array_equal(first[name], second[name])
    assert features.trainable_weights == [] and len(features.non_trainable_weights) > 0


def test_preprocessing_is_keras_caffe_mode_on_unit_images(features, vgg_weights, rng):
    images = rng.random((1, 16, 16, 3), dtype=np.float32)
    base = keras.applications.VGG19(include_top=False, weights=vgg_weights)
    reference = keras.Model(base.input, base.get_layer("block1_conv1").output)
    expected = keras.ops.convert_to_numpy(reference(keras.applications.vgg19.preprocess_input(images.copy() * 255.0)))
    ours = keras.ops.convert_to_numpy(features(images)["block1_conv1"])
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)


def test_weights_come_from_the_argument_then_the_environment_then_imagenet(vgg_weights, monkeypatch):
    monkeypatch.setenv(vgg.WEIGHTS_ENV, vgg_weights)
    assert resolve_weights() == os.path.abspath(vgg_weights)
    assert resolve_weights("imagenet") == "imagenet"
    monkeypatch.delenv(vgg.WEIGHTS_ENV)
    assert resolve_weights() == "imagenet"


def test_missing_weights_file_names_the_path_and_the_variable(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.h5"
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(missing))
    with pytest.raises(
        VGGWeightsError,
        match=r"VGG19 weights file not found: .*nowhere.h5 \(from the environment variable CIN_STYLE_VGG19_WEIGHTS\)",
    ):
        VGGFeatures(LAYERS)


def test_corrupt_weights_file_is_reported_as_such(tmp_path):
    corrupt = tmp_path / "vgg19.h5"
    corrupt.write_bytes(b"this is not an HDF5 file" * 100)
    with pytest.raises(
        VGGWeightsError, match=r"vgg19.h5 could not be read as Keras VGG19 no-top weights.*corrupt or truncated"
    ):
        VGGFeatures(LAYERS, weights=str(corrupt))


def test_truncated_weights_file_is_reported_as_such(tmp_path, vgg_weights):
    truncated = tmp_path / "truncated.h5"
    with open(vgg_weights, "rb") as source:
        truncated.write_bytes(source.read(4_000_000))
    with pytest.raises(VGGWeightsError, match="could not be read"):
        VGGFeatures(LAYERS, weights=str(truncated))


def test_offline_imagenet_download_says_how_to_point_at_a_file(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.applications, "VGG19", no_network)
    with pytest.raises(
        VGGWeightsError, match=r"Could not download the VGG19 ImageNet weights.*CIN_STYLE_VGG19_WEIGHTS="
    ):
        VGGFeatures(LAYERS, weights="imagenet")


def test_unknown_layer_name_lists_the_known_ones(vgg_weights):
    with pytest.raises(ValueError, match=r"Unknown VGG19 layer name\(s\) \['block9_conv1'\].*block1_conv1"):
        VGGFeatures(["block9_conv1"], weights=vgg_weights)


def test_grey_images_are_refused_with_the_shape(features):
    with pytest.raises(ValueError, match=r"3 channels. Received: images.shape=\(1, 8, 8, 1\)"):
        features(np.zeros((1, 8, 8, 1), "float32"))


def _offline_env(tmp_path, **extra):
    """A newcomer's environment: no weights setting and an empty home (no Keras cache)."""
    env = {k: v for k, v in os.environ.items() if k not in (vgg.WEIGHTS_ENV, "KERAS_HOME")}
    (tmp_path / "home").mkdir(exist_ok=True)
    return {**env, "HOME": str(tmp_path / "home"), **extra}


def _tool(module, args, env):
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=120)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("tool", ["train", "add_style"])
def test_training_tools_without_vgg_weights_stop_at_once_naming_the_flag_and_the_variable(tool, tmp_path):
    style = tmp_path / "painting.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(style)
    out = tmp_path / "run"
    args = [f"--styles={style}", f"--content={tmp_path}", f"--output_dir={out}", "--steps=2"]
    if tool == "add_style":
        args.append("--model=slim")
    result, seconds = _tool(f"cin_style.cli.{tool}", args, _offline_env(tmp_path))
    assert result.returncode == 1, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "none were found: --vgg_weights is not given, CIN_STYLE_VGG19_WEIGHTS is not set" in message
    assert "--vgg_weights=imagenet" in message and "weights=" not in message.replace("--vgg_weights=", "")
    assert "Downloading" not in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()  # nothing left behind (it was an empty folder)
    assert seconds < 10, seconds  # no Keras import, no download attempt (it took 14-16 s)
    # A path that does not exist is named with where it came from, the flag and the variable.
    missing = tmp_path / "nowhere.h5"
    result, _ = _tool(f"cin_style.cli.{tool}", args, _offline_env(tmp_path, **{vgg.WEIGHTS_ENV: str(missing)}))
    assert f"VGG19 weights file not found: {missing} (from CIN_STYLE_VGG19_WEIGHTS={missing})" in result.stderr
    assert "--vgg_weights=/path/to/" in result.stderr and not out.exists()


def test_the_keras_download_cache_is_found_without_importing_keras(tmp_path, monkeypatch):
    from cin_style.vgg_weights import WEIGHTS_FILE_NAME, keras_cache_path

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_cache_path() is None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / WEIGHTS_FILE_NAME).write_bytes(b"h5")
    assert keras_cache_path() == str(tmp_path / "models" / WEIGHTS_FILE_NAME)
