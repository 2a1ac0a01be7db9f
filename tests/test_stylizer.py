"""Stylizer: loading, style specifications, image kinds, bad input, threads, tiling."""

import concurrent.futures
import os
import threading

import numpy as np
import pytest
from helpers import STYLE_NAMES, saved_style_model
from PIL import Image

from cin_style import Stylizer
from cin_style.image_io import ImageReadError
from cin_style.stylizer import ModelLoadError, StyleError


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    return saved_style_model(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def stylizer(keras_file):
    return Stylizer.load(keras_file)


@pytest.fixture(scope="module")
def photo_path(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "parrots.png"
    with Image.open(shared_data / "content" / "test" / "kodim23.jpg") as image:
        image.convert("RGB").resize((60, 40)).save(path)
    return path


@pytest.fixture(scope="module")
def photo(photo_path):
    return np.asarray(Image.open(photo_path).convert("RGB"))


def test_loads_a_keras_file_or_a_training_folder(keras_file):
    for path in (keras_file, keras_file.parent):
        loaded = Stylizer.load(path)
        assert loaded.style_names == STYLE_NAMES and loaded.num_styles == 3


@pytest.mark.tensorflow_only
def test_loads_the_newest_version_of_a_saved_model_and_matches_keras(tmp_path, stylizer, photo, exported_model):
    import json
    import shutil

    # Two versions of the shared export (conftest), the older one naming its styles a, b and c.
    for version in ("1", "2"):
        shutil.copytree(exported_model[1], tmp_path / version)
    metadata = json.loads((tmp_path / "1" / "cin_style.json").read_text())
    (tmp_path / "1" / "cin_style.json").write_text(json.dumps({**metadata, "style_names": ["a", "b", "c"]}))
    served = Stylizer.load(tmp_path)
    assert served.source.endswith(os.sep + "2") and served.style_names == STYLE_NAMES
    assert Stylizer.load(tmp_path / "1").style_names == ["a", "b", "c"]
    a = served.stylize(photo, {"munch_the_scream": 1, "picabia_udnie": 3})
    b = stylizer.stylize(photo, {"munch_the_scream": 1, "picabia_udnie": 3})
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_missing_and_non_model_paths_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="Model path not found: '.*nowhere'"):
        Stylizer.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="is not a cin_style model: expected a SavedModel folder"):
        Stylizer.load(tmp_path / "empty")
    (tmp_path / "junk.keras").write_bytes(b"not a zip file")
    with pytest.raises(ModelLoadError, match="junk.keras' is not a loadable cin_style .keras model"):
        Stylizer.load(tmp_path / "junk.keras")


def test_styles_by_index_name_dict_and_vector(stylizer, photo):
    by_index = stylizer.stylize(photo, 1)
    by_name = stylizer.stylize(photo, "munch_the_scream")
    np.testing.assert_array_equal(by_index, by_name)
    np.testing.assert_array_equal(stylizer.stylize(photo, {1: 2.0}), by_index)
    np.testing.assert_array_equal(stylizer.stylize(photo, [0, 5, 0]), by_index)
    assert not np.array_equal(stylizer.stylize(photo, 0), by_index)
    np.testing.assert_allclose(stylizer.style_weights({"hokusai_great_wave": 1, 2: 3}), [0.25, 0, 0.75])


@pytest.mark.parametrize(
    "style, message",
    [
        (-1, "Style index -1 is out of range: the model has styles 0 to 2"),
        (3, "Style index 3 is out of range"),
        ("munch_scream", r"Unknown style name 'munch_scream'. Did you mean: munch_the_scream"),
        ("starry_night", r"Unknown style name 'starry_night'.*Known styles: hokusai_great_wave"),
        ([0.5, float("nan"), 0.5], "must be finite"),
        ([0.5, -0.2, 0.7], "must be non-negative"),
        ([0, 0, 0], "sum to zero"),
        ([0.5, 0.5], r"needs 3 entries, one per style. Received: shape=\(2,\)"),
        ({"hokusai_great_wave": "lots"}, "must be a number"),
        ({}, "dict is empty"),
        (True, "A style is an index, a name"),
    ],
)
def test_bad_styles_are_refused_with_the_reason(stylizer, photo, style, message):
    with pytest.raises(StyleError, match=message):
        stylizer.stylize(photo, style)


def test_returns_the_kind_it_was_given(stylizer, photo, photo_path):
    out = stylizer.stylize(photo_path, 0)
    assert isinstance(out, Image.Image) and out.size == (60, 40) and out.mode == "RGB"
    assert isinstance(stylizer.stylize(Image.open(photo_path), 0), Image.Image)
    u8 = stylizer.stylize(photo, 0)
    assert u8.dtype == np.uint8 and u8.shape == (40, 60, 3)
    batch = stylizer.stylize((photo[None] / 255.0).astype(np.float32).repeat(2, axis=0), 0)
    assert batch.dtype == np.float32 and batch.shape == (2, 40, 60, 3) and 0 <= batch.min() and batch.max() <= 1
    np.testing.assert_array_equal(np.round(batch[0] * 255).astype(np.uint8), u8)


def test_grey_and_rgba_inputs_are_converted(stylizer, photo):
    grey = photo.mean(axis=-1).astype(np.uint8)
    out = stylizer.stylize(grey, 0)
    assert out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, stylizer.stylize(np.repeat(grey[..., None], 3, -1), 0))
    rgba = np.concatenate([photo, np.full((40, 60, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(stylizer.stylize(rgba, 0), stylizer.stylize(photo, 0))


def test_sixteen_bit_png_and_cmyk_jpeg_files_are_read(stylizer, photo, tmp_path):
    grey16 = (photo.mean(axis=-1) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    from cin_style.image_io import read_image

    read = read_image(tmp_path / "grey16.png")  # full 16-bit precision, not clipped at 255
    np.testing.assert_allclose(read, np.repeat(grey16[..., None], 3, -1) / 65535.0, atol=1e-6)
    assert np.asarray(stylizer.stylize(tmp_path / "grey16.png", 0)).shape == (40, 60, 3)
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert np.asarray(stylizer.stylize(tmp_path / "cmyk.jpg", 2)).shape == (40, 60, 3)


def test_strength_blends_and_preserve_color_keeps_the_photos_colour_under_the_paintings_light(stylizer, photo):
    np.testing.assert_array_equal(stylizer.stylize(photo, 0, strength=0.0), photo)
    full = stylizer.stylize(photo, 0).astype(float)
    half = stylizer.stylize(photo, 0, strength=0.5).astype(float)
    assert np.abs(half - (full + photo) / 2).max() <= 1.0
    kept = stylizer.stylize(photo, 0, preserve_color=True).astype(float) / 255
    from cin_style.colors import _rgb_to_ycbcr

    y_photo, cb_photo, cr_photo = _rgb_to_ycbcr(photo / 255.0)
    y_kept, cb_kept, cr_kept = _rgb_to_ycbcr(kept)
    y_full, cb_full, cr_full = _rgb_to_ycbcr(full / 255)
    # Both colour channels come from the photo, the luminance from the painted output.
    assert np.abs(cb_kept - cb_photo).mean() < 0.02 < np.abs(cb_full - cb_photo).mean()
    assert np.abs(cr_kept - cr_photo).mean() < 0.02 < np.abs(cr_full - cr_photo).mean()
    assert np.abs(y_kept - y_full).mean() < 0.02 < np.abs(y_kept - y_photo).mean()
    with pytest.raises(ValueError, match=r"`strength` must be a number in \[0, 1\]. Received: strength=1.5"):
        stylizer.stylize(photo, 0, strength=1.5)


def bomb_png(path):
    """A PNG whose header says 20000x20000 (a decompression bomb), a few kB on disk."""
    Image.new("1", (20000, 20000)).save(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
        (lambda p: p.write_text("hello, I am text"), "is not an image Pillow can read"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300)), "corrupt or truncated|not an image"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, "JPEG"), "is 1x1; the smallest side cin_style stylises is 16"),
        (bomb_png, r"too large to decode safely \(decompression bomb check: Image size \(400000000 pixels\)"),
    ],
    ids=["zero_bytes", "text_named_jpg", "corrupt", "one_pixel", "decompression_bomb"],
)
def test_bad_image_files_are_refused_before_any_work(stylizer, tmp_path, make, message):
    path = tmp_path / "input.jpg"
    make(path)
    with pytest.raises(ImageReadError, match=message):
        stylizer.stylize(path, 0)


def test_truncated_jpeg_is_refused(stylizer, shared_data, tmp_path):
    data = (shared_data / "content" / "test" / "kodim05.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg' is corrupt or truncated"):
        stylizer.stylize(tmp_path / "cut.jpg", 0)


def test_missing_file_and_bad_arrays_are_named(stylizer, tmp_path):
    with pytest.raises(ImageReadError, match="Image file not found: '.*missing.jpg'"):
        stylizer.stylize(tmp_path / "missing.jpg", 0)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]; got \[0, 255\]"):
        stylizer.stylize(np.linspace(0, 255, 40 * 60 * 3).reshape(40, 60, 3).astype(np.float32), 0)
    with pytest.raises(
        ValueError, match=r"1 \(grey\), 3 \(RGB\) or 4 \(RGBA\) channels. Received: shape=\(40, 60, 2\)"
    ):
        stylizer.stylize(np.zeros((40, 60, 2), np.uint8), 0)
    with pytest.raises(ValueError, match="uint8 .* or float .* Received: dtype=int64"):
        stylizer.stylize(np.zeros((40, 60, 3), np.int64), 0)


@pytest.fixture(scope="module")
def saved_model_dir(exported_model):
    return exported_model[0]  # conftest: distinct_style_model() exported once, shared; read only


@pytest.mark.parametrize("kind", ["keras", pytest.param("saved_model", marks=pytest.mark.tensorflow_only)])
def test_eight_threads_give_the_same_pixels_as_serial_calls(request, kind, photo):
    # The .keras path serialises calls behind a lock; the SavedModel path runs them truly in parallel.
    stylizer = Stylizer.load(request.getfixturevalue("keras_file" if kind == "keras" else "saved_model_dir"))
    assert stylizer.source.endswith(".keras" if kind == "keras" else os.sep + "1")
    images = [photo, photo[::-1], photo[:, ::-1]]  # a different photo and blend per job: cross-talk shows
    jobs = [(images[i % 3], {0: i, 2: 1}) for i in range(16)]
    serial = [stylizer.stylize(image, style) for image, style in jobs]
    assert len({a.tobytes() for a in serial}) == 16
    start = threading.Barrier(8, timeout=60)

    def together(job):
        start.wait()  # eight calls at a time, released at once
        return stylizer.stylize(*job)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(together, jobs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_large_images_are_painted_layer_by_layer_as_the_whole_image(keras_file, shared_data, load_image):
    photo = load_image(shared_data / "content" / "test" / "kodim05.jpg", 96)[0][:, :90]
    whole = Stylizer.load(keras_file).stylize(photo, 1)
    large = Stylizer.load(keras_file, tile_size=40)
    np.testing.assert_allclose(large.stylize(photo, 1), whole, atol=2e-5)
    blend = {0: 0.3, 2: 0.7}
    np.testing.assert_allclose(large.stylize(photo, blend), Stylizer.load(keras_file).stylize(photo, blend), atol=2e-5)
    # A region map goes through the same layers: also the untiled painting.
    labels = np.zeros(photo.shape[:2], np.int32)
    labels[:, 45:] = 1
    regions = (labels, {0: 0, 1: 2})
    np.testing.assert_allclose(
        large.stylize(photo, regions=regions, feather=8),
        Stylizer.load(keras_file).stylize(photo, regions=regions, feather=8),
        atol=2e-5,
    )


def test_mixing_outputs_mixes_each_styles_painting_by_the_map_small_or_large(keras_file, shared_data, load_image):
    photo = load_image(shared_data / "content" / "test" / "kodim05.jpg", 96)[0][:, :90]
    labels = np.zeros(photo.shape[:2], np.int32)
    labels[:, 30:] = 1
    labels[:, 60:] = 2
    regions = (labels, {0: 2, 1: 0, 2: 1})
    for stylizer in (Stylizer.load(keras_file), Stylizer.load(keras_file, tile_size=40)):  # a batch; one at a time
        mixed = stylizer.stylize(photo, regions=regions, feather=6, region_blend="outputs")
        weights = stylizer.style_map(regions, *photo.shape[:2], feather=6)
        by_hand = sum(weights[..., s : s + 1] * stylizer.stylize(photo, s) for s in range(3))
        np.testing.assert_allclose(mixed, by_hand, atol=1e-5)


@pytest.mark.tensorflow_only
def test_saved_model_stylizer_paints_large_images_as_the_whole_image(saved_model_dir, photo):
    whole = Stylizer.load(saved_model_dir).stylize(photo, 2)
    large = Stylizer.load(saved_model_dir, tile_size=24).stylize(photo, 2)  # 40x60: rebuilt from the variables
    assert large.dtype == whole.dtype == np.uint8
    assert np.abs(large.astype(int) - whole.astype(int)).max() <= 1


def test_large_images_are_painted_in_feathered_tiles_when_not_seamless(keras_file, shared_data, load_image):
    photo = load_image(shared_data / "content" / "test" / "kodim05.jpg", 96)[0]
    whole = Stylizer.load(keras_file).stylize(photo, 1)
    tiled_stylizer = Stylizer.load(keras_file, tile_size=48, tile_overlap=16, seamless=False)
    tiled = tiled_stylizer.stylize(photo, 1)
    assert tiled.shape == photo.shape and np.isfinite(tiled).all()
    # Tiles see their own statistics, so pixels differ a little, never wildly.
    assert np.abs(tiled - whole).mean() < 0.15
    # No seam: the jump across a tile border is like the jumps elsewhere.
    rows = np.abs(np.diff(tiled, axis=0)).mean(axis=(1, 2))
    assert rows[30:34].max() < 3 * np.median(rows)
    np.testing.assert_array_equal(Stylizer.load(keras_file, tile_size=96).stylize(photo, 1), whole)


def test_results_do_not_share_memory_with_a_model_that_reuses_its_output_buffer(photo):
    buffer = np.zeros((1, *photo.shape[:2], 3), np.float32)

    def run(images, weights):  # writes each painting into the same array, as an engine may
        buffer[...] = images * float(np.argmax(weights[0]) + 1) / 3
        return buffer

    stylizer = Stylizer(run, STYLE_NAMES)
    image = photo.astype(np.float32) / 255
    first = stylizer.stylize(image, 0)
    second = stylizer.stylize(image, 2)
    np.testing.assert_allclose(first, image / 3, rtol=1e-6)
    np.testing.assert_allclose(second, image, rtol=1e-6)


def test_max_size_downscales_first(stylizer, photo):
    out = stylizer.stylize(photo, 0, max_size=30)
    assert out.shape == (20, 30, 3)
    with pytest.raises(ValueError, match="`max_size` must be an integer of at least 16"):
        stylizer.stylize(photo, 0, max_size=4)


def test_regions_from_masks_and_labels_paint_like_the_style_where_one_covers_everything(stylizer, photo, tmp_path):
    whole = stylizer.stylize(photo, 1)
    everywhere = stylizer.stylize(photo, regions=[(np.ones((4, 4), bool), 1)])
    assert np.abs(everywhere.astype(int) - whole.astype(int)).max() <= 1
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 15:] = 1
    Image.fromarray(labels).save(tmp_path / "labels.png")
    halves = stylizer.stylize(photo, regions=(tmp_path / "labels.png", {0: "munch_the_scream", 1: 1}), feather=4)
    assert halves.shape == photo.shape and halves.dtype == np.uint8
    with pytest.raises(StyleError, match="Unknown style name 'nope'"):
        stylizer.stylize(photo, regions=[(np.ones((4, 4)), "nope")])
    from cin_style.regions import RegionError

    with pytest.raises(RegionError, match="pixels are in no region"):
        stylizer.stylize(photo, regions=[(np.zeros((4, 4)), 1)])
    with pytest.raises(StyleError, match="Give a style"):
        stylizer.stylize(photo)
    plain = Stylizer(stylizer._run, stylizer.style_names, source="an old export")
    with pytest.raises(StyleError, match="without the stylize_spatial signature"):
        plain.stylize(photo, regions=[(np.ones((4, 4)), 1)])
    by_outputs = plain.stylize(photo, regions=[(np.ones((4, 4)), 1)], region_blend="outputs")
    np.testing.assert_array_equal(by_outputs, whole)  # needs no spatial signature
    with pytest.raises(ValueError, match="`region_blend` must be one of"):
        stylizer.stylize(photo, regions=[(np.ones((4, 4)), 1)], region_blend="pixels")


def test_a_style_map_built_once_paints_as_the_regions_it_came_from(stylizer, photo):
    from cin_style.regions import RegionError

    left = np.zeros((40, 60), np.float32)
    left[:, :30] = 1.0
    regions = [(left, 0), (1.0 - left, "munch_the_scream")]
    built = stylizer.style_map(regions, 40, 60, feather=4)
    direct = stylizer.stylize(photo, regions=regions, feather=4)
    np.testing.assert_array_equal(stylizer.stylize(photo, regions=built), direct)
    # scale=2 paints at 20x30: a map built at that size is the one stylize builds there
    halved = stylizer.style_map(regions, 20, 30, feather=2)
    direct = stylizer.stylize(photo, regions=regions, feather=4, scale=2.0)
    np.testing.assert_array_equal(stylizer.stylize(photo, regions=halved, scale=2.0), direct)
    with pytest.raises(RegionError, match=r"style map must be numbers of shape \(height, width, 3\)"):
        stylizer.stylize(photo, regions=np.ones((40, 60, 2), np.float32))


@pytest.mark.tensorflow_only
def test_bundled_model_paints_each_half_of_a_photo_in_its_own_style_far_from_the_seam(shared_data):
    from cin_style.bundled import bundled_model_path

    bundled = Stylizer.load(bundled_model_path())
    with Image.open(shared_data / "content" / "test" / "kodim05.jpg") as image:
        photo = np.asarray(image.convert("RGB").resize((192, 128)), np.float32) / 255.0
    left = np.zeros((128, 192), np.float32)
    left[:, :96] = 1.0
    mixed = bundled.stylize(photo, regions=[(left, "munch_the_scream"), (1.0 - left, "hokusai_great_wave")])
    munch = bundled.stylize(photo, "munch_the_scream")
    wave = bundled.stylize(photo, "hokusai_great_wave")
    far_left, far_right = np.s_[:, :64], np.s_[:, 128:]
    # Instance statistics span the whole image, so a half is near its style alone, not equal to it
    # (measured on kodim05 at 384x256: 0.06-0.09 against 0.39 to the other style).
    for part, own, other in ((far_left, munch, wave), (far_right, wave, munch)):
        near, far = np.abs(mixed[part] - own[part]).mean(), np.abs(mixed[part] - other[part]).mean()
        assert near < 0.35 * far, (near, far)
    # Mixing the paintings instead of the γ/β rows: a region is its style alone, pixel for pixel.
    regions = [(left, "munch_the_scream"), (1.0 - left, "hokusai_great_wave")]
    outputs = bundled.stylize(photo, regions=regions, feather=16, region_blend="outputs")
    np.testing.assert_array_equal(outputs[far_left], munch[far_left])
    np.testing.assert_array_equal(outputs[far_right], wave[far_right])
    seam = outputs[:, 96]
    assert np.abs(seam - (munch[:, 96] + wave[:, 96]) / 2).max() < 0.05  # the feathered edge mixes them half and half


def test_scale_paints_at_the_size_over_scale_and_resizes_back(stylizer, photo):
    from cin_style import image_io

    big = stylizer.stylize(photo, 1, scale=2.0)
    assert big.shape == photo.shape
    floats = photo.astype(np.float32) / 255.0
    by_hand = image_io.resize(stylizer.stylize(image_io.resize(floats, 30, 20), 1), 60, 40)
    assert np.abs(big.astype(int) - np.round(by_hand * 255).astype(int)).max() <= 1
    assert np.abs(big.astype(int) - stylizer.stylize(photo, 1).astype(int)).mean() > 2  # strokes do change
    for bad in (0, -1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="`scale` must be a positive number"):
            stylizer.stylize(photo, 1, scale=bad)
    with pytest.raises(ValueError, match="paints this 60x40 image at 15x10; the smallest side"):
        stylizer.stylize(photo, 1, scale=4.0)


def test_histogram_colors_give_each_channel_the_photos_values_in_the_paintings_order(stylizer, photo):
    floats = photo.astype(np.float32) / 255.0
    painted = stylizer.stylize(floats, 2)
    matched = stylizer.stylize(floats, 2, preserve_color="histogram")
    for channel in range(3):
        np.testing.assert_allclose(np.sort(matched[..., channel].ravel()), np.sort(floats[..., channel].ravel()))
        order = np.argsort(painted[..., channel].ravel(), kind="stable")
        assert (np.diff(matched[..., channel].ravel()[order]) >= 0).all()  # the painting's ranks kept
    np.testing.assert_array_equal(
        stylizer.stylize(floats, 2, preserve_color=True), stylizer.stylize(floats, 2, preserve_color="luminance")
    )
    with pytest.raises(ValueError, match="`preserve_color` must be False, True or one of"):
        stylizer.stylize(floats, 2, preserve_color="hue")


def _counting(stylizer, monkeypatch):
    calls = []
    run = stylizer._run

    def counted(images, weights):
        calls.append(len(images))
        return run(images, weights)

    monkeypatch.setattr(stylizer, "_run", counted)
    return calls


def test_a_batch_and_every_style_go_to_the_model_in_as_few_calls_as_the_pixel_budget_allows(
    keras_file, photo, monkeypatch
):
    from cin_style import stylizer as stylizer_module

    stylizer = Stylizer.load(keras_file)
    calls = _counting(stylizer, monkeypatch)
    batch = np.stack([photo, photo[::-1], photo[:, ::-1], 255 - photo, photo // 2])
    together = stylizer.stylize(batch, 1)
    assert calls == [5]
    one_by_one = np.stack([stylizer.stylize(image, 1) for image in batch])
    assert np.abs(together.astype(int) - one_by_one.astype(int)).max() <= 1
    calls.clear()
    every = stylizer.stylize_all(photo)
    assert calls == [3] and len(every) == 3
    np.testing.assert_allclose(every[2], stylizer.stylize(photo.astype(np.float32) / 255.0, 2), atol=1e-5)
    calls.clear()
    monkeypatch.setattr(stylizer_module, "BATCH_PIXELS", 2 * 40 * 60)  # two photos per call
    stylizer.stylize(batch, 1)
    assert calls == [2, 2, 1]


def test_tiles_of_a_large_image_are_painted_in_batches_with_the_same_pixels(keras_file, photo, monkeypatch):
    from cin_style import stylizer as stylizer_module

    stylizer = Stylizer.load(keras_file, tile_size=32, tile_overlap=8, seamless=False)
    calls = _counting(stylizer, monkeypatch)
    batched = stylizer.stylize(photo, 0)  # 60x40 in 32-px tiles: 3 across, 2 down
    assert calls == [6]
    calls.clear()
    monkeypatch.setattr(stylizer_module, "BATCH_PIXELS", 32 * 32)  # one tile per call, as before batching
    alone = stylizer.stylize(photo, 0)
    assert calls == [1] * 6
    assert np.abs(batched.astype(int) - alone.astype(int)).max() <= 1


def _padded_pixels_sent(stylizer, monkeypatch):
    """A list that gets, per model call, its pixels as the network pads them (each side to a multiple of 8)."""
    sent = []
    for name in ("_run", "_run_spatial"):
        run = getattr(stylizer, name)

        def counted(images, weights, run=run):
            height, width = images.shape[1:3]
            sent.append(len(images) * (-(-height // 8) * 8) * (-(-width // 8) * 8))
            return run(images, weights)

        monkeypatch.setattr(stylizer, name, counted)
    return sent


@pytest.mark.tensorflow_only
def test_a_saved_model_with_a_small_pixel_limit_paints_larger_images_under_it(
    keras_file, stylizer, photo, monkeypatch, export_style_model
):
    base = export_style_model(max_pixels=1024)[0]  # one 32x32 image a call
    limited = Stylizer.load(base)
    sent = _padded_pixels_sent(limited, monkeypatch)
    # 60x40 (64x40 = 2560 px padded): painted layer by layer, as the whole image.
    whole = stylizer.stylize(photo, 1)
    assert np.abs(limited.stylize(photo, 1).astype(int) - whole.astype(int)).max() <= 1
    regions = [(np.ones((4, 4), bool), 0)]
    by_regions = limited.stylize(photo, regions=regions)
    assert np.abs(by_regions.astype(int) - stylizer.stylize(photo, 0).astype(int)).max() <= 1
    assert sent == []  # nothing over the limit went to the signatures
    # Five 24x24 images (576 px padded each): one per call, never two.
    small = np.stack([photo[:24, i : i + 24] for i in range(0, 25, 6)])
    assert np.abs(limited.stylize(small, 2).astype(int) - stylizer.stylize(small, 2).astype(int)).max() <= 1
    assert sent == [576] * 5
    assert limited.call_pixels == 1024
    # Feathered tiles instead: 32-px tiles, one per call, as a .keras model painting 32-px tiles.
    tiled = Stylizer.load(base, seamless=False)
    sent = _padded_pixels_sent(tiled, monkeypatch)
    by_tiles = tiled.stylize(photo, 1)
    assert sent == [1024] * 6  # 3 across, 2 down
    same_tiles = Stylizer.load(keras_file, tile_size=32, seamless=False).stylize(photo, 1)
    assert np.abs(by_tiles.astype(int) - same_tiles.astype(int)).max() <= 1


@pytest.mark.tensorflow_only
def test_region_painting_keeps_under_the_lower_limit_of_the_spatial_signatures(
    stylizer, photo, monkeypatch, export_style_model
):
    from cin_style.metadata import read_metadata

    base = export_style_model(max_pixels=4096)[0]  # shared with test_export and test_serving_limits
    spatial_limit = read_metadata(base)["spatial_max_pixels"]
    assert spatial_limit < 64 * 40 <= 4096  # the 60x40 photo fits the plain signatures, not the spatial ones
    limited = Stylizer.load(base)
    sent = _padded_pixels_sent(limited, monkeypatch)
    regions = [(np.linspace(0, 1, 60)[None].repeat(40, 0), 0), (np.linspace(1, 0, 60)[None].repeat(40, 0), 2)]
    by_regions = limited.stylize(photo, regions=regions)
    assert np.abs(by_regions.astype(int) - stylizer.stylize(photo, regions=regions).astype(int)).max() <= 1
    assert sent == []  # painted layer by layer, not sent whole to stylize_spatial_float
    assert np.abs(limited.stylize(photo, 1).astype(int) - stylizer.stylize(photo, 1).astype(int)).max() <= 1
    assert sent == [64 * 40]  # a style row still goes whole


def test_a_styles_file_that_does_not_fit_the_model_is_refused_at_load(tmp_path):
    import json

    keras_path = saved_style_model(tmp_path)  # three styles
    (tmp_path / "styles.json").write_text(json.dumps({"style_names": ["a", "b"]}))
    with pytest.raises(ModelLoadError, match="styles.json' names 2 styles but the model holds 3"):
        Stylizer.load(keras_path)
    (tmp_path / "styles.json").write_text('{"style_names": ["a", "b"')
    with pytest.raises(ModelLoadError, match="cannot be read as JSON"):
        Stylizer.load(keras_path)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize(
    "change, message",
    [
        ({"style_names": ["a", "b"], "num_styles": 2}, "cin_style.json' names 2 styles but the model holds 3"),
        ({"format": "1"}, "bad metadata format: a positive integer is expected. Received: '1'"),
        ({"style_names": ["a", "a", "b"]}, r"names a style more than once: \['a'\]"),
        ({"max_pixels": 0}, "bad max_pixels: a positive integer is expected. Received: 0"),
        ({"spatial_max_pixels": "1"}, "bad spatial_max_pixels: a positive integer is expected. Received: '1'"),
        ({"spatial_max_pixels": 200}, "Cannot paint with the SavedModel .* must allow one 16x16 image"),
    ],
)
def test_saved_model_metadata_that_does_not_fit_the_model_is_refused_at_load(
    saved_model_dir, tmp_path, change, message
):
    import json
    import shutil

    folder = tmp_path / "1"
    shutil.copytree(saved_model_dir / "1", folder)
    metadata = json.loads((folder / "cin_style.json").read_text())
    (folder / "cin_style.json").write_text(json.dumps({**metadata, **change}))
    with pytest.raises(ModelLoadError, match=message):
        Stylizer.load(tmp_path)


def test_numpy_scalars_are_accepted_like_python_numbers(stylizer, photo):
    np.testing.assert_array_equal(
        stylizer.stylize(photo, 0, strength=np.float32(0.5)), stylizer.stylize(photo, 0, strength=0.5)
    )
    np.testing.assert_array_equal(
        stylizer.stylize(photo, 0, max_size=np.int64(30)), stylizer.stylize(photo, 0, max_size=30)
    )
    np.testing.assert_array_equal(
        stylizer.stylize(photo, 0, scale=np.float32(2.0)), stylizer.stylize(photo, 0, scale=2.0)
    )


def test_degenerate_sizes_are_refused_before_any_work(stylizer, photo, monkeypatch):
    calls = _counting(stylizer, monkeypatch)
    with pytest.raises(ImageReadError, match="scale=.* paints this 60x40 image at infxinf, more than the limit"):
        stylizer.stylize(photo, 0, scale=1e-320)
    with pytest.raises(
        ValueError, match=r"The image batch is empty: give at least one image. Received: shape=\(0, 40, 60, 3\)"
    ):
        stylizer.stylize(np.zeros((0, 40, 60, 3), np.uint8), 0)
    with pytest.raises(
        ValueError, match="max_size=20 shrinks this 60x40 image to 20x13; the smallest side cin_style stylises is 16"
    ):
        stylizer.stylize(photo, 0, max_size=20)
    assert calls == []
