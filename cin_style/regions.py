"""Per-pixel style maps: which style (or blend) paints which part of an image.

A map is `(height, width, num_styles)` float32 whose weights sum to 1 at every
pixel; `build_transformer(spatial=True)` / `spatial_transformer` paint with
it. Regions are given as a label image with one style per label, or as
`(mask, style)` pairs; masks of another size are resized to the image, and a
feather width softens the edges between styles.

Instance statistics span the whole image, so a region takes its style's
strokes and colours while the tones of the image stay shared: far from an edge
a region is close to, not equal to, the image painted in its style alone.
"""

import os

import numpy as np
from PIL import Image, ImageOps

from cin_style import image_io


class RegionError(ValueError):
    """Regions that cannot make a style map: unreadable or bad masks, labels without a style, gaps."""


class UncoveredRegionError(RegionError):
    """Pixels (or labels) that no region gives a style and no `default` style fills."""


def _read_file(path, what, max_pixels, convert):
    """`convert(image)` of the image file at `path`, after the checks photos get (size from the header first)."""
    try:
        with image_io.open_image(path, max_pixels=max_pixels) as image:
            return convert(image)
    except image_io.ImageReadError as error:
        raise RegionError(f"The {what} cannot be used: {error}") from error


def _grey_times_alpha(values, what):
    """`(h, w)` or `(h, w, 1|3|4)` weights as `(h, w)`: the mean of the colour channels times alpha."""
    if values.ndim == 3 and values.shape[-1] in (1, 3, 4):
        channels = values.shape[-1]
        grey = values[..., 0] if channels == 1 else values[..., :3].mean(axis=-1, dtype=np.float32)
        if channels == 4:
            alpha = values[..., 3]
            if alpha.size and (alpha.min() < 0 or alpha.max() > 1):
                raise RegionError(
                    f"The alpha of a {what} must be in [0, 1] (0-255 for uint8). "
                    f"Received: alpha in [{alpha.min():g}, {alpha.max():g}]"
                )
            grey = grey * alpha
        values = grey
    if values.ndim != 2:
        raise RegionError(f"A {what} must be 2-D (height, width). Received: shape={values.shape}")
    return values


def _upright(image):
    """A PIL image turned by its EXIF orientation, as photos are (files are turned when read)."""
    if image.getexif().get(image_io.EXIF_ORIENTATION, 1) != 1:
        return ImageOps.exif_transpose(image)
    return image


def _mask_image_values(image):
    """A PIL mask as float32 `(h, w)` or `(h, w, c)` in [0, 1], alpha kept as a fourth channel."""
    image = _upright(image)
    if image.mode == "P":
        image = image.convert("RGBA")  # a palette may carry transparency
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    return image_io.to_rgb_array(image)  # 16-bit grey keeps its precision


def read_mask(mask, what="mask", max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """A mask as float32 `(h, w)` weights: a path, a PIL image or an array.

    A mask means the same whichever way it comes: uint8 levels (files and
    arrays) are divided by 255, 16-bit levels (grey files, uint16 arrays) by 65535, booleans are 0
    or 1, other numbers are taken as weights. A mask with colour channels
    uses their mean; with alpha (RGBA and LA files, `(h, w, 4)` arrays) the
    weight is that grey times alpha, so transparent parts select nothing.
    A mask file gets the checks photos get (`image_io.read_image`), its size
    read from the header before it is decoded.

    Args:
        mask: A file path, a PIL image, or an array `(h, w)` or `(h, w, c)`
            with 1, 3 or 4 channels.
        what: How messages name the mask.
        max_pixels: Refuse mask files of more pixels. Defaults to
            `image_io.DEFAULT_MAX_PIXELS`.

    Raises:
        RegionError: For a missing, unreadable or too large mask file, and a
            mask that is not 2-D (or `(h, w, 1|3|4)`), holds NaN or infinity,
            negative weights or an alpha outside [0, 1].
    """
    if isinstance(mask, (str, os.PathLike)):
        array = _read_file(mask, what, max_pixels, _mask_image_values)
    elif isinstance(mask, Image.Image):
        array = _mask_image_values(mask)
    else:
        array = np.asarray(mask)
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:  # as a 16-bit grey file reads
        array = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.number):
        array = array.astype(np.float32)
    else:
        raise RegionError(f"A {what} must hold numbers. Received: dtype={array.dtype}")
    if not np.isfinite(array).all():
        raise RegionError(f"A {what} must be finite; it holds NaN or infinity")
    values = _grey_times_alpha(array, what)
    if (values < 0).any():
        raise RegionError(f"A {what} must be non-negative; its smallest value is {values.min():g}")
    return values


def _label_indices(image):
    """A PIL label image's indices: grey levels or palette indices as they are stored."""
    image = _upright(image)
    if image.mode not in ("L", "P", "I", "I;16"):
        image = image.convert("L")
    return np.asarray(image)


def read_labels(labels, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    """A label image as int64 `(h, w)`: a path or PIL image (grey or palette indices), or an integer array.

    A label file gets the checks photos get, its size read from the header
    before it is decoded; `max_pixels` as in `read_mask`.

    Raises:
        RegionError: For a missing, unreadable or too large file, or an array
            that is not 2-D integers.
    """
    if isinstance(labels, (str, os.PathLike)):
        array = _read_file(labels, "label image", max_pixels, _label_indices)
    elif isinstance(labels, Image.Image):
        array = _label_indices(labels)
    else:
        array = np.asarray(labels)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise RegionError(
            f"A label image must be 2-D integers (one label per pixel). Received: shape={array.shape}, "
            f"dtype={array.dtype}"
        )
    return array.astype(np.int64)


def _resized(values, height, width, nearest, what):
    """`values` `(h, w)` resized to `height` x `width`; an empty one is a `RegionError` (it selects nothing, and
    resizing it would read as a mask of zeros)."""
    if not values.size:
        raise RegionError(
            f"The {what} is empty: it has no pixels to resize to the image. Received: shape={values.shape}"
        )
    if values.shape == (height, width):
        return values
    resample = Image.NEAREST if nearest else Image.BILINEAR
    image = Image.fromarray(values.astype(np.int32 if nearest else np.float32))  # mode I or F
    return np.asarray(image.resize((width, height), resample)).astype(values.dtype)


def _weights_map(values, height, width, num_styles):
    """A given per-pixel style weight array as float32 `(height, width, num_styles)`, resized (bilinear)."""
    if values.ndim != 3 or values.shape[-1] != num_styles or not np.issubdtype(values.dtype, np.number):
        raise RegionError(
            f"A style map must be numbers of shape (height, width, {num_styles}), a weight per style. "
            f"Received: shape={values.shape}, dtype={values.dtype}"
        )
    if not values.size:
        raise RegionError(
            f"The style map is empty: it has no pixels to resize to the image. Received: shape={values.shape}"
        )
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise RegionError("A style map must be finite; it holds NaN or infinity")
    if (values < 0).any():
        raise RegionError(f"A style map must be non-negative; its smallest value is {values.min():g}")
    if values.shape[:2] == (height, width):
        return values
    return np.stack(
        [_resized(values[..., i], height, width, nearest=False, what="style map") for i in range(num_styles)], axis=-1
    )


def _box_blur(values, width, axis):
    """Mean over a window of `width` (odd) pixels along `axis`, edges extended."""
    half = width // 2
    pad = [(0, 0)] * values.ndim
    pad[axis] = (half + 1, half)
    sums = np.cumsum(np.pad(values, pad, mode="edge"), axis=axis, dtype=np.float64)
    upper = np.take(sums, np.arange(width, sums.shape[axis]), axis=axis)
    lower = np.take(sums, np.arange(0, sums.shape[axis] - width), axis=axis)
    return ((upper - lower) / width).astype(np.float32)


def feathered(style_map, feather):
    """`style_map` with edges softened over about `feather` pixels (10% to 90% of a step).

    Three box blurs approximate a Gaussian of sigma `feather / 2.56`; only
    styles that are used are blurred.
    """
    if not feather:
        return style_map
    sigma = feather / 2.56
    width = max(1, int(round(np.sqrt(4 * sigma**2 + 1))))
    width += 1 - width % 2
    out = style_map.copy()
    for channel in np.flatnonzero(style_map.reshape(-1, style_map.shape[-1]).any(axis=0)):
        values = style_map[..., channel]
        for _ in range(3):
            values = _box_blur(_box_blur(values, width, 0), width, 1)
        out[..., channel] = values
    return out


def _label_key(key):
    """A `{label: style}` key as an int: labels are the integer values of the label image."""
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
        raise RegionError(
            "The keys of {label: style} must be integers, the values of the label image. "
            f"Received: {key!r} ({type(key).__name__})"
        )
    return int(key)


def style_map(
    regions,
    height,
    width,
    weights_of,
    num_styles,
    default=None,
    feather=0,
    max_pixels=image_io.DEFAULT_MAX_PIXELS,
):
    """The per-pixel style map `(height, width, num_styles)` for `regions`.

    Args:
        regions: Either a list of `(mask, style)` pairs (masks as in
            `read_mask`; where masks overlap their weights add), or a pair
            `(labels, {label: style})` (labels as in `read_labels`; every
            label in the image needs a style unless `default` is given), or
            a style map: an array `(h, w, num_styles)` of weights per style,
            such as this function returns (build it once, reuse it for
            every frame of a video). Masks, label images and maps of another
            size are resized to the image (bilinear; nearest for labels).
        height, width: The image's size.
        weights_of: Turns a style specification into its normalised weight
            vector `(num_styles,)` (`Stylizer.style_weights`).
        num_styles: Styles of the model.
        default: A style for what the regions leave uncovered (a pixel whose
            masks sum to w < 1 gets 1 - w of it). `None`: every pixel must be
            covered.
        feather: Width in pixels of the soft edge between styles; 0 for
            hard edges. A feather wider than the image's longer side is
            taken as that side (the blur then spans the whole image anyway;
            its cost grows with the width). Defaults to `0`.
        max_pixels: Refuse mask and label files of more pixels (checked
            from the header). Defaults to `image_io.DEFAULT_MAX_PIXELS`.

    Returns:
        float32 `(height, width, num_styles)` summing to 1 at every pixel.

    Raises:
        RegionError: For bad masks or labels (files included: missing,
            unreadable or too large), label keys that are not integers,
            labels without a style, or pixels no region covers when there
            is no `default`.
        Whatever `weights_of` raises for a bad style.
    """
    if (
        isinstance(feather, (bool, np.bool_))
        or not isinstance(feather, (int, float, np.integer, np.floating))
        or not np.isfinite(feather)
        or feather < 0
    ):
        raise RegionError(f"`feather` must be a non-negative number of pixels. Received: feather={feather!r}")
    feather = min(float(feather), max(height, width))
    covered = np.zeros((height, width, num_styles), np.float32)
    if isinstance(regions, np.ndarray):
        covered = _weights_map(regions, height, width, num_styles)
    elif isinstance(regions, tuple) and len(regions) == 2 and isinstance(regions[1], dict):
        styles = {_label_key(key): spec for key, spec in regions[1].items()}
        labels = _resized(read_labels(regions[0], max_pixels), height, width, nearest=True, what="label image")
        present = [int(v) for v in np.unique(labels)]
        missing = [v for v in present if v not in styles]
        if missing and default is None:
            raise UncoveredRegionError(
                f"Labels {missing} of the label image have no style; give one for each (present: {present}), "
                "or a default style for them"
            )
        for label, spec in styles.items():
            covered[labels == label] += weights_of(spec)
    elif isinstance(regions, (list, tuple)) and regions:
        for i, pair in enumerate(regions):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise RegionError(f"Region {i} must be a (mask, style) pair. Received: {type(pair).__name__}")
            what = f"mask of region {i}"
            mask = _resized(read_mask(pair[0], what, max_pixels), height, width, nearest=False, what=what)
            covered += np.clip(mask, 0, None)[..., None] * weights_of(pair[1])[None, None]
    else:
        raise RegionError(
            "`regions` must be a non-empty list of (mask, style) pairs, a (label_image, {label: style}) pair or "
            "a style map array. "
            f"Received: {type(regions).__name__}"
        )
    total = covered.sum(axis=-1)
    gap = np.clip(1.0 - total, 0.0, None)
    if default is not None:
        covered += gap[..., None] * weights_of(default)[None, None]
    elif (total <= 0).any():
        count = int((total <= 0).sum())
        raise UncoveredRegionError(
            f"{count} of {height * width} pixels are in no region (their masks sum to 0); cover them, or give a "
            "default style for them"
        )
    covered = feathered(covered, feather)
    return covered / covered.sum(axis=-1, keepdims=True)
