"""Overlapping tiles of an image and their feathered blend: for work that cannot take the whole image at once.

Tiles are `tile` pixels on a side (the whole side when it is shorter), start
`tile - overlap` apart and the last one ends at the image's edge, so every
tile has the same size. Blending them with `feather` weights (a linear ramp
over the overlap) hides the seams.
"""

import numpy as np

from cin_style.checks import check_positive_integer


def tile_starts(length, tile, overlap):
    """Starts of the tiles along a side of `length` pixels: `[0]` when one tile covers it."""
    _check(tile, overlap)
    if length <= tile:
        return [0]
    step = tile - overlap
    return sorted(set(list(range(0, length - tile, step)) + [length - tile]))


def feather(length, overlap):
    """Blend weights along a tile's side of `length` pixels: rising over `overlap` pixels at both ends."""
    ramp = np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / max(overlap, 1)
    return np.clip(ramp, 1e-3, 1.0).astype(np.float32)


def blend(shape, placed, overlap):
    """Pieces feather-blended into one float32 image of `shape` `(h, w, c)`: `placed` yields `(top, left, piece)`
    (taken one at a time, so pieces may be made as they are needed); each piece weighs `feather` over `overlap`."""
    out = np.zeros(shape, np.float32)
    total = np.zeros((*shape[:2], 1), np.float32)
    for top, left, piece in placed:
        height, width = piece.shape[:2]
        mask = np.outer(feather(height, overlap), feather(width, overlap))[..., None]
        out[top : top + height, left : left + width] += piece * mask
        total[top : top + height, left : left + width] += mask
    return out / total


def even_tiles(length, tile, overlap):
    """`(size, starts)`: the fewest tiles of at most `tile` pixels that cover `length` with at least `overlap`
    between neighbours, all of one `size`, spread evenly (no near-duplicate last tile, as snapping the last of
    `tile_starts` to the edge can give: 1025 px in 1024-px tiles is two tiles of 545, not two of 1024)."""
    _check(tile, overlap)
    if length <= tile:
        return length, [0]
    count = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (count - 1) * overlap) // count)
    return size, [round(index * (length - size) / (count - 1)) for index in range(count)]


def _check(tile, overlap):
    check_positive_integer("tile", tile)
    if not 0 <= overlap < tile:
        raise ValueError(f"`overlap` must be at least 0 and less than the tile ({tile}). Received: overlap={overlap!r}")
