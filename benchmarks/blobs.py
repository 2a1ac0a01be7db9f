"""Bright blobs: the share of output pixels a model paints much brighter than both photo and painting.

    python benchmarks/blobs.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --styles=../shared/data/styles --photos=6

A transformer whose last layer is instance-normalised (issue 13) paints white
ovals at specular highlights and in flat areas (sky, walls) in every style.
For each (photo, style) this counts the pixels of the output whose luminance
(BT.601 Y) is

- above the photo's luminance at that pixel by more than --margin (the model
  made it brighter; a white wall that stays white is not a blob), and
- above the painting's 99.5th luminance percentile (brighter than almost all of
  the painting, so no style asks for it),

and reports their share of the image. Photos are painted at a --size shorter
side (256, the training scale); paintings are read at the same size. Prints one
line per style (mean share over the photos, worst photo) and the mean over all
pairs; 0 means no blob. The "compact" column counts only pixels that survive a
morphological opening with a 5x5 square (--opening=2): blobs are solid ovals,
while light monochrome styles (Claude Lorrain, Huang Gongwang) also brighten
thin texture strokes everywhere, which the plain share counts too.

The photo-referenced share cannot see a blob on a bright background (a white
oval in a pale sky is not 0.15 brighter than the sky of the photo), so the
"local" column compares each output pixel with the output itself instead: the
median luminance of its surroundings (an 11x11 median over the output
mean-pooled by 4, i.e. about 44 px) plus the margin, and the painting's
99.5th percentile, then the same opening. Styles whose painting is itself
near white at its 99.5th percentile (p99.5 >= 0.93: Matisse, Picabia,
Delaunay, Hokusai) read near 0 in every column whatever the model paints.

Writes `blobs.csv` and, with --examples, the output and blob mask (red) of the
worst pairs to --output_dir when one is given.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from quality import find_style_image, write_csv

from cin_style import image_io

#: BT.601 luma weights (the ones `cin_style.stylizer.preserve_colors` uses).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: Default margin by which an output pixel must outshine the photo's pixel.
MARGIN = 0.15
#: Percentile of the painting's luminance a blob pixel must exceed.
PERCENTILE = 99.5
#: Radius of the square opening of the "compact" share (2: a 5x5 square).
OPENING = 2


def luminance(image):
    """BT.601 luma of an `(..., 3)` float RGB image in [0, 1]."""
    return np.asarray(image, np.float32)[..., :3] @ LUMA


def painting_percentile(painting, percentile=PERCENTILE):
    """The `percentile`-th percentile of a painting's luminance (a float in [0, 1])."""
    return float(np.percentile(luminance(painting), percentile))


def binary_opening(mask, radius):
    """Morphological opening of a boolean `(h, w)` mask with a `(2r+1)`-square: drops specks and thin lines."""
    if radius <= 0:
        return np.asarray(mask, bool)
    window = (2 * radius + 1,) * 2
    view = np.lib.stride_tricks.sliding_window_view
    eroded = view(np.pad(mask, radius, constant_values=False), window).all(axis=(-2, -1))
    return view(np.pad(eroded, radius, constant_values=False), window).any(axis=(-2, -1)) & mask


def blob_mask(photo, stylized, painting_p995, margin=MARGIN, opening=0):
    """Boolean `(h, w)` mask of blob pixels: Y(out) > Y(photo) + margin and Y(out) > painting_p995.

    Args:
        photo: `(h, w, 3)` float RGB in [0, 1], the model's input.
        stylized: `(h, w, 3)` float RGB in [0, 1], the model's output for it.
        painting_p995: The painting's 99.5th luminance percentile
            (`painting_percentile`).
        margin: How much brighter than the photo a blob pixel is. Defaults to
            `0.15`.
        opening: Radius of a square morphological opening applied to the
            mask (0: none), which keeps only solid regions. Defaults to `0`.

    Raises:
        ValueError: If the two images differ in height or width.
    """
    photo, stylized = np.asarray(photo), np.asarray(stylized)
    if photo.shape[:2] != stylized.shape[:2]:
        raise ValueError(f"photo and stylized must have the same size. Received: {photo.shape} and {stylized.shape}")
    y_out = luminance(stylized)
    return binary_opening((y_out > luminance(photo) + margin) & (y_out > painting_p995), opening)


def blob_share(photo, stylized, painting_p995, margin=MARGIN, opening=0):
    """Share in [0, 1] of the output's pixels that are blob pixels (`blob_mask`)."""
    return float(blob_mask(photo, stylized, painting_p995, margin, opening).mean())


def local_median(y, factor=4, radius=5):
    """Median of `y` `(h, w)` around each pixel: a `(2r+1)`-square median over `y` mean-pooled by `factor`."""
    height, width = y.shape
    rows, cols = -(-height // factor), -(-width // factor)
    padded = np.pad(y, ((0, rows * factor - height), (0, cols * factor - width)), mode="edge")
    small = padded.reshape(rows, factor, cols, factor).mean(axis=(1, 3))
    window = np.lib.stride_tricks.sliding_window_view(np.pad(small, radius, mode="reflect"), (2 * radius + 1,) * 2)
    median = np.median(window, axis=(-2, -1))
    return np.repeat(np.repeat(median, factor, axis=0), factor, axis=1)[:height, :width]


def local_blob_mask(stylized, painting_p995, margin=MARGIN, opening=OPENING):
    """Blob pixels found from the output alone: Y > its local median + margin and Y > painting_p995, opened."""
    y_out = luminance(stylized)
    return binary_opening((y_out > local_median(y_out) + margin) & (y_out > painting_p995), opening)


def overlay(stylized, mask):
    """The output with blob pixels tinted red, for looking at."""
    shown = np.array(stylized, np.float32)
    shown[mask] = 0.4 * shown[mask] + 0.6 * np.array([1.0, 0.0, 0.0], np.float32)
    return shown


def run(
    model,
    content,
    styles,
    *,
    size=256,
    photos=None,
    margin=MARGIN,
    opening=OPENING,
    style_names=None,
    output_dir=None,
    examples=0,
    log=print,
):
    """Measures every (photo, style); returns the list of rows `{style, photo, share, compact, ...}`."""
    from cin_style import Stylizer

    stylizer = Stylizer.load(model)
    names = style_names or stylizer.style_names
    photo_paths = image_io.list_image_files(content)[: photos or None]
    if not photo_paths:
        raise ValueError(f"No photos in {content}")
    pictures = {p: image_io.resize_shorter_side(image_io.read_image(p), size) for p in photo_paths}
    rows, kept = [], []
    for name in names:
        painting = image_io.resize_shorter_side(image_io.read_image(find_style_image(styles, name)), size)
        p995 = painting_percentile(painting)
        for path, photo in pictures.items():
            began = time.perf_counter()
            painted = stylizer.stylize(photo, name)
            seconds = time.perf_counter() - began
            mask = blob_mask(photo, painted, p995, margin)
            compact = binary_opening(mask, opening)
            local = local_blob_mask(painted, p995, margin, opening)
            rows.append(
                {
                    "style": name,
                    "photo": os.path.basename(path),
                    "share": float(mask.mean()),
                    "compact": float(compact.mean()),
                    "local": float(local.mean()),
                    "painting_p995": p995,
                    "seconds": seconds,
                }
            )
            if examples:
                kept.append((float((compact | local).mean()), name, os.path.basename(path), painted, compact | local))
                kept = sorted(kept, key=lambda k: -k[0])[:examples]
    log(table(rows, margin))
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        write_csv(rows, os.path.join(output_dir, "blobs.csv"))
        for share, name, photo_name, painted, mask in kept:
            stem = f"{os.path.splitext(photo_name)[0]}_{name}_{share * 100:.2f}pct"
            image_io.write_image(
                os.path.join(output_dir, stem + ".png"), np.concatenate([painted, overlay(painted, mask)], axis=1)
            )
    return rows


def table(rows, margin=MARGIN):
    """The printed table: per style the mean shares (plain, compact, local; in %) and the worst photo (local)."""
    header = f"{'style':<48} {'share %':>8} {'compact %':>9} {'local %':>8} {'worst %':>8}  worst photo  {'p99.5':>5}"
    lines = [header, "-" * len(header)]
    groups = {}
    for row in rows:
        groups.setdefault(row["style"], []).append(row)
    mean = lambda group, key: 100 * statistics.fmean(r[key] for r in group)
    for name, group in groups.items():
        worst = max(group, key=lambda r: r["local"])
        lines.append(
            f"{name:<48} {mean(group, 'share'):8.3f} {mean(group, 'compact'):9.3f} {mean(group, 'local'):8.3f} "
            f"{100 * worst['local']:8.3f}  {worst['photo']:<12} {group[0]['painting_p995']:5.3f}"
        )
    lines.append(f"{'MEAN':<48} {mean(rows, 'share'):8.3f} {mean(rows, 'compact'):9.3f} {mean(rows, 'local'):8.3f}")
    photos = {r["photo"] for r in rows}
    with_blob = sum(max(r["compact"], r["local"]) > 0.001 for r in rows)
    lines.append(
        f"{len(rows)} pairs ({len(photos)} photos x {len(groups)} styles), margin {margin}; "
        f"pairs with > 0.1% compact or local blob pixels: {with_blob}/{len(rows)}; "
        f"{statistics.fmean(r['seconds'] for r in rows):.2f} s per image"
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="anything Stylizer.load accepts")
    parser.add_argument("--content", required=True, help="folder of photos")
    parser.add_argument("--styles", required=True, help="folder with the model's style images (file stem = style name)")
    parser.add_argument("--size", type=int, default=256, help="shorter side of each photo and painting")
    parser.add_argument("--photos", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--margin", type=float, default=MARGIN, help="how much brighter than the photo a blob is")
    parser.add_argument("--opening", type=int, default=OPENING, help="opening radius of the compact and local shares")
    parser.add_argument("--style_names", default=None, help="comma-separated subset of styles")
    parser.add_argument("--output_dir", default=None, help="write blobs.csv (and examples) here")
    parser.add_argument("--examples", type=int, default=0, help="save the N worst pairs to --output_dir")
    args = parser.parse_args()
    if args.examples and not args.output_dir:
        parser.error("--examples needs --output_dir")
    began = time.perf_counter()
    run(
        args.model,
        args.content,
        args.styles,
        size=args.size,
        photos=args.photos,
        margin=args.margin,
        opening=args.opening,
        style_names=args.style_names.split(",") if args.style_names else None,
        output_dir=args.output_dir,
        examples=args.examples,
    )
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
