"""What painting in bfloat16 costs in pictures: every style of each model, float32 against bfloat16.

    python benchmarks/precision.py [--models=saved_models/cin_style_default,saved_models/cin_style_slim]
        [--input=examples/parrots.jpg --size=1024 --sheet=docs/precision_bf16.jpg] [--jit_compile]

Paints the photo (its longer side at --size) in every style of each model with
`Stylizer.load(precision="float32")` and `precision="bfloat16"`, and prints
per model the mean and largest |difference| over all styles (0-1 scale; one
uint8 level is 0.0039) and the share of pixels off by more than 2 levels
(--jit_compile: bfloat16 with `jit_compile=True`, its work between the
convolutions fused by XLA, against plain float32). With
--sheet, writes crops at full resolution for the style that differs most:
float32, bfloat16 and their difference x16. The validation loss of both
precisions is `benchmarks/validation.py --precisions=float32,bfloat16`.
"""

import argparse
import os
import sys
import warnings

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from cin_style import Stylizer, image_io
from cin_style.sheets import labelled_grid

DEFAULT_MODELS = ",".join(os.path.join(ROOT, "saved_models", name) for name in ("cin_style_default", "cin_style_slim"))


def compare(path, photo, jit_compile=False):
    """`{style: (float32 painting, bfloat16 painting)}` of `photo` in every style of the model at `path`."""
    exact = Stylizer.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = Stylizer.load(path, precision="bfloat16", jit_compile=jit_compile)
    return {name: (exact.stylize(photo, name), low.stylize(photo, name)) for name in exact.style_names}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated models")
    parser.add_argument("--input", default=os.path.join(ROOT, "examples", "parrots.jpg"))
    parser.add_argument("--size", type=int, default=1024, help="longer side the photo is painted at")
    parser.add_argument("--crop", type=int, default=256, help="side of the sheet's crops")
    parser.add_argument("--sheet", default=None, help="write the crops here (.jpg or .png)")
    parser.add_argument("--jit_compile", action="store_true", help="bfloat16 with jit_compile=True (XLA)")
    args = parser.parse_args()

    photo = image_io.read_image(args.input)
    height, width = photo.shape[:2]
    scale = args.size / max(height, width)
    photo = image_io.resize(photo, round(width * scale), round(height * scale)).astype(np.float32)
    cells = []
    low = "bfloat16+XLA" if args.jit_compile else "bfloat16"
    print(f"{args.input} at {photo.shape[1]}x{photo.shape[0]}; |float32 - {low}| on a 0-1 scale")
    print(f"{'model':<40}{'mean':>9}{'largest':>9}{'> 2 levels':>12}  worst style")
    for path in args.models.split(","):
        pairs = compare(path, photo, args.jit_compile)
        differences = {name: np.abs(a - b) for name, (a, b) in pairs.items()}
        everything = np.stack(list(differences.values()))
        worst = max(differences, key=lambda name: differences[name].mean())
        share = (everything > 2 / 255).mean()
        name = os.path.basename(os.path.normpath(path))
        print(f"{name:<40}{everything.mean():9.4f}{everything.max():9.4f}{share:11.2%}  {worst}")
        # The crop where this style differs most, at full resolution.
        difference = differences[worst].mean(axis=-1)
        c = min(args.crop, *difference.shape)
        rows, columns = difference.shape[0] // c, difference.shape[1] // c
        blocks = difference[: rows * c, : columns * c].reshape(rows, c, columns, c).sum(axis=(1, 3))
        top, left = (int(i) * c for i in np.unravel_index(np.argmax(blocks), blocks.shape))
        box = (slice(top, top + c), slice(left, left + c))
        a, b = pairs[worst]
        cells += [
            (f"{name}: {worst} float32", a[box]),
            (low, b[box]),
            (
                f"|difference| x16 (mean {differences[worst][box].mean():.4f})",
                np.clip(16 * differences[worst][box], 0, 1),
            ),
        ]
    if args.sheet:
        sheet, _ = labelled_grid(cells, columns=3)
        image_io.write_image(args.sheet, sheet, quality=90)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
