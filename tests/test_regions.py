"""Per-pixel style maps from masks and label images: validation, resizing, soft edges."""

import numpy as np
import pytest
from PIL import Image

from cin_style.regions import RegionError, style_map

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


def test_feather_must_be_a_non_negative_number():
    with pytest.raises(RegionError, match="feather"):
        style_map([(np.ones((4, 4)), 0)], 4, 4, weights_of, 3, feather=-1)
