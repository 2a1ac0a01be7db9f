"""Property-based fuzzing (Hypothesis) of the Stylizer's inputs and the exported signatures' requests.

The strategies are `benchmarks/fuzz_cases.py`'s and the runs `benchmarks/fuzz.py`'s (its `Tally`), with a small
fixed budget and seed here; `python benchmarks/fuzz.py --examples=N` runs the same with a larger one.

What counts as a crash is decided in one place, `benchmarks/fuzz.py`:

- `Stylizer.stylize` documents `StyleError`, `RegionError`, `ImageReadError` and `ValueError` "before any work
  starts": all `ValueError`s. Allowed is a `ValueError` (of any of those types) raised by a line of cin_style's own
  code; a `ValueError` raised inside numpy, Pillow or Keras is an input that slipped past the checks, and every
  other exception type (`TypeError`, `IndexError`, `OverflowError`, ...) is a crash. A painting must be of the
  documented kind: an RGB PIL image for a PIL image or path, and for an array the same batching, uint8 for uint8
  and float32 in [0, 1] otherwise, at the size `max_size` leaves.
- The signatures refuse with `tf.errors.InvalidArgumentError` (their `tf.debugging` checks); anything else,
  `UnicodeDecodeError` included, is a crash. A painting has the request's shape and dtype (each `stylize_bytes`
  answer decodes to an RGB image of the file's size). Requests have the dtype and rank each signature declares: a
  server refuses others before the graph runs.
"""

import os
import sys

import keras
import numpy as np
import pytest

pytest.importorskip("hypothesis")  # a test dependency; the TensorFlow-free environment of tests/run.sh lacks it
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import fuzz
import fuzz_cases

#: Cases per target: 15-20 s each on 2 shared cores under TensorFlow. JAX compiles the network for every new image
#: shape (200 cases took 106 s), so it gets fewer.
STYLIZER_EXAMPLES = 200 if keras.backend.backend() == "tensorflow" else 60
SIGNATURE_EXAMPLES = 200
SEED = 27
#: Peak resident memory the whole signature fuzz may add over the loaded model. Accepted requests are at most
#: `fuzz.SERVING_LIMIT` padded pixels (~25 MiB through the slim network); one bomb decoded, or one flood padded
#: before the check, would take gigabytes.
SIGNATURE_MEMORY_BOUND = 500 * 2**20


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    """A `Stylizer` of a tiny .keras model (3 styles, alpha 0.25), tiles of 48 px so mid sides go layer by layer."""
    from cin_style import Stylizer

    return Stylizer.load(fuzz.tiny_keras_model(str(tmp_path_factory.mktemp("fuzz_keras"))), tile_size=48)


def test_stylize_paints_or_refuses_with_its_documented_errors(stylizer, tmp_path):
    tally = fuzz.Tally("Stylizer.stylize")
    tally.run(
        fuzz_cases.stylizer_cases(fuzz.STYLE_NAMES),
        lambda case: fuzz.stylizer_outcome(stylizer, case, str(tmp_path)),
        STYLIZER_EXAMPLES,
        SEED,
    )
    tally.raise_crashes()
    # The budget reaches both sides: paintings and refusals of several kinds.
    assert tally.counts["painted"] >= STYLIZER_EXAMPLES // 5, tally.counts
    assert {"StyleError", "ValueError", "ImageReadError"} <= set(tally.counts), tally.counts


@pytest.mark.parametrize(
    "case",
    [
        dict(image=np.full((17, 17), np.nan, np.float16), style=0),
        dict(image=np.zeros((1, 16, 16, 3), object), style=0),
        dict(image=np.zeros((2, 16, 16, 3), np.uint8), style=np.array([[0.5, 0.5, 0.0]], np.float32)),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=[np.nan, 1.0, 0.0]),
        dict(image=np.zeros((16, 16, 3), np.uint8), style={"unknown": 1.0}),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=2**63 - 1),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=0, max_size=np.nan),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=0, regions=[(np.ones((3, 3, 5)), 1)]),
        # Empty masks, label images and style maps were resized into zeros, so the image painted in the default
        # style alone; they are a RegionError naming what is empty.
        dict(image=np.zeros((16, 16, 3), np.uint8), style=0, regions=(np.full((0, 4), 1), {1: 0})),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=0, regions=[(np.zeros((0, 5)), 1)]),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=0, regions=[(np.zeros((16, 0, 3), np.uint8), 1)]),
        dict(image=np.zeros((16, 16, 3), np.uint8), style=0, regions=np.zeros((0, 16, 3), np.float32)),
        dict(image=fuzz_cases.ImageFile(fuzz_cases.png_bomb(65_535, 65_535), ".png"), style=0),
        # A string feather was divided by `scale` before the regions checked it: TypeError.
        dict(image=np.zeros((19, 23, 3), np.float32), style=0, regions=[(np.ones((19, 23)), 1)], feather="3"),
    ],
    ids=lambda case: fuzz_cases.short(case, 80),
)
def test_stylize_refuses_hostile_examples_with_a_library_error(stylizer, tmp_path, case):
    """Hand-picked edges the strategies reach: each is refused by cin_style's own checks."""
    full = {**dict(regions=None, strength=1.0, scale=1.0, max_size=None, feather=0, region_blend="features"), **case}
    assert fuzz.stylizer_outcome(stylizer, full, str(tmp_path)) in {
        "ValueError",
        "StyleError",
        "RegionError",
        "ImageReadError",
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny SavedModel (3 styles, alpha 0.25, `max_pixels=fuzz.SERVING_LIMIT`), loaded and warmed up."""
    import tensorflow as tf

    loaded = tf.saved_model.load(fuzz.tiny_saved_model(str(tmp_path_factory.mktemp("fuzz_served"))))
    for name in ("serving_default", "stylize_bytes"):  # traces the decoders and thread pools before the count
        image = np.full((1, 16, 16, 3), 128, np.uint8)
        inputs = {"image_bytes": tf.constant([fuzz_cases.encode(image[0], "PNG")])} if "bytes" in name else {}
        loaded.signatures[name](**(inputs or {"image": tf.constant(image)}), style_index=tf.constant([0]))
    return loaded


@pytest.mark.tensorflow_only
def test_signatures_paint_or_refuse_within_the_memory_bound(served):
    tally = fuzz.Tally("signatures")
    reset = fuzz.peak_reset()
    base = fuzz.current_rss()
    tally.run(
        fuzz_cases.signature_cases(len(fuzz.STYLE_NAMES)),
        lambda case: fuzz.signature_outcome(served, *case),
        SIGNATURE_EXAMPLES,
        SEED,
        prepare=fuzz.as_tensors,
    )
    added = max(tally.highest, fuzz.peak_rss()) - base
    if reset:  # where Linux does not let the peak be reset, it is the whole session's: no bound to check
        assert added < SIGNATURE_MEMORY_BOUND, f"{added / 2**20:.0f} MiB"
    assert tally.counts["InvalidArgumentError"] >= SIGNATURE_EXAMPLES // 3, tally.counts
    assert tally.counts["painted"] >= SIGNATURE_EXAMPLES // 40, tally.counts  # ~7% paint at this mix
    tally.raise_crashes()


@pytest.mark.tensorflow_only
def test_stylize_bytes_refuses_bytes_that_are_not_utf8_with_invalid_argument(served):
    assert (
        fuzz.signature_outcome(
            served, "stylize_bytes", {"image_bytes": np.array([b"g\x81"], object), "style_index": np.zeros(1, np.int32)}
        )
        == "InvalidArgumentError"
    )


@pytest.mark.tensorflow_only
def test_stylize_bytes_names_a_png_cut_before_its_header_whatever_order_the_checks_run_in(served):
    import tensorflow as tf

    png_signature_only = b"\x89PNG\r\n\x1a\n"  # 8 bytes: the header's place (byte 12) lies past the end
    with pytest.raises(tf.errors.InvalidArgumentError, match="a PNG file without its IHDR header"):
        served.signatures["stylize_bytes"](image_bytes=tf.constant([png_signature_only]), style_index=tf.constant([0]))


@pytest.mark.tensorflow_only
@pytest.mark.parametrize(
    "name, inputs",
    [
        (
            "serving_default",
            {"image": np.zeros((250_000, 1, 1, 3), np.uint8), "style_index": np.zeros(250_000, np.int32)},
        ),
        ("stylize_float", {"image": np.zeros((1, 1, 1_000_000, 3), np.float32), "style_index": np.zeros(1, np.int32)}),
        (
            "stylize_bytes",
            {
                "image_bytes": np.array([fuzz_cases.png_bomb(20_000, 20_000)], object),
                "style_index": np.zeros(1, np.int32),
            },
        ),
        (
            "stylize_bytes",
            {
                "image_bytes": np.array([fuzz_cases.jpeg_bomb(65_535, 65_535)], object),
                "style_index": np.zeros(1, np.int32),
            },
        ),
        (
            "stylize_blend_float",
            {"image": np.full((1, 16, 16, 3), np.nan, np.float32), "style_weights": np.ones((1, 3), np.float32)},
        ),
        ("stylize_blend", {"image": np.zeros((1, 16, 16, 3), np.uint8), "style_weights": np.zeros((1, 3), np.float32)}),
        (
            "serving_default",
            {"image": np.zeros((1, 16, 16, 3), np.uint8), "style_index": np.array([2**31 - 1], np.int32)},
        ),
    ],
    ids=["flood", "strip", "png_bomb", "jpeg_bomb", "nan", "zero_weights", "huge_index"],
)
def test_signatures_refuse_hostile_examples_with_invalid_argument(served, name, inputs):
    assert fuzz.signature_outcome(served, name, inputs) == "InvalidArgumentError"
