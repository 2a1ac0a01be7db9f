"""Tiles of an image: every pixel covered, neighbours overlapping by at least the blend's width, one tile size."""

import numpy as np
import pytest

from cin_style.tiles import even_tiles, feather, tile_starts

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.integers(1, 5000), st.integers(2, 1100), st.data())
def test_even_tiles_cover_the_side_in_the_fewest_equal_tiles_overlapping_by_at_least_the_overlap(length, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    size, starts = even_tiles(length, tile, overlap)
    assert size <= tile and starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # overlap at least `overlap`
    assert all(b > a for a, b in zip(starts, starts[1:]))
    # The fewest: one tile fewer, even at full size, could not cover the side with that overlap.
    count = len(starts)
    assert count == 1 or (count - 1) * tile - (count - 2) * overlap < length


def test_even_tiles_spread_the_tiles_instead_of_snapping_a_near_duplicate_to_the_edge():
    assert tile_starts(1025, 1024, 64) == [0, 1]  # two full tiles: nearly twice the pixels
    assert even_tiles(1025, 1024, 64) == (545, [0, 480])
    assert even_tiles(1920, 1024, 64) == (992, [0, 928])
    assert even_tiles(1024, 1024, 64) == (1024, [0])


@pytest.mark.parametrize("tile, overlap", [(0, 0), (-4, 0), (2.5, 0), (True, 0), (8, 8), (8, -1)])
def test_a_tile_that_is_not_a_positive_integer_or_an_overlap_outside_it_is_refused(tile, overlap):
    with pytest.raises(ValueError, match="`tile` must be a positive integer|`overlap` must be at least 0"):
        even_tiles(100, tile, overlap)
    with pytest.raises(ValueError, match="`tile` must be a positive integer|`overlap` must be at least 0"):
        tile_starts(100, tile, overlap)


def test_feather_rises_over_the_overlap_at_both_ends_and_is_one_between():
    np.testing.assert_allclose(feather(8, 2), [0.5, 1, 1, 1, 1, 1, 1, 0.5])
