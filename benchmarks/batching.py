"""Stylizer batching: a batch of photos, and every style of one photo, in one call against one by one.

    python benchmarks/batching.py [--size=512 --batch=8 --repeats=3]

Times, in one run and alternately (so machine noise hits both), the bundled
SavedModel through `Stylizer`: `--batch` photos of `--size`² painted one call
each (the old behaviour) against one `stylize` call on the whole batch, and
`stylize_all` (16 styles) against 16 separate `stylize` calls. Prints the
median images/s of each and their ratio.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
DATA = os.environ.get("CIN_STYLE_DATA", os.path.join(ROOT, "..", "shared", "data"))

from cin_style import Stylizer, image_io
from cin_style.bundled import bundled_model_path


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    stylizer = Stylizer.load(bundled_model_path())
    folder = os.path.join(DATA, "content", "test")
    names = sorted(os.listdir(folder))[: args.batch]
    photos = np.stack(
        [image_io.resize(image_io.read_image(os.path.join(folder, n)), args.size, args.size) for n in names]
    )
    stylizer.stylize(photos[:2], 0)  # warm up both batch sizes
    stylizer.stylize(photos[0], 0)
    runs = {"batch: one call each": [], "batch: one call": [], "styles: one call each": [], "styles: stylize_all": []}
    for _ in range(args.repeats):
        runs["batch: one call each"].append(timed(lambda: [stylizer.stylize(p, 0) for p in photos]))
        runs["batch: one call"].append(timed(lambda: stylizer.stylize(photos, 0)))
        runs["styles: one call each"].append(timed(lambda: [stylizer.stylize(photos[0], i) for i in range(16)]))
        runs["styles: stylize_all"].append(timed(lambda: stylizer.stylize_all(photos[0])))
    counts = {"batch": len(photos), "styles": stylizer.num_styles}
    rates = {name: counts[name.split(":")[0]] / statistics.median(times) for name, times in runs.items()}
    print(f"{args.size}x{args.size}, bundled SavedModel, median of {args.repeats}")
    for name, rate in rates.items():
        print(f"{name:24s} {rate:6.2f} images/s")
    print(f"batch of {len(photos)}: {rates['batch: one call'] / rates['batch: one call each']:.2f}x images/s")
    print(f"every style: {rates['styles: stylize_all'] / rates['styles: one call each']:.2f}x images/s")


if __name__ == "__main__":
    main()
