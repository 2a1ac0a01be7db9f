"""Teachers: a slim student learns a trained model's outputs (distillation), or is anchored to them while
it learns the paintings (the perceptual loss plus a teacher term), with the training run's checkpoints."""

import json

import keras
import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import STYLE_NAMES, saved_style_model, tiny_config

from cin_style.distillation import FEATURE_LAYER, DistillTrainer
from cin_style.network import build_transformer

pytestmark = pytest.mark.tensorflow_only


def _outputs(model, photos, num_styles):
    """Every style of `model` on every photo: (styles * photos, h, w, 3)."""
    batch = np.concatenate([photos] * num_styles)
    weights = np.repeat(np.eye(num_styles, dtype="float32"), len(photos), axis=0)
    return keras.ops.convert_to_numpy(model({"image": batch, "style_weights": weights}, training=False))


def _teacher_and_unseen_photos(tmp_path, shared_data, load_image):
    """A saved 3-style teacher (its file and model) and two 32-px test photos no run trains on."""
    from cin_style.model_io import load_transformer

    (tmp_path / "teacher").mkdir()
    teacher_path = saved_style_model(tmp_path / "teacher")
    teacher, _, _ = load_transformer(teacher_path)
    unseen = np.concatenate([load_image(p, 32) for p in sorted((shared_data / "content" / "test").glob("*"))[:2]])
    return teacher_path, teacher, unseen


def test_distilling_brings_the_students_outputs_to_the_teachers_on_unseen_photos(
    shared_data, photos, tmp_path, load_image
):
    from cin_style.training import train

    teacher_path, teacher, unseen = _teacher_and_unseen_photos(tmp_path, shared_data, load_image)
    keras.utils.set_random_seed(0)
    fresh = build_transformer(3, alpha=0.25)
    before = np.abs(_outputs(fresh, unseen, 3) - _outputs(teacher, unseen, 3)).mean()
    config = tiny_config(
        shared_data,
        photos,
        tmp_path / "run",
        styles=[],
        teacher=str(teacher_path),
        feature_weight=0.0,
        steps=60,
        checkpoint_every=60,
        run_eagerly=False,  # 60 steps: compiling pays for itself
        learning_rate=1e-2,
    )
    result = train(config, verbose=0)
    after = np.abs(_outputs(result.model, unseen, 3) - _outputs(teacher, unseen, 3)).mean()
    # A random teacher is a hard target for 60 steps: 0.207 -> ~0.17 when written; a student that ignored it
    # (or whose gradient was cut) would not move toward it at all.
    assert after < 0.9 * before, (before, after)
    assert result.style_names == STYLE_NAMES
    saved = json.loads((tmp_path / "run" / "styles.json").read_text())
    assert saved["style_names"] == STYLE_NAMES and saved["alpha"] == 0.25
    assert saved["training"]["teacher"] == str(teacher_path)


def test_distill_loss_is_zero_for_the_teachers_own_weights_and_pixel_l1_otherwise(vgg_weights, rng):
    teacher = build_transformer(2, alpha=0.25)
    student = build_transformer(2, alpha=0.25)
    student.set_weights(teacher.get_weights())
    images = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
    draws = np.array([0.2, 0.7], "float32")  # styles 0 and 1
    trainer = DistillTrainer(student, teacher, feature_weight=0.5, vgg_weights=vgg_weights, seed=0)
    batch = {"images": images, "style_draws": draws}
    same = trainer.compute_loss(batch, y_pred=trainer(batch))
    assert float(same) == 0.0
    student.set_weights([w + rng.normal(0, 0.02, w.shape).astype("float32") for w in student.get_weights()])
    for tracker in trainer.trackers.values():  # means over calls: start afresh
        tracker.reset_state()
    pred = trainer(batch)
    total = float(trainer.compute_loss(batch, y_pred=pred))
    stylized, target = (keras.ops.convert_to_numpy(pred[k]) for k in ("stylized", "target"))
    pixel = np.abs(stylized - target).mean()
    feature = float(trainer.trackers["feature"].result())
    assert pixel > 0 and feature > 0
    np.testing.assert_allclose(float(trainer.trackers["pixel"].result()), pixel, rtol=1e-5)
    np.testing.assert_allclose(total, pixel + 0.5 * feature, rtol=1e-5)
    # The weighting names the layer it measures, and 0 builds no VGG at all.
    assert FEATURE_LAYER == "block2_conv1"
    assert DistillTrainer(student, teacher, feature_weight=0.0).features is None
    with pytest.raises(ValueError, match="The teacher has 2 styles and the student 3"):
        DistillTrainer(build_transformer(3, alpha=0.25), teacher)


def test_distill_cli_run_resumes_and_is_not_resumed_as_perceptual_training(shared_data, photos, tmp_path, capsys):
    from cin_style.training import train

    (tmp_path / "teacher").mkdir()
    teacher_path = saved_style_model(tmp_path / "teacher")
    out = tmp_path / "run"
    args = [f"--teacher={teacher_path}", f"--content={photos}", f"--output_dir={out}", "--alpha=0.25"]
    small = ["--image_size=32", "--batch_size=2", "--checkpoint_every=2", "--seed=0", "--notensorboard"]
    # cin-style-train's main in this process (test_training kills and resumes the tool as a process).
    status, _, stderr = run_tool(capsys, "train", *args, *small, "--steps=2")
    assert status == 0, stderr[-2000:]
    assert (out / "checkpoints" / "ckpt-00000002").is_dir()
    state = json.loads((out / "checkpoints" / "ckpt-00000002" / "state.json").read_text())
    assert state["kind"] == "distill" and state["style_names"] == STYLE_NAMES
    config = tiny_config(shared_data, photos, out, styles=[], teacher=str(teacher_path))
    resumed = train(config, resume=True, verbose=0)
    assert resumed.resumed_from.endswith("ckpt-00000002")
    assert [h["step"] for h in resumed.history] == [3, 4]
    assert {"pixel_loss", "feature_loss"} <= set(resumed.history[-1])
    with pytest.raises(ValueError, match=r"written by a distill run \(cin-style-train --teacher="):
        train(tiny_config(shared_data, photos, out, steps=6), resume=True, verbose=0)
    with pytest.raises(ValueError, match="`teacher`: no such model: /no/such/model"):
        train(tiny_config(shared_data, photos, tmp_path / "other", styles=[], teacher="/no/such/model"), verbose=0)


def test_teacher_term_adds_its_weight_times_the_pixel_l1_to_the_perceptual_loss(vgg_weights, rng):
    from cin_style.losses import PerceptualLoss
    from cin_style.trainer import StyleTrainer

    keras.utils.set_random_seed(0)
    network, teacher = build_transformer(2, alpha=0.25), build_transformer(2, alpha=0.25)
    loss = PerceptualLoss(vgg_weights=vgg_weights)
    grams = loss.style_grams(rng.uniform(size=(2, 48, 48, 3)).astype("float32"))
    batch = {"images": rng.uniform(size=(2, 32, 32, 3)).astype("float32"), "style_draws": np.array([0.2, 0.7])}
    plain = StyleTrainer(network, loss, grams, seed=0)
    anchored = StyleTrainer(network, loss, grams, seed=0, teacher=teacher, teacher_weight=3.0)
    perceptual = float(plain.compute_loss(batch, y_pred=plain(batch)))
    pred = anchored(batch)
    total = float(anchored.compute_loss(batch, y_pred=pred))
    pixel = np.abs(keras.ops.convert_to_numpy(pred["stylized"]) - keras.ops.convert_to_numpy(pred["target"])).mean()
    assert pixel > 0.01
    np.testing.assert_allclose(float(anchored.trackers["teacher"].result()), pixel, rtol=1e-5)
    np.testing.assert_allclose(total, perceptual + 3.0 * pixel, rtol=1e-5)
    teacher.set_weights(network.get_weights())  # the network's own outputs: no teacher term
    np.testing.assert_allclose(float(anchored.compute_loss(batch, y_pred=anchored(batch))), perceptual, rtol=1e-6)
    assert "teacher" not in plain.trackers
    with pytest.raises(ValueError, match="The teacher has 2 styles and the network 3"):
        StyleTrainer(build_transformer(3, alpha=0.25), loss, None, teacher=teacher)


def test_training_on_paintings_with_a_teacher_pulls_the_outputs_toward_the_teachers(
    shared_data, photos, tmp_path, load_image
):
    from cin_style.training import train

    teacher_path, teacher, unseen = _teacher_and_unseen_photos(tmp_path, shared_data, load_image)
    paintings = [str(shared_data / "styles" / f"{name}.jpg") for name in STYLE_NAMES]
    distance = {}
    for weight in (0.0, 50.0):
        config = tiny_config(
            shared_data,
            photos,
            tmp_path / f"run{weight:g}",
            styles=paintings,
            teacher=str(teacher_path),
            teacher_weight=weight,
            style_weight=1e-3,  # a fresh network's style loss dwarfs everything: the teacher term must lead
            steps=60,
            checkpoint_every=60,
            run_eagerly=False,  # 60 steps: compiling pays for itself
            learning_rate=1e-2,
        )
        result = train(config, verbose=0)
        distance[weight] = np.abs(_outputs(result.model, unseen, 3) - _outputs(teacher, unseen, 3)).mean()
        assert {"teacher_loss", "style_loss", "content_loss"} <= set(result.history[-1])
    # Same seed, data and paintings: only the teacher term differs (0.222 vs 0.164 when written).
    assert distance[50.0] < 0.8 * distance[0.0], distance
    saved = json.loads((tmp_path / "run50" / "styles.json").read_text())
    assert saved["training"]["teacher_weight"] == 50.0 and saved["style_names"] == STYLE_NAMES
    with pytest.raises(
        ValueError, match=r"paints styles \['hokusai_great_wave', 'munch_the_scream', 'picabia_udnie'\]"
    ):
        train(tiny_config(shared_data, photos, tmp_path / "other", teacher=str(teacher_path)), verbose=0)
    with pytest.raises(ValueError, match="`teacher_weight` must be non-negative"):
        train(
            tiny_config(shared_data, photos, tmp_path / "neg", teacher=str(teacher_path), teacher_weight=-1), verbose=0
        )
