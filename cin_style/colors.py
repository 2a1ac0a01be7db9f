"""Keeping a photo's colours under a painting's strokes: luminance transfer or histogram matching.

Both take the stylised image and the photo, float32 `(h, w, 3)` in [0, 1]:

- `"luminance"` (Gatys et al. 2016, "Preserving Color in Neural Artistic
  Style Transfer"): the painting's luminance Y with the photo's chroma Cb, Cr.
  The photo's hues exactly, with the painting's light and dark.
- `"histogram"`: each RGB channel of the painting remapped so its histogram is
  the photo's (the painting's ordering of values, the photo's values). The
  painting's own colour contrasts survive, in the photo's palette.
"""

import numpy as np

#: The values `Stylizer.stylize(preserve_color=...)` takes besides False/True (True: "luminance").
COLOR_MODES = ("luminance", "histogram")


def _rgb_to_ycbcr(image):
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, (b - y) * 0.564, (r - y) * 0.713


def _ycbcr_to_rgb(y, cb, cr):
    r = y + 1.403 * cr
    b = y + 1.773 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def preserve_colors(stylized, original):
    """Luminance transfer (Gatys et al. 2016): stylised Y, the photo's Cb and Cr."""
    y, _, _ = _rgb_to_ycbcr(stylized)
    _, cb, cr = _rgb_to_ycbcr(original)
    return _ycbcr_to_rgb(y, cb, cr).astype(np.float32)


def match_histograms(stylized, original):
    """Each channel of `stylized` remapped to the values of `original`'s channel, rank for rank.

    The i-th smallest of n values of the painting takes the photo's value at
    quantile (i + 0.5) / n, so the result's per-channel histogram is the
    photo's (exactly, when both have the same number of pixels).
    """
    out = np.empty(stylized.shape, np.float32)
    for channel in range(stylized.shape[-1]):
        values = stylized[..., channel].ravel()
        reference = np.sort(original[..., channel].ravel())
        order = np.argsort(values, kind="stable")
        quantiles = (np.arange(values.size) + 0.5) / values.size
        reference_quantiles = (np.arange(reference.size) + 0.5) / reference.size
        mapped = np.empty(values.size, np.float32)
        mapped[order] = np.interp(quantiles, reference_quantiles, reference)
        out[..., channel] = mapped.reshape(stylized.shape[:-1])
    return out


def keep_colors(stylized, original, mode):
    """`stylized` with `original`'s colours by `mode` (one of `COLOR_MODES`)."""
    if mode == "luminance":
        return preserve_colors(stylized, original)
    if mode == "histogram":
        return match_histograms(stylized, original)
    raise ValueError(f"Unknown colour mode {mode!r}; expected one of {COLOR_MODES}")
