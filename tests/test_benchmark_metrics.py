"""Numbers the benchmarks print: the blob metric of benchmarks/blobs.py, the multiply-adds of inference.py."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import blobs
import inference

pytestmark = pytest.mark.no_tensorflow


def scene():
    """A mid-grey photo; its 'painting' brightens a disc of radius 6 and one thin line to white."""
    photo = np.full((64, 64, 3), 0.4, np.float32)
    painted = photo.copy()
    rows, cols = np.mgrid[:64, :64]
    disc = (rows - 20) ** 2 + (cols - 20) ** 2 <= 36
    painted[disc] = 1.0
    painted[50, 5:60] = 1.0
    return photo, painted, disc


def test_blob_share_counts_bright_pixels_and_the_opening_keeps_only_solid_ones():
    photo, painted, disc = scene()
    share = blobs.blob_share(photo, painted, painting_p995=0.8)
    assert share == pytest.approx((disc.sum() + 55) / 64**2)
    compact = blobs.blob_mask(photo, painted, 0.8, opening=2)
    assert not compact[50].any()  # the 1-px line is gone
    assert compact[disc].mean() > 0.8 and not compact[~disc].any()


def test_pixels_the_painting_itself_reaches_or_the_photo_already_had_are_no_blobs():
    photo, painted, _ = scene()
    assert blobs.blob_share(photo, painted, painting_p995=1.0) == 0.0  # the painting has such whites
    assert blobs.blob_share(painted, painted, painting_p995=0.8) == 0.0  # a white wall stays white
    with pytest.raises(ValueError, match="same size"):
        blobs.blob_share(photo[:32], painted, 0.8)


def test_local_blob_mask_finds_a_white_disc_on_a_pale_sky():
    sky = np.full((64, 64, 3), 0.8, np.float32)
    painted = sky.copy()
    rows, cols = np.mgrid[:64, :64]
    disc = (rows - 32) ** 2 + (cols - 32) ** 2 <= 36
    painted[disc] = 1.0
    assert blobs.blob_share(sky, painted, 0.9) > 0  # counts here: 1.0 > 0.8 + 0.15
    painted_pale = np.where(disc[..., None], 0.93, sky).astype(np.float32)
    assert blobs.blob_share(sky, painted_pale, 0.9) == 0.0  # not 0.15 brighter than the sky
    local = blobs.local_blob_mask(painted_pale, 0.9, margin=0.1)
    assert local[disc].mean() > 0.8 and not local[~disc].any()


@pytest.mark.parametrize("side", [64, 62])
def test_inference_counts_each_convolutions_kernel_times_its_output_pixels(tmp_path, side):
    from helpers import saved_style_model

    from cin_style.network import DECODER, ENCODER, NUM_RESIDUAL_BLOCKS, OUTPUT_KERNEL, scaled_width

    width = lambda filters: scaled_width(filters, 0.25)  # the test model's alpha
    padded = 64  # both sides are mirror-padded to a multiple of 4 first
    (f1, k1, _), (f2, k2, _), (f3, k3, _) = ENCODER
    (g1, j1), (g2, j2) = DECODER
    expected = (
        padded**2 * k1 * k1 * 3 * width(f1)
        + (padded // 2) ** 2 * k2 * k2 * width(f1) * width(f2)
        + (padded // 4) ** 2 * k3 * k3 * width(f2) * width(f3)
        + NUM_RESIDUAL_BLOCKS * 2 * (padded // 4) ** 2 * 3 * 3 * width(f3) ** 2
        + (padded // 2) ** 2 * j1 * j1 * width(f3) * width(g1)
        + padded**2 * j2 * j2 * width(g1) * width(g2)
        + padded**2 * OUTPUT_KERNEL**2 * width(g2) * 3
    )
    assert inference._keras_macs(str(saved_style_model(tmp_path)), side) == expected
