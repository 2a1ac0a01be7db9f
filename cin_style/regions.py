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
from PIL import Image

from cin_style import image_io


class RegionError(ValueError):
    """Regions that cannot make a style map: unreadable or bad masks, labels without a style, gaps."""


def _as_image(value):
    if isinstance(value, (str, os.PathLike)):
        image_io.check_image_file(value)
        with Image.open(value) as opened:
            opened.load()
            return opened.copy()
    if isinstance(value, Image.Image):
        return value
    return None


def read_mask(mask, what="mask"):
    """A mask as float32 `(h, w)`: a path or PIL image (grey levels / 255), or an array.

    Boolean and uint8 arrays are scaled to [0, 1]; float arrays are taken as
    weights. RGB(A) masks use their luminance.

    Raises:
        RegionError: For a mask that is not 2-D (or `(h, w, 1)`), holds NaN
            or infinity, or negative weights.
    """
    image = _as_image(mask)
    if image is not None:
        values = image_io.to_rgb_array(image).mean(axis=-1)
    else:
        array = np.asarray(mask)
        if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
            array = array[..., :3].mean(axis=-1) if array.shape[-1] > 1 else array[..., 0]
        if array.ndim != 2:
            raise RegionError(f"A {what} must be 2-D (height, width). Received: shape={array.shape}")
        if array.dtype == bool:
            values = array.astype(np.float32)
        elif array.dtype == np.uint8:
            values = array.astype(np.float32) / 255.0
        elif np.issubdtype(array.dtype, np.number):
            values = array.astype(np.float32)
        else:
            raise RegionError(f"A {what} must hold numbers. Received: dtype={array.dtype}")
    if not np.isfinite(values).all():
        raise RegionError(f"A {what} must be finite; it holds NaN or infinity")
    if (values < 0).any():
        raise RegionError(f"A {what} must be non-negative; its smallest value is {values.min():g}")
    return values


def read_labels(labels):
    """A label image as int64 `(h, w)`: a path or PIL image (grey or palette indices), or an integer array."""
    image = _as_image(labels)
    if image is not None:
        if image.mode not in ("L", "P", "I", "I;16"):
            image = image.convert("L")
        array = np.asarray(image)
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


def _resized(values, height, width, nearest):
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
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise RegionError("A style map must be finite; it holds NaN or infinity")
    if (values < 0).any():
        raise RegionError(f"A style map must be non-negative; its smallest value is {values.min():g}")
    if values.shape[:2] == (height, width):
        return values
    return np.stack([_resized(values[..., i], height, width, nearest=False) for i in range(num_styles)], axis=-1)


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


def style_map(regions, height, width, weights_of, num_styles, default=None, feather=0):
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
            hard edges. Defaults to `0`.

    Returns:
        float32 `(height, width, num_styles)` summing to 1 at every pixel.

    Raises:
        RegionError: For bad masks or labels, labels without a style, or
            pixels no region covers when there is no `default`.
        Whatever `weights_of` raises for a bad style.
    """
    if isinstance(feather, bool) or not isinstance(feather, (int, float)) or not np.isfinite(feather) or feather < 0:
        raise RegionError(f"`feather` must be a non-negative number of pixels. Received: feather={feather!r}")
    covered = np.zeros((height, width, num_styles), np.float32)
    if isinstance(regions, np.ndarray):
        covered = _weights_map(regions, height, width, num_styles)
    elif isinstance(regions, tuple) and len(regions) == 2 and isinstance(regions[1], dict):
        labels = _resized(read_labels(regions[0]), height, width, nearest=True)
        styles = regions[1]
        present = [int(v) for v in np.unique(labels)]
        missing = [v for v in present if v not in styles]
        if missing and default is None:
            raise RegionError(
                f"Labels {missing} of the label image have no style; give one for each (present: {present}), "
                "or a default style for them"
            )
        for label, spec in styles.items():
            covered[labels == label] += weights_of(spec)
    elif isinstance(regions, (list, tuple)) and regions:
        for i, pair in enumerate(regions):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise RegionError(f"Region {i} must be a (mask, style) pair. Received: {type(pair).__name__}")
            mask = _resized(read_mask(pair[0], f"mask of region {i}"), height, width, nearest=False)
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
        raise RegionError(
            f"{count} of {height * width} pixels are in no region (their masks sum to 0); cover them, or give a "
            "default style for them"
        )
    covered = feathered(covered, feather)
    return covered / covered.sum(axis=-1, keepdims=True)
