"""Hostile and awkward requests to the exported signatures: what they cost, what they are told, what they get."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from helpers import STYLE_NAMES, distinct_style_model, image_signature_calls

pytestmark = pytest.mark.tensorflow_only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_LIMIT = 64 * 64


@pytest.fixture(scope="module")
def model():
    return distinct_style_model()


@pytest.fixture(scope="module")
def limited(export_style_model):
    import tensorflow as tf

    path = export_style_model(max_pixels=SMALL_LIMIT)[1]  # conftest: exported once, shared with test_export
    return path, tf.saved_model.load(path)


@pytest.fixture(scope="module")
def served(exported_model):
    import tensorflow as tf

    path = exported_model[1]  # conftest: the default limits, exported once
    return path, tf.saved_model.load(path)


def _png(array, mode=None):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def _message(call):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        call()
    return " ".join(raised.value.message.split())


def test_sides_under_16_are_refused_in_every_image_signature(served):
    import tensorflow as tf

    loaded = served[1]
    for shape in [(5, 1, 1, 3), (1, 15, 200, 3), (1, 40, 8, 3)]:
        for name, call in image_signature_calls(loaded, shape).items():
            message = _message(call)
            assert f"image too small: an image of {shape[1]}x{shape[2]}" in message, (name, message)
            assert "under 16 pixels" in message
    tiny = _png(np.full((1, 1, 3), 200, np.uint8))
    for name in ("stylize_bytes", "stylize_bytes_blend"):
        second = {"style_index": tf.constant([0, 1])} if name == "stylize_bytes" else {}
        second = second or {"style_weights": tf.ones([2, 3])}
        message = _message(
            lambda name=name, second=second: loaded.signatures[name](
                image_bytes=tf.constant([_png(np.zeros((20, 20, 3), np.uint8)), tiny]), **second
            )
        )
        assert "image too small: an image of 1x1" in message, (name, message)
    for name, call in image_signature_calls(loaded, (2, 16, 16, 3)).items():  # the smallest size taken
        assert call()["stylized_image"].shape == (2, 16, 16, 3), name


def test_the_limit_counts_the_pixels_padded_as_the_network_pads_them(limited):
    from cin_style.metadata import read_metadata

    path, loaded = limited
    spatial_limit = read_metadata(path)["spatial_max_pixels"]
    assert 40 * 40 < spatial_limit < 44 * 44  # the same memory as SMALL_LIMIT through the other signatures
    # 61x61 = 3,721 pixels, padded to 64x64 = 4,096: exactly the limit.
    for name, call in image_signature_calls(loaded, (1, 61, 61, 3)).items():
        if "spatial" in name:
            assert f"over the limit of {spatial_limit} pixels per request" in _message(call), name
        else:
            assert call()["stylized_image"].shape == (1, 61, 61, 3), name
    # 62x65 = 4,030 pixels (under the limit as stored) but padded to 64x68 = 4,352: over it.
    for name, call in image_signature_calls(loaded, (1, 62, 65, 3)).items():
        message = _message(call)
        assert "a batch of 1 x 62x65 (padded to 64x68) = 4352 pixels" in message, (name, message)
        limit = spatial_limit if "spatial" in name else SMALL_LIMIT
        assert f"over the limit of {limit} pixels per request" in message, (name, message)
    # The spatial signatures' own limit, counted the same way: 33x33 pads to 36x36.
    for name, call in image_signature_calls(loaded, (1, 33, 33, 3)).items():
        assert call()["stylized_image"].shape == (1, 33, 33, 3), name


def test_stylize_bytes_counts_one_limit_for_the_whole_request(limited):
    import tensorflow as tf

    loaded = limited[1]
    four = [_png(np.full((40, 40, 3), 30 * i, np.uint8)) for i in range(4)]  # 1,600 each, 6,400 in all
    for name, extra in [
        ("stylize_bytes", {"style_index": tf.zeros([4], tf.int32)}),
        ("stylize_bytes_blend", {"style_weights": tf.ones([4, 3])}),
    ]:
        message = _message(lambda name=name, extra=extra: loaded.signatures[name](image_bytes=four, **extra))
        assert "4 images = 6400 pixels" in message and f"limit of {SMALL_LIMIT} pixels" in message, message
    # The same batch as pixels: serving_default refuses it alike.
    assert "a batch of 4 x 40x40 (padded to 40x40) = 6400 pixels" in _message(
        image_signature_calls(loaded, (4, 40, 40, 3))["serving_default"]
    )
    two = loaded.signatures["stylize_bytes"](image_bytes=four[:2], style_index=tf.constant([0, 1]))
    assert two["stylized_image_bytes"].shape == (2,)
    # A flood of images is refused by its count, before any header is read.
    flood = [b"not even an image"] * 17  # 17 x 16x16 = 4,352 pixels at the smallest size taken
    message = _message(
        lambda: loaded.signatures["stylize_bytes"](image_bytes=flood, style_index=tf.zeros([17], tf.int32))
    )
    assert "17 images are over the limit of 4096 pixels per request even at the smallest size taken" in message


def _bomb_png(width, height):
    """A valid 1-bit grey PNG of `width` x `height` black pixels: a few hundred KiB that decode to gigabytes."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_stylize_bytes_refuses_a_bomb_from_its_header(limited):
    import tensorflow as tf

    bomb = _bomb_png(3000, 2000)
    message = _message(lambda: limited[1].signatures["stylize_bytes"](image_bytes=[bomb], style_index=tf.constant([0])))
    assert "1 images = 6000000 pixels" in message and f"limit of {SMALL_LIMIT}" in message, message


def _jpeg(array, orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_stylize_bytes_turns_jpegs_upright_as_read_image_does(served, tmp_path):
    import tensorflow as tf

    from cin_style.image_io import read_image, to_uint8

    loaded = served[1]
    rows, cols = np.mgrid[0:40, 0:56]
    array = np.stack([rows * 6, cols * 4, (rows * cols) % 256], axis=-1).astype(np.uint8)  # no symmetry
    for orientation in range(1, 9):
        data = _jpeg(array, orientation)
        (tmp_path / "photo.jpg").write_bytes(data)
        upright = to_uint8(read_image(tmp_path / "photo.jpg"))[None]
        expected = loaded.signatures["serving_default"](image=upright, style_index=tf.constant([1]))
        answer = loaded.signatures["stylize_bytes"](image_bytes=[data], style_index=tf.constant([1]))
        from PIL import Image

        painted = np.asarray(Image.open(io.BytesIO(answer["stylized_image_bytes"].numpy()[0])))
        expected = expected["stylized_image"].numpy()[0]
        assert painted.shape == expected.shape, orientation
        assert np.abs(painted.astype(int) - expected.astype(int)).mean() < 1.0, orientation


def test_stylize_bytes_composites_alpha_over_white_as_the_stylizer_does(served, tmp_path):
    import tensorflow as tf
    from PIL import Image

    from cin_style import Stylizer

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (36, 52, 4), dtype=np.uint8)
    rgba[..., 3] = 128  # half transparent
    rgba[:10, :, 3] = 0  # and a fully transparent band
    data = _png(rgba, "RGBA")
    (tmp_path / "half.png").write_bytes(data)
    expected = Stylizer.load(served[0]).stylize(str(tmp_path / "half.png"), 2)
    answer = served[1].signatures["stylize_bytes"](image_bytes=[data], style_index=tf.constant([2]))
    painted = np.asarray(Image.open(io.BytesIO(answer["stylized_image_bytes"].numpy()[0])))
    difference = np.abs(painted.astype(int) - np.asarray(expected).astype(int))
    # Within rounding: Pillow composites in 8 bits, the graph in float (the old graph differed by 65 levels).
    assert painted.shape == (36, 52, 3) and difference.mean() < 1.5 and difference.max() <= 5, difference.max()


def test_float_signatures_refuse_nan_inf_and_values_out_of_range(served):
    import tensorflow as tf

    s = served[1].signatures
    weights = tf.ones([1, 3])

    def calls(image):
        image = tf.constant(image)
        style_map = tf.ones([1, *image.shape[1:3], 3])
        return {
            "stylize_float": lambda: s["stylize_float"](image=image, style_index=tf.constant([0])),
            "stylize_blend_float": lambda: s["stylize_blend_float"](image=image, style_weights=weights),
            "stylize_spatial_float": lambda: s["stylize_spatial_float"](image=image, style_weights=style_map),
        }

    base = np.full((1, 20, 24, 3), 0.5, np.float32)
    for bad, text in [(np.nan, "must be finite"), (np.inf, "must be finite"), (1.5, "in [0, 1]"), (-0.2, "in [0, 1]")]:
        image = base.copy()
        image[0, 3, 4, 1] = bad
        for name, call in calls(image).items():
            assert text in _message(call), (name, bad)
    # Within 1e-3 of the range: clipped, as image_io.array_to_rgb clips.
    near, exact = base.copy(), base.copy()
    near[0, :5] = 1.0005
    exact[0, :5] = 1.0
    for name, call in calls(near).items():
        assert np.array_equal(call()["stylized_image"].numpy(), calls(exact)[name]()["stylized_image"].numpy()), name


#: `measured(requests)`: runs each call and prints the peak memory it added: the kernel's peak resident size
#: (VmHWM) is reset before each (/proc/self/clear_refs), then read after it, less the resident size before it.
#: Not ru_maxrss: a child process's starts at its parent's size when it forked (kept across exec).
MEASURE = r"""
import json
import tensorflow as tf

def rss():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * 4096

def peak():
    with open("/proc/self/status") as stream:
        return next(int(line.split()[1]) * 1024 for line in stream if line.startswith("VmHWM:"))

def measured(requests):
    for name, call in requests.items():
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
        before = rss()
        try:
            call()
            error = None
        except tf.errors.InvalidArgumentError as e:
            error = " ".join(e.message.split())[:400]
        added = peak() - before
        print(json.dumps({"name": name, "added": added, "error": error}), flush=True)
"""

#: Sends each hostile request to a SavedModel in this process and prints the peak memory each added.
HOSTILE_CLIENT = (
    MEASURE
    + r"""
import io, sys
import numpy as np
from PIL import Image

loaded = tf.saved_model.load(sys.argv[1])
limit = json.load(open(sys.argv[1] + "/cin_style.json"))["max_pixels"]
bomb = open(sys.argv[2], "rb").read()
s = loaded.signatures
buffer = io.BytesIO()
Image.new("RGB", (16, 16), (90, 90, 90)).save(buffer, "PNG")
s["stylize_bytes"](image_bytes=[buffer.getvalue()], style_index=tf.constant([0]))  # warm up
s["serving_default"](image=tf.zeros([1, 16, 16, 3], tf.uint8), style_index=tf.constant([0]))
side = int((limit / 3.5) ** 0.5) // 4 * 4  # four of these are over the limit, each alone is not
buffer = io.BytesIO()
Image.new("RGB", (side, side), (120, 140, 90)).save(buffer, "PNG")
flat = buffer.getvalue()
requests = {
    "flood": lambda: s["serving_default"](image=tf.zeros([1_000_001, 1, 1, 3], tf.uint8),
                                          style_index=tf.zeros([1_000_001], tf.int32)),
    "tiny_flood": lambda: s["serving_default"](image=tf.zeros([62_500, 1, 1, 3], tf.uint8),
                                               style_index=tf.zeros([62_500], tf.int32)),
    "strip": lambda: s["serving_default"](image=tf.zeros([1, 1, 1_000_000, 3], tf.uint8), style_index=tf.constant([0])),
    "bytes_flood": lambda: s["stylize_bytes"](image_bytes=[flat[:40]] * 100_000,
                                              style_index=tf.zeros([100_000], tf.int32)),
    "bomb": lambda: s["stylize_bytes"](image_bytes=[bomb], style_index=tf.constant([0])),
    "bytes_batch": lambda: s["stylize_bytes"](image_bytes=[flat] * 4, style_index=tf.zeros([4], tf.int32)),
    "pixel_batch": lambda: s["stylize_blend"](image=tf.fill([4, side, side, 3], tf.constant(9, tf.uint8)),
                                              style_weights=tf.ones([4, 16])),
}
measured(requests)
"""
)


@pytest.fixture(scope="module")
def bomb_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(_bomb_png(20000, 20000))
    return path


def test_hostile_requests_to_the_bundled_model_cost_little_memory_and_say_why(bomb_file):
    from cin_style.bundled import bundled_model_path

    assert bomb_file.stat().st_size < 64 * 1024  # 400 million pixels in 48 KB
    result = subprocess.run(
        [sys.executable, "-c", HOSTILE_CLIENT, str(bundled_model_path() / "4"), str(bomb_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["name"]: row for row in map(json.loads, result.stdout.strip().splitlines())}
    expected = {
        "flood": "image too small: an image of 1x1",
        "tiny_flood": "image too small: an image of 1x1",
        "strip": "image too small: an image of 1x1000000",
        "bytes_flood": "100000 images are over the limit",
        "bomb": "1 images = 400000000 pixels as the network processes them",
        "bytes_batch": "4 images = ",
        "pixel_batch": "a batch of 4 x ",
    }
    for name, text in expected.items():
        assert rows[name]["error"] and text in rows[name]["error"], rows[name]
        assert "image too" in rows[name]["error"]
        assert rows[name]["added"] < 300 * 2**20, rows[name]  # bytes, above what the process held before it
    # Memory one request freed could hide what the next takes: the requests together stay under the bound too.
    assert sum(row["added"] for row in rows.values()) < 300 * 2**20, rows


#: Requests at the limits of a SavedModel (argv[1]), each the worst shape of its kind (argv[2:]), each in a process of
#: its own: memory an earlier request freed would hide what the next one takes. Each is a child forked from this
#: process once TensorFlow is imported (before any TensorFlow work: no runtime, no thread pools), so each starts as a
#: fresh process would, loads the model and sends its request, without importing TensorFlow anew (3-7 s each).
AT_THE_LIMIT = (
    MEASURE
    + r"""
import io, os, sys, traceback
from PIL import Image


def at_the_limit(path, name):
    loaded = tf.saved_model.load(path)
    metadata = json.load(open(path + "/cin_style.json"))
    limit, spatial = metadata["max_pixels"], metadata["spatial_max_pixels"]
    s = loaded.signatures
    n = len(metadata["style_names"])
    side, spatial_side = int(limit**0.5) // 4 * 4, int(spatial**0.5) // 4 * 4
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 140, 90)).save(buffer, "PNG")
    u8 = lambda b, h, w: tf.fill([b, h, w, 3], tf.constant(120, tf.uint8))
    requests = {
        "square": lambda: s["serving_default"](image=u8(1, side, side), style_index=tf.constant([0])),
        "strip": lambda: s["stylize_float"](image=tf.fill([1, 16, limit // 64 * 4, 3], 0.5),
                                            style_index=tf.constant([0])),
        "small_batch": lambda: s["stylize_blend"](image=u8(limit // 256, 16, 16),
                                                  style_weights=tf.ones([limit // 256, n])),
        "spatial": lambda: s["stylize_spatial"](image=u8(1, spatial_side, spatial_side),
                                                style_weights=tf.ones([1, spatial_side, spatial_side, n])),
        "spatial_strip": lambda: s["stylize_spatial_float"](image=tf.fill([1, 16, spatial // 64 * 4, 3], 0.5),
                                                            style_weights=tf.ones([1, 16, spatial // 64 * 4, n])),
        "bytes": lambda: s["stylize_bytes"](image_bytes=[buffer.getvalue()], style_index=tf.constant([0])),
    }
    tiny = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 90, 90)).save(tiny, "PNG")
    warm = {  # the first call of a signature builds what later ones reuse
        "square": lambda: s["serving_default"](image=u8(1, 16, 16), style_index=tf.constant([0])),
        "strip": lambda: s["stylize_float"](image=tf.fill([1, 16, 16, 3], 0.5), style_index=tf.constant([0])),
        "small_batch": lambda: s["stylize_blend"](image=u8(1, 16, 16), style_weights=tf.ones([1, n])),
        "spatial": lambda: s["stylize_spatial"](image=u8(1, 16, 16), style_weights=tf.ones([1, 16, 16, n])),
        "spatial_strip": lambda: s["stylize_spatial_float"](image=tf.fill([1, 16, 16, 3], 0.5),
                                                            style_weights=tf.ones([1, 16, 16, n])),
        "bytes": lambda: s["stylize_bytes"](image_bytes=[tiny.getvalue()], style_index=tf.constant([0])),
    }
    warm[name]()
    measured({name: requests[name]})


for name in sys.argv[2:]:  # one after another: processes that share the cores each peak higher
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            at_the_limit(sys.argv[1], name)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    status = os.waitpid(pid, 0)[1]
    if status:
        sys.exit(f"The process of the request {name!r} ended with status {status}")
"""
)


def test_requests_at_the_limits_a_budget_sets_stay_within_it(model, tmp_path):
    from cin_style.export import export_saved_model, serving_limits

    budget = 256 * 2**20
    path = export_saved_model(model, tmp_path, STYLE_NAMES, memory_budget=budget)
    max_pixels, spatial, _ = serving_limits(0.25, memory_budget=budget)
    assert (max_pixels, spatial) == (850_000, 370_000)  # 316 and 719 bytes per padded pixel, with the margin
    names = ["square", "strip", "small_batch", "spatial", "spatial_strip", "bytes"]
    run = subprocess.run(
        [sys.executable, "-c", AT_THE_LIMIT, path, *names],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {row["name"]: row for row in map(json.loads, run.stdout.strip().splitlines())}
    assert sorted(rows) == sorted(names), run.stdout[-3000:]
    for row in rows.values():
        assert row["error"] is None, row
        assert row["added"] < budget, rows
    # The limits are not far below what the budget allows either.
    assert rows["square"]["added"] > budget / 3 and rows["spatial"]["added"] > budget / 3, rows


def test_stylize_bytes_refuses_gifs_whose_frames_no_header_counts(limited):
    """300 frames of 1000x1000 in a 558 KB GIF cost 215 MB more than one frame: GIFs are refused, with the reason."""
    import tensorflow as tf
    from PIL import Image

    buffer = io.BytesIO()
    frames = [Image.new("L", (24, 24), 40 * i) for i in range(3)]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    message = _message(
        lambda: limited[1].signatures["stylize_bytes"](image_bytes=[buffer.getvalue()], style_index=tf.constant([0]))
    )
    assert "image_bytes: GIF files are not taken" in message and "send a PNG or JPEG" in message, message
