"""SavedModel export as TF Serving and plain-TensorFlow clients see it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import STYLE_NAMES, distinct_style_model, image_signature_calls

pytestmark = pytest.mark.tensorflow_only


@pytest.fixture(scope="module")
def model():
    return distinct_style_model()


@pytest.fixture(scope="module")
def exported(exported_model):
    """`(base, path)`: `distinct_style_model()` exported with `training_config={"steps": 1}` (conftest; shared)."""
    return exported_model


@pytest.fixture
def copied_export(exported, monkeypatch):
    """Has `export_saved_model` write the SavedModel of `exported` (copied) instead of tracing it anew (seconds).

    For tests of what `export_saved_model` itself does around the SavedModel (version folders, metadata); the
    arguments it hands the writer are listed in the returned list.
    """
    import shutil

    from cin_style import export

    calls = []

    def copy(model, style_names, path, **options):
        calls.append(dict(model=model, style_names=style_names, **options))
        shutil.copytree(exported[1], path, ignore=shutil.ignore_patterns(export.METADATA_FILE))

    monkeypatch.setattr(export, "_write_saved_model", copy)
    return calls


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


def test_versions_count_up_and_are_never_overwritten(model, tmp_path, copied_export):
    from cin_style.export import export_saved_model

    # The numbering, the refusal and the renaming into place are export_saved_model's own; each version's
    # SavedModel is the shared export, copied.
    assert export_saved_model(model, tmp_path, STYLE_NAMES).endswith(os.sep + "1")
    assert export_saved_model(model, tmp_path, STYLE_NAMES).endswith(os.sep + "2")
    assert export_saved_model(model, tmp_path, STYLE_NAMES, version=7).endswith(os.sep + "7")
    with pytest.raises(ValueError, match="Version 2 already exists"):
        export_saved_model(model, tmp_path, STYLE_NAMES, version=2)
    assert sorted(os.listdir(tmp_path)) == ["1", "2", "7"]
    assert len(copied_export) == 3  # the refused version was never written


def test_paintings_travel_in_the_assets_at_the_style_target_size(model, tmp_path, copied_export, shared_data):
    from PIL import Image

    from cin_style import Stylizer
    from cin_style.export import export_saved_model
    from cin_style.image_io import ImageReadError
    from cin_style.metadata import read_metadata
    from cin_style.paintings import fitted

    styles = shared_data / "styles"
    paintings = [styles / f"{STYLE_NAMES[0]}.jpg", None, styles / f"{STYLE_NAMES[2]}.jpg"]
    path = export_saved_model(
        model, tmp_path / "served", STYLE_NAMES, training_config={"style_image_size": 40}, paintings=paintings
    )
    assert read_metadata(path)["paintings"] == [0, 2]
    assert sorted(os.listdir(os.path.join(path, "assets", "paintings"))) == ["000.png", "002.png"]
    carried = Stylizer.load(path).style_image(STYLE_NAMES[2])
    assert min(carried.size) == 40
    assert Stylizer.load(tmp_path / "served").style_image(2).tobytes() == carried.tobytes()  # the base folder too
    np.testing.assert_allclose(np.asarray(carried, np.float32) / 255.0, fitted(paintings[2], 40), atol=1 / 255 + 1e-6)
    with Image.open(os.path.join(path, "assets", "paintings", "000.png")) as first:
        assert min(first.size) == 40
    # From a model's paintings folder, as cin-style-export passes a run's.
    again = export_saved_model(
        model, tmp_path / "again", STYLE_NAMES, paintings=os.path.join(path, "assets", "paintings")
    )
    assert read_metadata(again)["paintings"] == [0, 2]
    with pytest.raises(ValueError, match=r"one image \(or None\) per style \(3\)"):
        export_saved_model(model, tmp_path / "short", STYLE_NAMES, paintings=paintings[:2])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        export_saved_model(model, tmp_path / "bad", STYLE_NAMES, paintings=[bad, None, None])
    assert len(copied_export) == 2  # the refused exports wrote no SavedModel
    assert not os.path.exists(tmp_path / "bad" / "1")


def test_export_cli_carries_the_paintings_named_after_the_styles(tmp_path, copied_export, shared_data, capsys):
    import shutil

    from cli_in_process import run_tool
    from helpers import saved_style_model

    from cin_style.metadata import read_metadata

    (tmp_path / "run").mkdir()
    run = saved_style_model(tmp_path / "run").parent  # carries no paintings of its own
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in STYLE_NAMES[:2]:
        shutil.copy(shared_data / "styles" / f"{name}.jpg", mine / f"{name}.jpg")
    served = tmp_path / "served"
    status, stdout, stderr = run_tool(
        capsys, "export", f"--model={run}", f"--export_dir={served}", f"--paintings={mine}"
    )
    assert status == 0, stderr[-2000:]
    assert read_metadata(served / "1")["paintings"] == [0, 1]
    assert f"No painting in {mine} for 1 of them, which cannot be refined: {STYLE_NAMES[2]}" in stdout
    status, stdout, _ = run_tool(capsys, "export", f"--model={run}", f"--export_dir={served}")
    assert status == 0 and read_metadata(served / "2")["paintings"] == []
    assert "No painting with the model (give --paintings=FOLDER) for 3 of them" in stdout
    status, _, stderr = run_tool(
        capsys, "export", f"--model={run}", f"--export_dir={served}", f"--paintings={tmp_path / 'nowhere'}"
    )
    assert status == 1 and f"No such folder of paintings: {tmp_path / 'nowhere'}" in stderr
    assert sorted(os.listdir(served)) == ["1", "2"]


def test_a_crash_mid_export_leaves_no_version_behind(model, tmp_path, monkeypatch):
    from cin_style import export
    from cin_style.export import export_saved_model

    def crash(model, names, path, **options):
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
    assert set(loaded.signatures) == {
        "serving_default",
        "stylize_blend",
        "stylize_float",
        "stylize_blend_float",
        "stylize_spatial",
        "stylize_spatial_float",
        "stylize_bytes",
        "stylize_bytes_blend",
        "style_names",
    }
    spec = loaded.signatures["stylize_blend"].structured_input_signature[1]
    assert spec["image"].shape.as_list() == [None, None, None, 3]
    assert spec["style_weights"].shape.as_list() == [None, 3]
    spatial = loaded.signatures["stylize_spatial"].structured_input_signature[1]
    assert spatial["image"].dtype == tf.uint8 and spatial["style_weights"].shape.as_list() == [None, None, None, 3]


def test_the_saved_graph_holds_each_network_once_for_all_signatures(exported, model):
    from tensorflow.core.protobuf import saved_model_pb2

    from cin_style.layers import ReflectionConv2D
    from cin_style.network import all_layers

    # Eight signatures paint, with two networks (per-image weights and the per-pixel map): one copy each, called by
    # every signature, not one traced into each (which tripled the export's time and doubled the file).
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((exported[0] / "1" / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library
    convolutions = sum(node.op == "Conv2D" for function in library.function for node in function.node_def)
    assert convolutions == 2 * sum(isinstance(layer, ReflectionConv2D) for layer in all_layers(model))


def test_saved_model_cli_lists_and_runs_the_signatures(exported, photo, tmp_path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", exported[1]], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("serving_default", "stylize_blend", "stylize_float", "stylize_blend_float", "stylize_bytes"):
        assert f"signature_def['{name}']" in shown.stdout
    np.save(tmp_path / "image.npy", np.round(photo * 255).astype(np.uint8))
    np.save(tmp_path / "index.npy", np.array([1], np.int32))
    ran = subprocess.run(
        [
            cli,
            "run",
            "--dir",
            exported[1],
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"image={tmp_path / 'image.npy'};style_index={tmp_path / 'index.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = np.load(tmp_path / "out" / "stylized_image.npy")
    assert result.shape == (1, 48, 48, 3) and result.dtype == np.uint8
    # Encoded bytes in and out, as TF Serving passes {"b64": ...} on: a string tensor.
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(photo[0] * 255).astype(np.uint8)[:, :30]).save(buffer, "PNG")
    literal = "b'" + "".join(f"\\x{byte:02x}" for byte in buffer.getvalue()) + "'"  # no ';' (the CLI splits on it)
    encoded = subprocess.run(
        [cli, "run", "--dir", exported[1], "--tag_set", "serve", "--signature_def", "stylize_bytes"]
        + ["--input_exprs", f"image_bytes=[{literal}];style_index=[2]", "--outdir", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert encoded.returncode == 0, encoded.stderr[-2000:]
    answer = np.load(tmp_path / "b" / "stylized_image_bytes.npy", allow_pickle=True)
    with Image.open(io.BytesIO(answer[0])) as painted:
        assert (painted.format, painted.size) == ("PNG", (30, 48))


PLAIN_TF_CLIENT = r"""
import sys, numpy as np, tensorflow as tf
assert not any(m.startswith("cin_style") for m in sys.modules)
m = tf.saved_model.load(sys.argv[1])
img8 = tf.constant(np.full((2, 21, 34, 3), 120, np.uint8))
imgf = tf.cast(img8, tf.float32) / 255
sig = m.signatures
out = sig["serving_default"](image=img8, style_index=tf.constant([0, 2]))
print("default", out["stylized_image"].dtype.name)
out = sig["stylize_blend"](image=img8, style_weights=tf.constant([[1., 1., 0.], [0., 0., 3.]]))
print("blend", out["stylized_image"].shape)
out = sig["stylize_float"](image=imgf, style_index=tf.constant([1, 1]))
print("float", out["stylized_image"].dtype.name)
out = sig["stylize_blend_float"](image=imgf, style_weights=tf.constant([[.5, .5, 0.], [0., 0., 1.]]))
print("blendf", out["stylized_image"].shape)
print("names", [n.decode() for n in sig["style_names"]()["style_names"].numpy()])
assert not any(m.startswith("cin_style") for m in sys.modules)
for name, call in [
    ("index", lambda: sig["serving_default"](image=img8, style_index=tf.constant([0, 3]))),
    ("negative_index", lambda: sig["serving_default"](image=img8, style_index=tf.constant([-1, 0]))),
    ("nan", lambda: sig["stylize_blend"](image=img8, style_weights=tf.constant([[np.nan, 1., 0.], [1., 0., 0.]]))),
    ("negative", lambda: sig["stylize_blend"](image=img8, style_weights=tf.constant([[-1., 2., 0.], [1., 0., 0.]]))),
    ("zero", lambda: sig["stylize_blend"](image=img8, style_weights=tf.constant([[0., 0., 0.], [1., 0., 0.]]))),
    ("batch", lambda: sig["serving_default"](image=img8, style_index=tf.constant([0]))),
]:
    try:
        call()
        print("error", name, "NONE")
    except tf.errors.InvalidArgumentError as e:
        print("error", name, " ".join(e.message.split())[:600])
"""


def test_a_plain_tensorflow_process_serves_every_signature_and_refuses_bad_requests(exported):
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_TF_CLIENT, exported[1]], capture_output=True, text=True, timeout=300
    )
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


def _strings(value):
    """Every string anywhere in a JSON value: keys and values, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _machine_config(machine):
    """A real training config whose paths are those of another machine (`machine` is never created)."""
    import dataclasses

    from cin_style.training import TrainConfig

    config = TrainConfig(
        styles=[
            str(machine / "styles" / "hokusai_great_wave.jpg"),
            ".devcarry/styles/munch_the_scream.jpg",
            r"C:\Users\trainer\styles\picabia_udnie.jpg",
            str(machine / "more_styles") + os.sep,
        ],
        content=str(machine / "photos" / "coco_train"),
        output_dir=str(machine / "runs" / "cin"),
        init_weights=str(machine / "runs" / "first" / "model.keras"),
        tfds_data_dir=str(machine / "tfds"),
        batch_size=4,
        steps=10,
        seed=3,
        style_weight=0.3,
        jit_compile=True,
    )
    return {**dataclasses.asdict(config), "step": 10}


def _assert_no_machine_paths(metadata, *folders):
    import ntpath
    import posixpath

    for text in _strings(metadata):
        assert not posixpath.isabs(text) and not ntpath.isabs(text), f"absolute path in the metadata: {text!r}"
        assert not text.startswith("~"), text
        for folder in folders:
            assert str(folder) not in text, f"{folder} in the metadata: {text!r}"


def test_metadata_records_no_path_of_the_training_machine(model, tmp_path, copied_export):
    from cin_style.export import export_saved_model

    # The metadata is written by export_saved_model beside the SavedModel (the shared export, copied), which
    # never sees the training config.
    machine = tmp_path / "training_machine"
    path = export_saved_model(model, tmp_path / "served", STYLE_NAMES, training_config=_machine_config(machine))
    with open(os.path.join(path, "cin_style.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    _assert_no_machine_paths(metadata, tmp_path, machine, ".devcarry", "trainer")
    training = metadata["training"]
    assert training["styles"] == ["hokusai_great_wave.jpg", "munch_the_scream.jpg", "picabia_udnie.jpg", "more_styles"]
    assert training["content"] == "coco_train"
    assert training["init_weights"] == "model.keras"
    assert "output_dir" not in training and "tfds_data_dir" not in training
    # The numbers and flags stay.
    assert training["batch_size"] == 4 and training["steps"] == 10 and training["step"] == 10
    assert training["seed"] == 3 and training["style_weight"] == 0.3
    assert training["jit_compile"] is True and training["output_norm"] is True and training["style_names"] is None


def test_a_tfds_content_name_is_kept_and_unknown_absolute_paths_become_names():
    from cin_style.metadata import portable_training_config

    config = {
        "content": "coco/2017",
        "tfds_data_dir": "/srv/tfds",
        "styles": "/home/me/styles",
        "notes": {"source": "/home/me/extra/x.jpg", "size": [1, "/tmp/y"]},
        "image_size": 256,
    }
    portable = portable_training_config(config)
    assert portable == {
        "content": "coco/2017",
        "styles": "styles",
        "notes": {"source": "x.jpg", "size": [1, "y"]},
        "image_size": 256,
    }
    assert config["tfds_data_dir"] == "/srv/tfds"  # the argument is left as it was
    assert portable_training_config(None) is None


def test_export_cli_records_relative_names_and_max_pixels(model, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    config = _machine_config(tmp_path / "training_machine")
    (run / "styles.json").write_text(json.dumps({"style_names": STYLE_NAMES, "alpha": 0.25, "training": config}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cin_style.cli.export",
            f"--model={run}",
            f"--export_dir={tmp_path / 'served'}",
            "--max_pixels=5000",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "served" / "1" / "cin_style.json", encoding="utf-8") as stream:
        metadata = json.load(stream)
    assert metadata["max_pixels"] == 5000
    _assert_no_machine_paths(metadata, tmp_path, "training_machine", ".devcarry", "trainer")
    assert metadata["training"]["content"] == "coco_train" and metadata["training"]["batch_size"] == 4


SMALL_LIMIT = 64 * 64


@pytest.fixture(scope="module")
def limited(export_style_model):
    import tensorflow as tf

    path = export_style_model(max_pixels=SMALL_LIMIT)[1]  # shared with test_serving_limits and test_stylizer
    return path, tf.saved_model.load(path)


def test_every_image_signature_refuses_requests_over_max_pixels(limited):
    import tensorflow as tf

    path, loaded = limited
    with open(os.path.join(path, "cin_style.json"), encoding="utf-8") as stream:
        assert json.load(stream)["max_pixels"] == SMALL_LIMIT
    for name, call in image_signature_calls(loaded, (1, 64, 64, 3), spatial=False).items():  # exactly the limit
        assert call()["stylized_image"].shape == (1, 64, 64, 3), name
    for name, call in image_signature_calls(loaded, (2, 32, 48, 3), spatial=False).items():  # 3,072 pixels in all
        assert call()["stylized_image"].shape == (2, 32, 48, 3), name
    # One large image (64x65, padded to 64x68 as the network pads it); a large batch.
    for shape, padded, total in [((1, 64, 65, 3), "64x68", 4352), ((2, 48, 48, 3), "48x48", 4608)]:
        for name, call in image_signature_calls(loaded, shape, spatial=False).items():
            with pytest.raises(tf.errors.InvalidArgumentError) as raised:
                call()
            message = " ".join(raised.value.message.split())
            expected = f"a batch of {shape[0]} x {shape[1]}x{shape[2]} (padded to {padded}) = {total} pixels"
            assert expected in message, (name, message)
            assert f"limit of {SMALL_LIMIT} pixels" in message, (name, message)


def test_the_default_limits_follow_from_a_4_gib_memory_budget(exported, model, tmp_path, copied_export):
    from cin_style import export
    from cin_style.export import DEFAULT_MEMORY_BUDGET, export_saved_model, serving_limits
    from cin_style.image_io import DEFAULT_MAX_PIXELS

    assert DEFAULT_MEMORY_BUDGET == 4 * 2**30
    with open(os.path.join(exported[1], "cin_style.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    max_pixels, spatial, budget = serving_limits(0.25)
    assert (metadata["max_pixels"], metadata["spatial_max_pixels"], metadata["memory_budget"]) == (
        max_pixels,
        spatial,
        DEFAULT_MEMORY_BUDGET,
    )
    for alpha in (0.25, 0.5, 1.0):
        max_pixels, spatial, budget = serving_limits(alpha)
        per_pixel = export.MEMORY_MARGIN * (export.BYTES_PER_PIXEL[0] + export.BYTES_PER_PIXEL[1] * alpha)
        per_spatial = export.MEMORY_MARGIN * (
            export.SPATIAL_BYTES_PER_PIXEL[0] + export.SPATIAL_BYTES_PER_PIXEL[1] * alpha
        )
        assert max_pixels * per_pixel <= budget < (max_pixels + 10_000) * per_pixel, alpha
        assert spatial * per_spatial <= budget < (spatial + 10_000) * per_spatial, alpha
        assert max_pixels < DEFAULT_MAX_PIXELS  # the Stylizer's file-reading limit is not a serving budget
    # The measured figures the default rests on (saved_models/README.md): the full network needs up to
    # 889 bytes per padded pixel, 1.25x that with the margin, so 4 GiB takes 3.86 million pixels (1964x1964).
    assert serving_limits(1.0)[:2] == (3_860_000, 2_020_000) and serving_limits(0.25)[:2] == (13_600_000, 5_970_000)
    # A budget of its own, or a limit that implies one (the SavedModel: the shared export, copied; the graph is
    # handed the limits the metadata records).
    path = export_saved_model(model, tmp_path, STYLE_NAMES, memory_budget=2**30)
    with open(os.path.join(path, "cin_style.json"), encoding="utf-8") as stream:
        assert json.load(stream)["max_pixels"] == serving_limits(0.25, memory_budget=2**30)[0]
    assert [call["limits"] for call in copied_export] == [serving_limits(0.25, memory_budget=2**30)[:2]]
    code = (
        "import cin_style.cli.export as c; print(c.FLAGS['max_pixels'].default, c.FLAGS['memory_budget_mib'].default)"
    )
    shown = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split()[-2:] == ["None", "None"]


def test_max_pixels_must_be_a_positive_integer(model, tmp_path):
    from cin_style.export import export_saved_model

    for bad in (0, -5, 2.5, True, "1000"):
        with pytest.raises(ValueError, match=rf"Received: max_pixels={bad!r}"):
            export_saved_model(model, tmp_path, STYLE_NAMES, max_pixels=bad)
        with pytest.raises(ValueError, match=rf"Received: memory_budget={bad!r}"):
            export_saved_model(model, tmp_path, STYLE_NAMES, memory_budget=bad)
    with pytest.raises(ValueError, match="Give max_pixels or memory_budget, not both"):
        export_saved_model(model, tmp_path, STYLE_NAMES, max_pixels=5000, memory_budget=2**30)
    with pytest.raises(ValueError, match=r"max_pixels must allow one 16x16 image \(256 pixels\)"):
        export_saved_model(model, tmp_path, STYLE_NAMES, max_pixels=255)  # a model that could paint nothing
    assert os.listdir(tmp_path) == []
    from cin_style.export import serving_limits

    assert serving_limits(1.0, max_pixels=256)[:2] == (256, 256)  # the spatial limit too allows one 16x16 image


def test_stylize_spatial_paints_a_constant_map_like_the_blend_and_refuses_bad_maps(exported, photo):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported[1]))
    image = tf.constant(np.round(photo * 255).astype(np.uint8))
    row = np.array([[0.2, 0.3, 0.5]], np.float32)
    size = tuple(image.shape[1:3])
    constant = np.broadcast_to(row[:, None, None], (1, *size, 3)).copy()
    spatial = loaded.signatures["stylize_spatial"](image=image, style_weights=tf.constant(constant * 4))
    blend = loaded.signatures["stylize_blend"](image=image, style_weights=tf.constant(row))
    difference = np.abs(spatial["stylized_image"].numpy().astype(int) - blend["stylized_image"].numpy().astype(int))
    assert spatial["stylized_image"].dtype == tf.uint8 and difference.max() <= 1  # normalised per pixel
    floats = loaded.signatures["stylize_spatial_float"](
        image=tf.cast(image, tf.float32) / 255.0, style_weights=tf.constant(constant)
    )["stylized_image"].numpy()
    assert np.abs(floats * 255 - blend["stylized_image"].numpy()).max() <= 1.0
    bad = {
        "must be finite": np.where(np.arange(3) == 0, np.nan, constant),
        "must be non-negative": constant - 0.3,
        "must not sum to zero at any pixel": np.where(np.indices(constant.shape)[1] == 0, 0.0, constant),
        "with the batch and size of the image": constant[:, :-1],
    }
    for message, style_map in bad.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["stylize_spatial"](image=image, style_weights=tf.constant(style_map, tf.float32))


SERVING_REST_CLIENT = r"""
import base64, json, sys, numpy as np, tensorflow as tf
assert not any(m.startswith("cin_style") for m in sys.modules)
request = json.loads(open(sys.argv[2]).read())


def as_tf_serving_decodes(instances):
    # TF Serving's REST row format: {"b64": ...} becomes the decoded bytes, rows stack on a first axis.
    columns = {}
    for row in instances:
        for key, value in row.items():
            columns.setdefault(key, []).append(base64.b64decode(value["b64"]) if isinstance(value, dict) else value)
    return {k: tf.constant(v) if k.endswith("_bytes") else tf.constant(v, tf.int32) for k, v in columns.items()}


signature = tf.saved_model.load(sys.argv[1]).signatures[request["signature_name"]]
out = signature(**as_tf_serving_decodes(request["instances"]))["stylized_image_bytes"].numpy()
print(json.dumps({"predictions": [{"stylized_image_bytes": {"b64": base64.b64encode(o).decode()}} for o in out]}))
"""


def test_stylize_bytes_answers_a_tf_serving_rest_request_with_encoded_paintings(exported, photo, tmp_path):
    import base64
    import io

    from PIL import Image

    from cin_style import Stylizer

    pixels = np.round(photo * 255).astype(np.uint8)
    files = []
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(pixels[0] if pixels.ndim == 4 else pixels).save(buffer, fmt)
        files.append(buffer.getvalue())
    request = {
        "signature_name": "stylize_bytes",
        "instances": [
            {"image_bytes": {"b64": base64.b64encode(files[0]).decode()}, "style_index": 2},
            {"image_bytes": {"b64": base64.b64encode(files[1]).decode()}, "style_index": 0},
        ],
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = subprocess.run(
        [sys.executable, "-c", SERVING_REST_CLIENT, exported[1], str(tmp_path / "request.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]
    painted = [np.asarray(Image.open(io.BytesIO(base64.b64decode(a["stylized_image_bytes"]["b64"])))) for a in answers]
    assert [p.shape for p in painted] == [pixels.shape[-3:]] * 2
    expected = Stylizer.load(exported[1]).stylize(pixels, 2)
    assert np.abs(painted[0].astype(int) - expected.astype(int)).max() <= 1  # the PNG request: lossless both ways


def test_stylize_bytes_names_corrupt_bytes_in_the_graph(exported, photo):
    import tensorflow as tf

    signature = tf.saved_model.load(str(exported[1])).signatures["stylize_bytes"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes: not a JPEG, PNG or BMP file"):
        signature(image_bytes=tf.constant([b"hello, not an image"]), style_index=tf.constant([0]))
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(photo * 255).astype(np.uint8).reshape(photo.shape[-3:])).save(buffer, "PNG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    with pytest.raises(tf.errors.InvalidArgumentError):
        signature(image_bytes=tf.constant([truncated]), style_index=tf.constant([0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="style_index out of range"):
        signature(image_bytes=tf.constant([buffer.getvalue()]), style_index=tf.constant([7]))


def test_encoded_format_is_chosen_at_export_and_checked(model, tmp_path):
    import io

    import tensorflow as tf
    from PIL import Image

    from cin_style.export import ENCODED_FORMATS, export_saved_model
    from cin_style.metadata import read_metadata

    # The tool's own --help (importing it here would define its absl flags beside other tools').
    shown = subprocess.run([sys.executable, "-m", "cin_style.cli.export", "--help"], capture_output=True, text=True)
    assert f"--encoded_format: <{'|'.join(ENCODED_FORMATS)}>" in shown.stdout + shown.stderr
    from cin_style.tflite import QUANTIZATIONS

    assert f"--quantization: <{'|'.join(q or 'none' for q in QUANTIZATIONS)}>" in shown.stdout + shown.stderr
    with pytest.raises(ValueError, match="`encoded_format` must be one of"):
        export_saved_model(model, tmp_path / "bad", STYLE_NAMES, encoded_format="gif")
    path = export_saved_model(model, tmp_path / "jpeg", STYLE_NAMES, encoded_format="jpeg")
    assert read_metadata(path)["encoded_format"] == "jpeg"
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 40, 3), 90, np.uint8)).save(buffer, "PNG")
    signature = tf.saved_model.load(path).signatures["stylize_bytes_blend"]
    out = signature(image_bytes=tf.constant([buffer.getvalue()]), style_weights=tf.constant([[1.0, 1.0, 0.0]]))
    with Image.open(io.BytesIO(out["stylized_image_bytes"].numpy()[0])) as painted:
        assert (painted.format, painted.size) == ("JPEG", (40, 24))
