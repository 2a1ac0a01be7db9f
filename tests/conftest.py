"""Shared test set-up: the offline data folder, the backend, small fixtures."""

import importlib.util
import os
import pathlib
import shutil

import numpy as np
import pytest

# TensorFlow where it is installed; JAX in the CI environment that has no TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow" if importlib.util.find_spec("tensorflow") else "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX's persistent compilation cache: the same tiny training step or network compiled in many tests (and
# in their subprocesses, which inherit these variables) is compiled once per machine. Entries are keyed by
# the program, its options and the JAX version, so a hit runs exactly what a fresh compile would.
_JAX_CACHE = pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_JAX_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# XLA's CPU code generation at its lowest optimisation level: the tests' programs are tiny, so compiling them,
# not running them, is most of the JAX passes' time, and LLVM's optimisations of the machine code roughly
# double it (tests/test_network.py's odd alphas: 35 s -> 17 s). The programs and their ops are the same;
# results agree to float rounding, and every comparison a test makes is within one run of these settings.
# TensorFlow compiles with XLA only where a test asks for jit_compile. XLA_FLAGS=--xla_backend_optimization_level=3
# runs the suite as users' programs are compiled.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# On pytest-xdist workers (tests/run.sh runs two, one per core here) TensorFlow runs each op on one thread
# instead of splitting the tests' tiny ops over both cores against the other worker: the TensorFlow pass took
# 411 s with TensorFlow's default threads and 375 s with one per worker, all 448 tests passing either way.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

#: ../shared/data beside the checkout, unless CIN_STYLE_DATA says otherwise.
SHARED_DATA = pathlib.Path(
    os.environ.get("CIN_STYLE_DATA", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
VGG_FILE = SHARED_DATA / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
os.environ.setdefault("CIN_STYLE_VGG19_WEIGHTS", str(VGG_FILE))

import keras


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs TensorFlow; Keras backend is {keras.backend.backend()}")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"Offline data folder not found: {SHARED_DATA} (set CIN_STYLE_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vgg_weights(shared_data):
    return str(shared_data / VGG_FILE.name)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _load_image(path, side):
    """A centre crop of `side`×`side` from an image file, float32 in [0, 1], (1, side, side, 3)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = side / min(image.size)
        image = image.resize(
            (max(side, round(image.size[0] * scale)), max(side, round(image.size[1] * scale))), Image.LANCZOS
        )
        left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return (np.asarray(image, np.float32) / 255.0)[None]


@pytest.fixture(scope="session")
def load_image():
    """`load_image(path, side)`: a centre crop as float32 (1, side, side, 3) in [0, 1]."""
    return _load_image


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory, shared_data):
    """Six real photos, one grey, one RGBA PNG, one WebP, one BMP in a subfolder, plus broken files."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    train = sorted((shared_data / "content" / "train").glob("*.jpg"))[:6]
    for path in train[:3]:
        shutil.copy(path, folder / path.name)
    Image.open(train[3]).convert("L").save(folder / "grey.png")
    Image.open(train[4]).convert("RGBA").save(folder / "rgba.png")
    (folder / "nested").mkdir()
    Image.open(train[5]).save(folder / "nested" / "photo.webp")
    Image.open(train[5]).save(folder / "nested" / "photo.bmp")
    (folder / "corrupt.jpg").write_bytes(b"not a jpeg at all" * 50)
    data = train[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


@pytest.fixture(scope="session")
def photos(tmp_path_factory, shared_data):
    """Eight training photos in a folder of their own, for tiny training runs."""
    folder = tmp_path_factory.mktemp("content")
    for path in sorted((shared_data / "content" / "train").glob("*.jpg"))[:8]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="session")
def export_style_model(tmp_path_factory):
    """`export_style_model(**options)`: `helpers.distinct_style_model()` exported with `helpers.STYLE_NAMES` and
    `export_saved_model`'s `options`, once per process and options (an export takes seconds: each signature and
    network is traced twice, before and while saving). Returns `(base, path)`: the base folder (a `pathlib.Path`)
    and the version folder that `export_saved_model` returned (`base / "1"`). Shared: read it, never write into it
    (copy it with `shutil.copytree` first).
    """

    import json

    exported = {}

    def export(**options):
        key = json.dumps(options, sort_keys=True)
        if key not in exported:
            from helpers import STYLE_NAMES, distinct_style_model

            from cin_style.export import export_saved_model

            base = tmp_path_factory.mktemp("exported")
            exported[key] = base, export_saved_model(distinct_style_model(), base, STYLE_NAMES, **options)
        return exported[key]

    return export


@pytest.fixture(scope="session")
def exported_model(export_style_model):
    """`(base, path)` of `helpers.distinct_style_model()` exported with the default limits and format, recording
    the training config `{"steps": 1}`; shared by the modules that serve it (see `export_style_model`)."""
    return export_style_model(training_config={"steps": 1})
