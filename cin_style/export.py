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
- `stylize_bytes`: `image_bytes` string `(b,)` (JPEG, PNG, GIF or BMP files,
  as TF Serving's REST API decodes `{"b64": ...}`) + `style_index` int32
  `(b,)` -> `stylized_image_bytes` string `(b,)`, PNG (or JPEG, chosen at
  export). Each image keeps its own size; names ending in `_bytes` make TF
  Serving send the output back as base64. `stylize_bytes_blend`: the same
  with `style_weights` float32 `(b, num_styles)`.
- `style_names`: no input -> `style_names` string `(num_styles,)`.

Bad requests (a style index out of range; blend weights that are negative,
not finite, or sum to zero in a row or at a pixel of a map; batch sizes or
map sizes that disagree) fail inside the graph with a `tf.debugging` message
instead of returning garbage pixels.

Every signature that takes images refuses a request whose batch x height x
width is over `max_pixels` (set at export, recorded in the metadata) with an
`InvalidArgumentError` naming the size and the limit, before any work on the
pixels: one request cannot exhaust the server's memory. The limit counts the
whole batch, so a batch of many large images is refused like one huge image.
"""

import json
import os
import shutil
import time

import tensorflow as tf

from cin_style import __version__
from cin_style.checks import check_positive_integer
from cin_style.image_io import DEFAULT_MAX_PIXELS
from cin_style.metadata import (
    METADATA_FILE,
    METADATA_FORMAT,
    portable_training_config,
    version_dirs,
    weights_hash,
)
from cin_style.network import alpha_of, num_styles_of, spatial_transformer

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


class _ServingGraph:
    """The serving functions: validation, uint8 conversion, the Keras model."""

    def __init__(self, model, style_names, max_pixels=DEFAULT_MAX_PIXELS, encoded_format="png"):
        self.model = model
        self.encoded_format = encoded_format
        self.spatial_model = spatial_transformer(model)  # the same variables, a per-pixel map
        self.num_styles = len(style_names)
        self.names = list(style_names)
        self.max_pixels = max_pixels

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

    def _limited(self, image):
        """`image`, once its batch x height x width is known to be at most `max_pixels`."""
        shape = tf.shape(image, out_type=tf.int64)  # int64: 50,000 x 50,000 overflows int32
        total = shape[0] * shape[1] * shape[2]
        message = tf.strings.format(
            "image too large: a batch of {} x {}x{} = {} pixels is over the limit of {} pixels per request "
            "(batch x height x width, set at export); send smaller or fewer images",
            (shape[0], shape[1], shape[2], total, tf.constant(self.max_pixels, tf.int64)),
        )
        with tf.control_dependencies([tf.debugging.Assert(total <= self.max_pixels, [message])]):
            return tf.identity(image)

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

    def _run_spatial(self, image, style_map):
        weights = self._normalised_map(image, style_map)
        out = self.spatial_model({"image": image, "style_weights": weights}, training=False)
        return tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)

    def _spatial_u8(self, image, style_map):
        image = self._limited(image)
        return {"stylized_image": self._to_u8(self._run_spatial(self._to_float(image), style_map))}

    def _spatial_f32(self, image, style_map):
        image = self._limited(image)
        return {"stylized_image": self._run_spatial(image, style_map)}

    def _run(self, image, style_weights):
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
        return {"stylized_image": self._to_u8(self._run(self._to_float(image), self._one_hot(image, style_index)))}

    def _blend_u8(self, image, style_weights):
        image = self._limited(image)
        return {"stylized_image": self._to_u8(self._run(self._to_float(image), self._normalised(image, style_weights)))}

    def _index_f32(self, image, style_index):
        image = self._limited(image)
        return {"stylized_image": self._run(image, self._one_hot(image, style_index))}

    def _blend_f32(self, image, style_weights):
        image = self._limited(image)
        return {"stylized_image": self._run(image, self._normalised(image, style_weights))}

    def _decoded(self, data):
        """One encoded image as uint8 `(1, h, w, 3)`, after checks that name what is wrong with it."""
        signatures = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")  # PNG, JPEG, GIF, BMP
        known = tf.reduce_any([tf.equal(tf.strings.substr(data, 0, len(magic)), magic) for magic in signatures])
        check = tf.debugging.Assert(
            known,
            [
                'image_bytes: not a JPEG, PNG, GIF or BMP file (send the file\'s bytes; over REST as {"b64": ...}); '
                "it starts with",
                tf.strings.substr(data, 0, 8),
            ],
        )
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        image.set_shape([None, None, 3])
        return self._limited(image[None])

    def _encoded(self, image_u8):
        if self.encoded_format == "jpeg":
            return tf.io.encode_jpeg(image_u8, quality=95)
        return tf.io.encode_png(image_u8)

    def _paint_encoded(self, data, weights):
        """Encoded images `(b,)` and weight rows `(b, n)` (checked) -> encoded paintings `(b,)`, one at a time."""

        def one(args):
            encoded, row = args
            image = self._decoded(encoded)
            painted = self._to_u8(self._run(self._to_float(image), row[None]))
            return self._encoded(painted[0])

        return tf.map_fn(one, (data, weights), fn_output_signature=tf.TensorSpec([], tf.string))

    def _bytes_index(self, image_bytes, style_index):
        weights = self._one_hot(image_bytes, style_index)
        return {"stylized_image_bytes": self._paint_encoded(image_bytes, weights)}

    def _bytes_blend(self, image_bytes, style_weights):
        weights = self._normalised(image_bytes, style_weights)
        return {"stylized_image_bytes": self._paint_encoded(image_bytes, weights)}

    def _names(self):
        return {"style_names": tf.constant(self.names, dtype=tf.string)}


def _write_saved_model(model, style_names, path, max_pixels=DEFAULT_MAX_PIXELS, encoded_format="png"):
    """Writes the SavedModel with Keras' ExportArchive.

    ExportArchive tracks the variables the endpoints use (not the Keras
    objects), which TF1-style loaders (TF Serving, `saved_model_cli run`) need
    to restore them. `archive.track(model)` is left out on purpose: it would
    store every weight a second time.
    """
    import keras

    archive = keras.export.ExportArchive()
    graph = _ServingGraph(model, style_names, max_pixels, encoded_format)
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
    max_pixels=DEFAULT_MAX_PIXELS,
    encoded_format="png",
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
            batch x height x width; larger ones fail inside the graph.
            Defaults to `image_io.DEFAULT_MAX_PIXELS`, the `Stylizer`'s limit
            (it sends one image per call).
        encoded_format: What `stylize_bytes` answers in: `"png"` (lossless)
            or `"jpeg"` (quality 95, smaller). Defaults to `"png"`.

    Returns:
        The path of the written version folder.

    Raises:
        ValueError: If the names do not match the model, repeat, the version
            exists or is not a positive integer, or `max_pixels` is not a
            positive integer.
    """
    style_names = checked_style_names(model, style_names)
    num_styles = len(style_names)
    check_positive_integer("max_pixels", max_pixels)
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
        _write_saved_model(model, style_names, tmp, max_pixels=max_pixels, encoded_format=encoded_format)
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
            "encoded_format": encoded_format,
            "training": portable_training_config(training_config),
        }
        with open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as stream:
            json.dump(metadata, stream, indent=2)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
