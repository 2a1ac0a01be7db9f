"""The training loop on every backend: host-counted steps, schedules, time limits, exact resume."""

import json
import pathlib
import shutil

import keras
import numpy as np
import pytest
from helpers import EAGER, TRAIN_STYLES, assert_same_training, tiny_config

from cin_style import training
from cin_style.network import cin_layers, output_norm_of, with_more_styles

pytestmark = pytest.mark.no_tensorflow  # also runs where TensorFlow is not installed


def state(output_dir, step):
    with open(output_dir / "checkpoints" / f"ckpt-{step:08d}" / "state.json") as stream:
        return json.load(stream)


# Under TensorFlow every `training.train` costs seconds of tracing whatever its steps, so the plain tiny
# runs that several tests start from or compare with are trained once per module (per xdist worker): tests
# only read these results and their folders, and copy a folder (`copy_run`) to resume or damage it.


@pytest.fixture(scope="module")
def two_step_run(shared_data, photos, tmp_path_factory):
    """A finished tiny run of 2 steps (checkpoint at step 2), as `train` returned it."""
    return training.train(tiny_config(shared_data, photos, tmp_path_factory.mktemp("two_steps"), steps=2), verbose=0)


@pytest.fixture(scope="module")
def four_step_run(shared_data, photos, tmp_path_factory):
    """The uninterrupted tiny run (4 steps, checkpoints at 2 and 4), as `train` returned it."""
    return training.train(tiny_config(shared_data, photos, tmp_path_factory.mktemp("four_steps")), verbose=0)


@pytest.fixture(scope="module")
def six_step_run(shared_data, photos, tmp_path_factory):
    """An uninterrupted tiny run of 6 steps (checkpoints every 2), as `train` returned it."""
    folder = tmp_path_factory.mktemp("six_steps")
    return training.train(tiny_config(shared_data, photos, folder, steps=6, checkpoint_every=2), verbose=0)


def run_dir(result):
    return pathlib.Path(result.model_path).parent


def copy_run(result, destination):
    """A copy of a finished run's output folder at `destination`, for a test to resume or damage."""
    shutil.copytree(run_dir(result), destination)
    return destination


def test_an_eager_run_trains_as_the_compiled_run(shared_data, photos, tmp_path, monkeypatch, two_step_run):
    from cin_style.trainer import StyleTrainer

    calls = []  # the Python step: once per step eagerly, once per trace compiled
    step = StyleTrainer.train_step
    monkeypatch.setattr(StyleTrainer, "train_step", lambda self, *args: calls.append(1) or step(self, *args))
    # The module's runs are eager under TensorFlow and compiled under JAX (helpers.EAGER): this one is the other.
    other = training.train(tiny_config(shared_data, photos, tmp_path, steps=2, run_eagerly=not EAGER), verbose=0)
    assert len(calls) == (1 if EAGER else 2)
    weights = [np.concatenate([w.ravel() for w in run.model.get_weights()]) for run in (other, two_step_run)]
    losses = [[h["loss"] for h in run.history] for run in (other, two_step_run)]
    # Two summation orders, as over replicas: a weight whose gradient is ~0 (a residual block's last β) may take
    # its Adam step either way. After these 2 steps 0.27% of the weights differed by over 5e-5 under either
    # backend (at most 2.5e-3, measured); after 4 steps under JAX about 1% did, so the runs stay this short.
    assert_same_training(losses[0], weights[0], losses[1], weights[1])
    with pytest.raises(ValueError, match="`run_eagerly` and `jit_compile` exclude each other"):
        tiny_config(shared_data, photos, tmp_path / "both", run_eagerly=True, jit_compile=True).validate()


def test_callbacks_read_the_model_state_only_when_they_save(shared_data, photos, tmp_path, monkeypatch):
    # Under JAX, reading `callback.model` writes the whole training state back into the
    # model; it must happen at checkpoints and sample sheets, not after every step.
    reads = []
    read_model = keras.callbacks.Callback.model.fget

    def counted(self):
        reads.append(self.step)
        return read_model(self)

    monkeypatch.setattr(training.HostStepCallback, "model", property(counted))
    result = training.train(tiny_config(shared_data, photos, tmp_path, steps=6, checkpoint_every=3), verbose=0)
    assert [h["step"] for h in result.history] == [1, 2, 3, 4, 5, 6]
    assert set(reads) == {3, 6}


def test_steps_per_execution_counts_steps_and_checkpoints_on_multiples(shared_data, photos, tmp_path):
    result = training.train(
        tiny_config(
            shared_data,
            photos,
            tmp_path,
            steps=8,
            checkpoint_every=4,
            steps_per_execution=2,
            keep_checkpoints=5,
            run_eagerly=False,  # the compiled loop runs the group of steps
        ),
        verbose=0,
    )
    assert [h["step"] for h in result.history] == [2, 4, 6, 8]
    assert [state(tmp_path, s)["step"] for s in (4, 8)] == [4, 8]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt-00000004", "ckpt-00000008"]
    with pytest.raises(ValueError, match=r"`checkpoint_every` \(3\) must be a multiple of `steps_per_execution` \(2\)"):
        tiny_config(shared_data, photos, tmp_path, checkpoint_every=3, steps_per_execution=2).validate()


def test_max_minutes_stops_early_with_a_checkpoint_and_a_model(shared_data, photos, tmp_path):
    result = training.train(tiny_config(shared_data, photos, tmp_path, steps=50, max_minutes=1e-9), verbose=0)
    assert [h["step"] for h in result.history] == [1]
    assert state(tmp_path, 1)["step"] == 1
    assert (tmp_path / "model.keras").is_file()


def test_cosine_schedule_resumes_at_its_own_step(shared_data, photos, tmp_path):
    config = dict(steps=4, lr_schedule="cosine", learning_rate=1e-3)
    straight_dir = tmp_path / "straight"
    training.train(tiny_config(shared_data, photos, straight_dir, **{**config, "steps": 4}), verbose=0)
    uninterrupted = [state(straight_dir, s)["learning_rate"] for s in (2, 4)]
    assert uninterrupted == pytest.approx([1e-3 * (0.01 + 0.99 * 0.5), 1e-5])
    # The same schedule over 4 steps, stopped after 2: what a run killed after its step-2 checkpoint
    # leaves (the uninterrupted run's folder without the later checkpoint and model), then --resume.
    resumed_dir = shutil.copytree(straight_dir, tmp_path / "resumed")
    shutil.rmtree(resumed_dir / "checkpoints" / "ckpt-00000004")
    (resumed_dir / "model.keras").unlink()
    resumed = training.train(tiny_config(shared_data, photos, resumed_dir, **config), resume=True, verbose=0)
    assert [h["step"] for h in resumed.history] == [3, 4]
    assert state(resumed_dir, 4)["learning_rate"] == pytest.approx(uninterrupted[1])


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(
    shared_data, photos, tmp_path, two_step_run, four_step_run
):
    # Same crops (the data stream restarts at the resumed step), same style picks, same Adam state.
    straight = four_step_run
    split = copy_run(two_step_run, tmp_path / "split")  # a run of 2 steps, then --resume to 4
    resumed = training.train(tiny_config(shared_data, photos, split), resume=True, verbose=0)
    assert [h["step"] for h in resumed.history] == [3, 4]
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    other = training.train(tiny_config(shared_data, photos, tmp_path / "other", seed=1), verbose=0)
    assert not np.allclose(straight.model.get_weights()[0], other.model.get_weights()[0])


def test_plain_output_layer_survives_checkpoints_and_new_styles(shared_data, photos, tmp_path):
    result = training.train(tiny_config(shared_data, photos, tmp_path, steps=2, output_norm=False), verbose=0)
    assert not output_norm_of(result.model) and len(cin_layers(result.model)) == 15
    rebuilt, names, _ = training.model_from_checkpoint(str(tmp_path))
    assert not output_norm_of(rebuilt) and names == list(TRAIN_STYLES)
    image = np.random.default_rng(0).random((1, 36, 36, 3), dtype=np.float32)
    weights = np.eye(2, dtype="float32")[[1]]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(rebuilt({"image": image, "style_weights": weights})),
        keras.ops.convert_to_numpy(result.model({"image": image, "style_weights": weights})),
        atol=1e-6,
    )
    assert not output_norm_of(with_more_styles(rebuilt, 1))


def test_unknown_schedule_and_bad_step_settings_are_named(shared_data, photos, tmp_path):
    with pytest.raises(ValueError, match="`lr_schedule` must be one of constant, cosine"):
        tiny_config(shared_data, photos, tmp_path, lr_schedule="linear").validate()
    with pytest.raises(ValueError, match=r"`warmup_steps` must be an integer in \[0, steps=4\)"):
        tiny_config(shared_data, photos, tmp_path, warmup_steps=4).validate()
    with pytest.raises(ValueError, match="`max_minutes` must be positive or None"):
        tiny_config(shared_data, photos, tmp_path, max_minutes=0).validate()


def test_resume_at_another_scale_recomputes_the_gram_targets(shared_data, photos, tmp_path, two_step_run):
    from cin_style.data import load_style_images
    from cin_style.losses import PerceptualLoss

    run = copy_run(two_step_run, tmp_path / "run")  # 2 steps at 32-px crops, Gram targets at 48 px
    assert state(run, 2)["config"]["style_image_size"] == 48
    training.train(
        tiny_config(shared_data, photos, run, steps=4, image_size=48, style_image_size=64), resume=True, verbose=0
    )
    _, images = load_style_images([str(shared_data / "styles" / f"{n}.jpg") for n in TRAIN_STYLES], 64)
    expected = PerceptualLoss().style_grams(images)
    with np.load(run / "checkpoints" / "ckpt-00000004" / "grams.npz") as saved:
        for name, table in expected.items():
            np.testing.assert_allclose(saved[name], keras.ops.convert_to_numpy(table), rtol=1e-5, atol=1e-7)
    assert state(run, 4)["config"]["image_size"] == 48


def test_checkpoints_of_the_first_format_still_resume(shared_data, photos, tmp_path, two_step_run, four_step_run):
    # Format 1 stored every optimiser variable by position: [0] the step, [1] the rate, then the slots.
    run = copy_run(two_step_run, tmp_path / "run")  # 2 steps
    folder = run / "checkpoints" / "ckpt-00000002"
    with np.load(folder / "optimizer.npz") as saved:
        slots = [saved[k] for k in sorted(saved.files) if k.startswith("slot_")]
        old = [saved["iterations"], np.float32(1e-3), *slots]
    np.savez(folder / "optimizer.npz", *old)
    resumed = training.train(tiny_config(shared_data, photos, run), resume=True, verbose=0)
    assert [h["step"] for h in resumed.history] == [3, 4]
    straight = four_step_run
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):  # moments and step restored
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_init_weights_starts_a_new_schedule_from_a_trained_model(shared_data, photos, tmp_path, two_step_run):
    from cin_style.network import build_transformer

    trained, first = two_step_run, run_dir(two_step_run)  # read only: init_weights copies from it
    # A learning rate so small that Adam's steps (about the rate each) leave the start visible.
    still = dict(steps=1, checkpoint_every=1, learning_rate=1e-10, seed=1)
    for source in (
        first,
        first / "model.keras",
        first / "checkpoints" / "ckpt-00000002",
    ):
        started = training.train(
            tiny_config(shared_data, photos, tmp_path / f"from_{source.name}", init_weights=str(source), **still),
            verbose=0,
        )
        for a, b in zip(trained.model.get_weights(), started.model.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6)
    # A half-precision copy (smaller to carry) is cast to the run's float32 weights.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float16")
    try:
        half = build_transformer(2, alpha=0.25)
    finally:
        keras.config.set_dtype_policy(previous)
    half.set_weights(trained.model.get_weights())
    half.save(tmp_path / "half.keras")
    started = training.train(
        tiny_config(shared_data, photos, tmp_path / "from_half", init_weights=str(tmp_path / "half.keras"), **still),
        verbose=0,
    )
    assert all(w.dtype == np.float32 for w in started.model.get_weights())
    for a, b in zip(trained.model.get_weights(), started.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4)
    fresh = training.train(tiny_config(shared_data, photos, tmp_path / "fresh", **still), verbose=0)
    assert not np.allclose(trained.model.get_weights()[0], fresh.model.get_weights()[0], atol=1e-3)


def test_init_weights_of_another_network_or_a_missing_path_is_refused(shared_data, photos, tmp_path, two_step_run):
    first = run_dir(two_step_run)  # a trained run at alpha 0.25, read only
    wider = tiny_config(shared_data, photos, tmp_path / "wider", alpha=0.5, init_weights=str(first))
    with pytest.raises(ValueError, match="does not match this run's"):
        training.train(wider, verbose=0)
    with pytest.raises(ValueError, match="`init_weights`: no such model, folder or checkpoint"):
        tiny_config(shared_data, photos, tmp_path / "x", init_weights=str(tmp_path / "nowhere.keras")).validate()


def test_init_weights_takes_a_folders_model_then_its_checkpoints_then_an_export(
    shared_data, photos, tmp_path, two_step_run, monkeypatch
):
    import importlib.util

    from cin_style.model_io import initial_weights_kind

    first = run_dir(two_step_run)  # read only
    folder = tmp_path / "run"
    (folder / "7").mkdir(parents=True)
    (folder / "7" / "saved_model.pb").write_bytes(b"")  # an export beside the run: read only when nothing else is
    assert initial_weights_kind(folder) == "saved_model"
    shutil.copytree(first / "checkpoints", folder / "checkpoints")
    assert initial_weights_kind(folder) == "checkpoint"
    assert initial_weights_kind(folder / "checkpoints" / "ckpt-00000002") == "checkpoint"
    shutil.copy(first / "model.keras", folder / "model.keras")
    assert initial_weights_kind(folder) == initial_weights_kind(folder / "model.keras") == "keras"
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    for nothing in ("empty", "notes.txt"):
        assert initial_weights_kind(tmp_path / nothing) is None
        with pytest.raises(ValueError, match=f"`init_weights`: no model in {tmp_path / nothing}"):
            tiny_config(shared_data, photos, tmp_path / "x", init_weights=str(tmp_path / nothing)).validate()

    # Where TensorFlow is missing, an export is refused before the run starts (here: made to look missing).
    export = tiny_config(shared_data, photos, tmp_path / "x", init_weights=str(tmp_path / "run" / "7"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    with pytest.raises(ValueError, match="is an exported SavedModel; reading it needs TensorFlow"):
        export.validate()


def test_odd_alpha_trains_in_mixed_precision_and_grows_by_a_style(shared_data, photos, tmp_path):
    from cin_style.network import alpha_of

    # alpha=0.3 used to read back as 0.3125: the float32 copy after the last step and
    # add_styles then failed on weight shapes.
    result = training.train(
        tiny_config(shared_data, photos, tmp_path / "base", alpha=0.3, steps=2, dtype_policy="mixed_bfloat16"),
        verbose=0,
    )
    assert alpha_of(result.model) == 0.3
    assert all(w.dtype == np.float32 for w in result.model.get_weights())
    config = tiny_config(
        shared_data,
        photos,
        tmp_path / "grown",
        steps=1,
        checkpoint_every=1,
        styles=[str(shared_data / "styles" / "van_gogh_starry_night.jpg")],
    )
    grown = training.add_styles(result.model, result.style_names, config, verbose=0)
    assert grown.style_names == [*TRAIN_STYLES, "van_gogh_starry_night"] and alpha_of(grown.model) == 0.3
    with open(tmp_path / "grown" / "styles.json") as stream:
        assert json.load(stream)["alpha"] == 0.3


@pytest.mark.parametrize("damage", ["truncated_weights", "bad_json"])
def test_unreadable_newest_checkpoint_falls_back_to_the_previous_one(
    shared_data, photos, tmp_path, caplog, damage, four_step_run, six_step_run
):
    run = copy_run(four_step_run, tmp_path / "run")  # 4 steps, checkpoints at 2 and 4
    newest = run / "checkpoints" / "ckpt-00000004"
    if damage == "truncated_weights":
        data = (newest / "transformer.weights.h5").read_bytes()
        (newest / "transformer.weights.h5").write_bytes(data[: len(data) // 2])
    else:
        (newest / "state.json").write_text('{"step": 4, "style_na')
    with caplog.at_level("WARNING", logger="cin_style"):
        resumed = training.train(
            tiny_config(shared_data, photos, run, steps=6, checkpoint_every=2), resume=True, verbose=0
        )
    assert [h["step"] for h in resumed.history] == [3, 4, 5, 6]  # from step 2, not from scratch or a crash
    assert "Skipping unreadable checkpoint" in caplog.text and "ckpt-00000004" in caplog.text
    assert (run / "checkpoints" / "unreadable-ckpt-00000004").is_dir()  # kept for inspection
    straight = six_step_run
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_set_aside_for_a_rewrite_is_restored_and_stale_temporaries_removed(
    shared_data, photos, tmp_path, two_step_run
):
    run = copy_run(two_step_run, tmp_path / "run")  # 2 steps
    root = run / "checkpoints"
    # What a kill between "old one set aside" and "new one renamed in" leaves, plus half-written files.
    (root / "ckpt-00000002").rename(root / ".old-ckpt-00000002-99999")
    (root / ".tmp-ckpt-00000004-99999").mkdir()
    (root / ".tmp-ckpt-00000004-99999" / "grams.npz").write_bytes(b"half")
    (run / ".tmp-99999-model.keras").write_bytes(b"half")
    resumed = training.train(tiny_config(shared_data, photos, run), resume=True, verbose=0)
    assert [h["step"] for h in resumed.history] == [3, 4]
    assert sorted(p.name for p in root.iterdir()) == ["ckpt-00000002", "ckpt-00000004"]
    assert not list(run.glob(".tmp-*"))


def test_a_second_run_in_a_held_output_dir_is_refused_and_a_dead_holder_is_taken_over(shared_data, photos, tmp_path):
    import subprocess
    import sys

    hold = "import sys, time\nfrom cin_style.output_lock import folder_lock\nwith folder_lock(sys.argv[1]):\n"
    hold += "    print('held', flush=True)\n    time.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(training.OutputDirBusyError, match=f"in use by another training run \\(pid {holder.pid}\\)"):
            training.train(tiny_config(shared_data, photos, tmp_path, steps=2), verbose=0)
        assert not (tmp_path / "checkpoints").exists()
    finally:
        holder.kill()  # SIGKILL: its lock file stays, with its pid
        holder.wait()
    assert (tmp_path / ".lock").read_text() == str(holder.pid)
    result = training.train(tiny_config(shared_data, photos, tmp_path, steps=2), verbose=0)
    assert [h["step"] for h in result.history] == [1, 2]
    assert not (tmp_path / ".lock").exists()  # released at the end


def test_resume_refuses_checkpoints_of_another_kind_of_run(shared_data, photos, tmp_path, two_step_run):
    base = two_step_run
    copy_run(base, tmp_path / "base")  # a train run's folder (2 steps)
    extra = [str(shared_data / "styles" / "van_gogh_starry_night.jpg")]
    # add_styles into the base's own folder: its checkpoints are a training run's.
    into_base = tiny_config(shared_data, photos, tmp_path / "base", steps=1, checkpoint_every=1, styles=extra)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        training.add_styles(base.model, base.style_names, into_base, verbose=0)
    with pytest.raises(ValueError, match=r"written by a train run \(cin-style-train\)"):
        training.add_styles(base.model, base.style_names, into_base, resume=True, verbose=0)
    grown_dir = tmp_path / "grown"
    training.add_styles(
        base.model,
        base.style_names,
        tiny_config(shared_data, photos, grown_dir, steps=1, checkpoint_every=1, styles=extra),
        verbose=0,
    )
    # cin-style-train --resume on an add-styles folder would retrain every style: refused, naming the command.
    with pytest.raises(ValueError, match=r"written by a add_styles run \(cin-style-add-style"):
        training.train(tiny_config(shared_data, photos, grown_dir, steps=2, styles=[*extra]), resume=True, verbose=0)
    before = sorted(p.name for p in (grown_dir / "checkpoints").iterdir())
    assert before == ["ckpt-00000001"]
