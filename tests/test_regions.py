"""Per-pixel style maps from masks and label images: validation, resizing, soft edges."""

import numpy as np
import pytest
from PIL import Image

from cin_style.regions import RegionError, UncoveredRegionError, style_map

pytestmark = pytest.mark.no_tensorflow

EYE = np.eye(3, dtype=np.float32)


def weights_of(style):
    return EYE[style]


def test_label_image_gives_each_label_its_style_and_maps_sum_to_one(tmp_path):
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 15:] = 1
    Image.fromarray(labels).save(tmp_path / "labels.png")
    result = style_map((str(tmp_path / "labels.png"), {0: 2, 1: 0}), 20, 30, weights_of, 3)
    assert result.shape == (20, 30, 3) and result.dtype == np.float32
    np.testing.assert_array_equal(result[:, :15], np.broadcast_to(EYE[2], (20, 15, 3)))
    np.testing.assert_array_equal(result[:, 15:], np.broadcast_to(EYE[0], (20, 15, 3)))


def test_masks_of_another_size_are_resized_and_gaps_take_the_default_style():
    sky = np.zeros((10, 10), bool)
    sky[:5] = True  # the top half, at a tenth of the image's size
    result = style_map([(sky, 1)], 100, 60, weights_of, 3, default=2)
    np.testing.assert_allclose(result[:40].mean(axis=(0, 1)), EYE[1])
    np.testing.assert_allclose(result[60:].mean(axis=(0, 1)), EYE[2])
    np.testing.assert_allclose(result.sum(axis=-1), 1.0, atol=1e-6)
    half = style_map([(np.full((4, 4), 0.25, np.float32), 0)], 8, 8, weights_of, 3, default=1)
    np.testing.assert_allclose(half[3, 3], [0.25, 0.75, 0.0])  # a soft mask leaves the rest to the default


def test_feather_softens_a_hard_edge_over_about_its_width():
    labels = np.zeros((8, 200), np.int64)
    labels[:, 100:] = 1
    hard = style_map((labels, {0: 0, 1: 1}), 8, 200, weights_of, 3)
    soft = style_map((labels, {0: 0, 1: 1}), 8, 200, weights_of, 3, feather=20)
    assert np.unique(hard[..., 1]).tolist() == [0.0, 1.0]
    ramp = soft[4, :, 1]
    assert ramp[:70].max() < 0.01 and ramp[130:].min() > 0.99 and 0.45 < ramp[99] < 0.55
    rise = np.flatnonzero((ramp > 0.1) & (ramp < 0.9))
    assert 14 <= len(rise) <= 26  # the 10%-90% edge spans about `feather` pixels
    np.testing.assert_allclose(soft.sum(axis=-1), 1.0, atol=1e-6)


def test_a_style_map_given_back_is_resized_and_its_gaps_take_the_default():
    labels = np.zeros((10, 20), np.int64)
    labels[:, 10:] = 1
    built = style_map((labels, {0: 0, 1: 2}), 10, 20, weights_of, 3, feather=2)
    np.testing.assert_array_equal(style_map(built, 10, 20, weights_of, 3), built)  # as built, same size
    larger = style_map(built, 40, 80, weights_of, 3)
    np.testing.assert_allclose(larger[:, :30].mean(axis=(0, 1)), EYE[0], atol=0.02)
    np.testing.assert_allclose(larger[:, 50:].mean(axis=(0, 1)), EYE[2], atol=0.02)
    np.testing.assert_allclose(larger.sum(axis=-1), 1.0, atol=1e-6)
    partial = np.zeros((4, 4, 3), np.float32)
    partial[..., 0] = 0.25  # a quarter of style 0 everywhere, the rest left to the default
    np.testing.assert_allclose(style_map(partial, 4, 4, weights_of, 3, default=1)[2, 2], [0.25, 0.75, 0.0])


@pytest.mark.parametrize(
    "regions, default, message",
    [
        ((np.zeros((4, 4), np.int64), {1: 0}), None, "Labels [0] of the label image have no style"),
        ([(np.zeros((4, 4)), 0)], None, "16 of 16 pixels are in no region"),
        ([(np.full((4, 4), np.nan), 0)], 1, "mask of region 0 must be finite"),
        ([(-np.ones((4, 4)), 0)], 1, "must be non-negative"),
        ([(np.ones((4, 4, 2)), 0)], 1, "must be 2-D"),
        ([np.ones((4, 4))], 1, "Region 0 must be a (mask, style) pair"),
        ([], 1, "non-empty list of (mask, style) pairs"),
        (np.ones((4, 4, 2)), 1, "style map must be numbers of shape (height, width, 3)"),
        (np.ones((4, 4)), 1, "style map must be numbers of shape (height, width, 3)"),
        (-np.ones((4, 4, 3)), 1, "style map must be non-negative"),
        (np.full((4, 4, 3), np.inf), 1, "style map must be finite"),
        (np.zeros((4, 4, 3)), None, "16 of 16 pixels are in no region"),
        ((np.ones((4, 4), np.float32), {1: 0}), None, "label image must be 2-D integers"),
    ],
)
def test_bad_regions_are_refused_naming_the_problem(regions, default, message):
    with pytest.raises(RegionError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        style_map(regions, 4, 4, weights_of, 3, default=default)
    uncovered = "have no style" in message or "in no region" in message
    with pytest.raises(RegionError) as raised:
        style_map(regions, 4, 4, weights_of, 3, default=default)
    assert isinstance(raised.value, UncoveredRegionError) == uncovered  # what a default style would mend


def test_feather_must_be_a_non_negative_number():
    with pytest.raises(RegionError, match="feather"):
        style_map([(np.ones((4, 4)), 0)], 4, 4, weights_of, 3, feather=-1)


def _bomb_mask(path):
    """A 12000x12000 mask PNG (144 Mpx; over the 64 Mpx photo limit, under Pillow's own bomb error), ~140 KiB."""
    Image.new("1", (12000, 12000)).save(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (None, "Image file not found: '.*mask.png'"),
        (lambda p: p.write_bytes(b"junk" * 10), "is not an image Pillow can read"),
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
        (_bomb_mask, "is 12000x12000 = 144,000,000 pixels, more than the limit of 64,000,000"),
    ],
    ids=["missing", "corrupt", "empty", "too_large"],
)
def test_mask_and_label_files_get_the_checks_photos_get_as_region_errors(tmp_path, make, message):
    path = tmp_path / "mask.png"
    if make is not None:
        make(path)
    with pytest.raises(RegionError, match=f"The mask of region 0 cannot be used: .*{message}"):
        style_map([(str(path), 0)], 4, 4, weights_of, 3, default=1)
    with pytest.raises(RegionError, match=f"The label image cannot be used: .*{message}"):
        style_map((path, {0: 0}), 4, 4, weights_of, 3, default=1)


def test_mask_files_are_held_to_the_callers_pixel_limit(tmp_path):
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "mask.png")
    np.testing.assert_array_equal(
        style_map([(tmp_path / "mask.png", 0)], 4, 4, weights_of, 3), np.broadcast_to(EYE[0], (4, 4, 3))
    )
    with pytest.raises(RegionError, match="is 20x20 = 400 pixels, more than the limit of 399"):
        style_map([(tmp_path / "mask.png", 0)], 4, 4, weights_of, 3, max_pixels=399)


def test_a_mask_means_the_same_as_a_file_or_an_array_and_transparent_parts_select_nothing(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (255, 255, 255, 255)  # left: white, opaque
    rgba[:, 2:] = (255, 255, 255, 0)  # right: white, transparent
    rgba[0, 0] = (64, 64, 64, 255)  # a quarter grey, opaque
    rgba[0, 1] = (255, 255, 255, 128)  # white, half transparent
    Image.fromarray(rgba).save(tmp_path / "mask.png")
    maps = [
        style_map([(mask, 0)], 4, 4, weights_of, 3, default=1)
        for mask in (rgba, tmp_path / "mask.png", Image.open(tmp_path / "mask.png"))
    ]
    for other in maps[1:]:
        np.testing.assert_allclose(other, maps[0], atol=1e-6)
    result = maps[0]
    np.testing.assert_array_equal(result[:, 2:], np.broadcast_to(EYE[1], (4, 2, 3)))  # transparent: the default
    np.testing.assert_array_equal(result[1:, :2], np.broadcast_to(EYE[0], (3, 2, 3)))
    np.testing.assert_allclose(result[0, 0], [64 / 255, 1 - 64 / 255, 0], atol=1e-6)  # grey x alpha
    np.testing.assert_allclose(result[0, 1], [128 / 255, 1 - 128 / 255, 0], atol=1e-6)
    # An RGB uint8 array is 0-255 like a file: 64 is a quarter, not a full weight.
    quarter = style_map([(np.full((4, 4, 3), 64, np.uint8), 0)], 4, 4, weights_of, 3, default=1)
    np.testing.assert_allclose(quarter[2, 2], [64 / 255, 1 - 64 / 255, 0], atol=1e-6)
    with pytest.raises(RegionError, match=r"alpha of a mask of region 0 must be in \[0, 1\]"):
        style_map([(np.full((4, 4, 4), 2.0, np.float32), 0)], 4, 4, weights_of, 3, default=1)
    # A 16-bit grey PNG and the uint16 array it holds: 32768 is half a weight either way.
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "sixteen.png")
    from_file = style_map([(tmp_path / "sixteen.png", 0)], 4, 4, weights_of, 3, default=1)
    from_array = style_map([(np.asarray(Image.open(tmp_path / "sixteen.png")), 0)], 4, 4, weights_of, 3, default=1)
    np.testing.assert_allclose(from_file[2, 2], [32768 / 65535, 1 - 32768 / 65535, 0], atol=1e-6)
    np.testing.assert_allclose(from_array, from_file, atol=1e-6)


def test_a_feather_wider_than_the_image_is_capped_at_its_longer_side_at_little_cost():
    import tracemalloc

    labels = np.zeros((8, 200), np.int64)
    labels[:, 100:] = 1
    capped = style_map((labels, {0: 0, 1: 1}), 8, 200, weights_of, 3, feather=200)
    tracemalloc.start()
    try:
        huge = style_map((labels, {0: 0, 1: 1}), 8, 200, weights_of, 3, feather=1e6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(huge, capped)
    assert peak < 2_000_000, peak  # a few copies of the 8x200 map, not of a 1e6-px blur window
    numpy_feather = style_map((labels, {0: 0, 1: 1}), 8, 200, weights_of, 3, feather=np.float32(20))
    np.testing.assert_array_equal(numpy_feather, style_map((labels, {0: 0, 1: 1}), 8, 200, weights_of, 3, feather=20))


def test_label_styles_need_integer_keys_even_with_a_default():
    labels = np.zeros((4, 4), np.int64)
    labels[:, 2:] = 1
    for key in ("0", 0.0, True):
        with pytest.raises(RegionError, match=r"keys of \{label: style\} must be integers.*Received: "):
            style_map((labels, {key: 0}), 4, 4, weights_of, 3, default=2)
    by_numpy_key = style_map((labels, {np.int64(0): 0}), 4, 4, weights_of, 3, default=2)
    np.testing.assert_array_equal(by_numpy_key[:, :2], np.broadcast_to(EYE[0], (4, 2, 3)))
    np.testing.assert_array_equal(by_numpy_key[:, 2:], np.broadcast_to(EYE[2], (4, 2, 3)))
