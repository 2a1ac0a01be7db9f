"""examples/quickstart.py runs against the bundled model and paints what it says."""

import importlib.util
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.tensorflow_only  # the bundled model is a SavedModel

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_array(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255.0


def test_quickstart_writes_a_style_a_blend_and_a_soft_version_of_the_photo(tmp_path, monkeypatch):
    monkeypatch.delenv("CIN_STYLE_MODEL", raising=False)
    written = load_example("quickstart").main(["--output_dir", str(tmp_path)])
    photo = as_array(ROOT / "examples" / "parrots.jpg")
    full, blend, soft = (as_array(path) for path in written)
    assert full.shape == blend.shape == soft.shape == photo.shape
    distance = {
        name: float(np.abs(image - photo).mean()) for name, image in (("full", full), ("blend", blend), ("soft", soft))
    }
    assert distance["full"] > 0.05 and distance["blend"] > 0.05  # painted, not the photo
    assert float(np.abs(full - blend).mean()) > 0.02  # the blend is another picture
    assert distance["soft"] < distance["full"] * 0.75  # half strength stays nearer the photo


def test_quickstart_leaves_existing_pictures_alone_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CIN_STYLE_MODEL", raising=False)
    quickstart = load_example("quickstart")
    blend = tmp_path / "quickstart_blend.png"
    blend.write_bytes(b"a picture of mine")
    with pytest.raises(SystemExit) as stop:
        quickstart.main(["--output_dir", str(tmp_path)])
    assert stop.value.code != 0
    error = capsys.readouterr().err
    assert f"quickstart_blend.png already in {tmp_path}; pass --overwrite to replace them" in error
    assert blend.read_bytes() == b"a picture of mine" and os.listdir(tmp_path) == ["quickstart_blend.png"]
    written = quickstart.main(["--output_dir", str(tmp_path), "--overwrite"])
    assert len(written) == 3 and Image.open(blend).size == Image.open(ROOT / "examples" / "parrots.jpg").size
