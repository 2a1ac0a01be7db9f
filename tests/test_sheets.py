"""Sample sheets are labelled grids: each picture where the layout says, its name on the strip beneath it."""

import types

import numpy as np
from helpers import distinct_style_model
from PIL import Image

from cin_style import image_io
from cin_style.callbacks import SampleSheet
from cin_style.sheets import BACKGROUND, labelled_grid, sample_block, sample_sheet


def crop(sheet, box):
    left, top, right, bottom = box
    return sheet[top:bottom, left:right]


def test_training_sample_sheet_is_a_grid_of_named_photos_and_styles(tmp_path):
    model = distinct_style_model(num_styles=2)
    rng = np.random.default_rng(0)
    photos = [rng.random((64, 64, 3), dtype=np.float32) for _ in range(2)]
    styles = ["munch_the_scream", "hokusai_great_wave"]
    callback = SampleSheet(photos, str(tmp_path), every=1, photo_names=["kodim05", "kodim23"], style_names=styles)
    callback.set_model(types.SimpleNamespace(transformer=model, num_styles=2))
    callback.step = 7
    callback.write()
    sheet = np.asarray(Image.open(tmp_path / "samples" / "step-00000007.png"))
    _, layout = callback.sheet()

    # One row per photo: the photo, then each style; not a strip of every picture side by side.
    assert (layout.rows, layout.columns) == (2, 3)
    assert sheet.shape == (layout.size[1], layout.size[0], 3) == (2 * (64 + layout.label_height), 3 * 64, 3)
    for p, photo in enumerate(photos):
        np.testing.assert_array_equal(crop(sheet, layout.tile_box(3 * p)), image_io.to_uint8(photo))
        painted = np.asarray(model({"image": np.stack([photo] * 2), "style_weights": np.eye(2, dtype="float32")}))
        for s in range(2):
            cell = crop(sheet, layout.tile_box(3 * p + 1 + s)).astype(int)
            assert np.abs(cell - image_io.to_uint8(painted[s]).astype(int)).max() <= 1
    # Every picture is named: no strip is blank, and different names draw different strips.
    strips = [crop(sheet, layout.label_box(i)) for i in range(6)]
    assert all((strip != BACKGROUND).any() for strip in strips)
    assert not np.array_equal(strips[1], strips[2])  # munch_the_scream, hokusai_great_wave
    assert not np.array_equal(strips[0], strips[3])  # kodim05, kodim23
    np.testing.assert_array_equal(strips[1], strips[4])  # the same style name under each photo


def test_sheet_of_sixteen_styles_wraps_each_photo_into_rows_a_person_can_read():
    styles = [f"style_{i:02d}" for i in range(16)]
    photos = [np.full((64, 64, 3), 0.1 * (p + 1), np.float32) for p in range(3)]
    paintings = [np.full((16, 64, 64, 3), 0.5, np.float32) for _ in photos]
    sheet, layout = sample_sheet(photos, ["a", "b", "c"], styles, paintings)
    # 17 pictures per photo, 6 to a row: 3 rows per photo, the last cell of each block left blank.
    assert sample_block(16) == 18 and (layout.columns, layout.rows) == (6, 9)
    assert sheet.size == layout.size == (6 * 64, 9 * (64 + layout.label_height))
    pixels = np.asarray(sheet)
    for p in range(3):
        np.testing.assert_array_equal(crop(pixels, layout.tile_box(18 * p)), image_io.to_uint8(photos[p]))
        blank = 18 * p + 17
        assert (crop(pixels, layout.tile_box(blank)) == BACKGROUND).all()
        assert (crop(pixels, layout.label_box(blank)) == BACKGROUND).all()


def test_long_names_are_cut_to_their_cell():
    tile = np.zeros((32, 32, 3), np.float32)
    sheet, layout = labelled_grid([("a_very_long_style_name_indeed", tile), ("x", None)], columns=2)
    pixels = np.asarray(sheet)
    # The name stays in its own cell: the next (blank) cell's strip is untouched.
    assert (crop(pixels, layout.label_box(1)) == BACKGROUND).all()
    assert (crop(pixels, layout.label_box(0)) != BACKGROUND).any()
