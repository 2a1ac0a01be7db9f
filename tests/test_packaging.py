"""The wheel: it carries the bundled model, and the README's stylise command works from a plain install.

The top-level `saved_models/` folder is shipped as the package data `cin_style/saved_models/`
(setup.py maps it); `cin_style.bundled` finds it there, or beside the package in a source checkout
or an editable install.
"""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from PIL import Image

pytestmark = pytest.mark.tensorflow_only  # builds a wheel and runs the bundled SavedModel: once, under TensorFlow

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_FILES = ("saved_model.pb", "variables/variables.index", "cin_style.json")
#: The README's stylise command (run from a folder holding examples/parrots.jpg).
README_ARGS = [
    "--input=examples/parrots.jpg",
    "--style=hokusai_great_wave",
    "--output=parrots_great_wave.png",
    "--overwrite",
]


def _copy_ignore(folder, names):
    """Leave out what is no source: dot folders (.venv, .git, caches), build outputs, run folders."""
    skip = {"build", "dist", "runs", "__pycache__"}
    return [n for n in names if n.startswith(".") or n in skip or n.endswith(".egg-info")]


def _can_build_here():
    """Whether this venv's setuptools can build a wheel itself (before setuptools 70.1, with `wheel`)."""
    if importlib.util.find_spec("setuptools") is None:
        return False  # pip's build isolation fetches setuptools (needs the package index)
    return (
        importlib.util.find_spec("wheel") is not None
        or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel .` of a copy of the checkout (an in-place build would leave build/ and egg-info there)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_copy_ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist")]
    if _can_build_here():
        command += ["--no-build-isolation", "--no-index"]  # offline, with this venv's setuptools
    done = subprocess.run([*command, str(source)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = (tmp / "dist").glob("cin_style-*.whl")
    return built


def test_wheel_carries_the_bundled_model_and_no_junk(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for folder in ("cin_style_default", "cin_style_slim"):
        model = f"cin_style/saved_models/{folder}/"
        versions = {name[len(model) :].split("/")[0] for name in names if name.startswith(model)}
        assert versions, f"no {model} in the wheel"
        for version in versions:
            for file in MODEL_FILES:
                assert f"{model}{version}/{file}" in names
            assert any(name.startswith(f"{model}{version}/variables/variables.data-") for name in names)
    assert "cin_style/cli/stylize.py" in names and "cin_style/bundled.py" in names
    strays = [name for name in names if not name.startswith(("cin_style/", "cin_style-"))]
    assert not strays, f"outside the package: {strays[:10]}"
    junk = [
        name
        for name in names
        if any(part in {"tests", "benchmarks", "notebooks", "docs", ".venv", "__pycache__"} for part in name.split("/"))
    ]
    assert not junk, junk[:10]
    model_bytes = sum(p.stat().st_size for p in (ROOT / "saved_models").rglob("*") if p.is_file())
    assert wheel.stat().st_size < model_bytes + 2_000_000, f"{wheel.stat().st_size} bytes"


def test_readme_stylise_command_from_an_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site)]
    done = subprocess.run([*install, str(wheel)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    script = site / "bin" / "cin-style-stylize"
    assert script.is_file()

    work = tmp_path / "work"
    (work / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "parrots.jpg", work / "examples" / "parrots.jpg")
    # `python -S`: no site-packages .pth files, so the checkout's editable-install hook is not loaded and
    # only the installed wheel (then the venv's TensorFlow, Keras, ...) can be imported; cwd is not the checkout.
    libraries = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {key: value for key, value in os.environ.items() if key not in ("CIN_STYLE_MODEL", "PYTHONPATH")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), *libraries]), KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2"
    )
    runner = (
        "import runpy, sys, cin_style; print('cin_style from', cin_style.__file__, flush=True); "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", runner, str(script), *README_ARGS],
        check=False,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    loaded_from = pathlib.Path(result.stdout.split("cin_style from ", 1)[1].split("\n", 1)[0])
    assert loaded_from.is_relative_to(site), loaded_from
    with Image.open(work / "parrots_great_wave.png") as painted, Image.open(work / "examples" / "parrots.jpg") as photo:
        assert painted.format == "PNG" and painted.size == photo.size


def test_bundled_model_found_in_the_checkout_or_editable_install():
    import cin_style
    from cin_style import bundled

    found = bundled.bundled_model_path()
    assert any((found / version / "saved_model.pb").is_file() for version in os.listdir(found)), found
    if pathlib.Path(cin_style.__file__).parent == ROOT / "cin_style":  # this checkout, plain or editable install
        assert found == ROOT / "saved_models" / "cin_style_default"


def test_extras_that_run_tflite_files_install_litert():
    """TFLiteStylizer, the TFLite tests and the inference benchmark run .tflite files with LiteRT."""
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    extras = setup["options.extras_require"]
    for extra in ("tflite", "test", "bench"):
        assert "ai-edge-litert" in extras[extra].split(), extra
