"""TensorFlow Lite export: a fixed-size float model with index and blend signatures and the style names inside.

The `.tflite` file has two signatures, both on one image of the size chosen
at export (TFLite's converter needs static shapes here: with a run-time
size, the convolutions after each upsampling lose their channel count and
fall back to TensorFlow ops that mobile runtimes lack; and the graph's
shaping for XNNPACK below pads by slices of known sizes):

- `stylize`: `image` float32 `(1, height, width, 3)` in [0, 1] +
  `style_index` int32 `(1,)` -> `stylized_image` float32 `(1, height, width, 3)`;
- `stylize_blend`: `image` + `style_weights` float32 `(1, num_styles)`,
  normalised to sum 1 inside -> `stylized_image`.

The file itself has no run-time checks like the SavedModel's: a photo of
another size fails deep inside ("gather index out of bounds ... (GATHER)"),
an index out of range paints NaN, and weights must be non-negative and sum
above zero. `TFLiteStylizer` runs a file with LiteRT (`ai-edge-litert`,
TensorFlow's maintained successor of `tf.lite.Interpreter`) and checks all
three first, with a clear error. Resize photos to the model's size (or
export one per size you need). The file's metadata entry `cin_style` holds
JSON with the style names, the input size, the quantization and the
weights' hash (`read_tflite_metadata`).

The graph is shaped for XNNPACK, TFLite's CPU engine, with the network's
values: paddings by slices, the 9x9 convolutions two by two pixels at a
time and each upsampling folded into the convolution after it
(`cin_style.conv_rewrites`), which made the slim model 1.8-2.2x faster on
this project's CPU for files about 20% larger.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from cin_style import __version__
from cin_style.conv_rewrites import rewritten_layers
from cin_style.export import checked_style_names
from cin_style.layers.padding import MirrorPadToMultiple
from cin_style.layers.reflection_conv import concatenate_in_groups, line, reflection_padding_by_slices
from cin_style.metadata import weights_hash
from cin_style.network import all_layers, alpha_of, num_styles_of, run_layers, with_dtype_policy

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


def _mirror_pad_by_slices(layer):
    """`MirrorPadToMultiple` `layer` for an image of known size, by slices and concatenations.

    The same values as the layer's GATHER (which XNNPACK lacks) for the
    sizes `export_tflite` takes: at least `MIN_TFLITE_SIDE`, so the few
    mirrored lines never wrap around.
    """

    def pad(x):
        for axis in (1, 2):
            size = x.shape[axis]
            extra = max(layer.minimum, -(-size // layer.multiple) * layer.multiple) - size
            if extra > size:  # a mirror that folds more than once: the layer's own gather
                return layer(x)
            mirrored = [line(x, axis, size - 1 - i) for i in range(extra)]
            x = concatenate_in_groups([x, *mirrored], axis) if mirrored else x
        return x

    return pad


#: Output pixels per block side for the space-to-depth form of stride-1 convolutions wider than 3x3
#: (`conv_rewrites.conv_by_space_to_depth`). Measured with LiteRT 2.3, the whole slim file with the upsamplings
#: folded at 512 / 1024 px: block 2 82 / 338 ms, block 4 78 / 376 ms (from 147 / 760 ms); the full model at 512
#: px 575 ms from 734 (block 2).
SPACE_TO_DEPTH_BLOCK = 2


def _xnnpack_friendly():
    """`wrap` for `network.run_layers` in the exported graph: the padding to a multiple of 4 by slices, each
    upsampling folded into the convolution after it and the 9x9 convolutions two by two pixels at a time
    (`conv_rewrites.rewritten_layers`: XNNPACK fills its vector registers with output channels, of which the
    slim model's 9x9 layers have 8 and 3), every other layer itself."""
    rewritten = rewritten_layers(space_to_depth=lambda layer: layer.kernel_size > 3, block=SPACE_TO_DEPTH_BLOCK)

    def wrap(layer):
        return _mirror_pad_by_slices(layer) if isinstance(layer, MirrorPadToMultiple) else rewritten(layer)

    return wrap


def _float32_transformer(model):
    """`model` itself if it is a transformer from `build_transformer` computing in float32; its float32 copy
    if it computes in another precision (a mixed-precision training's model: the converter fails on bfloat16).

    Raises:
        ValueError: For anything else (e.g. `spatial_transformer`'s view, which takes a weight map).
    """
    inputs = getattr(model, "input", None)
    weights = inputs.get("style_weights") if isinstance(inputs, dict) else None
    names = {layer.name for layer in getattr(model, "layers", ())}
    if weights is None or len(weights.shape) != 2 or not {"pad", "crop"} <= names:
        raise ValueError(
            "export_tflite takes a transformer from build_transformer (or a loaded cin_style model), whose style "
            f"weights are a row per image; received {getattr(model, 'name', type(model).__name__)!r}"
            + (" (a spatial view: export the model it was made from)" if weights is not None else "")
        )
    if any(layer.compute_dtype != "float32" for layer in all_layers(model)):
        return with_dtype_policy(model, "float32")
    return model


def _write_fixed_saved_model(model, folder, height, width):
    """A SavedModel of the two signatures at one image size; the converter freezes its variables."""
    import keras

    num_styles = num_styles_of(model)

    def blend(image, style_weights):
        weights = style_weights / tf.reduce_sum(style_weights, axis=1, keepdims=True)
        out = run_layers(model, image, lambda level: weights, wrap=_xnnpack_friendly())
        return {"stylized_image": tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)}

    def index(image, style_index):
        return blend(image, tf.one_hot(style_index, num_styles, dtype=tf.float32))

    image = tf.TensorSpec([1, height, width, 3], tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    with reflection_padding_by_slices():  # traced at a fixed size: no MIRROR_PAD, which XNNPACK lacks
        archive.add_endpoint(
            "stylize", index, input_signature=[image, tf.TensorSpec([1], tf.int32, name="style_index")]
        )
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
        model: A model from `build_transformer` (trained); one computing in
            mixed precision is exported as its float32 copy.
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
        ValueError: For a bad size, quantization or style names, or a model
            that is not a transformer from `build_transformer` (e.g. the
            spatial view).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}. Received: quantization={quantization!r}")
    height, width = _size(size)
    model = _float32_transformer(model)
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


def _litert_interpreter_class():
    """LiteRT's `Interpreter`, or an ImportError that says what to install."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(
            "Running a .tflite file needs LiteRT, TensorFlow's maintained TFLite runtime: "
            f"pip install ai-edge-litert (or cin_style[tflite]). ({error})"
        ) from error
    return Interpreter


class TFLiteStylizer:
    """Paints with a cin_style `.tflite` file under LiteRT, checking each call's inputs first.

    Args:
        path: A `.tflite` file written by `export_tflite`.
        num_threads: CPU threads for LiteRT. Defaults to `None` (LiteRT's
            choice).

    Attributes:
        input_size: `(height, width)`: the only photo size the file takes.
        num_styles: Rows of the file's style table.
        style_names: The names in the file's metadata (else "0", "1", ...).

    Raises:
        ImportError: If `ai-edge-litert` is not installed.
        ValueError: If the file lacks the `stylize` / `stylize_blend` signatures.

    Example:

    ```python
    painter = TFLiteStylizer("slim.tflite")
    painted = painter.stylize(photo, "munch_the_scream")  # photo: (512, 512, 3) float in [0, 1]
    ```
    """

    def __init__(self, path, num_threads=None):
        self.path = os.fspath(path)
        interpreter = _litert_interpreter_class()(model_path=self.path, num_threads=num_threads)
        missing = [name for name in TFLITE_SIGNATURES if name not in interpreter.get_signature_list()]
        if missing:
            raise ValueError(f"{self.path} has no {missing} signature(s): was it exported by cin_style?")
        self._by_index = interpreter.get_signature_runner("stylize")
        self._by_weights = interpreter.get_signature_runner("stylize_blend")
        inputs = self._by_weights.get_input_details()
        self.input_size = tuple(int(side) for side in inputs["image"]["shape"][1:3])
        self.num_styles = int(inputs["style_weights"]["shape"][1])
        try:
            self.style_names = list(read_tflite_metadata(self.path)["style_names"])
        except ValueError:  # metadata stripped: the styles go by index
            self.style_names = [str(i) for i in range(self.num_styles)]

    def stylize(self, image, style):
        """One photo in one style.

        Args:
            image: Float RGB in [0, 1], `(height, width, 3)` or `(1, height,
                width, 3)` at `input_size`.
            style: A style index or name.

        Returns:
            The painting, float32 in [0, 1], shaped as `image`.

        Raises:
            ValueError: If the image has another size or its values leave
                [0, 1], or the style is not one of the file's.
        """
        batch = self._checked_image(image)
        index = np.array([self._checked_index(style)], np.int32)
        out = self._by_index(image=batch, style_index=index)["stylized_image"]
        return out if np.ndim(image) == 4 else out[0]

    def stylize_blend(self, image, style_weights):
        """One photo in a blend of styles.

        Args:
            image: As for `stylize`.
            style_weights: One weight per style (a sequence), or `{style
                index or name: weight}`; non-negative, summing above zero,
                normalised to sum 1.

        Returns:
            The painting, float32 in [0, 1], shaped as `image`.

        Raises:
            ValueError: For a bad image (see `stylize`), a weight count
                other than `num_styles`, a negative, NaN or infinite
                weight, weights summing to zero, or an unknown style.
        """
        batch = self._checked_image(image)
        if isinstance(style_weights, dict):
            weights = np.zeros(self.num_styles, np.float32)
            for style, weight in style_weights.items():
                weights[self._checked_index(style)] += weight
        else:
            weights = np.asarray(style_weights, np.float32).reshape(-1)
            if weights.size != self.num_styles:
                raise ValueError(
                    f"`style_weights` must hold {self.num_styles} weights, one per style of {self.path}. "
                    f"Received: style_weights={style_weights!r}"
                )
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise ValueError(
                "`style_weights` must be finite, non-negative and sum above zero. "
                f"Received: style_weights={style_weights!r}"
            )
        out = self._by_weights(image=batch, style_weights=weights[None])["stylized_image"]
        return out if np.ndim(image) == 4 else out[0]

    def _checked_image(self, image):
        batch = np.asarray(image, np.float32)
        batch = batch[None] if batch.ndim == 3 else batch
        expected = (1, *self.input_size, 3)
        if batch.shape != expected:
            height, width = self.input_size
            raise ValueError(
                f"`image` must be ({height}, {width}, 3) (or {expected}): {self.path} takes only the size it "
                f"was exported at. Resize the photo, or export another size with cin-style-export "
                f"--format=tflite --size=HEIGHT,WIDTH. Received: image.shape={np.shape(image)}"
            )
        if not np.all((batch >= 0.0) & (batch <= 1.0)):  # NaN fails too
            raise ValueError(
                "`image` must be float RGB in [0, 1] (uint8 photos: divide by 255). "
                f"Received: values in [{np.nanmin(batch):g}, {np.nanmax(batch):g}]"
            )
        return batch

    def _checked_index(self, style):
        if isinstance(style, str):
            if style in self.style_names:
                return self.style_names.index(style)
            raise ValueError(f"Unknown style name {style!r}; this file's styles: {', '.join(self.style_names)}")
        if isinstance(style, (int, np.integer)) and not isinstance(style, bool) and 0 <= style < self.num_styles:
            return int(style)
        raise ValueError(
            f"`style` must be a style name or an index in [0, {self.num_styles - 1}]. Received: style={style!r}"
        )


__all__ = [
    "DEFAULT_TFLITE_SIZE",
    "METADATA_NAME",
    "QUANTIZATIONS",
    "TFLITE_SIGNATURES",
    "TFLiteStylizer",
    "export_tflite",
    "read_tflite_metadata",
]
