"""Overlapping tiles of an image and their feathered blend: for work that cannot take the whole image at once.

Tiles are `tile` pixels on a side (the whole side when it is shorter), start
`tile - overlap` apart and the last one ends at the image's edge, so every
tile has the same size. Blending them with `feather` weights (a linear ramp
over the overlap) hides the seams.
"""

import numpy as np


def tile_starts(length, tile, overlap):
    """Starts of the tiles along a side of `length` pixels: `[0]` when one tile covers it."""
    if length <= tile:
        return [0]
    step = tile - overlap
    return sorted(set(list(range(0, length - tile, step)) + [length - tile]))


def feather(length, overlap):
    """Blend weights along a tile's side of `length` pixels: rising over `overlap` pixels at both ends."""
    ramp = np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / max(overlap, 1)
    return np.clip(ramp, 1e-3, 1.0).astype(np.float32)
