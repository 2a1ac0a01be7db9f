"""Training runs end to end: checkpoints, resume after SIGKILL, add_styles, CLIs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import TRAIN_STYLES, run_cli, tiny_config
from PIL import Image

from cin_style.network import cin_layers
from cin_style.sheets import label_height

pytestmark = pytest.mark.tensorflow_only


@pytest.fixture(scope="module")
def two_step_run(shared_data, photos, tmp_path_factory):
    """`(folder, TrainResult)` of a finished tiny run of 2 steps (`tiny_config(steps=2)`: checkpoint, model.keras,
    styles.json), trained once for the tests that start from one; a test that writes into it takes a copy."""
    from cin_style.training import train

    folder = tmp_path_factory.mktemp("two_step_run")
    return folder, train(tiny_config(shared_data, photos, folder, steps=2), verbose=0)


def test_train_traces_its_step_once_and_writes_model_styles_checkpoints_and_samples(
    shared_data, photos, tmp_path, monkeypatch
):
    from cin_style.trainer import StyleTrainer
    from cin_style.training import latest_checkpoint, load_trained, train

    traces = []  # the Python step runs once per trace of the compiled step (TensorFlow) or jit (JAX)
    step = StyleTrainer.train_step
    monkeypatch.setattr(StyleTrainer, "train_step", lambda self, *args: traces.append(1) or step(self, *args))
    result = train(tiny_config(shared_data, photos, tmp_path, keep_checkpoints=1, run_eagerly=False), verbose=0)
    # Adam built before the first step: a step that makes variables is traced twice by tf.function.
    assert len(traces) == 1
    assert result.style_names == list(TRAIN_STYLES)
    assert [h["step"] for h in result.history] == [1, 2, 3, 4]
    assert all(np.isfinite(h["loss"]) and h["loss"] > 0 and h["images_per_second"] > 0 for h in result.history)
    assert os.path.basename(latest_checkpoint(tmp_path)) == "ckpt-00000004"
    assert os.listdir(tmp_path / "checkpoints") == ["ckpt-00000004"]  # keep_checkpoints=1
    assert sorted(os.listdir(tmp_path / "samples")) == ["step-00000002.png", "step-00000004.png"]
    # A labelled grid: a row per sample photo (batch 2), each the photo and its 2 styles, names beneath.
    with Image.open(tmp_path / "samples" / "step-00000004.png") as sheet:
        assert sheet.size == (3 * 32, 2 * (32 + label_height(32)))
    model, names = load_trained(tmp_path)
    assert names == list(TRAIN_STYLES)
    image = np.random.default_rng(0).random((1, 24, 24, 3), dtype=np.float32)
    weights = np.eye(2, dtype="float32")[[1]]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model({"image": image, "style_weights": weights})),
        keras.ops.convert_to_numpy(result.model({"image": image, "style_weights": weights})),
        atol=1e-6,
    )
    with open(tmp_path / "styles.json") as stream:
        saved = json.load(stream)
    assert saved["training"]["batch_size"] == 2 and saved["alpha"] == 0.25


def test_resume_continues_step_count_optimizer_and_styles(shared_data, photos, tmp_path, two_step_run):
    from cin_style.training import train

    run, first = two_step_run
    shutil.copytree(run, tmp_path, dirs_exist_ok=True)  # the run of 2 steps, resumed here
    checkpoint = tmp_path / "checkpoints" / "ckpt-00000002"
    # Restoring puts the step and every Adam moment back into a fresh optimiser, value for value.
    from cin_style.losses import PerceptualLoss
    from cin_style.network import build_transformer
    from cin_style.trainer import StyleTrainer
    from cin_style.training import restore_checkpoint

    trainer = StyleTrainer(build_transformer(2, alpha=0.25), PerceptualLoss(), None, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    restore_checkpoint(trainer, str(checkpoint))
    slots = [v for v in trainer.optimizer.variables[1:] if not v.path.endswith("learning_rate")]
    with np.load(checkpoint / "optimizer.npz") as saved:
        saved_slots = [saved[k] for k in sorted(saved.files) if k.startswith("slot_")]
        assert int(saved["iterations"]) == int(keras.ops.convert_to_numpy(trainer.optimizer.iterations)) == 2
    assert len(saved_slots) == len(slots) == 2 * len(trainer.transformer.trainable_variables)
    for variable, value in zip(slots, saved_slots):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)
    assert any(np.abs(value).max() > 0 for value in saved_slots)  # the moments hold the two steps
    # The style images are not even read again: the Gram targets come from the checkpoint.
    # Compiled, from the eager run's checkpoint: a checkpoint does not depend on how its steps ran.
    config = tiny_config(shared_data, photos, tmp_path, steps=4, styles=["/nonexistent/style.jpg"], run_eagerly=False)
    resumed = train(config, resume=True, verbose=0)
    assert resumed.resumed_from.endswith("ckpt-00000002")
    assert [h["step"] for h in resumed.history] == [3, 4]
    assert resumed.style_names == first.style_names
    with pytest.raises(ValueError, match="already holds checkpoints; pass resume=True"):
        train(tiny_config(shared_data, photos, tmp_path), verbose=0)


def test_resume_with_a_new_learning_rate_trains_at_the_new_rate(shared_data, photos, tmp_path, two_step_run):
    from cin_style.training import train

    def saved_rate(step):
        with open(tmp_path / "checkpoints" / f"ckpt-{step:08d}" / "state.json") as stream:
            return json.load(stream)["learning_rate"]  # the optimiser's rate when it was saved

    run, first = two_step_run
    assert first.config.learning_rate == 1e-3
    shutil.copytree(run, tmp_path, dirs_exist_ok=True)  # 2 steps at 1e-3
    assert saved_rate(2) == pytest.approx(1e-3)
    resumed = train(tiny_config(shared_data, photos, tmp_path, steps=4, learning_rate=1e-4), resume=True, verbose=0)
    assert [h["step"] for h in resumed.history] == [3, 4]
    assert saved_rate(4) == pytest.approx(1e-4)


@pytest.mark.tensorflow_only
def test_resumed_run_continues_its_tensorboard_loss_curve(shared_data, photos, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import loss_curve

    from cin_style.training import train

    train(tiny_config(shared_data, photos, tmp_path, steps=2, checkpoint_every=1, tensorboard=True), verbose=0)
    first = loss_curve.curve(str(tmp_path))
    assert sorted(first) == [1, 2]
    train(
        tiny_config(shared_data, photos, tmp_path, steps=4, checkpoint_every=1, tensorboard=True),
        resume=True,
        verbose=0,
    )
    points = loss_curve.curve(str(tmp_path))
    # Steps 3 and 4 follow on; steps 1 and 2 keep the first run's values.
    assert sorted(points) == [1, 2, 3, 4]
    assert {step: points[step] for step in (1, 2)} == first


def test_resumed_tfds_run_ends_with_the_weights_of_an_uninterrupted_run(shared_data, tmp_path):
    # The tfds stream restarts at the resumed step: same crops, same style draws.
    import tensorflow_datasets as tfds

    from cin_style.training import train

    def run(folder, steps, resume=False):
        config = tiny_config(shared_data, None, tmp_path / folder, steps=steps, content="oxford_flowers102")
        config.tfds_data_dir = str(tmp_path / "tfds")
        return train(config, resume=resume, verbose=0)

    with tfds.testing.mock_data(num_examples=5):
        straight = run("straight", 4)
        run("split", 2)
        resumed = run("split", 4, resume=True)
    assert [h["step"] for h in resumed.history] == [3, 4]
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The resumed run's sample sheet shows the run's first photos (column 0), not the resumed stream's.
    size = 32  # tiny_config's image_size: the photo column's width
    sheets = [np.asarray(Image.open(tmp_path / f / "samples" / "step-00000004.png")) for f in ("straight", "split")]
    np.testing.assert_array_equal(sheets[1][:, :size], sheets[0][:, :size])


def test_sigkill_mid_run_then_resume_loses_at_most_one_checkpoint_interval(shared_data, photos, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    style_args = ",".join(str(shared_data / "styles" / f"{name}.jpg") for name in TRAIN_STYLES)
    command = [
        sys.executable,
        "-m",
        "cin_style.cli.train",
        f"--styles={style_args}",
        f"--content={photos}",
        f"--output_dir={tmp_path}",
        "--image_size=32",
        "--batch_size=1",
        "--steps=40",
        "--checkpoint_every=2",
        "--style_image_size=48",
        "--alpha=0.25",
        "--seed=0",
        "--notensorboard",
        "--resume",
        "--run_eagerly",  # the kill and the resume are the same for either mode; eager starts sooner
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (tmp_path / "checkpoints" / "ckpt-00000004").exists():
        assert process.poll() is None, "training exited before its second checkpoint"
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    from cin_style.training import latest_checkpoint

    newest = latest_checkpoint(tmp_path)
    killed_at = int(os.path.basename(newest).split("-")[1])
    assert killed_at >= 4
    leftovers = [n for n in os.listdir(tmp_path / "checkpoints") if not n.startswith("ckpt-")]
    with open(os.path.join(newest, "state.json")) as stream:
        assert json.load(stream)["step"] == killed_at
    finished = subprocess.run(
        [c.replace("--steps=40", f"--steps={killed_at + 2}") for c in command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"Resuming from {newest}" in finished.stderr
    assert os.path.basename(latest_checkpoint(tmp_path)) == f"ckpt-{killed_at + 2:08d}"
    # A half-written checkpoint from the kill, if any, is never taken for a real one.
    assert all(name.startswith(".tmp-") for name in leftovers)


def test_mixed_bfloat16_training_saves_float32_models_and_resumes_in_float32(shared_data, photos, tmp_path):
    from cin_style.network import all_layers
    from cin_style.training import load_trained, model_from_checkpoint, train

    result = train(
        tiny_config(shared_data, photos, tmp_path, steps=2, dtype_policy="mixed_bfloat16", run_eagerly=False), verbose=0
    )
    assert all(np.isfinite(h["loss"]) and h["loss"] > 0 for h in result.history)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    saved, _ = load_trained(tmp_path)
    restored, _, state = model_from_checkpoint(str(tmp_path))
    assert state["config"]["dtype_policy"] == "mixed_bfloat16"
    for model in (result.model, saved, restored):
        assert {layer.dtype_policy.compute_dtype for layer in all_layers(model)} == {"float32"}
    np.testing.assert_array_equal(saved.get_weights()[0], restored.get_weights()[0])
    resumed = train(tiny_config(shared_data, photos, tmp_path, steps=3), resume=True, verbose=0)
    assert [h["step"] for h in resumed.history] == [3]


def test_unknown_dtype_policy_is_named_before_any_work(shared_data, photos, tmp_path):
    from cin_style.training import train

    with pytest.raises(ValueError, match="`dtype_policy` must be one of float32, mixed_bfloat16.*'float16'"):
        train(tiny_config(shared_data, photos, tmp_path, dtype_policy="float16"), verbose=0)
    assert not os.listdir(tmp_path)


def test_add_styles_trains_only_the_new_rows(shared_data, photos, tmp_path, two_step_run):
    from cin_style.training import add_styles

    base = two_step_run[1]
    before = [keras.ops.convert_to_numpy(w).copy() for w in base.model.weights]
    image = np.random.default_rng(1).random((1, 24, 24, 3), dtype=np.float32)
    old_outputs = [
        keras.ops.convert_to_numpy(base.model({"image": image, "style_weights": np.eye(2, dtype="float32")[[i]]}))
        for i in range(2)
    ]
    config = tiny_config(
        shared_data,
        photos,
        tmp_path / "grown",
        steps=3,
        styles=[str(shared_data / "styles" / "picabia_udnie.jpg")],
        learning_rate=1e-2,
    )
    grown = add_styles(base.model, base.style_names, config, verbose=0)
    assert grown.style_names == [*TRAIN_STYLES, "picabia_udnie"]
    for old_layer, new_layer in zip(cin_layers(base.model), cin_layers(grown.model)):
        new_gamma = keras.ops.convert_to_numpy(new_layer.gamma)
        np.testing.assert_array_equal(new_gamma[:2], keras.ops.convert_to_numpy(old_layer.gamma))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(new_layer.beta)[:2], keras.ops.convert_to_numpy(old_layer.beta)
        )
    assert any(not np.allclose(keras.ops.convert_to_numpy(layer.gamma)[2], 1.0) for layer in cin_layers(grown.model))
    cin_weights = {id(w) for layer in cin_layers(grown.model) for w in (layer.gamma, layer.beta)}
    others = [w for w in grown.model.weights if id(w) not in cin_weights]
    old_others = [w for w, v in zip(base.model.weights, before) if "gamma" not in w.path and "beta" not in w.path]
    assert len(others) == len(old_others) > 0
    for new, old in zip(others, old_others):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(new), keras.ops.convert_to_numpy(old))
    for i in range(2):
        weights = np.eye(3, dtype="float32")[[i]]
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(grown.model({"image": image, "style_weights": weights})), old_outputs[i]
        )


def test_train_cli_names_bad_settings(shared_data, photos, tmp_path, capsys):
    (tmp_path / "no_styles").mkdir()
    style = str(shared_data / "styles" / "hokusai_great_wave.jpg")
    cases = [
        (
            [f"--styles={tmp_path / 'no_styles'}", f"--content={photos}", f"--output_dir={tmp_path / 'a'}"],
            "holds no images",
        ),
        (
            [f"--styles={style}", f"--content={tmp_path / 'missing'}", f"--output_dir={tmp_path / 'b'}"],
            "Content folder not found",
        ),
        (
            [f"--styles={style}", f"--content={photos}", f"--output_dir={tmp_path / 'c'}", "--image_size=16"],
            "`image_size` must be at least 32",
        ),
        (
            [f"--styles={style}", f"--content={photos}", f"--output_dir={tmp_path / 'd'}", "--no_such_flag=1"],
            "Unknown command line flag 'no_such_flag'",
        ),
        ([f"--content={photos}", f"--output_dir={tmp_path / 'e'}"], "--styles is required"),
        (
            [f"--styles={style}", f"--content={photos}", f"--output_dir={tmp_path / 'f'}", "--spike_weight=-1"],
            "`spike_weight` must be non-negative",
        ),
        (
            [f"--styles={style}", f"--content={photos}", f"--output_dir={tmp_path / 'g'}", "--spike_limit=0"],
            "`spike_limit` must be positive",
        ),
        (
            [f"--styles={style}", f"--content={photos}", f"--output_dir={tmp_path / 'h'}", "--run_eagerly"]
            + ["--jit_compile"],
            "`run_eagerly` and `jit_compile` exclude each other",
        ),
    ]
    # The settings refused before TensorFlow loads (flags, required ones) in a real process, which costs little;
    # the others in this one: a process would import TensorFlow for each (~5 s). An exception other than the
    # tool's exit would fail the test here, as a traceback would there.
    for args, message in cases:
        if message.startswith(("Unknown command line flag", "--styles is required")):
            result = run_cli("cin_style.cli.train", *args)
            status, stderr = result.returncode, result.stderr
        else:
            status, _, stderr = run_tool(capsys, "train", *args)
        assert status != 0, args
        assert message in stderr, (args, stderr[-1500:])
        assert "Traceback" not in stderr


def test_train_cli_spike_limit_default_is_the_librarys():
    from cin_style.cli import train as train_cli
    from cin_style.spike_penalty import DEFAULT_SPIKE_LIMIT

    assert train_cli.FLAGS["spike_limit"].default == DEFAULT_SPIKE_LIMIT


def test_train_cli_offers_exactly_the_library_dtype_policies():
    from cin_style.cli import train as train_cli
    from cin_style.training import DTYPE_POLICIES

    assert tuple(train_cli.FLAGS["dtype_policy"].parser.enum_values) == DTYPE_POLICIES


def test_a_run_keeps_its_paintings_at_the_style_target_size(shared_data, two_step_run):
    from cin_style.paintings import fitted

    run = two_step_run[0]
    assert sorted(os.listdir(run / "paintings")) == ["000.png", "001.png"]
    for index, name in enumerate(TRAIN_STYLES):
        with Image.open(run / "paintings" / f"{index:03d}.png") as image:
            kept = np.asarray(image.convert("RGB"), np.float32) / 255.0
        assert min(kept.shape[:2]) == 48  # tiny_config's style_image_size
        np.testing.assert_allclose(kept, fitted(shared_data / "styles" / f"{name}.jpg", 48), atol=1 / 255 + 1e-6)


def test_a_runs_paintings_are_found_from_its_checkpoints_and_files(two_step_run, monkeypatch):
    from cin_style.paintings import paintings_folder
    from cin_style.training import latest_checkpoint

    run = two_step_run[0]
    expected = str(run / "paintings")
    assert paintings_folder(run) == expected and paintings_folder(run / "model.keras") == expected
    assert paintings_folder(latest_checkpoint(run)) == expected
    assert paintings_folder(latest_checkpoint(run) + os.sep) == expected  # a trailing separator
    monkeypatch.chdir(run)
    assert paintings_folder("model.keras") == expected  # a bare file name


def test_a_refused_run_writes_no_paintings(shared_data, photos, tmp_path):
    from helpers import saved_style_model

    from cin_style.training import train

    (tmp_path / "teacher").mkdir()
    teacher = saved_style_model(tmp_path / "teacher")  # three styles; the run has two
    with pytest.raises(ValueError, match="paints styles"):
        train(tiny_config(shared_data, photos, tmp_path / "run", teacher=str(teacher)), verbose=0)
    assert not (tmp_path / "run" / "paintings").exists()


def test_add_style_cli_grows_a_trained_model(shared_data, photos, tmp_path, two_step_run, capsys):
    # In this process (test_add_style runs the tool as a process): the base run is read, not written.
    base = two_step_run[0]
    status, stdout, stderr = run_tool(
        capsys,
        "add_style",
        f"--model={base}",
        f"--styles={shared_data / 'styles' / 'picabia_udnie.jpg'}",
        f"--content={photos}",
        f"--output_dir={tmp_path / 'grown'}",
        "--image_size=32",
        "--batch_size=1",
        "--steps=2",
        "--checkpoint_every=2",
        "--style_image_size=48",
        "--notensorboard",
        "--run_eagerly",
        defaults="ADD_STYLE_DEFAULTS",
    )
    assert status == 0, stderr[-2000:]
    assert "Model now has 3 styles: hokusai_great_wave, munch_the_scream, picabia_udnie" in stdout
    # The grown model carries the base run's paintings and the new one, in the run and in its SavedModel.
    grown_paintings = tmp_path / "grown" / "paintings"
    assert sorted(os.listdir(grown_paintings)) == ["000.png", "001.png", "002.png"]
    for index in range(2):
        assert (grown_paintings / f"{index:03d}.png").read_bytes() == (base / f"paintings/{index:03d}.png").read_bytes()
    exported = tmp_path / "grown" / "saved_model" / "1"
    assert sorted(os.listdir(exported / "assets" / "paintings")) == ["000.png", "001.png", "002.png"]
    assert json.loads((exported / "cin_style.json").read_text())["paintings"] == [0, 1, 2]
    status, _, stderr = run_tool(
        capsys,
        "add_style",
        f"--model={base}",
        f"--styles={shared_data / 'styles' / 'munch_the_scream.jpg'}",
        f"--content={photos}",
        f"--output_dir={tmp_path / 'clash'}",
        "--image_size=32",
        defaults="ADD_STYLE_DEFAULTS",
    )
    assert status != 0 and "already has styles named ['munch_the_scream']" in stderr


def test_export_cli_from_a_checkpoint_and_from_a_trained_folder(tmp_path, two_step_run, capsys):
    from cin_style import Stylizer
    from cin_style.metadata import read_metadata
    from cin_style.training import model_from_checkpoint

    # In this process (test_tflite runs the tool as a process): the run is read, not written.
    run = two_step_run[0]
    status, _, stderr = run_tool(capsys, "export", f"--checkpoint={run}", f"--export_dir={tmp_path / 'served'}")
    assert status == 0, stderr[-2000:]
    status, stdout, stderr = run_tool(capsys, "export", f"--model={run}", f"--export_dir={tmp_path / 'served'}")
    assert status == 0, stderr[-2000:]
    assert f"Exported 2 styles to {tmp_path / 'served' / '2'}" in stdout
    assert read_metadata(tmp_path / "served" / "1")["training"]["step"] == 2
    assert read_metadata(tmp_path / "served")["training"]["batch_size"] == 2
    assert (
        read_metadata(tmp_path / "served" / "1")["weights_sha256"]
        == read_metadata(tmp_path / "served" / "2")["weights_sha256"]
    )
    model, names, state = model_from_checkpoint(run)
    assert names == list(TRAIN_STYLES) and state["step"] == 2
    photo = np.random.default_rng(2).random((24, 24, 3), dtype=np.float32)
    np.testing.assert_allclose(
        Stylizer.load(tmp_path / "served").stylize(photo, 1),
        Stylizer.load(run).stylize(photo, 1),
        atol=2e-6,
    )
    status, _, stderr = run_tool(
        capsys, "export", f"--model={run}", f"--checkpoint={run}", f"--export_dir={tmp_path / 'x'}"
    )
    assert status != 0 and "exactly one of --model or --checkpoint" in stderr
