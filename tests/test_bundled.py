"""The bundled models by name, from any working directory (README's Python snippets)."""

import os
import subprocess
import sys

import pytest

from cin_style import Stylizer
from cin_style.bundled import SLIM_MODEL_NAME, bundled_model_path
from cin_style.metadata import read_metadata

pytestmark = pytest.mark.tensorflow_only  # the bundled models are SavedModels


def test_stylizer_load_without_a_path_is_the_bundled_default_model_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stylizer = Stylizer.load()
    assert stylizer.style_names == read_metadata(bundled_model_path())["style_names"]
    assert str(bundled_model_path()) in str(stylizer.source)


def test_stylizer_load_slim_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stylizer = Stylizer.load("slim")
    assert str(bundled_model_path(SLIM_MODEL_NAME)) in str(stylizer.source)
    assert read_metadata(bundled_model_path(SLIM_MODEL_NAME))["alpha"] == 0.25


def test_a_folder_named_like_a_keyword_in_the_working_directory_is_loaded_instead(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("slim")
    with pytest.raises(ValueError, match="is not a cin_style model"):
        Stylizer.load("slim")


def test_bundled_module_and_other_submodules_are_reachable_after_a_plain_import_cin_style(tmp_path):
    code = (
        "import cin_style; print(cin_style.bundled.bundled_model_path()); "
        "assert callable(cin_style.network.spatial_transformer) and callable(cin_style.image_io.read_image)"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}  # no TensorFlow import needed for this
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(bundled_model_path())
