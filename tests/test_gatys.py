"""Gatys optimisation under the training loss, its CLI, and the quality benchmark.

Everything runs under TensorFlow and JAX; the tests marked `no_tensorflow` also
run where TensorFlow is not installed, and one pins TensorFlow against JAX.
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import distinct_style_model
from PIL import Image


@pytest.fixture(scope="module")
def loss(vgg_weights):
    from cin_style.losses import PerceptualLoss

    return PerceptualLoss(vgg_weights=vgg_weights)


@pytest.fixture(scope="module")
def photo(shared_data, load_image):
    return load_image(shared_data / "content" / "test" / "kodim23.jpg", 40)[0]


@pytest.fixture(scope="module")
def styles(shared_data, load_image):
    return [
        load_image(shared_data / "styles" / f"{n}.jpg", 48)[0] for n in ("van_gogh_starry_night", "hokusai_great_wave")
    ]


@pytest.mark.no_tensorflow
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimisation_lowers_the_training_loss_below_the_photos(loss, photo, styles, optimizer):
    from cin_style.gatys import optimize
    from cin_style.losses import mix_targets

    seen = []
    result = optimize(
        photo,
        styles[0],
        steps=8,
        optimizer=optimizer,
        perceptual_loss=loss,
        style_size=48,
        callback=lambda step, parts: seen.append(step),
        verbose=0,
        learning_rate=0.05,
    )
    targets = mix_targets(loss.style_grams([styles[0]]), np.ones((1, 1), np.float32))
    photo_total = float(np.asarray(loss(photo[None], photo[None], targets)["total"])[0])
    again = float(np.asarray(loss(result.image[None], photo[None], targets)["total"])[0])
    assert result.image.shape == photo.shape and result.image.dtype == np.float32
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert list(result.losses) == ["total", "content", "style", "tv"]
    assert result.losses["total"] == pytest.approx(again, rel=1e-4)  # exactly the training loss
    assert again < 0.8 * photo_total
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 1
    assert result.seconds > 0


def test_a_blend_of_styles_sits_between_them(loss, photo, styles):
    from cin_style import image_io
    from cin_style.gatys import optimize
    from cin_style.losses import mix_targets

    grams = loss.style_grams([image_io.resize_shorter_side(s, 48) for s in styles])  # as optimize prepares them

    def style_loss(image, weights):
        targets = mix_targets(grams, np.asarray([weights], np.float32))
        return float(np.asarray(loss(image[None], photo[None], targets)["style"])[0])

    settings = {"steps": 8, "learning_rate": 0.05, "perceptual_loss": loss, "style_size": 48, "verbose": 0}
    first, second = optimize(photo, styles[0], **settings), optimize(photo, styles[1], **settings)
    half = optimize(photo, styles, style_blend=[1, 1], **settings)
    # The blend optimised against the weighted mean of the styles' Gram targets (weights normalised).
    assert half.losses["style"] == pytest.approx(style_loss(half.image, [0.5, 0.5]), rel=1e-4)
    # Measured against either style, the 50/50 result lies between the two single-style results.
    assert style_loss(first.image, [1, 0]) < style_loss(half.image, [1, 0]) < style_loss(second.image, [1, 0])
    assert style_loss(second.image, [0, 1]) < style_loss(half.image, [0, 1]) < style_loss(first.image, [0, 1])
    # A one-hot blend is that style alone: the same pixels, step for step.
    only_second = optimize(photo, styles, style_blend=[0, 2], **settings)
    np.testing.assert_allclose(only_second.image, second.image, rtol=0, atol=1e-6)
    assert only_second.losses == pytest.approx(second.losses, rel=1e-6)


@pytest.mark.no_tensorflow
def test_bad_settings_are_named(loss, photo, styles):
    from cin_style.gatys import optimize

    with pytest.raises(ValueError, match=r"`optimizer` must be one of \('adam', 'lbfgs'\). Received: optimizer='sgd'"):
        optimize(photo, styles[0], steps=1, optimizer="sgd", perceptual_loss=loss)
    with pytest.raises(ValueError, match="`init` must be one of"):
        optimize(photo, styles[0], steps=1, init="zeros", perceptual_loss=loss)
    with pytest.raises(ValueError, match=r"`style_blend` needs one weight per style image \(2\)"):
        optimize(photo, styles, style_blend=[1], steps=1, perceptual_loss=loss)
    for blend, problem in (([1, -1], "must be non-negative"), ([1, np.nan], "must be finite"), ([0, 0], "sum to zero")):
        with pytest.raises(ValueError, match=f"`style_blend` weights {problem}"):
            optimize(photo, styles, style_blend=blend, steps=1, perceptual_loss=loss)


@pytest.mark.no_tensorflow
def test_other_backends_are_refused_by_name(loss, photo, styles, monkeypatch):
    import keras

    from cin_style.gatys import optimize

    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ValueError, match=r"backends \('tensorflow', 'jax'\). Received: backend='torch'"):
        optimize(photo[:16, :16], styles[0][:16, :16], steps=1, perceptual_loss=loss, style_size=16, verbose=0)


AGREEMENT_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from cin_style.gatys import optimize

    result = optimize(sys.argv[1], sys.argv[2], steps=4, size=32, style_size=32, learning_rate=0.05, verbose=0)
    np.save(sys.argv[3], result.image)
    print(json.dumps([h["total"] for h in result.history] + [result.losses["total"]]))
""")


@pytest.mark.tensorflow_only
def test_tensorflow_and_jax_agree(shared_data, tmp_path):
    """Four Adam steps on a 32 px photo give the same losses and image under both backends."""
    from cin_style.gatys import optimize

    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed")
    photo, style = shared_data / "content" / "test" / "kodim23.jpg", shared_data / "styles" / "munch_the_scream.jpg"
    ours = optimize(photo, style, steps=4, size=32, style_size=32, learning_rate=0.05, verbose=0)
    tf_losses = np.array([h["total"] for h in ours.history] + [ours.losses["total"]])
    command = [sys.executable, "-c", AGREEMENT_SCRIPT, str(photo), str(style), str(tmp_path / "jax.npy")]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    jax_losses, jax_image = np.array(json.loads(done.stdout.strip().splitlines()[-1])), np.load(tmp_path / "jax.npy")
    assert tf_losses[-1] < 0.9 * tf_losses[0]
    np.testing.assert_allclose(jax_losses, tf_losses, rtol=1e-5)
    # Adam moves a pixel whose gradient is near zero by a full step either way: allow a few such pixels.
    difference = np.abs(jax_image - ours.image)
    assert difference.mean() < 1e-4 and difference.max() < 0.1


def test_images_are_checked_and_converted_like_the_stylizers(loss, photo, styles):
    from cin_style.gatys import optimize

    with pytest.raises(ValueError, match=r"values in \[0, 1\]; got \[0, 255\]"):
        optimize(photo * 255.0, styles[0], steps=1, perceptual_loss=loss)
    with pytest.raises(ValueError, match="NaN"):
        optimize(photo, np.full_like(styles[0], np.nan), steps=1, perceptual_loss=loss)
    with pytest.raises(ValueError, match=r"The content must be one image. Received: shape=\(2, "):
        optimize(np.stack([photo, photo]), styles[0], steps=1, perceptual_loss=loss)
    grey = np.round(photo.mean(axis=-1) * 255).astype(np.uint8)  # (h, w) uint8: grey becomes RGB
    result = optimize(grey, styles[0], steps=1, perceptual_loss=loss, style_size=48, verbose=0)
    assert result.image.shape == photo.shape


def test_gatys_cli_writes_the_image_and_refuses_to_overwrite(shared_data, tmp_path):
    out = tmp_path / "g.png"
    command = [
        sys.executable,
        "-m",
        "cin_style.cli.gatys",
        f"--content={shared_data / 'content' / 'test' / 'kodim05.jpg'}",
        f"--style={shared_data / 'styles' / 'munch_the_scream.jpg'}",
        f"--output={out}",
        "--steps=2",
        "--size=40",
        "--style_size=48",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert Image.open(out).size == (40, 27) and "after 2 adam steps" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode != 0 and "exists; pass --overwrite" in second.stderr
    missing = subprocess.run(
        command[:4] + [f"--style={tmp_path / 'nope.jpg'}", f"--output={tmp_path / 'h.png'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode != 0 and "Image file not found" in missing.stderr
    for output in ("g.bmp2", "g"):  # refused before the optimisation, not after it
        unknown = subprocess.run(
            command[:-4] + [f"--output={tmp_path / output}", "--steps=2", "--size=40", "--style_size=48"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert unknown.returncode == 1 and "--output must end in an image extension" in unknown.stderr
        assert not (tmp_path / output).exists() and "steps in" not in unknown.stdout


@pytest.mark.tensorflow_only  # the script's bookkeeping; Gatys and refining run under JAX in the other tests
def test_quality_benchmark_small_run_produces_table_csv_sheet_and_cache(shared_data, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import quality

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    distinct_style_model(num_styles=1).save(model_dir / "model.keras")
    (model_dir / "styles.json").write_text(
        json.dumps({"style_names": ["munch_the_scream"], "training": {"style_image_size": 48}})
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("kodim05", "kodim23"):
        Image.open(shared_data / "content" / "test" / f"{name}.jpg").save(photos / f"{name}.jpg")
    printed = []
    settings = dict(steps=6, size=40, output_dir=str(tmp_path / "out"), thumb=32, verbose=0, refine_steps=(0, 2, 4, 6))
    rows = quality.run(
        str(model_dir), str(photos), str(shared_data / "styles"), log=printed.append, reference_refine=4, **settings
    )
    assert len(rows) == 2
    for row in rows:
        assert row["gatys_total"] < row["photo_total"]
        assert row["ours_seconds"] > 0 and row["gatys_seconds"] > 0
        # Refining from our painting: step 0 is the painting itself, each measured count lowers the loss.
        assert row["refine0_total"] == pytest.approx(row["ours_total"], rel=1e-4)
        assert row["refine4_total"] < row["refine0_total"] and row["refine6_total"] < row["refine0_total"]
        assert row["refine0_seconds"] < row["refine2_seconds"] < row["refine4_seconds"] < row["refine6_seconds"]
        assert row["reference_refine"] == 4  # below the longest: its picture refined again to 4 steps
        # The refine step that reaches Gatys(6)'s loss: by step 4 when ours+4 is at or under it.
        reached = row["refine_steps_to_gatys"]
        assert row["refine4_total"] > row["gatys_total"] or (reached is not None and reached <= 4)
        assert reached is None or 0 <= reached <= 6
        # The Gatys step that reaches ours+4: one exists when Gatys(6) ends at or under it.
        crossing = row["gatys_steps_to_refine"]
        assert crossing is None or 1 <= crossing <= 6
        assert (crossing is not None) or row["gatys_total"] > row["refine4_total"]
    text = printed[-1]
    assert "munch_the_scream" in text and "OVERALL" in text and "mean ratio ours/Gatys" in text
    assert "ours+4 steps:" in text and "Gatys(6)'s loss (target <= 1.2)" in text
    with open(tmp_path / "out" / "quality.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 2
    # Each row: the photo, then ours, ours refined and Gatys, whole (40 x 27 photos: 32 x 22), each over its label.
    from cin_style.sheets import label_height

    assert Image.open(tmp_path / "out" / "quality_sheet.png").size == (32 * 4, 2 * (22 + label_height(32)))
    cached = sorted(os.listdir(tmp_path / "out" / "cache"))
    assert len(cached) == 2
    settings["refine_steps"] = ()  # the cache is Gatys': no refining the second time
    again = quality.run(str(model_dir), str(photos), str(shared_data / "styles"), log=lambda *_: None, **settings)
    assert [r["gatys_total"] for r in again] == [r["gatys_total"] for r in rows]
    assert sorted(os.listdir(tmp_path / "out" / "cache")) == cached


@pytest.fixture(scope="module")
def carrying_model(tmp_path_factory, shared_data):
    """The test model as a training run carrying its styles' paintings at 48 px."""
    from helpers import STYLE_NAMES, saved_style_model

    from cin_style.paintings import RUN_FOLDER, write_paintings

    folder = saved_style_model(tmp_path_factory.mktemp("carrying")).parent
    write_paintings(folder / RUN_FOLDER, [shared_data / "styles" / f"{name}.jpg" for name in STYLE_NAMES], 48)
    return folder


@pytest.mark.tensorflow_only  # the script's bookkeeping; refining itself runs under JAX in test_refine
def test_working_size_benchmark_compares_the_upsampled_change_tiles_and_the_whole_image(
    carrying_model, shared_data, tmp_path
):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import refine_working_size

    from cin_style.sheets import label_height

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(shared_data / "content" / "test" / "kodim05.jpg").resize((48, 32)).save(photos / "kodim05.png")
    printed = []
    settings = dict(steps=3, output_dir=str(tmp_path / "out"), thumb=48, log=printed.append, tile=32)
    (row,) = refine_working_size.run(str(carrying_model), str(photos), working_side=24, **settings)
    assert row["size"] == "48x32" and row["style"] == "hokusai_great_wave"  # the model's first style
    # The whole image and its tiles are optimised under the very loss measured here.
    assert row["full_total"] < row["painted_total"] and row["tiles_total"] < row["painted_total"]
    assert "of the whole image's loss drop" in printed[-1] and "at 24 upsampled" in printed[-1]
    sheet = Image.open(tmp_path / "out" / "refine_working_size.png")
    assert sheet.size == (48 * 5, 32 + label_height(48))  # photo, painting, upsampled, tiles, whole
    with pytest.raises(ValueError, match="not larger than the working size 48 and the tile 32: nothing to compare"):
        refine_working_size.run(str(carrying_model), str(photos), working_side=48, **settings)


def test_gatys_cli_starts_from_the_models_painting_in_the_nearest_or_the_given_style(
    carrying_model, shared_data, tmp_path, capsys
):
    from cli_in_process import run_tool
    from helpers import saved_style_model

    from cin_style import Stylizer, image_io

    photo = shared_data / "content" / "test" / "kodim05.jpg"
    common = [f"--content={photo}", "--steps=1", "--size=40", "--style_size=48", "--learning_rate=0"]
    # A painting the model does not carry: the left two thirds of The Scream, at another size.
    with Image.open(shared_data / "styles" / "munch_the_scream.jpg") as scream:
        scream.crop((0, 0, scream.width * 2 // 3, scream.height)).save(tmp_path / "scream_left.png")
    munch = f"--style={tmp_path / 'scream_left.png'}"
    # Adam at a zero step size leaves the start as it is: the output is the painting it started from.
    model = Stylizer.load(carrying_model)
    photo_at_40 = image_io.resize_shorter_side(image_io.read_image(photo), 27)  # kodim05 at --size=40: 40x27
    start = model.stylize(photo_at_40, "munch_the_scream")
    status, stdout, stderr = run_tool(
        capsys, "gatys", *common, munch, f"--init={carrying_model}", f"--output={tmp_path / 'nearest.png'}"
    )
    assert status == 0, stderr[-2000:]
    # Part of The Scream is nearest The Scream by Gram distance, of the three the model carries.
    assert f"Starting from {carrying_model}'s painting in munch_the_scream, its style nearest" in stdout
    distances = [float(part.split()[-1]) for part in stdout.split("distance (")[1].split(")")[0].split(", ")]
    assert len(distances) == 3 and 0 < distances[0] < distances[1] <= distances[2]
    written = np.asarray(Image.open(tmp_path / "nearest.png"), np.float32) / 255
    np.testing.assert_allclose(written, start, atol=1 / 255 + 1e-6)
    status, stdout, stderr = run_tool(
        capsys, "gatys", *common, munch, f"--init={carrying_model}:0", f"--output={tmp_path / 'given.png'}"
    )
    assert status == 0 and f"Starting from {carrying_model}'s painting in hokusai_great_wave" in stdout
    given = np.asarray(Image.open(tmp_path / "given.png"), np.float32) / 255
    np.testing.assert_allclose(given, model.stylize(photo_at_40, 0), atol=1 / 255 + 1e-6)
    status, _, stderr = run_tool(
        capsys, "gatys", *common, munch, f"--init={tmp_path / 'nowhere'}", f"--output={tmp_path / 'x.png'}"
    )
    assert status == 1 and "--init must be content, noise or MODEL[:STYLE]" in stderr
    status, _, stderr = run_tool(
        capsys, "gatys", *common, munch, f"--init={carrying_model}:no_such_style", f"--output={tmp_path / 'x.png'}"
    )
    assert status == 1 and "Unknown style name 'no_such_style'" in stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    saved_style_model(bare)  # carries no paintings: it cannot choose the nearest, but can start from a named style
    status, _, stderr = run_tool(capsys, "gatys", *common, munch, f"--init={bare}", f"--output={tmp_path / 'x.png'}")
    assert status == 1 and "carries no paintings of its styles to find the nearest by" in stderr
    assert f"--init={bare}:STYLE" in stderr
    status, _, stderr = run_tool(
        capsys, "gatys", *common, munch, f"--init={bare}:1", f"--output={tmp_path / 'named.png'}"
    )
    assert status == 0, stderr[-2000:]
    assert not (tmp_path / "x.png").exists()
