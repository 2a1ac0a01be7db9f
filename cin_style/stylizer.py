"""`Stylizer`: paint photos with a trained multi-style model.

    from cin_style import Stylizer
    stylizer = Stylizer.load()  # the bundled default model
    painted = stylizer.stylize("photo.jpg", "hokusai_great_wave")
    blended = stylizer.stylize(photo_array, {"hokusai_great_wave": 0.7, "munch_the_scream": 0.3})

Every input is checked before any work starts; every error names the problem.
"""

import difflib
import logging
import os
import threading

import numpy as np
from PIL import Image

from cin_style import image_io, tiles
from cin_style.bundled import resolve_model_keyword
from cin_style.checks import check_count, normalized_blend
from cin_style.colors import COLOR_MODES, keep_colors, preserve_colors  # noqa: F401  (old import path)
from cin_style.metadata import read_metadata, read_styles_file, resolve_saved_model_dir
from cin_style.paintings import paintings_folder, read_painting
from cin_style.precision import check_backend, check_jit_compile, check_precision, network_painters
from cin_style.regions import RegionError, style_map

logger = logging.getLogger("cin_style")

#: How `stylize` mixes the styles of regions (see its `region_blend`).
REGION_BLENDS = ("features", "outputs")
#: Smallest side the Stylizer accepts; smaller images carry no style.
MIN_SIDE = 16
#: Images with a side above this are stylised in overlapping tiles.
DEFAULT_TILE_SIZE = 2048
#: Most pixels (batch x height x width) the Stylizer sends to the model in one call: one full tile.
BATCH_PIXELS = DEFAULT_TILE_SIZE**2
#: Overlap of neighbouring tiles, blended with linear feathering.
DEFAULT_TILE_OVERLAP = 128


class StyleError(ValueError):
    """A style index, name or blend that the model cannot use."""


class ModelLoadError(ValueError):
    """A model path that does not exist or holds no cin_style model."""


def _is_number(value):
    """A Python or numpy real number, not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def padded_pixels(height, width):
    """Pixels the network processes for one `height` x `width` image: each side padded to a multiple of 8."""
    return max(8, -(-height // 8) * 8) * max(8, -(-width // 8) * 8)


def _color_mode(preserve_color):
    """`None`, "luminance" or "histogram" for `stylize`'s `preserve_color`."""
    if preserve_color is False or preserve_color is None:
        return None
    if preserve_color is True:
        return "luminance"
    if isinstance(preserve_color, str) and preserve_color in COLOR_MODES:
        return preserve_color
    raise ValueError(
        f"`preserve_color` must be False, True or one of {COLOR_MODES}. Received: preserve_color={preserve_color!r}"
    )


def _once(make):
    """`make`, called on first use only; later calls return that first result."""
    made = []

    def get():
        if not made:
            made.append(make())
        return made[0]

    return get


def _layer_by_layer(get_model, lock):
    """`Stylizer`'s `paint_large`: `large_image.paint_large` with the model `get_model()` gives."""

    def paint(image, weights):
        from cin_style.large_image import paint_large

        with lock:
            return paint_large(get_model(), image, weights)

    return paint


def _check_names_fit(names, held, where):
    """Raises `ModelLoadError` unless the model holds one style per name."""
    if held is not None and len(names) != held:
        raise ModelLoadError(
            f"'{where}' names {len(names)} styles but the model holds {held}; the names do not belong to this "
            "model (was the file edited or copied from another model?)"
        )


class _ImageKind:
    """Remembers what kind of image the caller gave, to return the same kind."""

    def __init__(self, kind, dtype=None, batched=False):
        self.kind, self.dtype, self.batched = kind, dtype, batched

    def restore(self, batch):
        if self.kind in ("pil", "path"):
            return Image.fromarray(image_io.to_uint8(batch[0]))
        # `batch` is the Stylizer's own (fresh from the model), so float32 goes back without a copy.
        out = image_io.to_uint8(batch) if self.dtype == np.uint8 else batch.astype(self.dtype, copy=False)
        return out if self.batched else out[0]


class Stylizer:
    """Stylises images with a trained model; safe to call from several threads.

    Load one with `Stylizer.load(path)`. Styles are picked by index, by name,
    or blended with a `{name_or_index: weight}` dict or a weight vector.

    Args:
        run: A function `(images float32 (n, h, w, 3), weights float32
            (n, num_styles)) -> float32 images`.
        style_names: The model's style names, in index order.
        source: Where the model came from (shown in `repr`).
        max_pixels: Largest image accepted. Defaults to
            `image_io.DEFAULT_MAX_PIXELS`.
        tile_size: Images with a side above this are painted in tiles so
            memory stays bounded. Defaults to `DEFAULT_TILE_SIZE`.
        tile_overlap: Overlap of feather-blended tiles (only without
            `paint_large`). Defaults to `DEFAULT_TILE_OVERLAP`.
        run_spatial: Like `run` with per-pixel maps `(n, h, w, num_styles)`.
        paint_large: A function `(image (h, w, 3), weights (num_styles,) or
            (h, w, num_styles)) -> image` for images above `tile_size`: the
            loaders give `cin_style.large_image.paint_large`, which paints
            layer by layer with the whole image's statistics, so the result
            is the untiled painting (no seams).
        seamless: Use `paint_large` for large images. `False` (or no
            `paint_large`): overlapping tiles painted as separate images,
            each with its own statistics, feather-blended; neighbouring
            tiles may differ in tone. Defaults to `True`.
        call_pixels: Most pixels one call of `run` (or `run_spatial`) may
            hold, counted as the network pads them (`padded_pixels`): a
            SavedModel's exported `max_pixels`, which its signatures
            enforce. Images over it are painted as large images (layer by
            layer, or in tiles under it), batches split under it.
            Defaults to `None` (only `BATCH_PIXELS`).
        spatial_call_pixels: The same for `run_spatial` (per-pixel maps cost
            more memory, so a SavedModel's spatial signatures have their own,
            lower `spatial_max_pixels`). Defaults to `call_pixels`.
        paintings: The folder of the model's paintings (`cin_style.paintings`),
            which `stylize(refine=...)` and `style_image` read. Defaults to
            `None` (none: refining is refused, naming how to add them).
        training_config: The settings the model was trained with (its loss
            weights and `style_image_size`), the loss refining minimises.
            Defaults to `None` (the library's defaults).
        vgg_weights: The VGG19 weights refining's loss needs: a file path,
            or `"imagenet"` for Keras' download. Defaults to `None`
            ($CIN_STYLE_VGG19_WEIGHTS, else Keras' cache or download).

    Raises:
        ValueError: If `call_pixels` or `spatial_call_pixels` is below one 16x16 image.
    """

    def __init__(
        self,
        run,
        style_names,
        source=None,
        max_pixels=image_io.DEFAULT_MAX_PIXELS,
        tile_size=DEFAULT_TILE_SIZE,
        tile_overlap=DEFAULT_TILE_OVERLAP,
        run_spatial=None,
        paint_large=None,
        seamless=True,
        call_pixels=None,
        spatial_call_pixels=None,
        paintings=None,
        training_config=None,
        vgg_weights=None,
    ):
        if spatial_call_pixels is None:
            spatial_call_pixels = call_pixels
        for name, value in (("call_pixels", call_pixels), ("spatial_call_pixels", spatial_call_pixels)):
            if value is not None and (not _is_number(value) or value < padded_pixels(MIN_SIDE, MIN_SIDE)):
                raise ValueError(
                    f"`{name}` must allow one {MIN_SIDE}x{MIN_SIDE} image ({padded_pixels(MIN_SIDE, MIN_SIDE)} "
                    f"pixels). Received: {name}={value!r}"
                )
        self.call_pixels = None if call_pixels is None else int(call_pixels)
        self.spatial_call_pixels = None if spatial_call_pixels is None else int(spatial_call_pixels)
        self._run = run
        self._run_spatial = run_spatial
        self._paint_large = paint_large if seamless else None
        self.style_names = list(style_names)
        self.source = source
        self.max_pixels = max_pixels
        self.tile_size = int(tile_size)
        self.tile_overlap = int(min(tile_overlap, tile_size // 2))
        self.paintings = paintings
        self.training_config = dict(training_config or {})
        self.vgg_weights = vgg_weights
        self._refine_loss = None
        self._painting_cache = {}
        self._network = None  # the Keras network, where a loader can give it
        self.precision = "float32"
        self.jit_compile = False
        self._told_large_in_float32 = False

    @property
    def num_styles(self):
        """Number of styles the model holds."""
        return len(self.style_names)

    def __repr__(self):
        precision = "" if self.precision == "float32" else f", {self.precision}"
        fused = ", jit_compile" if self.jit_compile else ""
        return f"Stylizer({self.num_styles} styles from {self.source!r}{precision}{fused})"

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, path="default", precision="float32", jit_compile=False, **kwargs):
        """Loads a SavedModel folder (a TF Serving base: its newest version), a
        `.keras` file, or a training output folder holding `model.keras`.

        `Stylizer.load()` loads the bundled default model, and the names
        `"default"` and `"slim"` (see `cin_style.bundled.MODEL_KEYWORDS`) the
        bundled models, from any working directory (a file or folder of that
        name in the working directory wins).

        Args:
            path: The model (see above). Defaults to `"default"`.
            precision: `"float32"` paints with the model as exported;
                `"bfloat16"` with a copy whose convolutions compute in
                bfloat16 (`cin_style.precision`; TensorFlow backend only): up
                to twice as fast on CPUs with AVX512-BF16 or AMX (the default
                model; the slim one 1.4x), at a mean difference of about a
                third of a uint8 level (a warning says when this CPU lacks
                both). Images with a side over `tile_size` are painted layer
                by layer in float32 (logged once). Defaults to `"float32"`.
            jit_compile: `True` hands the work between the convolutions
                (normalisations, activations, paddings) to XLA, which fuses it
                (TensorFlow backend only; `cin_style.precision.network_painters`):
                0.6-0.9x of the time per painting in either precision on a
                2-core AMX Xeon, after 3.4-5.4 s of compiling per input shape
                (image size and batch), so for many paintings of one shape:
                video frames, a folder of one camera's photos under
                `tile_size`, a service that resizes to a few sizes. Images over
                `tile_size` are painted layer by layer without it (logged once).
                Defaults to `False`.
            **kwargs: `Stylizer` arguments (`max_pixels`, `tile_size`, ...).

        Raises:
            ValueError: If `precision` is not one of `cin_style.precision.PRECISIONS`,
                or is `"bfloat16"` under a backend other than TensorFlow; if
                `jit_compile` is not a bool, or `True` under another backend.
            ModelLoadError: If nothing is at `path` or it is not a cin_style model.
        """
        check_precision(precision)
        check_backend(precision)
        check_jit_compile(jit_compile)
        path = resolve_model_keyword(os.fspath(path))
        if not os.path.exists(path):
            raise ModelLoadError(f"Model path not found: '{path}'")
        saved_model = resolve_saved_model_dir(path) if os.path.isdir(path) else None
        if saved_model:
            stylizer = cls._load_saved_model(saved_model, **kwargs)
        else:
            keras_file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
            if not (keras_file.endswith(".keras") and os.path.isfile(keras_file)):
                raise ModelLoadError(
                    f"'{path}' is not a cin_style model: expected a SavedModel folder (with saved_model.pb, "
                    "or numbered version folders), a .keras file, or a training folder with model.keras"
                )
            stylizer = cls._load_keras(keras_file, **kwargs)
        if precision == "bfloat16" or jit_compile:
            try:
                network = stylizer._network()
            except (ValueError, KeyError, OSError) as error:
                how = " and ".join(
                    ["in bfloat16"] * (precision == "bfloat16") + ["with jit_compile=True"] * jit_compile
                )
                raise ModelLoadError(f"Cannot paint '{path}' {how}: {error}") from error
            stylizer._run, stylizer._run_spatial = network_painters(network, precision, jit_compile)
            # No exported signature runs these calls, so its request limit does not apply: like a .keras model's,
            # a call is bounded by BATCH_PIXELS and tile_size (unless the caller gave limits).
            stylizer.call_pixels = kwargs.get("call_pixels")
            stylizer.spatial_call_pixels = kwargs.get("spatial_call_pixels", stylizer.call_pixels)
        stylizer.precision = precision
        stylizer.jit_compile = jit_compile
        return stylizer

    @classmethod
    def _load_saved_model(cls, folder, **kwargs):
        import tensorflow as tf

        try:
            metadata = read_metadata(folder)
        except (FileNotFoundError, ValueError) as error:
            raise ModelLoadError(f"'{folder}' is a SavedModel but not one exported by cin_style: {error}") from error
        names = metadata["style_names"]
        try:
            loaded = tf.saved_model.load(folder)
            blend = loaded.signatures["stylize_blend_float"]
        except Exception as error:
            raise ModelLoadError(f"Could not load the SavedModel at '{folder}': {error}") from error
        held = blend.structured_input_signature[1]["style_weights"].shape[-1]
        _check_names_fit(names, held, os.path.join(folder, "cin_style.json"))

        def run(images, weights):
            out = blend(image=tf.constant(images), style_weights=tf.constant(weights))
            return out["stylized_image"].numpy()

        spatial = loaded.signatures.get("stylize_spatial_float")  # older exports lack it

        def run_spatial(images, maps):
            out = spatial(image=tf.constant(images), style_weights=tf.constant(maps))
            return out["stylized_image"].numpy()

        @_once
        def rebuilt():  # the Keras network of the variables, for large images and bfloat16
            from cin_style.model_io import model_from_saved_model

            return model_from_saved_model(folder)[0]

        settings = dict(
            source=folder,
            run_spatial=run_spatial if spatial is not None else None,
            paint_large=_layer_by_layer(rebuilt, threading.Lock()),
            call_pixels=metadata.get("max_pixels"),  # what the signatures accept; absent in older exports
            spatial_call_pixels=metadata.get("spatial_max_pixels", metadata.get("max_pixels")),
            paintings=paintings_folder(folder),
            training_config=metadata.get("training") or {},
        )
        try:
            stylizer = cls(run, names, **{**settings, **kwargs})
        except ValueError as error:  # e.g. limits under one 16x16 image: a model that can paint nothing
            raise ModelLoadError(f"Cannot paint with the SavedModel at '{folder}': {error}") from error
        stylizer._keep = loaded  # the signatures need the loaded object alive
        stylizer._network = rebuilt
        return stylizer

    @classmethod
    def _load_keras(cls, path, **kwargs):
        import keras

        import cin_style.layers  # noqa: F401  (registers the custom layers)
        from cin_style.network import num_styles_of, spatial_transformer

        try:
            model = keras.saving.load_model(path)
            num_styles = num_styles_of(model)
        except Exception as error:
            raise ModelLoadError(f"'{path}' is not a loadable cin_style .keras model: {error}") from error
        try:
            saved = read_styles_file(path)
        except ValueError as error:
            raise ModelLoadError(str(error)) from error
        names = saved["style_names"] if saved else [f"style_{i}" for i in range(num_styles)]
        _check_names_fit(names, num_styles, os.path.join(os.path.dirname(path), "styles.json"))

        # Keras marks its TensorFlow backend as not thread-safe for eager calls
        # (keras.src.backend.tensorflow.core.IS_THREAD_SAFE); one call at a time.
        lock = threading.Lock()

        def run(images, weights):
            with lock:
                out = model({"image": images, "style_weights": weights}, training=False)
                return np.clip(keras.ops.convert_to_numpy(out), 0.0, 1.0)

        spatial = spatial_transformer(model)

        def run_spatial(images, maps):
            with lock:
                out = spatial({"image": images, "style_weights": maps}, training=False)
                return np.clip(keras.ops.convert_to_numpy(out), 0.0, 1.0)

        settings = dict(
            source=path,
            run_spatial=run_spatial,
            paint_large=_layer_by_layer(lambda: model, lock),
            paintings=paintings_folder(path),
            training_config=(saved or {}).get("training") or {},
        )
        stylizer = cls(run, names, **{**settings, **kwargs})
        stylizer._network = lambda: model
        return stylizer

    # ----------------------------------------------------------------- styles

    def _index(self, key):
        if isinstance(key, (bool, np.bool_)):
            raise StyleError(f"A style is an index, a name, a dict or a weight vector. Received: {key!r}")
        if isinstance(key, (int, np.integer)):
            if not 0 <= key < self.num_styles:
                raise StyleError(
                    f"Style index {int(key)} is out of range: the model has styles 0 to {self.num_styles - 1}"
                )
            return int(key)
        if isinstance(key, str):
            if key in self.style_names:
                return self.style_names.index(key)
            close = difflib.get_close_matches(key, self.style_names, n=3, cutoff=0.4)
            close += [n for n in self.style_names if key.lower() in n.lower() and n not in close]
            hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
            raise StyleError(f"Unknown style name {key!r}.{hint} Known styles: {', '.join(self.style_names)}")
        raise StyleError(f"A style key must be an index or a name. Received: {key!r}")

    def style_weights(self, style):
        """The normalised weight vector `(num_styles,)` for a style specification.

        Args:
            style: An index, a name, a `{name_or_index: weight}` dict, or a
                vector of `num_styles` weights.

        Raises:
            StyleError: For an unknown name, an index out of range, or weights
                that are not finite, negative, of the wrong length or sum to 0.
        """
        n = self.num_styles
        if isinstance(style, (int, np.integer, str)) and not isinstance(style, bool):
            weights = np.zeros(n, np.float32)
            weights[self._index(style)] = 1.0
            return weights
        if isinstance(style, dict):
            if not style:
                raise StyleError("The style dict is empty: give at least one {name_or_index: weight}")
            weights = np.zeros(n, np.float64)
            for key, value in style.items():
                weights[self._index(key)] += self._weight_value(key, value)
        elif isinstance(style, bool) or style is None:
            raise StyleError(f"A style is an index, a name, a dict or a weight vector. Received: {style!r}")
        else:
            try:
                weights = np.asarray(style, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise StyleError(f"Style weights must be numbers. Received: {style!r}") from error
            if weights.shape != (n,):
                raise StyleError(
                    f"A style weight vector needs {n} entries, one per style. Received: shape={weights.shape}"
                )
        return normalized_blend(weights, "Style weights", StyleError)

    @staticmethod
    def _weight_value(key, value):
        try:
            return float(value)
        except (TypeError, ValueError) as error:
            raise StyleError(f"The weight of style {key!r} must be a number. Received: {value!r}") from error

    # ---------------------------------------------------------------- images

    def _prepare(self, image, max_size):
        if isinstance(image, (str, os.PathLike)):
            values = image_io.read_image(image, max_pixels=self.max_pixels)[None]
            kind = _ImageKind("path")
        elif isinstance(image, Image.Image):
            width, height = image.size
            if width * height > self.max_pixels:
                raise image_io.ImageReadError(
                    f"Image is {width}x{height}, more than the limit of {self.max_pixels:,} pixels"
                )
            values = image_io.to_rgb_array(image)[None]
            kind = _ImageKind("pil")
        else:
            array = np.asarray(image)
            values = image_io.array_to_rgb(array)
            kind = _ImageKind("array", array.dtype if array.dtype == np.uint8 else np.float32, array.ndim == 4)
            if not len(values):
                raise ValueError(f"The image batch is empty: give at least one image. Received: shape={array.shape}")
        height, width = values.shape[1:3]
        if height * width > self.max_pixels:
            raise image_io.ImageReadError(
                f"Image is {width}x{height}, more than the limit of {self.max_pixels:,} pixels"
            )
        if min(height, width) < MIN_SIDE:
            raise image_io.ImageReadError(
                f"Image is {width}x{height}; the smallest side cin_style stylises is {MIN_SIDE} pixels"
            )
        if max_size is not None:
            if (
                isinstance(max_size, (bool, np.bool_))
                or not isinstance(max_size, (int, np.integer))
                or max_size < MIN_SIDE
            ):
                raise ValueError(
                    f"`max_size` must be an integer of at least {MIN_SIDE}. Received: max_size={max_size!r}"
                )
            if max(height, width) > max_size:
                scale = int(max_size) / max(height, width)
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                if min(size) < MIN_SIDE:
                    raise ValueError(
                        f"max_size={int(max_size)} shrinks this {width}x{height} image to {size[0]}x{size[1]}; the "
                        f"smallest side cin_style stylises is {MIN_SIDE} pixels"
                    )
                values = np.stack([image_io.resize(v, *size) for v in values])
        return values, kind

    def _paint_many(self, images, weights):
        """Images `(n, h, w, 3)` of one size in as few calls as `BATCH_PIXELS` allows.

        `weights` is one row `(n, num_styles)` or one map `(n, h, w, num_styles)`
        per image. A call holds at most `BATCH_PIXELS` pixels (one full tile),
        so batching never raises peak memory above painting one large tile,
        and at most `call_pixels` padded pixels (`_fits` keeps larger images away).
        """
        spatial = weights.ndim == 4
        run = self._run_spatial if spatial else self._run
        height, width = images.shape[1:3]
        per_call = max(1, BATCH_PIXELS // (height * width))
        limit = self._call_limit(spatial)
        if limit is not None:  # the model's own limit, counted as the network pads each image
            per_call = max(1, min(per_call, limit // padded_pixels(height, width)))
        painted = [
            run(np.ascontiguousarray(images[i : i + per_call]), np.ascontiguousarray(weights[i : i + per_call]))
            for i in range(0, len(images), per_call)
        ]
        # A copy either way: `run` may hand back a buffer it reuses (the callers' results must not change).
        return np.array(painted[0]) if len(painted) == 1 else np.concatenate(painted)

    def _call_limit(self, spatial):
        """Padded pixels one call may hold: `spatial_call_pixels` for maps, else `call_pixels` (`None`: no limit)."""
        return self.spatial_call_pixels if spatial else self.call_pixels

    def _fits(self, height, width, spatial=False):
        """Whether one `height` x `width` image goes to the model whole: within the tile size and the call limit."""
        if height > self.tile_size or width > self.tile_size:
            return False
        limit = self._call_limit(spatial)
        return limit is None or padded_pixels(height, width) <= limit

    def _tiling(self, spatial=False):
        """`(tile, overlap)` of feathered tiles: `tile_size`, or less so a tile's padded pixels fit the call limit."""
        tile = self.tile_size
        limit = self._call_limit(spatial)
        if limit is not None:
            tile = min(tile, int(np.sqrt(limit)) // 8 * 8)
        return tile, min(self.tile_overlap, tile // 2)

    def _stylize_batch(self, images, weights):
        """Images `(n, h, w, 3)` of one size with their weights (rows or maps, one per image).

        Images within the tile size go to the model together; larger ones one
        by one, each in feathered tiles that are themselves batched.
        """
        if self._fits(*images.shape[1:3], spatial=weights.ndim == 4):
            return self._paint_many(images, weights)
        return np.stack([self._stylize_one(image, w) for image, w in zip(images, weights)])

    def _stylize_one(self, image, weights):
        """One image `(h, w, 3)`: whole, or if it is large layer by layer (`paint_large`), else in feathered tiles."""
        height, width = image.shape[:2]
        spatial = weights.ndim == 3
        if self._fits(height, width, spatial):
            return self._paint_many(image[None], weights[None])[0]
        if self._paint_large is not None:
            unlike = ([f"not {self.precision}"] if self.precision != "float32" else []) + (
                ["without XLA"] if self.jit_compile else []
            )
            if unlike and not self._told_large_in_float32:
                self._told_large_in_float32 = True
                logger.warning(
                    "Images with a side over tile_size (%d px) are painted layer by layer in float32, %s",
                    self.tile_size,
                    ", ".join(unlike),
                )
            return self._paint_large(image, weights)
        tile, overlap = self._tiling(spatial)
        corners = [
            (top, left)
            for top in tiles.tile_starts(height, tile, overlap)
            for left in tiles.tile_starts(width, tile, overlap)
        ]
        pieces = np.stack([image[top : top + tile, left : left + tile] for top, left in corners])
        if weights.ndim == 1:
            parts = np.repeat(weights[None], len(corners), axis=0)
        else:
            parts = np.stack([weights[top : top + tile, left : left + tile] for top, left in corners])
        painted = self._paint_many(pieces, parts)  # every tile has the same size: tile_starts keeps them whole
        return tiles.blend(image.shape, ((top, left, piece) for (top, left), piece in zip(corners, painted)), overlap)

    def _paint_by_outputs(self, image, style_map):
        """`image` painted in each style `style_map` uses, the paintings mixed by the map pixel by pixel.

        Within the tile size the styles are one batch; a larger image is
        painted one style at a time, so only one large painting is held.
        """
        used = np.flatnonzero(style_map.reshape(-1, self.num_styles).any(axis=0))
        one_hots = np.eye(self.num_styles, dtype=np.float32)[used]
        if self._fits(*image.shape[:2]):
            paintings = self._paint_many(np.repeat(image[None], len(used), axis=0), one_hots)
        else:
            paintings = (self._stylize_one(image, row) for row in one_hots)
        out = np.zeros(image.shape, np.float32)
        for style, painted in zip(used, paintings):
            out += style_map[..., style : style + 1] * painted
        return out

    def style_map(self, regions, height, width, default=None, feather=0):
        """The per-pixel style map `(height, width, num_styles)` of `regions` (see `stylize`).

        Raises:
            RegionError, StyleError: For bad masks, labels or styles, or
                uncovered pixels without a `default`.
        """
        return style_map(
            regions, height, width, self.style_weights, self.num_styles, default, feather, max_pixels=self.max_pixels
        )

    def stylize(
        self,
        image,
        style=None,
        *,
        regions=None,
        feather=0,
        region_blend="features",
        strength=1.0,
        preserve_color=False,
        scale=1.0,
        max_size=None,
        refine=0,
        verbose=1,
    ):
        """Paints an image in a style or a blend of styles, or regions of it in different styles.

        Args:
            image: A file path, a PIL image, or a numpy array (uint8 0-255 or
                float 0-1; `(h, w)`, `(h, w, c)` or `(n, h, w, c)`; grey and
                RGBA are converted).
            style: An index, a name, a `{name_or_index: weight}` dict or a
                weight vector (normalised to sum 1). With `regions`, the
                style of what the regions leave uncovered (optional).
            regions: Styles by region: a list of `(mask, style)` pairs (a
                mask is a path, PIL image or array; grey levels or floats
                are weights, times alpha where the mask has one, and a
                pixel whose masks sum to w < 1 gets 1 - w of `style`), `(label_image, {label: style})`, or a
                map `(h, w, num_styles)` from `style_map` (to reuse one for
                many images). Masks and maps of another size are resized to
                the image. Defaults to `None`: `style` everywhere.
            feather: With `regions`, the width in pixels of the soft edge
                between styles, at most the image's longer side (a wider one
                is taken as that). Defaults to `0` (hard edges).
            region_blend: How `regions` mix styles. `"features"`: every CIN
                layer blends the γ/β rows per pixel, one pass; a gradient
                between two styles interpolates the styles themselves, and
                the image's tones stay shared (instance statistics span the
                whole image). `"outputs"`: each style the map uses is painted
                alone over the whole image and the paintings are mixed pixel
                by pixel, one pass per style; far from an edge a region is
                exactly its style alone. Defaults to `"features"`.
            strength: 1.0 is the full style, 0.0 the photo; in between blends
                the two. Defaults to `1.0`.
            preserve_color: Keep the photo's colours: `"luminance"` (or
                `True`: the painting's light and dark in the photo's hues) or
                `"histogram"` (each channel remapped to the photo's
                histogram; see `cin_style.colors`). Defaults to `False`.
            scale: Stroke size: the image is painted at its size divided by
                `scale` and resized back, so 2.0 doubles the strokes and 0.5
                halves them (the painting at 2x the pixels: slower). Defaults
                to `1.0`.
            max_size: Downscale first so the longer side is at most this.
                Defaults to `None` (the image's own size).
            refine: Quality mode: this many steps of Gatys' optimisation of
                the painting's pixels under the model's own loss (Gram
                targets from the paintings the model carries, blended as the
                style), before `strength` and `preserve_color` are applied.
                The pixels are optimised at the image's own resolution,
                in overlapping tiles over `cin_style.refine.DEFAULT_TILE`
                (or `tile_size`, if smaller) px on a side; the cost grows
                with the pixels (about 10 s per megapixel and step on two
                CPU cores: `max_size` bounds it). Needs the
                VGG19 weights (as training does). Not with `regions`.
                Defaults to `0` (the network's painting as it is).
            verbose: With `refine`, 1 shows a progress bar. Defaults to `1`.

        Returns:
            The same kind as given: an RGB PIL image for a path or PIL
            image; for an array, uint8 for uint8 input and float32 in
            [0, 1] for any float input, shaped `(n, h, w, 3)` for a batch
            and `(h, w, 3)` otherwise (grey and RGBA come back as RGB).

        Raises:
            StyleError, RegionError, ImageReadError, ValueError: before any
                work starts.
            PaintingsError: With `refine`, if the model carries no painting
                of a style the blend uses (before any work).
            VGGWeightsError: With `refine`, if VGG19's weights cannot be
                found or read (before any work).
        """
        if region_blend not in REGION_BLENDS:
            raise ValueError(f"`region_blend` must be one of {REGION_BLENDS}. Received: region_blend={region_blend!r}")
        refine = check_count("refine", refine)
        if refine and regions is not None:
            raise ValueError("`refine` paints one style or blend over the whole image; it does not take `regions`")
        if regions is None:
            if style is None:
                raise StyleError("Give a style (an index, a name, a dict or a weight vector), or regions")
            weights = self.style_weights(style)
        elif self._run_spatial is None and region_blend == "features":
            raise StyleError(
                f"{self.source} was exported without the stylize_spatial signature that regions need; export it "
                "again with this cin_style (cin-style-export --model=...), or give region_blend='outputs'"
            )
        elif style is not None:
            self.style_weights(style)  # checked now, used per pixel below
        if regions is not None and not _is_number(feather):  # checked here: it is divided by `scale` below
            raise RegionError(f"`feather` must be a non-negative number of pixels. Received: feather={feather!r}")
        if not _is_number(strength) or not 0.0 <= strength <= 1.0:
            raise ValueError(f"`strength` must be a number in [0, 1]. Received: strength={strength!r}")
        color = _color_mode(preserve_color)
        if not _is_number(scale) or not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"`scale` must be a positive number. Received: scale={scale!r}")
        strength, scale = float(strength), float(scale)
        images, kind = self._prepare(image, max_size)
        height, width = images.shape[1:3]
        if (height / scale) * (width / scale) > self.max_pixels:  # floats: a tiny scale gives inf, not an overflow
            raise image_io.ImageReadError(
                f"scale={scale:g} paints this {width}x{height} image at {width / scale:.6g}x{height / scale:.6g}, "
                f"more than the limit of {self.max_pixels:,} pixels"
            )
        work = (max(1, round(height / scale)), max(1, round(width / scale)))
        if min(work) < MIN_SIDE:
            raise ValueError(
                f"scale={scale:g} paints this {width}x{height} image at {work[1]}x{work[0]}; the smallest side "
                f"cin_style stylises is {MIN_SIDE} pixels"
            )
        if regions is not None:
            weights = self.style_map(regions, *work, default=style, feather=feather / scale)
        if refine:
            refining = self._refiner(weights)  # paintings and VGG19 read now: their errors come before any work
        work_images = (
            images if work == (height, width) else np.stack([image_io.resize(p, work[1], work[0]) for p in images])
        )
        if region_blend == "outputs" and regions is not None:
            paintings = np.stack([self._paint_by_outputs(photo, weights) for photo in work_images])
        else:
            paintings = self._stylize_batch(work_images, np.repeat(weights[None], len(work_images), axis=0))
        if refine:
            paintings = [refining(photo, painted, refine, verbose) for photo, painted in zip(work_images, paintings)]
        results = []
        for photo, painted in zip(images, paintings):
            if work != (height, width):
                painted = image_io.resize(painted, width, height)
            if color:
                painted = keep_colors(painted, photo, color)
            if strength < 1.0:
                painted = strength * painted + (1.0 - strength) * photo
            results.append(painted.astype(np.float32, copy=False))
        # Copies of a large painting cost a few ms each: one image is returned without restacking.
        return kind.restore(results[0][None] if len(results) == 1 else np.stack(results))

    # ------------------------------------------------------------- paintings

    def style_image(self, style):
        """The painting of style `style` (an index or a name) that the model carries, as an RGB PIL image.

        Its shorter side is the style-target size the model was trained at.

        Raises:
            StyleError: For an unknown style.
            PaintingsError: If the model carries no painting for it.
        """
        index = self._index(style)
        return Image.fromarray(image_io.to_uint8(self._painting(index)))

    def _painting(self, index):
        if index not in self._painting_cache:
            self._painting_cache[index] = read_painting(self.paintings, index, self.style_names[index], self.source)
        return self._painting_cache[index]

    def check_refine(self, style):
        """Reads what refining `style` needs (its paintings, VGG19), raising their errors now, before any work.

        Raises:
            StyleError: For a style the model does not have.
            PaintingsError: If the model carries no painting for a style the
                blend uses.
            VGGWeightsError: If VGG19's weights cannot be found or read.
        """
        self._refiner(self.style_weights(style))

    def _refiner(self, weights):
        """`refine(photo, painting, steps, verbose)` for the style `weights`; reads what it needs now."""
        from cin_style.refine import DEFAULT_TILE, model_loss
        from cin_style.refine import refine as refine_painting

        used = [int(i) for i in np.flatnonzero(weights > 0)]
        paintings = [self._painting(i) for i in used]
        blend = weights[used] / weights[used].sum()
        if self._refine_loss is None:
            self._refine_loss = model_loss(self.training_config, self.vgg_weights)
        style_size = int(self.training_config.get("style_image_size") or 256)

        def run(photo, painting, steps, verbose):
            return refine_painting(
                photo,
                painting,
                paintings,
                blend,
                steps,
                self._refine_loss,
                style_size=style_size,
                tile=min(DEFAULT_TILE, self.tile_size),  # a smaller tile_size asked for less memory
                verbose=verbose,
            )

        return run

    def stylize_all(self, image, max_size=None):
        """The image in every style: a list of float32 `(h, w, 3)` arrays, in index order (batched calls)."""
        images, _ = self._prepare(image, max_size)
        copies = np.repeat(images[:1], self.num_styles, axis=0)
        return list(self._stylize_batch(copies, np.eye(self.num_styles, dtype=np.float32)))
