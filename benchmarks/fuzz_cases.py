"""Hypothesis strategies for hostile inputs, and how a case's outcome is judged; shared by tests/test_fuzz.py and
benchmarks/fuzz.py.

This module imports neither cin_style nor TensorFlow: the caller runs each case and hands `outcome` what happened.

Two targets:

- `stylizer_cases(style_names)`: keyword arguments for `Stylizer.stylize` (image arrays of random shapes and
  dtypes, PIL images of odd modes, files of random, truncated or bomb bytes; styles, regions, strength, scale,
  max_size, feather, region_blend).
- `signature_cases(num_styles)`: `(signature name, inputs)` for an exported SavedModel, inputs of the dtype and
  rank each signature declares (a server refuses anything else before the graph runs): images of extreme shapes
  (1x1 floods, strips, empty batches), NaN and out-of-range floats, bad indices and weights, random, truncated and
  bomb files.
"""

import io
import os
import struct
import traceback
import zlib

import numpy as np
from hypothesis import strategies as st

#: Sides that sit on the library's edges: empty, under the 16-px minimum, at it, odd, a few mid sizes.
SIDES = (0, 1, 2, 7, 15, 16, 17, 23, 32, 41, 64, 97)
#: Pixel values that are not [0, 1] floats.
ODD_FLOATS = (np.nan, np.inf, -np.inf, -0.5, -1e-2, 1.0 + 1e-2, 1.5, 255.0, 1e30, -0.0, 1e-3)
IMAGE_DTYPES = ("uint8", "float16", "float32", "float64", "int8", "int32", "int64", "uint16", "bool", "object")
#: Most elements an image array may hold (keeps one case cheap).
MAX_ELEMENTS = 120_000


# ------------------------------------------------------------------------------------------------ images


@st.composite
def image_arrays(draw, max_elements=MAX_ELEMENTS):
    """A numpy array meant as an image: 0-5 dimensions, sides from `SIDES`, 0-5 channels, any dtype, odd values."""
    ndim = draw(st.sampled_from((0, 1, 2, 3, 3, 3, 4, 4, 5)))
    shape = []
    for axis in range(ndim):
        last = axis == ndim - 1 and ndim >= 3
        shape.append(draw(st.sampled_from((0, 1, 2, 3, 3, 3, 4, 5)) if last else st.sampled_from(SIDES)))
    if ndim >= 4:
        shape[0] = draw(st.sampled_from((0, 1, 2, 3)))
    if int(np.prod(shape)) > max_elements:
        shape = [min(side, 17) for side in shape]
    dtype = draw(st.sampled_from(IMAGE_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(shape)
    if dtype == "object":
        values = np.empty(shape, object)
        values.flat[:] = [draw(st.sampled_from((0.5, "x", None, 1))) for _ in range(min(values.size, 1))] * values.size
        return values
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype.startswith("float"):
        values = rng.random(shape)
        if values.size and draw(st.booleans()):
            values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(ODD_FLOATS))
        return values.astype(dtype)
    info = np.iinfo(dtype)
    high = 256 if dtype == "uint8" else min(int(info.max), 70_000)
    return rng.integers(max(int(info.min), -300), high, shape, endpoint=False).astype(dtype)


PIL_MODES = ("RGB", "L", "RGBA", "LA", "P", "1", "I", "I;16", "F", "CMYK", "YCbCr", "HSV")


@st.composite
def pil_images(draw):
    """A small PIL image in any mode Pillow makes, sides from `SIDES` (a 0-side image included)."""
    from PIL import Image

    mode = draw(st.sampled_from(PIL_MODES))
    width, height = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = Image.fromarray(rng.integers(0, 256, (max(height, 1), max(width, 1), 3), dtype=np.uint8)).convert(mode)
    if width == 0 or height == 0:
        return Image.new(mode, (width, height))
    return image


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width, height, color_type=2):
    """A PNG whose header claims `width` x `height` and whose data is a few bytes of zlib (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = zlib.compress(b"\0" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def jpeg_bomb(width, height):
    """A real 16x16 JPEG whose frame header (SOF0) is rewritten to claim `width` x `height`."""
    data = bytearray(encode(np.full((16, 16, 3), 128, np.uint8), "JPEG"))
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def encode(array, file_format, **options):
    """`array` (uint8 `(h, w, c)`) encoded by Pillow as `file_format`."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, file_format, **options)
    return buffer.getvalue()


@st.composite
def encoded_images(draw):
    """Bytes sent as an image file: a real small PNG/JPEG/BMP/GIF/WebP, truncated or not, a bomb, or random bytes."""
    kind = draw(st.sampled_from(("real", "real", "real", "truncated", "bomb", "random", "empty")))
    if kind == "empty":
        return b""
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "bomb":
        side = st.sampled_from((1, 2, 15, 16, 20_000, 65_535, 100_000, 2**31 - 1, 2**32 - 1, 0))
        width, height = draw(side), draw(side)
        if draw(st.booleans()):
            return png_bomb(width, height, draw(st.sampled_from((0, 2, 4, 6, 3, 1))))
        return jpeg_bomb(min(width, 65_535), min(height, 65_535))
    height, width = draw(st.sampled_from(SIDES[1:])), draw(st.sampled_from(SIDES[1:]))
    channels = draw(st.sampled_from((1, 3, 4)))
    file_format = draw(st.sampled_from(("PNG", "JPEG", "BMP", "GIF", "WEBP")))
    if file_format == "JPEG" and channels == 4:
        channels = 3
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = encode(rng.integers(0, 256, (height, width, channels), dtype=np.uint8), file_format)
    if kind == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return data


class ImageFile:
    """Bytes the runner writes to a file with `suffix` and passes by path (so `read_image` reads them)."""

    def __init__(self, data, suffix):
        self.data, self.suffix = data, suffix

    def __repr__(self):
        return (
            f"ImageFile({self.data[:64]!r}{'...' if len(self.data) > 64 else ''} [{len(self.data)} B], {self.suffix!r})"
        )

    def write(self, folder, name="image"):
        path = os.path.join(folder, name + self.suffix)
        with open(path, "wb") as stream:
            stream.write(self.data)
        return path


image_files = st.builds(ImageFile, encoded_images(), st.sampled_from((".png", ".jpg", ".bmp", ".gif", ".webp", "")))


def images():
    """Anything passed as `stylize`'s image: mostly arrays, some PIL images and files."""
    return st.one_of(image_arrays(), image_arrays(), image_arrays(), pil_images(), image_files)


# ------------------------------------------------------------------------------------------------ styles


def styles(style_names):
    """A style as given to `stylize`: indices (negative, huge, numpy), names (unknown), dicts, weight vectors."""
    n = len(style_names)
    numbers = st.sampled_from((0.0, 1.0, 0.5, -1.0, np.nan, np.inf, 1e-30, 1e30, 2))
    indices = st.one_of(
        st.integers(-n - 2, n + 2),
        st.sampled_from((2**63 - 1, -(2**63), 10**30, True, False)),
        st.integers(-2, n + 1).map(np.int64),
        st.integers(0, n + 1).map(np.uint8),
        st.sampled_from((1.0, np.float32(1.0))),
    )
    names = st.one_of(st.sampled_from(list(style_names)), st.sampled_from(("", "unknown", style_names[0].upper())))
    keys = st.one_of(indices, names, st.sampled_from((None, (0,))))
    dicts = st.dictionaries(keys, st.one_of(numbers, st.sampled_from(("1", None))), max_size=4)
    vectors = st.lists(numbers, min_size=0, max_size=n + 2)
    return st.one_of(
        indices,
        indices,
        names,
        dicts,
        vectors,
        vectors.map(np.array),
        st.lists(numbers, min_size=n, max_size=n).map(lambda v: np.array(v, np.float32).reshape(1, n)),
        st.sampled_from((None, object(), b"x", [[0.5]], np.zeros((n, n)))),
    )


@st.composite
def masks(draw):
    """A region mask: an array of odd shape/dtype/values, a PIL image, or a file of any bytes."""
    kind = draw(st.sampled_from(("array", "array", "array", "pil", "file")))
    if kind == "pil":
        return draw(pil_images())
    if kind == "file":
        return draw(image_files)
    return draw(image_arrays(max_elements=20_000))


@st.composite
def label_arrays(draw):
    """An array of labels: integers (negative, large) or other dtypes, of odd shapes."""
    if draw(st.booleans()):
        return draw(image_arrays(max_elements=20_000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(draw(st.sampled_from(SIDES)) for _ in range(draw(st.sampled_from((2, 2, 2, 1, 3)))))
    dtype = draw(st.sampled_from(("int64", "int32", "uint8", "int8", "uint16")))
    labels = draw(st.lists(st.integers(-1, 5), min_size=1, max_size=3))
    return rng.choice(np.array(labels), shape).astype(dtype)


def regions(style_names):
    """`stylize`'s regions: None, `(mask, style)` pairs, `(labels, {label: style})`, a style map, or junk."""
    n = len(style_names)
    label_keys = st.one_of(st.integers(-1, 5), st.integers(0, 5).map(np.int64), st.sampled_from(("1", 1.0, None)))
    pairs = st.lists(st.tuples(masks(), styles(style_names)), min_size=0, max_size=3)
    labelled = st.tuples(label_arrays(), st.dictionaries(label_keys, styles(style_names), max_size=4))
    maps = st.builds(
        lambda shape, seed: np.random.default_rng(seed).random(shape).astype(np.float32),
        st.tuples(st.sampled_from(SIDES), st.sampled_from(SIDES), st.sampled_from((n, n, n + 1, 1))),
        st.integers(0, 2**32 - 1),
    )
    junk = st.sampled_from(("regions", 5, [(None, 0)], [(np.ones((16, 16)),)], {}, [("", 0)]))
    return st.one_of(st.none(), st.none(), st.none(), pairs, pairs, labelled, labelled, maps, junk)


# ------------------------------------------------------------------------------------------------ numbers

strengths = st.one_of(
    st.just(1.0),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from((0.0, 0.5, np.float32(0.5), np.float64(0.25), np.int64(1), True, "0.5", None, -0.0, 1 + 1e-12)),
)
scales = st.one_of(
    st.just(1.0),
    st.sampled_from((0.5, 2, 3.0, 0.0, -1.0, np.nan, np.inf, 1e-300, 1e300, np.float16(2), np.int8(2), "2", None)),
    st.floats(min_value=0.25, max_value=4.0),
)
max_sizes = st.one_of(
    st.none(),
    st.none(),
    st.sampled_from((0, -1, 1, 15, 16, 17, 20, 40, 10**12, 2**64, np.int64(20), np.uint8(16), np.nan, 20.0, True)),
    st.integers(-5, 120),
)
feathers = st.sampled_from((0, 0, 3, 2.5, -1, np.nan, np.inf, 1e9, np.int32(2), "3", None))
region_blends = st.sampled_from(("features", "features", "outputs", "bogus", None))


@st.composite
def fine_images(draw):
    """An image `stylize` paints: uint8 or float (h, w, 1|3|4) or (n, h, w, 3), sides 16-64."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    height, width = draw(st.integers(16, 64)), draw(st.integers(16, 64))
    shape = draw(st.sampled_from(((height, width, 3), (height, width, 4), (height, width), (2, height, width, 3))))
    values = rng.random(shape)
    return draw(st.sampled_from(((values * 255).astype(np.uint8), values.astype(np.float32), values)))


def fine_styles(style_names):
    n = len(style_names)
    return st.one_of(
        st.integers(0, n - 1),
        st.sampled_from(list(style_names)),
        st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n),
        st.dictionaries(st.sampled_from(list(style_names)), st.floats(0.1, 2.0), min_size=1, max_size=n),
    )


def stylizer_cases(style_names):
    """Keyword arguments of one `Stylizer.stylize` call: a paintable call with 0, 1, 2 or all of its arguments
    replaced by hostile ones (so both the checks and the painting paths are reached)."""
    fine = st.fixed_dictionaries(
        {
            "image": fine_images(),
            "style": fine_styles(style_names),
            "regions": st.none(),
            "strength": st.sampled_from((1.0, 0.5, np.float32(0.25))),
            "scale": st.sampled_from((1.0, 1.0, 0.75, 2.0)),
            "max_size": st.sampled_from((None, None, 40, np.int64(24))),
            "feather": st.sampled_from((0, 0, 3)),
            "region_blend": st.sampled_from(("features", "outputs")),
        }
    )
    hostile = st.fixed_dictionaries(
        {
            "image": images(),
            "style": styles(style_names),
            "regions": regions(style_names),
            "strength": strengths,
            "scale": scales,
            "max_size": max_sizes,
            "feather": feathers,
            "region_blend": region_blends,
        }
    )
    keys = ("image", "style", "regions", "strength", "scale", "max_size", "feather", "region_blend")
    replaced = st.one_of(
        st.just(()),
        st.sets(st.sampled_from(keys), min_size=1, max_size=1),
        st.sets(st.sampled_from(keys), min_size=1, max_size=1),
        st.sets(st.sampled_from(keys), min_size=2, max_size=2),
        st.just(keys),
    )
    return st.builds(lambda a, b, swap: {k: (b if k in swap else a)[k] for k in keys}, fine, hostile, replaced)


# ------------------------------------------------------------------------------------------------ signatures

IMAGE_SIGNATURES = (
    "serving_default",
    "stylize_blend",
    "stylize_float",
    "stylize_blend_float",
    "stylize_spatial",
    "stylize_spatial_float",
)
BYTES_SIGNATURES = ("stylize_bytes", "stylize_bytes_blend")


@st.composite
def signature_batches(draw):
    """`(batch, height, width)` of a request: mostly small, sometimes a flood of 1x1 images or a long strip."""
    kind = draw(st.sampled_from(("small", "small", "small", "small", "flood", "strip", "large")))
    if kind == "flood":
        return draw(st.sampled_from((10_000, 62_500, 250_000))), 1, 1
    if kind == "strip":
        long = draw(st.sampled_from((2_000, 100_000, 1_000_000)))
        short = draw(st.sampled_from((1, 8, 16) if long < 1_000_000 else (1,)))  # inputs of at most 1.6 Mpx
        return (1, long, short) if draw(st.booleans()) else (1, short, long)
    if kind == "large":  # over any small limit: refused before work
        return draw(st.sampled_from((1, 2))), draw(st.sampled_from((1000, 3000))), 1000
    return draw(st.integers(0, 3)), draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))


@st.composite
def style_rows(draw, batch, num_styles):
    """Weights `(batch', num_styles)` float32: a batch that may disagree, rows negative, NaN, all zero or fine."""
    rows = draw(st.sampled_from((batch, batch, batch, 0, batch + 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = rng.random((rows, num_styles)).astype(np.float32)
    if rows and draw(st.booleans()):
        weights[draw(st.integers(0, rows - 1))] = draw(st.sampled_from((np.nan, np.inf, -1.0, 0.0, 1e38, -0.0, 1e-45)))
    return weights


@st.composite
def style_indices(draw, batch, num_styles):
    """Indices `(batch',)` int32: in range, negative, huge, or of another batch size."""
    rows = draw(st.sampled_from((batch, batch, batch, 0, batch + 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    indices = rng.integers(0, num_styles, rows).astype(np.int32)
    if rows and draw(st.booleans()):
        indices[draw(st.integers(0, rows - 1))] = draw(st.sampled_from((-1, num_styles, 2**31 - 1, -(2**31))))
    return indices


@st.composite
def signature_cases(draw, num_styles):
    """`(signature name, {input name: numpy array})` of one request."""
    name = draw(st.sampled_from(IMAGE_SIGNATURES + BYTES_SIGNATURES + BYTES_SIGNATURES))
    if name in BYTES_SIGNATURES:
        files = draw(st.lists(encoded_images(), min_size=0, max_size=3))
        batch = len(files)
        inputs = {"image_bytes": np.array(files, object).reshape(batch)}
    else:
        batch, height, width = draw(signature_batches())
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        if name.endswith("_float"):
            image = rng.random((batch, height, width, 3), np.float32)
            if image.size and draw(st.booleans()):
                image.flat[draw(st.integers(0, image.size - 1))] = draw(st.sampled_from(ODD_FLOATS))
        else:
            image = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        inputs = {"image": image}
    if name.startswith("stylize_spatial"):
        rows = draw(st.sampled_from((batch, batch, batch + 1)))
        same = draw(st.sampled_from((True, True, False)))
        map_shape = (rows, height, width) if same else (rows, max(1, height // 2), width)
        style_map = rng.random((*map_shape, num_styles), np.float32)
        if style_map.size and draw(st.booleans()):
            style_map.flat[draw(st.integers(0, style_map.size - 1))] = draw(st.sampled_from((np.nan, -1.0, np.inf)))
        if style_map.size and draw(st.booleans()):
            style_map[..., :] = 0.0
        inputs["style_weights"] = style_map
    elif name in ("serving_default", "stylize_float", "stylize_bytes"):
        inputs["style_index"] = draw(style_indices(batch, num_styles))
    else:
        inputs["style_weights"] = draw(style_rows(batch, num_styles))
    return name, inputs


# ------------------------------------------------------------------------------------------------ outcomes


def raised_in(error, package_dir):
    """Whether `error` was raised by a line of code under `package_dir` (its innermost traceback frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(os.path.abspath(package_dir) + os.sep)


def short(value, limit=300):
    """`repr(value)` for a report, arrays summarised by shape, dtype and a few values."""
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)[:6]
        text = f"array(shape={value.shape}, dtype={value.dtype}, first={flat.tolist()!r})"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k!r}: {short(v, 200)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = type(value)(short(v, 200) for v in value).__repr__()
    elif type(value).__module__.startswith("PIL"):
        text = f"<PIL {value.mode} {value.size[0]}x{value.size[1]}>"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
