"""Reading and writing images safely: validated input, atomic output.

Images are float32 RGB in [0, 1], `(height, width, 3)`, at this boundary.
This module imports nothing else of cin_style.
"""

import contextlib
import io
import os
import uuid

import numpy as np
from PIL import Image, ImageOps

#: File name endings read as images in folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: Largest image (in pixels) read by default: 64 megapixels, e.g. 8000×8000.
DEFAULT_MAX_PIXELS = 64_000_000
#: zlib's run-length strategy (`zlib.Z_RLE`), which `write_image` asks Pillow's PNG
#: encoder for through its `compress_type` option (not in Pillow's documented
#: options; a test pins that it reaches the encoder).
PNG_RLE = 3
#: Options each format is written with unless the caller passes any of its
#: `SAVE_OPTIONS_REPLACING`. PNG: zlib's run-length strategy (as OpenCV writes
#: PNG), three times as fast as Pillow's default on a painting, files within 1%
#: of its size.
SAVE_DEFAULTS = {"PNG": {"compress_level": 1, "compress_type": PNG_RLE}}
#: The caller's options that replace a format's defaults whole (a `compress_level=9`
#: alone means Pillow's zlib strategy at that level, not the run-length one).
SAVE_OPTIONS_REPLACING = {"PNG": ("compress_level", "compress_type", "optimize")}


class ImageReadError(ValueError):
    """An image file is missing, not an image, corrupt, truncated or too large."""


def _describe(path):
    return f"'{os.fspath(path)}'"


def array_to_rgb(array):
    """An image array as float32 RGB in [0, 1], `(n, h, w, 3)`.

    Takes uint8 (0-255) or float (0-1) arrays shaped `(h, w)`, `(h, w, c)` or
    `(n, h, w, c)` with 1 (grey), 3 (RGB) or 4 (RGBA, composited on white)
    channels. Raises ValueError naming the problem for anything else, NaN or
    infinite values, and float values outside [0, 1].
    """
    array = np.asarray(array)
    if array.dtype == np.uint8:
        values = array.astype(np.float32)
        values /= 255.0
    elif np.issubdtype(array.dtype, np.floating):
        values = np.asarray(array, np.float32)  # float32 itself is not copied: `np.clip` below makes the copy
        # NaN and ±inf show in the extremes, so two passes check everything (a megapixel is ~1 ms a pass).
        low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("Image array holds NaN or infinite values")
        if low < -1e-3 or high > 1.0 + 1e-3:
            raise ValueError(
                f"Float image arrays must hold values in [0, 1]; got [{low:.3g}, {high:.3g}]. "
                "Divide uint8-range data by 255, or pass a uint8 array."
            )
        values = np.clip(values, 0.0, 1.0)
    else:
        raise ValueError(f"Image arrays must be uint8 (0-255) or float (0-1). Received: dtype={array.dtype}")
    if array.ndim == 2:
        values = values[..., None]
    if values.ndim == 3:
        values = values[None]
    if values.ndim != 4:
        raise ValueError(f"Image arrays must be (h, w), (h, w, c) or (n, h, w, c). Received: shape={array.shape}")
    channels = values.shape[-1]
    if channels == 1:
        values = np.repeat(values, 3, axis=-1)
    elif channels == 4:
        alpha = values[..., 3:]
        values = values[..., :3] * alpha + (1.0 - alpha)
    elif channels != 3:
        raise ValueError(f"Images must have 1 (grey), 3 (RGB) or 4 (RGBA) channels. Received: shape={array.shape}")
    return values


#: The EXIF tag holding how a picture is to be turned for display.
EXIF_ORIENTATION = 0x0112


def to_rgb_array(image):
    """A PIL image of any common mode as float32 RGB in [0, 1], `(h, w, 3)`.

    Grey becomes three equal channels, 16-bit grey keeps its precision, RGBA
    and LA are composited over white, palette and CMYK images are converted.
    An EXIF orientation tag (an image opened with `PIL.Image.open` from a
    phone photo) is applied, as `read_image` does for files.
    """
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)  # a turned copy; the caller's image is left as it is
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode == "I":
        grey = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if grey.max(initial=0) > 255 else 255.0
        grey = np.clip(grey / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS, min_side=None):
    """Reads an image file as float32 RGB in [0, 1], `(height, width, 3)`, upright.

    An EXIF orientation tag (photos from phones and cameras) is applied.

    Args:
        path: Path of a JPEG, PNG, WebP, BMP (or other Pillow-readable) file.
        max_pixels: Refuse images with more pixels than this (checked from the
            header, before decoding). Defaults to `DEFAULT_MAX_PIXELS`.
        min_side: Optional: the caller needs only this shorter side, so a JPEG
            may be decoded at 1/2, 1/4 or 1/8 scale (never below it), which
            is several times faster than a full decode. Defaults to `None`.

    Raises:
        ImageReadError: If the file is missing, empty, not an image, corrupt
            or truncated, or larger than `max_pixels`. `FileNotFoundError`
            for a missing file is an `ImageReadError` too. Truncated files
            are refused unless the application sets Pillow's global
            `ImageFile.LOAD_TRUNCATED_IMAGES`, which cin_style leaves alone.
    """
    with open_image(path, max_pixels, min_side) as image:
        return to_rgb_array(image)


@contextlib.contextmanager
def open_image(path, max_pixels=DEFAULT_MAX_PIXELS, min_side=None):
    """The checked, decoded, upright PIL image of a file, in its own mode, for a `with` block.

    The checks of `read_image` (same arguments, same errors), for callers that
    need the file's mode (masks and label images keep alpha and indices). The
    size is checked from the header before anything is decoded.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageReadError(f"Image file not found: {_describe(path)}")
    if os.path.isdir(path):
        raise ImageReadError(f"Expected an image file but {_describe(path)} is a folder")
    if os.path.getsize(path) == 0:
        raise ImageReadError(f"Image file {_describe(path)} is empty (0 bytes)")
    image = None
    try:
        image = Image.open(path)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageReadError(
                f"Image {_describe(path)} is {width}x{height} = {width * height:,} pixels, "
                f"more than the limit of {max_pixels:,}; downscale it first or raise max_pixels"
            )
        if min_side:
            scale = min_side / min(width, height)
            image.draft(image.mode, (max(1, round(width * scale)), max(1, round(height * scale))))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except ImageReadError:
        _close(image)
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        _close(image)
        raise ImageReadError(
            f"Image {_describe(path)} is too large to decode safely (decompression bomb check: {error})"
        ) from error
    except Image.UnidentifiedImageError as error:
        raise ImageReadError(f"File {_describe(path)} is not an image Pillow can read") from error
    except (OSError, SyntaxError, ValueError) as error:
        _close(image)
        raise ImageReadError(f"Image file {_describe(path)} is corrupt or truncated: {error}") from error
    try:
        yield image
    finally:
        image.close()


def _close(image):
    if image is not None:
        image.close()


def check_image_file(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Fast full check that a file decodes: JPEGs are decoded at reduced scale.

    Returns:
        `None` if the file is a readable image, else a one-line reason.
    """
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as image:
            if image.size[0] * image.size[1] > max_pixels:
                return f"{image.size[0]}x{image.size[1]} is over {max_pixels:,} pixels"
            image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def list_image_files(folder):
    """All image files under `folder` (recursive), sorted; by extension."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ImageReadError(f"Image folder not found: {_describe(folder)}")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.join(root, name))
    return found


def resize(image, width, height):
    """Resizes an `(h, w, 3)` float image in [0, 1] to `width`×`height` (LANCZOS).

    An image holding only 8-bit levels is resized as uint8, as Pillow does;
    one with more precision (16-bit files, float arrays) in float32, so it
    keeps that precision.
    """
    image = np.asarray(image, dtype=np.float32)
    levels = to_uint8(image)
    if np.array_equal(levels.astype(np.float32) / 255.0, image):
        return np.asarray(Image.fromarray(levels).resize((width, height), Image.LANCZOS), dtype=np.float32) / 255.0
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize((width, height), Image.LANCZOS))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def resize_shorter_side(image, side):
    """Resizes an `(h, w, 3)` float image so its shorter side is `side` (LANCZOS)."""
    height, width = image.shape[:2]
    scale = side / min(height, width)
    return resize(image, max(1, round(width * scale)), max(1, round(height * scale)))


def to_uint8(image):
    """Float image in [0, 1] to uint8, rounded."""
    values = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)  # a new array: scaled and rounded in place
    values *= 255.0
    return np.round(values, out=values).astype(np.uint8)


def image_format(path):
    """The Pillow format `path`'s extension names (`"PNG"` for none), or `None` if Pillow cannot write it."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if not suffix:
        return "PNG"
    format_name = Image.registered_extensions().get(suffix)
    return format_name if format_name in Image.SAVE else None


def _with_defaults(format_name, save_options):
    """`save_options`, or the format's `SAVE_DEFAULTS` with them where they replace none of the defaults."""
    if any(key in save_options for key in SAVE_OPTIONS_REPLACING.get(format_name, ())):
        return save_options
    return {**SAVE_DEFAULTS.get(format_name, {}), **save_options}


class _Reporting:
    """A file stream that calls `progress()` before each write. It has no `fileno`, so Pillow encodes piece by
    piece through `write` rather than in one call to the file descriptor."""

    def __init__(self, stream, progress):
        self._stream, self._progress = stream, progress

    def write(self, data):
        self._progress()
        return self._stream.write(data)

    def fileno(self):
        raise io.UnsupportedOperation("fileno: written piece by piece")

    def __getattr__(self, name):  # seek, tell, flush, ...
        return getattr(self._stream, name)


def write_image(path, image, progress=None, **save_options):
    """Writes an image atomically: to a temporary file beside it, then renamed.

    Args:
        path: Output path; the format follows its extension (PNG without one).
        image: float `(h, w, 3)` in [0, 1], uint8 `(h, w, 3)`, or a PIL image.
        progress: Optional callable, called before each piece of the file is
            written (Pillow encodes PNG, baseline JPEG and TIFF in pieces of
            at most 64 KB; WebP, progressive JPEG and others in one piece at
            the end); an exception raised from it abandons the write, leaving
            no file. The bytes written are the same with it or without.
        **save_options: Passed to `PIL.Image.save` (e.g. `quality=92`). PNG
            is written with `SAVE_DEFAULTS` (`compress_level=1` with zlib's
            run-length strategy, the fast setting) unless they name
            `compress_level`, `compress_type` or `optimize` (`optimize=True`
            for the smallest file).

    Raises:
        ValueError: If the extension names no format Pillow can write (it was
            written as PNG under that name).
        OSError: If the folder does not exist or is not writable.
    """
    path = os.fspath(path)
    format_name = image_format(path)
    if format_name is None:
        raise ValueError(
            f"Cannot write {os.path.splitext(path)[1]!r} images: use an image extension such as .png, .jpg or "
            f".webp. Received: path={path!r}"
        )
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        image = Image.fromarray(array if array.dtype == np.uint8 else to_uint8(array))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"Output folder does not exist: '{folder}'")
    if not os.access(folder, os.W_OK):
        raise OSError(f"Output folder is not writable: '{folder}'")
    suffix = os.path.splitext(path)[1] or ".png"
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}{suffix}")
    # Created like any new file (0666 less the umask, applied by the OS), not
    # mkstemp's 0600: no need to read the process-wide umask.
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            target = stream if progress is None else _Reporting(stream, progress)
            image.save(target, format=format_name, **_with_defaults(format_name, save_options))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
