"""SavedModel export as TF Serving and plain-TensorFlow clients see it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import STYLE_NAMES, distinct_style_model

pytestmark = pytest.mark.tensorflow_only


@pytest.fixture(scope="module")
def model():
    return distinct_style_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    from cin_style.export import export_saved_model

    base = tmp_path_factory.mktemp("served") / "cin_style"
    path = export_saved_model(model, base, STYLE_NAMES, training_config={"steps": 1})
    return base, path


@pytest.fixture(scope="module")
def photo(shared_data, load_image):
    return load_image(shared_data / "content" / "test" / "kodim23.jpg", 48)


def test_layout_is_versioned_and_metadata_reads_without_tensorflow(exported, model):
    from cin_style.export import weights_hash

    base, path = exported
    assert path == str(base / "1")
    assert sorted(os.listdir(path)) == ["assets", "cin_style.json", "fingerprint.pb", "saved_model.pb", "variables"]
    # TensorFlow made unimportable: the metadata is plain JSON.
    code = (
        "import sys, json; sys.modules['tensorflow'] = None; "
        "from cin_style.metadata import read_metadata; "
        f"print(json.dumps(read_metadata({str(base)!r})))"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = json.loads(result.stdout.strip().splitlines()[-1])
    with open(os.path.join(path, "cin_style.json")) as stream:
        assert json.load(stream) == metadata
    assert metadata["style_names"] == STYLE_NAMES and metadata["num_styles"] == 3
    assert metadata["alpha"] == 0.25 and metadata["format"] == 1
    assert metadata["training"] == {"steps": 1}
    assert metadata["weights_sha256"] == weights_hash(model)
    # Each weight is stored once: the variables file is about the size of the weights.
    weight_bytes = sum(np.asarray(keras.ops.convert_to_numpy(w)).nbytes for w in model.weights)
    stored = sum(f.stat().st_size for f in (base / "1" / "variables").iterdir())
    assert weight_bytes <= stored < 1.3 * weight_bytes + 20_000


def test_versions_count_up_and_are_never_overwritten(model, tmp_path):
    from cin_style.export import export_saved_model

    assert export_saved_model(model, tmp_path, STYLE_NAMES).endswith(os.sep + "1")
    assert export_saved_model(model, tmp_path, STYLE_NAMES).endswith(os.sep + "2")
    assert export_saved_model(model, tmp_path, STYLE_NAMES, version=7).endswith(os.sep + "7")
    with pytest.raises(ValueError, match="Version 2 already exists"):
        export_saved_model(model, tmp_path, STYLE_NAMES, version=2)
    assert sorted(os.listdir(tmp_path)) == ["1", "2", "7"]


def test_a_crash_mid_export_leaves_no_version_behind(model, tmp_path, monkeypatch):
    from cin_style import export
    from cin_style.export import export_saved_model

    def crash(model, names, path):
        os.makedirs(path, exist_ok=True)
        open(os.path.join(path, "saved_model.pb"), "wb").close()  # half written
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "_write_saved_model", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, tmp_path, STYLE_NAMES)
    assert os.listdir(tmp_path) == []


def test_bad_names_are_refused(model, tmp_path):
    from cin_style.export import export_saved_model

    with pytest.raises(ValueError, match="holds 3 styles but 2 style names"):
        export_saved_model(model, tmp_path, STYLE_NAMES[:2])
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        export_saved_model(model, tmp_path, ["a", "a", "b"])


def test_serving_default_matches_the_keras_model_within_one_level(exported, model, photo):
    import tensorflow as tf

    loaded = tf.saved_model.load(exported[1])
    image = np.round(np.concatenate([photo, photo[:, ::-1]]) * 255).astype(np.uint8)
    out = loaded.signatures["serving_default"](image=tf.constant(image), style_index=tf.constant([2, 0]))
    served = out["stylized_image"].numpy()
    assert served.dtype == np.uint8 and served.shape == image.shape
    reference = keras.ops.convert_to_numpy(
        model({"image": image.astype("float32") / 255, "style_weights": np.eye(3, dtype="float32")[[2, 0]]})
    )
    assert np.abs(served.astype(int) - np.round(reference * 255).astype(int)).max() <= 1


def test_signatures_have_dynamic_batch_height_and_width(exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(exported[1])
    assert set(loaded.signatures) == {"serving_default", "stylize_blend", "stylize_float", "stylize_blend_float", "style_names"}
    spec = loaded.signatures["stylize_blend"].structured_input_signature[1]
    assert spec["image"].shape.as_list() == [None, None, None, 3]
    assert spec["style_weights"].shape.as_list() == [None, 3]


def test_saved_model_cli_lists_and_runs_the_signatures(exported, photo, tmp_path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", exported[1]], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("serving_default", "stylize_blend", "stylize_float", "stylize_blend_float", "style_names"):
        assert f"signature_def['{name}']" in shown.stdout
    np.save(tmp_path / "image.npy", np.round(photo * 255).astype(np.uint8))
    np.save(tmp_path / "index.npy", np.array([1], np.int32))
    ran = subprocess.run(
        [cli, "run", "--dir", exported[1], "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"image={tmp_path / 'image.npy'};style_index={tmp_path / 'index.npy'}",
         "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = np.load(tmp_path / "out" / "stylized_image.npy")
    assert result.shape == (1, 48, 48, 3) and result.dtype == np.uint8


PLAIN_TF_CLIENT = r"""
import sys, numpy as np, tensorflow as tf
assert not any(m.startswith("cin_style") for m in sys.modules)
m = tf.saved_model.load(sys.argv[1])
img8 = tf.constant(np.full((2, 21, 34, 3), 120, np.uint8)); imgf = tf.cast(img8, tf.float32) / 255
print("default", m.signatures["serving_default"](image=img8, style_index=tf.constant([0, 2]))["stylized_image"].dtype.name)
print("blend", m.signatures["stylize_blend"](image=img8, style_weights=tf.constant([[1., 1., 0.], [0., 0., 3.]]))["stylized_image"].shape)
print("float", m.signatures["stylize_float"](image=imgf, style_index=tf.constant([1, 1]))["stylized_image"].dtype.name)
print("blendf", m.signatures["stylize_blend_float"](image=imgf, style_weights=tf.constant([[.5, .5, 0.], [0., 0., 1.]]))["stylized_image"].shape)
print("names", [n.decode() for n in m.signatures["style_names"]()["style_names"].numpy()])
assert not any(m.startswith("cin_style") for m in sys.modules)
for name, call in [
    ("index", lambda: m.signatures["serving_default"](image=img8, style_index=tf.constant([0, 3]))),
    ("negative_index", lambda: m.signatures["serving_default"](image=img8, style_index=tf.constant([-1, 0]))),
    ("nan", lambda: m.signatures["stylize_blend"](image=img8, style_weights=tf.constant([[np.nan, 1., 0.], [1., 0., 0.]]))),
    ("negative", lambda: m.signatures["stylize_blend"](image=img8, style_weights=tf.constant([[-1., 2., 0.], [1., 0., 0.]]))),
    ("zero", lambda: m.signatures["stylize_blend"](image=img8, style_weights=tf.constant([[0., 0., 0.], [1., 0., 0.]]))),
    ("batch", lambda: m.signatures["serving_default"](image=img8, style_index=tf.constant([0]))),
]:
    try:
        call()
        print("error", name, "NONE")
    except tf.errors.InvalidArgumentError as e:
        print("error", name, " ".join(e.message.split())[:600])
"""


def test_a_plain_tensorflow_process_serves_every_signature_and_refuses_bad_requests(exported):
    result = subprocess.run([sys.executable, "-c", PLAIN_TF_CLIENT, exported[1]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "default uint8" in lines and "blend (2, 21, 34, 3)" in lines
    assert "float float32" in lines and "blendf (2, 21, 34, 3)" in lines
    assert f"names {STYLE_NAMES}" in lines
    errors = {line.split()[1]: line for line in lines if line.startswith("error")}
    assert "style_index out of range: every index must be in [0, 3)" in errors["index"]
    assert "style_index out of range" in errors["negative_index"]
    assert "style_weights must be finite" in errors["nan"]
    assert "style_weights must be non-negative" in errors["negative"]
    assert "style_weights must not sum to zero" in errors["zero"]
    assert "same batch size" in errors["batch"]
