"""Quality mode: `Stylizer.stylize(refine=N)` and the paintings a model carries."""

import numpy as np
import pytest
from helpers import STYLE_NAMES, saved_style_model
from PIL import Image

from cin_style import Stylizer
from cin_style.paintings import RUN_FOLDER, PaintingsError, fitted, painting_file, write_paintings

PAINTING_SIZE = 48  # the style-target size recorded in the test model's training config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shared_data):
    """The test model as a training run that carries the paintings of its styles, recorded at 48 px."""
    import json

    folder = saved_style_model(tmp_path_factory.mktemp("carrying")).parent
    styles = json.loads((folder / "styles.json").read_text())
    styles["training"] = {"style_image_size": PAINTING_SIZE, "content_weight": 1.0, "style_weight": 0.3}
    (folder / "styles.json").write_text(json.dumps(styles))
    paintings = [shared_data / "styles" / f"{name}.jpg" for name in STYLE_NAMES]
    write_paintings(folder / RUN_FOLDER, paintings, PAINTING_SIZE)
    return folder


@pytest.fixture(scope="module")
def stylizer(model_dir):
    return Stylizer.load(model_dir)


@pytest.fixture(scope="module")
def photo(shared_data):
    with Image.open(shared_data / "content" / "test" / "kodim23.jpg") as image:
        return np.asarray(image.convert("RGB").resize((48, 32)), np.float32) / 255.0


@pytest.fixture(scope="module")
def perceptual(stylizer):
    """The loss the model was trained under, as refining minimises it."""
    from cin_style.refine import model_loss

    return model_loss(stylizer.training_config)


def _carried(stylizer, style):
    return np.asarray(stylizer.style_image(style), np.float32) / 255.0


def _loss(perceptual, stylizer, photo, painted, style):
    """The model's total loss of `painted` as the painting of `photo` in `style`."""
    from keras import ops

    from cin_style.losses import mix_targets

    targets = mix_targets(perceptual.style_grams([_carried(stylizer, style)]), np.ones((1, 1), np.float32))
    parts = perceptual(ops.convert_to_tensor(painted[None]), ops.convert_to_tensor(photo[None]), targets)
    return float(ops.convert_to_numpy(parts["total"])[0])


def test_refining_lowers_the_models_loss_and_zero_steps_change_nothing(stylizer, photo, perceptual):
    painted = stylizer.stylize(photo, 1)
    np.testing.assert_array_equal(stylizer.stylize(photo, 1, refine=0), painted)
    refined = stylizer.stylize(photo, 1, refine=8, verbose=0)
    assert refined.shape == painted.shape and refined.dtype == np.float32
    assert 0.0 <= refined.min() and refined.max() <= 1.0
    before, after = _loss(perceptual, stylizer, photo, painted, 1), _loss(perceptual, stylizer, photo, refined, 1)
    assert after < 0.9 * before, (before, after)
    # Refined in place of the painting: the photo's structure stays (a small change, not a new picture).
    assert 0.0 < np.abs(refined - painted).mean() < 0.1


@pytest.mark.tensorflow_only  # the Stylizer's plumbing; refining itself runs under JAX above
def test_strength_and_colours_apply_to_the_refined_painting(stylizer, photo):
    from cin_style.colors import keep_colors

    refined = stylizer.stylize(photo, 0, refine=2, verbose=0)
    half = stylizer.stylize(photo, 0, refine=2, strength=0.5, verbose=0)
    np.testing.assert_allclose(half, 0.5 * refined + 0.5 * photo, atol=2e-5)
    hues = stylizer.stylize(photo, 0, refine=2, preserve_color="luminance", verbose=0)
    np.testing.assert_allclose(hues, keep_colors(refined, photo, "luminance"), atol=2e-5)


def test_a_blend_refines_toward_the_blended_paintings(stylizer, photo, monkeypatch):
    from cin_style import refine as refine_module
    from cin_style.gatys import GatysResult

    calls = []

    def recording(content, style, **options):
        calls.append((style, options["style_blend"], options["init"]))
        return GatysResult(options["init"], [], 0.0, {})

    monkeypatch.setattr(refine_module, "optimize", recording)
    painted = stylizer.stylize(photo, {0: 1.0, 2: 3.0})
    stylizer.stylize(photo, {0: 1.0, 2: 3.0}, refine=5, verbose=0)
    [(paintings, blend, start)] = calls
    # The styles the blend uses, and only those, with its normalised weights; from the network's painting.
    assert len(paintings) == 2
    np.testing.assert_array_equal(paintings[0], _carried(stylizer, 0))
    np.testing.assert_array_equal(paintings[1], _carried(stylizer, 2))
    np.testing.assert_allclose(blend, [0.25, 0.75])
    np.testing.assert_array_equal(start, painted)


@pytest.mark.parametrize("refine", [-1, 1.5, True, "3", None])
def test_refine_that_is_not_a_count_of_steps_is_refused_before_any_work(stylizer, photo, refine, monkeypatch):
    monkeypatch.setattr(stylizer, "_run", lambda *args: pytest.fail("painted before the check"))
    with pytest.raises(ValueError, match="`refine` must be a non-negative integer"):
        stylizer.stylize(photo, 0, refine=refine)


def test_refine_with_regions_is_refused(stylizer, photo):
    mask = np.zeros((32, 48), np.float32)
    with pytest.raises(ValueError, match="does not take `regions`"):
        stylizer.stylize(photo, 0, regions=[(mask, 1)], refine=2)


def test_a_model_without_paintings_refuses_refine_saying_how_to_add_them(tmp_path, photo, monkeypatch):
    bare = Stylizer.load(saved_style_model(tmp_path))
    monkeypatch.setattr(bare, "_run", lambda *args: pytest.fail("painted before the check"))
    with pytest.raises(PaintingsError, match="carries no painting for style 2 \\('picabia_udnie'\\)") as raised:
        bare.stylize(photo, "picabia_udnie", refine=3)
    assert "cin-style-export --model=<the model> --paintings=" in str(raised.value)
    with pytest.raises(PaintingsError, match="carries no painting"):
        bare.style_image(0)


def test_a_blend_needs_the_paintings_of_the_styles_it_uses_only(model_dir, tmp_path, photo):
    import shutil

    shutil.copytree(model_dir, tmp_path / "model")
    (tmp_path / "model" / RUN_FOLDER / "002.png").unlink()
    partial = Stylizer.load(tmp_path / "model")
    partial.check_refine({0: 0.5, 1: 0.5})  # styles 0 and 1 are carried
    with pytest.raises(PaintingsError, match="style 2"):
        partial.check_refine({0: 0.5, 2: 0.5})


def test_missing_vgg_weights_are_named_before_any_painting(model_dir, tmp_path, photo, monkeypatch):
    from cin_style.vgg import VGGWeightsError

    monkeypatch.setenv("CIN_STYLE_VGG19_WEIGHTS", str(tmp_path / "nowhere.h5"))
    fresh = Stylizer.load(model_dir)
    monkeypatch.setattr(fresh, "_run", lambda *args: pytest.fail("painted before the check"))
    with pytest.raises(VGGWeightsError, match="nowhere.h5"):
        fresh.stylize(photo, 0, refine=1)


def test_style_image_is_the_carried_painting_at_the_style_target_size(stylizer, shared_data):
    painting = stylizer.style_image("munch_the_scream")
    assert isinstance(painting, Image.Image) and painting.mode == "RGB"
    assert min(painting.size) == PAINTING_SIZE
    expected = fitted(shared_data / "styles" / "munch_the_scream.jpg", PAINTING_SIZE)
    np.testing.assert_allclose(np.asarray(painting, np.float32) / 255.0, expected, atol=1 / 255 + 1e-6)
    assert stylizer.style_image(1).tobytes() == painting.tobytes()  # by index too


@pytest.mark.tensorflow_only  # the Stylizer's plumbing; refining itself runs under JAX above
def test_large_images_are_refined_at_full_resolution_in_feathered_tiles(stylizer, photo, perceptual, monkeypatch):
    from cin_style import refine as refine_module
    from cin_style.tiles import feather

    calls, steps = [], []
    optimize = refine_module.optimize

    def recording(content, *args, **kwargs):
        result = optimize(content, *args, **kwargs)
        calls.append((content, kwargs["init"], result.image))
        return result

    monkeypatch.setattr(refine_module, "optimize", recording)
    painted = stylizer.stylize(photo, 2)  # 48 x 32
    args = ([_carried(stylizer, 2)], [1.0], 2, perceptual)
    refined = refine_module.refine(
        photo, painted, *args, style_size=PAINTING_SIZE, tile=32, verbose=0, callback=lambda s, _: steps.append(s)
    )
    # Two 32 x 28 tiles at full resolution (columns 0-27 and 20-47, overlapping by a quarter of the tile),
    # each from the photo's and the painting's own pixels, each refined for the steps asked.
    assert [c[0].shape for c in calls] == [(32, 28, 3)] * 2 and steps == [1, 2, 1, 2]
    for (content, start, result), left in zip(calls, (0, 20)):
        np.testing.assert_array_equal(content, photo[:, left : left + 28])
        np.testing.assert_array_equal(start, painted[:, left : left + 28])
        assert np.abs(result - start).mean() > 1e-3  # each tile really refined
    first, second = calls[0][2], calls[1][2]
    assert refined.dtype == np.float32
    np.testing.assert_allclose(refined[:, :20], first[:, :20], atol=1e-6)  # where one tile covers: its pixels
    np.testing.assert_allclose(refined[:, 28:], second[:, 8:], atol=1e-6)
    ramp = feather(28, 8)
    a, b = ramp[20:], ramp[:8]
    expected = (first[:, 20:] * a[:, None] + second[:, :8] * b[:, None]) / (a + b)[:, None]
    np.testing.assert_allclose(refined[:, 20:28], expected, atol=1e-6)
    calls.clear()
    whole = refine_module.refine(photo, painted, *args, style_size=PAINTING_SIZE, tile=48, verbose=0)
    assert len(calls) == 1 and calls[0][0].shape == (32, 48, 3)  # within the tile: one piece, the whole image
    np.testing.assert_array_equal(whole, calls[0][2])
    with pytest.raises(ValueError, match=r"`photo` and `painting` must have one shape"):
        refine_module.refine(photo, painted[:, :40], *args, verbose=0)


def test_paintings_are_written_whole_by_index(tmp_path, shared_data):
    written = write_paintings(tmp_path, [None, shared_data / "styles" / "munch_the_scream.jpg"], 40, first_index=5)
    assert written == [6] and sorted(p.name for p in tmp_path.iterdir()) == ["006.png"]
    with Image.open(painting_file(tmp_path, 6)) as image:
        assert min(image.size) == 40
