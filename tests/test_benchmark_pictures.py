"""The picture benchmarks (contact sheet, interpolation strip): painted at the paint size, then shrunk."""

import os
import sys

import numpy as np
import pytest
from helpers import STYLE_NAMES, saved_style_model

from cin_style import Stylizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import contact_sheet


class RecordingStylizer:
    """Wraps a Stylizer, noting the size of every image it paints."""

    def __init__(self, stylizer):
        self.inner, self.sizes = stylizer, []
        self.style_names = stylizer.style_names

    def stylize(self, image, style):
        self.sizes.append(image.shape[:2])
        return self.inner.stylize(image, style)


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    return Stylizer.load(saved_style_model(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def photo_paths(shared_data):
    return [str(shared_data / "content" / "test" / name) for name in ("kodim05.jpg", "kodim23.jpg")]


def test_tiles_are_painted_at_the_paint_size_then_shrunk(stylizer, photo_paths):
    recording = RecordingStylizer(stylizer)
    tiles = contact_sheet.painted_tiles(recording, photo_paths[0], STYLE_NAMES, side=24, paint_size=64)
    assert recording.sizes == [(64, 64)] * len(STYLE_NAMES)
    assert [tile.shape for tile in tiles] == [(24, 24, 3)] * (1 + len(STYLE_NAMES))
    big = contact_sheet.square(contact_sheet.image_io.read_image(photo_paths[0]), 64)
    expected = contact_sheet.square(stylizer.stylize(big, STYLE_NAMES[1]), 24)
    np.testing.assert_array_equal(tiles[2], expected)
    # Without a paint size the photo is painted at the tile size, as before.
    recording.sizes.clear()
    contact_sheet.painted_tiles(recording, photo_paths[0], STYLE_NAMES[:1], side=24)
    assert recording.sizes == [(24, 24)]


def test_both_layouts_have_a_tile_per_photo_and_style(stylizer, photo_paths, shared_data):
    by_photo = contact_sheet.contact_sheet(stylizer, photo_paths, 24, paint_size=48)
    assert by_photo.size == ((1 + len(STYLE_NAMES)) * 24, contact_sheet.LABEL * 2 + 2 * 24)
    by_style = contact_sheet.style_rows_sheet(
        stylizer, photo_paths, 24, str(shared_data / "styles"), blocks=1, paint_size=48
    )
    assert by_style.size == ((1 + 2) * 24, (1 + len(STYLE_NAMES)) * (24 + contact_sheet.LABEL))
    # The painted tiles differ between styles: each row is its own style.
    pixels = np.asarray(by_style)
    rows = [
        pixels[(r + 1) * (24 + contact_sheet.LABEL) + contact_sheet.LABEL :][:24, 24:48]
        for r in range(len(STYLE_NAMES))
    ]
    assert not np.array_equal(rows[0], rows[1]) and not np.array_equal(rows[1], rows[2])
    # Only the named styles, in that order: one row here, the same pixels as that style's row above.
    only = contact_sheet.style_rows_sheet(
        stylizer, photo_paths, 24, str(shared_data / "styles"), blocks=1, paint_size=48, names=[STYLE_NAMES[2]]
    )
    assert only.size == ((1 + 2) * 24, 2 * (24 + contact_sheet.LABEL))
    np.testing.assert_array_equal(
        np.asarray(only)[(24 + contact_sheet.LABEL) + contact_sheet.LABEL :][:24, 24:48], rows[2]
    )


def test_interpolation_strip_paints_big_then_shrinks_and_ends_on_each_style(stylizer, photo_paths):
    import interpolation_strip

    photo = interpolation_strip.to_height(contact_sheet.image_io.read_image(photo_paths[0]), 48)
    recording = RecordingStylizer(stylizer)
    image = interpolation_strip.strip(recording, photo, STYLE_NAMES[0], STYLE_NAMES[2], 4, height=24)
    assert recording.sizes == [photo.shape[:2]] * 4
    frame_width = image.shape[1] // 4
    assert image.shape == (24, 4 * frame_width, 3)
    last = interpolation_strip.to_height(stylizer.stylize(photo, STYLE_NAMES[2]), 24)
    np.testing.assert_allclose(image[:, 3 * frame_width :], last, atol=1 / 255)
    assert not np.allclose(image[:, :frame_width], image[:, 3 * frame_width :], atol=0.05)
