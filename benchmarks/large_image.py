"""Large images: seams, peak memory and time of the layer-by-layer painting against the untiled one.

    python benchmarks/large_image.py [--sides=2048,4096,8192] [--compare_side=2048 --tile=1024]

1. Seams. At `--compare_side`² (the parrots photo, resized), the bundled
   model paints the image whole, then with `tile_size=--tile` layer by layer
   (`Stylizer(seamless=True)`, the default) and as feather-blended tiles with
   their own statistics (`seamless=False`, the old behaviour). Prints each
   one's mean and largest |difference| to the whole painting and the
   largest tone offset (mean difference) in a band around a tile border,
   and writes a crop across a seam, whole | feathered | layer by layer, to
   `--picture`.
2. Memory and time. For each of `--sides`, a fresh process paints a square
   image with the bundled model at its default settings and reports its
   wall time and peak resident memory (VmHWM), next to a process that
   paints `--compare_side`² whole (one call of the SavedModel) as the
   reference. Images above the Stylizer's tile size (2048) go layer by
   layer; 8192² needs ~17 GiB (two float32 activations of 32 channels).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

PHOTO = os.path.join(ROOT, "examples", "parrots.jpg")
STYLE = "hokusai_great_wave"


def _photo(side):
    from cin_style import image_io

    return image_io.resize(image_io.read_image(PHOTO), side, side).astype(np.float32)


def _peak_rss_gib():
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def child(side, tile_size):
    """Runs in a fresh process: one painting, then a JSON line with seconds and peak memory."""
    from cin_style import Stylizer
    from cin_style.bundled import bundled_model_path

    image = _photo(side)
    settings = {"max_pixels": max(side * side, 64_000_000), **({"tile_size": tile_size} if tile_size else {})}
    stylizer = Stylizer.load(bundled_model_path(), **settings)
    stylizer.stylize(np.zeros((64, 64, 3), np.float32), STYLE)  # load and trace outside the timing
    start = time.perf_counter()
    out = stylizer.stylize(image, STYLE)
    seconds = time.perf_counter() - start
    assert out.shape == image.shape and np.isfinite(out).all()
    print(json.dumps({"side": side, "seconds": seconds, "peak_gib": _peak_rss_gib()}))


def _measure(side, tile_size=None):
    command = [sys.executable, os.path.abspath(__file__), f"--child={side}"]
    if tile_size:
        command.append(f"--tile={tile_size}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        return {"side": side, "error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _band_offset(image, whole, borders, band=64):
    """Largest |mean difference| to the whole painting in a band of rows around a tile border (a tone step)."""
    return max(abs(float((image - whole)[max(0, b - band) : b + band].mean())) for b in borders)


def seams(side, tile, picture):
    from cin_style import Stylizer, image_io
    from cin_style.bundled import bundled_model_path
    from cin_style.tiles import tile_starts

    image = _photo(side)
    path = bundled_model_path()
    whole = Stylizer.load(path, tile_size=side).stylize(image, STYLE)
    layered = Stylizer.load(path, tile_size=tile).stylize(image, STYLE)
    feathered = Stylizer.load(path, tile_size=tile, seamless=False).stylize(image, STYLE)
    starts = tile_starts(side, tile, Stylizer(None, [], tile_size=tile).tile_overlap)
    borders = sorted({s for s in starts if s} | {s + tile for s in starts if s + tile < side})
    print(f"seams at {side}x{side}, tile {tile} (tile borders at rows {borders})")
    print(f"{'':>22}{'mean |diff| to whole':>22}{'max |diff|':>12}{'tone offset at a border':>26}")
    for name, out in (("feathered tiles", feathered), ("layer by layer", layered)):
        print(
            f"{name:>22}{np.abs(out - whole).mean():>22.4f}{np.abs(out - whole).max():>12.3f}"
            f"{_band_offset(out, whole, borders):>26.4f}"
        )
    top = borders[0] - 64
    crops = [out[top : top + 256, side // 2 - 128 : side // 2 + 128] for out in (whole, feathered, layered)]
    gap = np.ones((256, 6, 3), np.float32)
    image_io.write_image(picture, np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1))
    print(f"wrote {picture}: whole | feathered tiles | layer by layer, rows {top}-{top + 256} across a border")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="2048,4096,8192")
    parser.add_argument("--compare_side", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=None, help="tile size for the seam comparison (default 1024)")
    parser.add_argument("--picture", default="benchmarks/results/seams.png")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.tile)
    os.makedirs(os.path.dirname(os.path.abspath(args.picture)), exist_ok=True)
    seams(args.compare_side, args.tile or 1024, args.picture)
    reference = _measure(args.compare_side, tile_size=args.compare_side)
    print(f"\nreference: {args.compare_side}x{args.compare_side} whole: {reference}")
    print(f"{'side':>6}{'seconds':>10}{'peak GiB':>10}{'time / ref px':>15}{'peak / ref':>12}")
    for side in (int(s) for s in args.sides.split(",")):
        row = _measure(side)
        if "error" in row:
            print(f"{side:>6}  failed: {row['error']}")
            continue
        per_pixel = (row["seconds"] / side**2) / (reference["seconds"] / args.compare_side**2)
        print(
            f"{side:>6}{row['seconds']:>10.1f}{row['peak_gib']:>10.2f}{per_pixel:>15.2f}"
            f"{row['peak_gib'] / reference['peak_gib']:>12.2f}"
        )


if __name__ == "__main__":
    main()
