"""Labelled picture grids: the sample sheets of training runs and `cin-style-stylize --sheet`.

Every cell is a picture with its name on a strip beneath it, so a person can
tell which photo and which style each picture shows. `GridLayout` says where
each cell and strip lies; tests read the sheets through it.
"""

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cin_style import image_io

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
#: Most cells in a row of a sample sheet: wider sheets are strips a person cannot read.
SAMPLE_COLUMNS = 6


def label_height(tile_width):
    """Pixels of the name strip under a cell `tile_width` wide: a font of 10-20 px plus a margin."""
    return _font_size(tile_width) + 8


def _font_size(tile_width):
    return int(min(20, max(10, tile_width // 16)))


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """`rows` x `columns` cells of `tile_height` x `tile_width` pixels, each over a `label_height` name strip."""

    rows: int
    columns: int
    tile_height: int
    tile_width: int
    label_height: int

    @property
    def size(self):
        """`(width, height)` of the whole sheet."""
        return self.columns * self.tile_width, self.rows * (self.tile_height + self.label_height)

    def tile_box(self, index):
        """`(left, top, right, bottom)` of cell `index`'s picture (cells counted row by row)."""
        left = (index % self.columns) * self.tile_width
        top = (index // self.columns) * (self.tile_height + self.label_height)
        return left, top, left + self.tile_width, top + self.tile_height

    def label_box(self, index):
        """`(left, top, right, bottom)` of the name strip under cell `index`."""
        left, _, right, bottom = self.tile_box(index)
        return left, bottom, right, bottom + self.label_height


def _as_pil(picture):
    if isinstance(picture, Image.Image):
        return picture.convert("RGB")
    array = np.asarray(picture)
    return Image.fromarray(array if array.dtype == np.uint8 else image_io.to_uint8(array))


def _fitted(draw, text, font, width):
    """`text`, cut with "..." if it would overflow `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def labelled_grid(cells, columns):
    """A sheet of `cells`, `(name, picture)` pairs, `columns` to a row, each name beneath its picture.

    A picture is a float `(h, w, 3)` array in [0, 1], a uint8 array or a PIL
    image, all of one size; a `(None, None)` cell is left blank (to start the
    next row). Returns `(PIL image, GridLayout)`.
    """
    pictures = [_as_pil(picture) for _, picture in cells if picture is not None]
    if not pictures:
        raise ValueError("A sheet needs at least one picture")
    width, height = pictures[0].size
    columns = max(1, min(int(columns), len(cells)))
    layout = GridLayout(-(-len(cells) // columns), columns, height, width, label_height(width))
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=_font_size(width))
    index_of_picture = iter(pictures)
    for index, (name, picture) in enumerate(cells):
        if picture is None:
            continue
        left, top, _, bottom = layout.tile_box(index)
        sheet.paste(next(index_of_picture), (left, top))
        draw.text((left + 3, bottom + 3), _fitted(draw, str(name), font, width - 6), fill=INK, font=font)
    return sheet, layout


def sample_sheet(photos, photo_names, style_names, paintings, columns=SAMPLE_COLUMNS):
    """Each photo (named first in its row) then its painting in every style, one block of rows per photo.

    Args:
        photos: The sample photos, each `(h, w, 3)` in [0, 1].
        photo_names: A name for each photo (its file's stem, or "photo 1", ...).
        style_names: The model's style names, in order.
        paintings: For each photo, its paintings in every style, `(num_styles, h, w, 3)`.
        columns: Most cells in a row; each photo's block starts a new row.

    Returns:
        `(PIL image, GridLayout)`; cell `p * block` is photo `p` (see `sample_block`).
    """
    per_row = max(1, min(int(columns), len(style_names) + 1))
    block = sample_block(len(style_names), per_row)
    cells = []
    for photo, name, painted in zip(photos, photo_names, paintings):
        row = [(name, photo), *zip(style_names, painted)]
        cells += row + [(None, None)] * (block - len(row))
    return labelled_grid(cells, per_row)


def sample_block(num_styles, columns=SAMPLE_COLUMNS):
    """Cells each photo's block takes in a sample sheet: the photo and its styles, rounded up to whole rows."""
    per_row = max(1, min(int(columns), num_styles + 1))
    return -(-(num_styles + 1) // per_row) * per_row


__all__ = ["GridLayout", "label_height", "labelled_grid", "sample_block", "sample_sheet"]
