"""SavedModel export for TF Serving, `cin_style.Stylizer` and the notebook.

`export_saved_model` writes the TF Serving layout `export_dir/<version>/`
(`saved_model.pb`, `variables/`, and `cin_style.json` metadata). Every
signature has dynamic batch, height and width; inputs are batched along the
first axis so TF Serving's row ("instances") format works:

- `serving_default`: `image` uint8 `(b, h, w, 3)` + `style_index` int32
  `(b,)` -> `stylized_image` uint8.
- `stylize_blend`: `image` uint8 + `style_weights` float32
  `(b, num_styles)` -> `stylized_image` uint8.
- `stylize_float`, `stylize_blend_float`: the same with float32 images in
  [0, 1] in and out.
- `stylize_spatial`: `image` uint8 `(b, h, w, 3)` + `style_weights` float32
  `(b, h, w, num_styles)`, a style blend per pixel (each pixel's weights are
  normalised to sum 1) -> `stylized_image` uint8: regions of one image in
  different styles. `stylize_spatial_float`: the same with float32 images.
- `stylize_bytes`: `image_bytes` string `(b,)` (JPEG, PNG or BMP files,
  as TF Serving's REST API decodes `{"b64": ...}`) + `style_index` int32
  `(b,)` -> `stylized_image_bytes` string `(b,)`, PNG (or JPEG, chosen at
  export). Each image keeps its own size; names ending in `_bytes` make TF
  Serving send the output back as base64. Files are read as
  `image_io.read_image` reads them: a JPEG's EXIF orientation is applied,
  a PNG's alpha composited over white. GIFs are refused: TensorFlow decodes
  every frame of an animated GIF, which its header does not count (a
  558 KB GIF of 300 frames took 215 MB more than one frame).
  `stylize_bytes_blend`: the same with `style_weights` float32
  `(b, num_styles)`.
- `style_names`: no input -> `style_names` string `(num_styles,)`.

Bad requests (a style index out of range; blend weights that are negative,
not finite, or sum to zero in a row or at a pixel of a map; batch sizes or
map sizes that disagree) fail inside the graph with a `tf.debugging` message
instead of returning garbage pixels.

Every signature that takes images refuses, with an `InvalidArgumentError`
naming the size and the limit and before any work on the pixels:

- an image with a side under `MIN_SIDE` (16, the `Stylizer`'s): each costs
  the network many times its pixels (62,500 1x1 images took 1.7 GiB);
- a request over `max_pixels`, counted as the network processes it: each
  side mirror-padded to a multiple of 4 (at least 8), padded height x padded
  width summed over the batch, so a batch of many images is refused like
  one large image. `stylize_bytes` reads each file's size from its header
  (JPEG frame, PNG IHDR, BMP header) and checks the whole
  request before decoding any of it: a 400 KB PNG of 20000x20000 costs no
  more than its bytes. The spatial signatures have their own, lower limit
  (`spatial_max_pixels`) for the same memory.

The limits follow from a memory budget (`serving_limits`; 4 GiB by
default): the peak memory of a request was measured per padded pixel
(`benchmarks/serving_memory.py`, a fresh process per request; the worst
shape, a 16-pixel strip, at 218 bytes at alpha 0.25 and 889 at alpha 1.0
through the uint8, float and bytes signatures, 542 and 1,683 through the
spatial ones), fitted in alpha, then given `MEMORY_MARGIN` (1.25x). At
4 GiB the default model takes 3.86 million pixels a request (2.02 million
spatial), the slim model 13.6 million (5.97 million). The budget and both limits are recorded in the metadata.

The float signatures refuse NaN, infinite values and values outside [0, 1]
by more than 1e-3 (they would poison the instance statistics of the whole
image); values within that are clipped, as `image_io.array_to_rgb` does.
"""

import json
import os
import shutil
import time

import tensorflow as tf

from cin_style import __version__
from cin_style.checks import check_positive_integer
from cin_style.metadata import (
    METADATA_FILE,
    METADATA_FORMAT,
    portable_training_config,
    version_dirs,
    weights_hash,
)
from cin_style.network import alpha_of, num_styles_of, spatial_transformer
from cin_style.paintings import SAVED_MODEL_FOLDER, carried, fitted, write_paintings

#: Signature names, for servers and clients.
SIGNATURES = (
    "serving_default",
    "stylize_blend",
    "stylize_float",
    "stylize_blend_float",
    "stylize_spatial",
    "stylize_spatial_float",
    "stylize_bytes",
    "stylize_bytes_blend",
    "style_names",
)
#: Encodings `stylize_bytes` can answer in (`export_saved_model(encoded_format=...)`).
ENCODED_FORMATS = ("png", "jpeg")


#: Smallest image side every image signature takes: the `Stylizer`'s `MIN_SIDE`. Smaller images carry no
#: style, and cost the network several times the memory per pixel of larger ones (its 9x9 convolutions pad
#: every image by 4 on each side).
MIN_SIDE = 16
#: Peak memory a request may take by default, in bytes; `max_pixels` follows from it (`serving_limits`).
DEFAULT_MEMORY_BUDGET = 4 * 2**30
#: Peak memory per padded pixel of a request, `(bytes at any width, more bytes per unit of alpha)`: the
#: worst shape measured (a 16-pixel-high strip) through `serving_default`, `stylize_blend_float` and
#: `stylize_bytes`: 218 bytes at alpha 0.25 (cin_style_slim), 889 at alpha 1.0 (cin_style_default);
#: `benchmarks/serving_memory.py`, the saved_models README lists the runs.
BYTES_PER_PIXEL = (40, 850)
#: The same for `stylize_spatial` and `stylize_spatial_float`, which also hold a style map and per-pixel
#: CIN parameters: 469-542 bytes at alpha 0.25 (3 or 16 styles; 542 at 6.7 million pixels), 1,443 at
#: alpha 1.0 for 1 million pixels and 1,683 for 2.36 million (it grows with the size).
SPATIAL_BYTES_PER_PIXEL = (200, 1500)
#: Headroom over the fitted bytes per pixel, for what the measurements did not cover (other thread counts,
#: allocators, TensorFlow versions).
MEMORY_MARGIN = 1.25
#: JPEG, PNG, GIF and BMP files start with these bytes (GIFs to be named when they are refused).
_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG", "gif": b"GIF8", "bmp": b"BM"}
#: The EXIF tag saying how a photo is to be turned for display (`image_io.EXIF_ORIENTATION`).
_ORIENTATION_TAG = 0x0112
#: How far into a JPEG the EXIF block (APP1, at most 64 KiB) is looked for, and how many of its first IFD's
#: entries are read.
_EXIF_SEARCH, _EXIF_ENTRIES = 65536, 64


def _bytes_at(padded, position, length):
    """`length` bytes of a scalar string (padded with zeros past its end) from `position`, as int64 `(length,)`."""
    position = tf.clip_by_value(tf.cast(position, tf.int32), 0, _EXIF_SEARCH)
    values = tf.io.decode_raw(tf.strings.substr(padded, position, length), tf.uint8)
    return tf.cast(tf.reshape(values, [length]), tf.int64)


def _number(values, little_endian):
    """Unsigned integer of the bytes `values` (last axis), little- or big-endian."""
    count = values.shape[-1]
    little = tf.constant([256**i for i in range(count)], tf.int64)
    return tf.reduce_sum(values * tf.where(little_endian, little, tf.reverse(little, [0])), axis=-1)


def _jpeg_orientation(data):
    """The EXIF orientation (1-8) of one JPEG file, read from its APP1 block without decoding; 1 if it has none.

    Finds `Exif\\0\\0` after an APP1 marker in the first 64 KiB, then tag 0x0112 among the first
    entries of the TIFF block's first IFD, in the block's byte order. Anything malformed reads as 1 (upright),
    as a missing tag does.
    """
    head = tf.strings.substr(data, 0, _EXIF_SEARCH)
    padded = tf.strings.join([head, tf.constant(b"\0" * (_EXIF_SEARCH + 16 + 12 * _EXIF_ENTRIES))])
    parts = tf.strings.split(head, sep="Exif\x00\x00", maxsplit=1)
    exif = tf.cast(tf.strings.length(parts[0]), tf.int64)
    found = tf.logical_and(tf.size(parts) > 1, exif >= 4)
    marker = _bytes_at(padded, exif - 4, 2)
    found = tf.logical_and(found, tf.reduce_all(tf.equal(marker, [0xFF, 0xE1])))
    tiff = exif + 6
    order = _bytes_at(padded, tiff, 2)
    little = tf.reduce_all(tf.equal(order, [0x49, 0x49]))
    found = tf.logical_and(found, tf.logical_or(little, tf.reduce_all(tf.equal(order, [0x4D, 0x4D]))))
    ifd = tiff + _number(_bytes_at(padded, tiff + 4, 4), little)
    count = tf.minimum(_number(_bytes_at(padded, ifd, 2), little), _EXIF_ENTRIES)
    entries = tf.reshape(_bytes_at(padded, ifd + 2, 12 * _EXIF_ENTRIES), [_EXIF_ENTRIES, 12])
    tags = _number(entries[:, 0:2], little)
    values = _number(entries[:, 8:10], little)
    match = tf.logical_and(tf.equal(tags, _ORIENTATION_TAG), tf.range(_EXIF_ENTRIES, dtype=tf.int64) < count)
    value = tf.gather(values, tf.argmax(tf.cast(match, tf.int32)))
    valid = tf.logical_and(tf.logical_and(found, tf.reduce_any(match)), tf.logical_and(value >= 1, value <= 8))
    return tf.where(valid, value, tf.constant(1, tf.int64))


def _upright(image, orientation):
    """`image` `(h, w, c)` turned for display as EXIF `orientation` says (as Pillow's `exif_transpose`)."""
    transpose = lambda x: tf.transpose(x, [1, 0, 2])
    branches = [
        lambda: image,
        lambda: image[:, ::-1],  # 2: mirrored
        lambda: image[::-1, ::-1],  # 3: upside down
        lambda: image[::-1],  # 4: mirrored upside down
        lambda: transpose(image),  # 5
        lambda: tf.image.rot90(image, 3),  # 6: the phone held upright, turned a quarter clockwise
        lambda: transpose(image[::-1, ::-1]),  # 7
        lambda: tf.image.rot90(image, 1),  # 8
    ]
    return tf.switch_case(tf.cast(orientation - 1, tf.int32), branches)


def _header_size(data):
    """`[height, width]` int64 of one encoded image, read from its header without decoding.

    JPEG: its frame header (`tf.image.extract_jpeg_shape`). PNG: the IHDR
    chunk (bytes 16-24, big-endian). BMP: bytes 18-26 (little-endian, the
    height's sign is the row order), as TensorFlow's decoder reads them.
    GIFs fail (their frames are not counted in any header), and so does
    anything else, naming its first bytes (as numbers).
    """
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 32), tf.constant(b"\0" * 32)]), 0, 32)
    header = tf.cast(tf.reshape(tf.io.decode_raw(head, tf.uint8), [32]), tf.int64)
    kind = [tf.equal(tf.strings.substr(data, 0, len(magic)), magic) for magic in _MAGIC.values()]
    unknown = tf.debugging.Assert(
        tf.reduce_any(kind),
        [
            'image_bytes: not a JPEG, PNG or BMP file (send the file\'s bytes; over REST as {"b64": ...}); '
            "its first bytes are",
            header[:8],  # as numbers: quoting the bytes themselves fails on any that are not UTF-8
        ],
    )
    gif = tf.debugging.Assert(
        tf.logical_not(kind[2]),
        [
            "image_bytes: GIF files are not taken (every frame of an animated GIF is decoded, and no header "
            "counts them); send a PNG or JPEG"
        ],
    )
    png_ok = tf.debugging.Assert(
        # From the zero-padded head: substr past the end of a short file fails with its bytes quoted raw (not
        # UTF-8 for most), and nothing orders this check after the one that names a file that is no image.
        tf.logical_or(tf.logical_not(kind[1]), tf.equal(tf.strings.substr(head, 12, 4), "IHDR")),
        ["image_bytes: a PNG file without its IHDR header (truncated or corrupt)"],
    )
    with tf.control_dependencies([unknown, gif, png_ok]):
        little, big = tf.constant(True), tf.constant(False)
        png = tf.stack([_number(header[20:24], big), _number(header[16:20], big)])
        signed = lambda value: tf.where(value >= 2**31, value - 2**32, value)
        bmp = tf.stack([tf.abs(signed(_number(header[22:26], little))), signed(_number(header[18:22], little))])
        return tf.case(
            [
                (kind[0], lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
                (kind[1], lambda: png),
            ],
            default=lambda: bmp,
        )


class _ServingGraph:
    """The serving functions: validation, uint8 conversion, the Keras model."""

    def __init__(self, model, style_names, limits, encoded_format="png"):
        self.model = model
        self.encoded_format = encoded_format
        self.spatial_model = spatial_transformer(model)  # the same variables, a per-pixel map
        self.num_styles = len(style_names)
        self.names = list(style_names)
        self.max_pixels, self.spatial_max_pixels = limits
        pad = model.get_layer("pad")  # the network's own rule: each side mirror-padded to a multiple, a minimum
        self.pad_multiple, self.pad_minimum = pad.multiple, pad.minimum
        # Each network (and the encoded images' decoding) is traced once and called by every signature that
        # paints with it: tracing them anew in each signature took half of an export's time.
        image = tf.TensorSpec([None, None, None, 3], tf.float32)
        weights = tf.TensorSpec([None, self.num_styles], tf.float32)
        style_map = tf.TensorSpec([None, None, None, self.num_styles], tf.float32)
        self._paint = tf.function(self._network, input_signature=[image, weights], autograph=False)
        self._paint_spatial = tf.function(self._spatial_network, input_signature=[image, style_map], autograph=False)
        encoded = tf.TensorSpec([None], tf.string)
        self._paint_bytes = tf.function(self._paint_encoded, input_signature=[encoded, weights], autograph=False)

    def signatures(self):
        """`{name: (function, input_signature)}` for every signature."""
        n = self.num_styles
        image_u8 = tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")
        image_f32 = tf.TensorSpec([None, None, None, 3], tf.float32, name="image")
        index = tf.TensorSpec([None], tf.int32, name="style_index")
        weights = tf.TensorSpec([None, n], tf.float32, name="style_weights")
        style_map = tf.TensorSpec([None, None, None, n], tf.float32, name="style_weights")
        encoded = tf.TensorSpec([None], tf.string, name="image_bytes")
        return {
            "serving_default": (self._index_u8, [image_u8, index]),
            "stylize_blend": (self._blend_u8, [image_u8, weights]),
            "stylize_float": (self._index_f32, [image_f32, index]),
            "stylize_blend_float": (self._blend_f32, [image_f32, weights]),
            "stylize_spatial": (self._spatial_u8, [image_u8, style_map]),
            "stylize_spatial_float": (self._spatial_f32, [image_f32, style_map]),
            "stylize_bytes": (self._bytes_index, [encoded, index]),
            "stylize_bytes_blend": (self._bytes_blend, [encoded, weights]),
            "style_names": (self._names, []),
        }

    def _padded(self, side):
        """The side (int64) the network processes: mirror-padded up to a multiple, at least the minimum."""
        multiple = self.pad_multiple
        return tf.maximum((side + multiple - 1) // multiple * multiple, self.pad_minimum)

    def _size_checks(self, heights, widths, copies, described, limit):
        """Asserts that every side is at least `MIN_SIDE` and the padded pixels of all images within the limit.

        `heights`, `widths` and `copies` are int64 vectors: sizes, and how
        many images of each; `described` says what the request holds, for
        the message.
        """
        small = tf.logical_or(heights < MIN_SIDE, widths < MIN_SIDE)
        first = tf.argmax(tf.cast(tf.concat([small, [False]], 0), tf.int32))  # an empty batch has none
        too_small = tf.strings.format(
            "image too small: an image of {}x{} (height x width) has a side under {} pixels, the smallest the "
            "network stylises; send larger images",
            (tf.gather(tf.concat([heights, [0]], 0), first), tf.gather(tf.concat([widths, [0]], 0), first), MIN_SIDE),
        )
        # float64: headers can claim sides of 2**31, whose products overflow int64 when summed.
        padded = tf.cast(self._padded(heights), tf.float64) * tf.cast(self._padded(widths), tf.float64)
        total = tf.reduce_sum(padded * tf.cast(copies, tf.float64))
        too_large = tf.strings.join(
            [
                "image too large: ",
                described,
                " = ",
                tf.strings.as_string(total, precision=0),
                f" pixels as the network processes them (each side mirror-padded to a multiple of "
                f"{self.pad_multiple}, at least {self.pad_minimum}) is over the limit of {limit} pixels per request "
                "(the sum over the batch of padded height x padded width, set at export); send smaller or fewer images",
            ]
        )
        return [
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(small)), [too_small]),
            tf.debugging.Assert(total <= limit, [too_large]),
        ]

    def _limited(self, image, spatial=False):
        """`image`, once its sides are at least `MIN_SIDE` and its padded batch within the limit.

        The limit is `max_pixels`, or `spatial_max_pixels` for the spatial signatures.
        """
        shape = tf.shape(image, out_type=tf.int64)  # int64: 50,000 x 50,000 overflows int32
        batch, height, width = shape[0], shape[1], shape[2]
        described = tf.strings.format(
            "a batch of {} x {}x{} (padded to {}x{})", (batch, height, width, self._padded(height), self._padded(width))
        )
        limit = self.spatial_max_pixels if spatial else self.max_pixels
        checks = self._size_checks(height[None], width[None], batch[None], described, limit)
        with tf.control_dependencies(checks):
            return tf.identity(image)

    def _checked_float(self, image, spatial=False):
        """A float image `(b, h, w, 3)` clipped to [0, 1], once it is finite and within 1e-3 of that range.

        NaN, infinite or out-of-range pixels would poison the instance
        statistics of the whole image; they are refused as
        `image_io.array_to_rgb` refuses them.
        """
        image = self._limited(image, spatial)
        empty = tf.equal(tf.size(image), 0)
        low = tf.where(empty, 0.0, tf.reduce_min(image))
        high = tf.where(empty, 1.0, tf.reduce_max(image))
        checks = [
            tf.debugging.assert_all_finite(image, "image must be finite (no NaN or inf): float images hold [0, 1]"),
        ]
        with tf.control_dependencies(checks):
            in_range = tf.debugging.Assert(
                tf.logical_and(low >= -1e-3, high <= 1.0 + 1e-3),
                [
                    "image values must be in [0, 1] in the float signatures (divide uint8 data by 255, or use a "
                    "uint8 signature); they span",
                    low,
                    high,
                ],
            )
        with tf.control_dependencies([in_range]):
            return tf.clip_by_value(image, 0.0, 1.0)

    def _one_hot(self, image, style_index):
        n = self.num_styles
        message = f"style_index out of range: every index must be in [0, {n})"
        checks = [
            tf.debugging.assert_greater_equal(style_index, 0, message=message),
            tf.debugging.assert_less(style_index, n, message=message),
            tf.debugging.assert_equal(
                tf.shape(image)[0],
                tf.shape(style_index)[0],
                message="image and style_index must have the same batch size",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.one_hot(style_index, n, dtype=tf.float32)

    def _normalised(self, image, style_weights):
        checks = [
            tf.debugging.assert_all_finite(style_weights, "style_weights must be finite (no NaN or inf)"),
            tf.debugging.assert_non_negative(style_weights, message="style_weights must be non-negative"),
            tf.debugging.assert_positive(
                tf.reduce_sum(style_weights, axis=1), message="style_weights must not sum to zero in any row"
            ),
            tf.debugging.assert_equal(
                tf.shape(image)[0],
                tf.shape(style_weights)[0],
                message="image and style_weights must have the same batch size",
            ),
        ]
        with tf.control_dependencies(checks):
            return style_weights / tf.reduce_sum(style_weights, axis=1, keepdims=True)

    def _normalised_map(self, image, style_map):
        image_shape, map_shape = tf.shape(image), tf.shape(style_map)
        checks = [
            tf.debugging.assert_equal(
                map_shape[:3],
                image_shape[:3],
                message="style_weights must be a map (batch, height, width, num_styles) "
                "with the batch and size of the image",
            ),
            tf.debugging.assert_all_finite(style_map, "style_weights must be finite (no NaN or inf)"),
            tf.debugging.assert_non_negative(style_map, message="style_weights must be non-negative"),
            tf.debugging.assert_positive(
                tf.reduce_sum(style_map, axis=-1), message="style_weights must not sum to zero at any pixel"
            ),
        ]
        with tf.control_dependencies(checks):
            return style_map / tf.reduce_sum(style_map, axis=-1, keepdims=True)

    def _spatial_network(self, image, style_map):
        out = self.spatial_model({"image": image, "style_weights": style_map}, training=False)
        return tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)

    def _run_spatial(self, image, style_map):
        return self._paint_spatial(image, self._normalised_map(image, style_map))

    def _spatial_u8(self, image, style_map):
        image = self._limited(image, spatial=True)
        return {"stylized_image": self._to_u8(self._run_spatial(self._to_float(image), style_map))}

    def _spatial_f32(self, image, style_map):
        image = self._checked_float(image, spatial=True)
        return {"stylized_image": self._run_spatial(image, style_map)}

    def _network(self, image, style_weights):
        out = self.model({"image": image, "style_weights": style_weights}, training=False)
        return tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)

    @staticmethod
    def _to_float(image):
        return tf.cast(image, tf.float32) / 255.0

    @staticmethod
    def _to_u8(image):
        return tf.cast(tf.round(image * 255.0), tf.uint8)

    def _index_u8(self, image, style_index):
        image = self._limited(image)
        return {"stylized_image": self._to_u8(self._paint(self._to_float(image), self._one_hot(image, style_index)))}

    def _blend_u8(self, image, style_weights):
        image = self._limited(image)
        return {
            "stylized_image": self._to_u8(self._paint(self._to_float(image), self._normalised(image, style_weights)))
        }

    def _index_f32(self, image, style_index):
        image = self._checked_float(image)
        return {"stylized_image": self._paint(image, self._one_hot(image, style_index))}

    def _blend_f32(self, image, style_weights):
        image = self._checked_float(image)
        return {"stylized_image": self._paint(image, self._normalised(image, style_weights))}

    @staticmethod
    def _decoded(data, size):
        """One encoded image as float32 `(1, h, w, 3)` in [0, 1], as `image_io.read_image` reads the file.

        A JPEG is turned upright by its EXIF orientation; a PNG's alpha is
        composited over white. `size` is the `[height, width]` its header
        gave, checked against what the decoder returns.
        """
        is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), _MAGIC["jpeg"])
        is_png = tf.equal(tf.strings.substr(data, 0, 4), _MAGIC["png"])

        def jpeg():
            return tf.cast(tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"), tf.float32) / 255.0

        def png():
            rgba = tf.cast(tf.io.decode_png(data, channels=4), tf.float32)
            alpha = rgba[..., 3:] / 255.0
            # Rounded to 8-bit levels, as Pillow composites a file over white for `read_image`.
            return tf.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)) / 255.0

        def other():  # BMP (GIFs were refused with the header)
            image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
            return tf.cast(image, tf.float32) / 255.0

        image = tf.case([(is_jpeg, jpeg), (is_png, png)], default=other)
        image.set_shape([None, None, 3])
        decoded = tf.debugging.assert_equal(
            tf.shape(image, out_type=tf.int64)[:2], size, message="image_bytes: the decoded size is not the header's"
        )
        with tf.control_dependencies([decoded]):
            image = tf.cond(is_jpeg, lambda: _upright(image, _jpeg_orientation(data)), lambda: image)
        image.set_shape([None, None, 3])
        return image[None]

    def _encoded(self, image_u8):
        if self.encoded_format == "jpeg":
            return tf.io.encode_jpeg(image_u8, quality=95)
        return tf.io.encode_png(image_u8)

    def _paint_encoded(self, data, weights):
        """Encoded images `(b,)` and weight rows `(b, n)` (checked) -> encoded paintings `(b,)`, one at a time.

        Before anything is decoded, every image's size is read from its
        header and the request's padded pixels, summed over the batch, are
        checked against `max_pixels`, like the other signatures' batches.
        """
        count = tf.shape(data, out_type=tf.int64)[0]
        smallest = self._padded(tf.constant(MIN_SIDE, tf.int64)) ** 2
        # Even at the smallest size, this many images are over the limit: refused before reading any header.
        flood = tf.debugging.Assert(
            tf.cast(count, tf.float64) * tf.cast(smallest, tf.float64) <= self.max_pixels,
            [
                tf.strings.format(
                    "image too large: {} images are over the limit of {} pixels per request even at the smallest "
                    "size taken, {}x{} (the sum over the batch of padded height x padded width, set at export); "
                    "send fewer images",
                    (count, tf.constant(self.max_pixels, tf.int64), MIN_SIDE, MIN_SIDE),
                )
            ],
        )
        with tf.control_dependencies([flood]):
            sizes = tf.map_fn(_header_size, data, fn_output_signature=tf.TensorSpec([2], tf.int64))
        described = tf.strings.format("{} images", count)
        checks = self._size_checks(sizes[:, 0], sizes[:, 1], tf.ones_like(sizes[:, 0]), described, self.max_pixels)
        with tf.control_dependencies(checks):
            data = tf.identity(data)

        def one(args):
            encoded, size, row = args
            image = self._decoded(encoded, size)
            painted = self._to_u8(self._paint(image, row[None]))
            return self._encoded(painted[0])

        return tf.map_fn(one, (data, sizes, weights), fn_output_signature=tf.TensorSpec([], tf.string))

    def _bytes_index(self, image_bytes, style_index):
        weights = self._one_hot(image_bytes, style_index)
        return {"stylized_image_bytes": self._paint_bytes(image_bytes, weights)}

    def _bytes_blend(self, image_bytes, style_weights):
        weights = self._normalised(image_bytes, style_weights)
        return {"stylized_image_bytes": self._paint_bytes(image_bytes, weights)}

    def _names(self):
        return {"style_names": tf.constant(self.names, dtype=tf.string)}


def _write_saved_model(model, style_names, path, limits, encoded_format="png"):
    """Writes the SavedModel with Keras' ExportArchive.

    ExportArchive tracks the variables the endpoints use (not the Keras
    objects), which TF1-style loaders (TF Serving, `saved_model_cli run`) need
    to restore them. `archive.track(model)` is left out on purpose: it would
    store every weight a second time.
    """
    import keras

    archive = keras.export.ExportArchive()
    graph = _ServingGraph(model, style_names, limits, encoded_format)
    for name, (function, signature) in graph.signatures().items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(path, verbose=False)


def checked_style_names(model, style_names):
    """`style_names` as strings, once they are one unique, non-empty name per style of `model`."""
    style_names = [str(name) for name in style_names]
    num_styles = num_styles_of(model)
    if len(style_names) != num_styles:
        raise ValueError(f"The model holds {num_styles} styles but {len(style_names)} style names were given")
    repeated = sorted({n for n in style_names if style_names.count(n) > 1})
    if repeated:
        raise ValueError(f"Style names must be unique; repeated: {repeated}")
    if any(not name.strip() for name in style_names):
        raise ValueError("Style names must not be empty")
    return style_names


def serving_limits(alpha, max_pixels=None, memory_budget=None):
    """`(max_pixels, spatial_max_pixels, memory_budget)` of a model of width `alpha`.

    Give at most one of `max_pixels` (the limit of the image signatures, in
    padded pixels per request) and `memory_budget` (bytes the largest
    accepted request may take; `DEFAULT_MEMORY_BUDGET` if neither is given);
    the others follow from the measured peak memory per padded pixel,
    `MEMORY_MARGIN` x `BYTES_PER_PIXEL` (`SPATIAL_BYTES_PER_PIXEL`).
    Limits are rounded down to 10,000 pixels (never below one 16x16 image).

    Raises:
        ValueError: If both are given, or either is not a positive integer.
    """
    if max_pixels is not None and memory_budget is not None:
        raise ValueError(
            "Give max_pixels or memory_budget, not both (each follows from the other). "
            f"Received: max_pixels={max_pixels!r}, memory_budget={memory_budget!r}"
        )
    per_pixel = MEMORY_MARGIN * (BYTES_PER_PIXEL[0] + BYTES_PER_PIXEL[1] * alpha)
    per_spatial_pixel = MEMORY_MARGIN * (SPATIAL_BYTES_PER_PIXEL[0] + SPATIAL_BYTES_PER_PIXEL[1] * alpha)

    def pixels(budget, per):
        return max(MIN_SIDE**2, int(budget // per) // 10_000 * 10_000)

    if max_pixels is not None:
        check_positive_integer("max_pixels", max_pixels)
        if max_pixels < MIN_SIDE**2:
            raise ValueError(
                f"max_pixels must allow one {MIN_SIDE}x{MIN_SIDE} image ({MIN_SIDE**2} pixels), the smallest every "
                f"image signature takes. Received: max_pixels={max_pixels}"
            )
        memory_budget = int(max_pixels * per_pixel)
        return max_pixels, max(MIN_SIDE**2, int(memory_budget // per_spatial_pixel)), memory_budget
    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET
    check_positive_integer("memory_budget", memory_budget)
    return pixels(memory_budget, per_pixel), pixels(memory_budget, per_spatial_pixel), memory_budget


def next_version(export_dir):
    """1 + the highest numeric version folder under `export_dir` (1 if none)."""
    existing = version_dirs(export_dir)
    return int(os.path.basename(existing[-1])) + 1 if existing else 1


def export_saved_model(
    model,
    export_dir,
    style_names,
    version=None,
    training_config=None,
    max_pixels=None,
    encoded_format="png",
    memory_budget=None,
    paintings=None,
):
    """Exports a transformer as a versioned SavedModel for TF Serving and `Stylizer`.

    The version is written to a temporary folder beside it and renamed into
    place, so a crash never leaves a half model that a server could load.

    Args:
        model: A model from `build_transformer` (trained).
        export_dir: The base folder; versions go in numbered subfolders.
        style_names: One unique name per style, in index order.
        version: Positive integer; defaults to the next free one. An existing
            version is never overwritten.
        training_config: Optional dict stored in the metadata, with names
            relative to the run instead of the training machine's paths (see
            `metadata.portable_training_config`).
        max_pixels: Largest request the image signatures accept, counted as
            the network processes it: the sum over the batch of padded
            height x padded width; larger ones fail inside the graph. The
            spatial signatures' limit is lower, for the same memory.
            Defaults to what `memory_budget` allows (`serving_limits`).
        encoded_format: What `stylize_bytes` answers in: `"png"` (lossless)
            or `"jpeg"` (quality 95, smaller). Defaults to `"png"`.
        memory_budget: Instead of `max_pixels`: the bytes of memory the
            largest accepted request may take. Defaults to
            `DEFAULT_MEMORY_BUDGET` (4 GiB) when `max_pixels` is not given.
        paintings: The styles' paintings, carried in the version's
            `assets/paintings/` for refining (`Stylizer.stylize(refine=...)`)
            and `Stylizer.style_image`: one image (path, PIL image or array)
            or `None` per style, or a model's paintings folder
            (`cin_style.paintings.paintings_folder`). Resized to the
            training config's `style_image_size` (256 by default). Defaults
            to `None` (none carried).

    Returns:
        The path of the written version folder.

    Raises:
        ValueError: If the names do not match the model, repeat, the version
            exists or is not a positive integer, or `max_pixels` or
            `memory_budget` is not a positive integer, or both are given, or
            `paintings` does not give one entry per style.
        ImageReadError: If a painting cannot be read.
    """
    style_names = checked_style_names(model, style_names)
    num_styles = len(style_names)
    if isinstance(paintings, (str, os.PathLike)):
        paintings = carried(os.fspath(paintings), num_styles)
    if paintings is not None and len(paintings) != num_styles:
        raise ValueError(
            f"`paintings` needs one image (or None) per style ({num_styles}). Received: {len(paintings)} entries"
        )
    style_size = int((training_config or {}).get("style_image_size") or 256)
    # Read and resized before any work: a bad file fails the export before the SavedModel is traced.
    fitted_paintings = [None if p is None else fitted(p, style_size) for p in paintings or []]
    max_pixels, spatial_max_pixels, memory_budget = serving_limits(alpha_of(model), max_pixels, memory_budget)
    if encoded_format not in ENCODED_FORMATS:
        raise ValueError(
            f"`encoded_format` must be one of {ENCODED_FORMATS}. Received: encoded_format={encoded_format!r}"
        )
    os.makedirs(export_dir, exist_ok=True)
    if version is None:
        version = next_version(export_dir)
    check_positive_integer("version", version)
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise ValueError(f"Version {version} already exists in {export_dir}; versions are never overwritten")
    tmp = os.path.join(export_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_saved_model(
            model, style_names, tmp, limits=(max_pixels, spatial_max_pixels), encoded_format=encoded_format
        )
        carried_styles = write_paintings(os.path.join(tmp, SAVED_MODEL_FOLDER), fitted_paintings, style_size)
        metadata = {
            "format": METADATA_FORMAT,
            "cin_style_version": __version__,
            "style_names": style_names,
            "num_styles": num_styles,
            "alpha": alpha_of(model),
            "signatures": list(SIGNATURES),
            "weights_sha256": weights_hash(model),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "max_pixels": max_pixels,
            "spatial_max_pixels": spatial_max_pixels,
            "memory_budget": memory_budget,
            "encoded_format": encoded_format,
            "training": portable_training_config(training_config),
            "paintings": carried_styles,  # the styles whose paintings assets/paintings holds
        }
        with open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as stream:
            json.dump(metadata, stream, indent=2)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
