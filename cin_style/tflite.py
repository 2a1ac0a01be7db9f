"""TensorFlow Lite export: a fixed-size float model with index and blend signatures and the style names inside.

The `.tflite` file has two signatures, both on one image of the size chosen
at export (TFLite's converter needs static shapes here: with a run-time
size, the convolutions after each upsampling lose their channel count and
fall back to TensorFlow ops that mobile runtimes lack):

- `stylize`: `image` float32 `(1, height, width, 3)` in [0, 1] +
  `style_index` int32 `(1,)` -> `stylized_image` float32 `(1, height, width, 3)`;
- `stylize_blend`: `image` + `style_weights` float32 `(1, num_styles)`,
  normalised to sum 1 inside -> `stylized_image`.

TFLite has no run-time checks like the SavedModel's: an index out of range
paints with all-zero style rows, and weights must be non-negative and sum
above zero. Resize photos to the model's size (or export one per size you
need). The file's metadata entry `cin_style` holds JSON with the style
names, the input size, the quantization and the weights' hash
(`read_tflite_metadata`).
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from cin_style import __version__
from cin_style.export import checked_style_names
from cin_style.metadata import weights_hash
from cin_style.network import alpha_of, num_styles_of

#: What `export_tflite(quantization=...)` accepts: float32 weights, float16
#: weights, or int8 weights with float activations ("dynamic range").
QUANTIZATIONS = (None, "float16", "dynamic_range")
#: Name of the metadata entry holding cin_style's JSON.
METADATA_NAME = "cin_style"
#: Signature names of the `.tflite` file.
TFLITE_SIGNATURES = ("stylize", "stylize_blend")
#: Default input size (height, width).
DEFAULT_TFLITE_SIZE = (512, 512)
#: Smallest side: smaller images carry no style (as for the Stylizer).
MIN_TFLITE_SIDE = 16


def _size(size):
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= MIN_TFLITE_SIDE for s in pair):
        raise ValueError(
            f"`size` must be an int or (height, width) of ints of at least {MIN_TFLITE_SIDE}. Received: size={size!r}"
        )
    return pair


def _write_fixed_saved_model(model, folder, height, width):
    """A SavedModel of the two signatures at one image size; the converter freezes its variables."""
    import keras

    num_styles = num_styles_of(model)

    def blend(image, style_weights):
        weights = style_weights / tf.reduce_sum(style_weights, axis=1, keepdims=True)
        out = model({"image": image, "style_weights": weights}, training=False)
        return {"stylized_image": tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)}

    def index(image, style_index):
        return blend(image, tf.one_hot(style_index, num_styles, dtype=tf.float32))

    image = tf.TensorSpec([1, height, width, 3], tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("stylize", index, input_signature=[image, tf.TensorSpec([1], tf.int32, name="style_index")])
    archive.add_endpoint(
        "stylize_blend",
        blend,
        input_signature=[image, tf.TensorSpec([1, num_styles], tf.float32, name="style_weights")],
    )
    archive.write_out(folder, verbose=False)


def _with_metadata(flatbuffer, metadata):
    """The model `flatbuffer` with a metadata entry `METADATA_NAME` holding `metadata` as JSON.

    TensorFlow has no public API to add metadata to a converted model; this
    is its one use of `tensorflow.lite.tools.flatbuffer_utils` (the schema
    objects of the file), pinned by test_tflite_metadata_names_the_styles.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = bytearray(json.dumps(metadata).encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_tflite_metadata(path):
    """The cin_style metadata (style names, input size, quantization, ...) of a `.tflite` file.

    Raises:
        ValueError: If the file has no cin_style metadata.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(os.fspath(path))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode("utf-8"))
    raise ValueError(f"{path} has no '{METADATA_NAME}' metadata: was it exported by cin_style?")


def export_tflite(model, path, style_names, size=DEFAULT_TFLITE_SIZE, quantization=None):
    """Writes a transformer as a `.tflite` file for phones, browsers and microcontroller-class CPUs.

    Args:
        model: A model from `build_transformer` (trained).
        path: The `.tflite` file to write (atomically: a temporary file
            renamed into place).
        style_names: One unique name per style, in index order (stored in
            the file's metadata).
        size: The input size, an int (square) or `(height, width)`; the file
            takes exactly this size (see the module docstring). Defaults to
            `DEFAULT_TFLITE_SIZE`.
        quantization: `None` (float32 weights), `"float16"` (half the size,
            outputs within ~1e-3) or `"dynamic_range"` (int8 weights, a
            quarter of the size, outputs within a few 1e-2). Defaults to `None`.

    Returns:
        `path`.

    Raises:
        ValueError: For a bad size, quantization or style names.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}. Received: quantization={quantization!r}")
    height, width = _size(size)
    style_names = checked_style_names(model, style_names)
    path = os.fspath(path)
    work = tempfile.mkdtemp(prefix="cin_style-tflite-")
    try:
        _write_fixed_saved_model(model, work, height, width)
        converter = tf.lite.TFLiteConverter.from_saved_model(work, signature_keys=list(TFLITE_SIGNATURES))
        if quantization:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS
        ]  # no TensorFlow ops: mobile runtimes lack them
        flatbuffer = converter.convert()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    metadata = {
        "cin_style_version": __version__,
        "style_names": style_names,
        "num_styles": len(style_names),
        "alpha": alpha_of(model),
        "input_size": [height, width],
        "quantization": quantization,
        "signatures": list(TFLITE_SIGNATURES),
        "weights_sha256": weights_hash(model),
    }
    flatbuffer = _with_metadata(flatbuffer, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        with open(tmp, "wb") as stream:
            stream.write(flatbuffer)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


__all__ = [
    "DEFAULT_TFLITE_SIZE",
    "METADATA_NAME",
    "QUANTIZATIONS",
    "TFLITE_SIGNATURES",
    "export_tflite",
    "read_tflite_metadata",
]
