"""An interpolation strip: one photo, from one style to another in N steps.

    python benchmarks/interpolation_strip.py --model=saved_models/cin_style_default \
        --input=examples/parrots.jpg --first=hokusai_great_wave --second=munch_the_scream \
        --output=docs/interpolation.jpg

The photo is painted at --paint_height (default 256, the training size: the
model's strokes are sized for it), and each frame shrunk to --height.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import Stylizer, image_io


def to_height(image, height):
    """`image` (float, h×w×3) resized to `height` rows, aspect kept (LANCZOS)."""
    return image_io.resize(image, max(1, round(image.shape[1] * height / image.shape[0])), height)


def strip(stylizer, photo, first, second, steps, height=None):
    """The frames side by side: weights (1 - t, t) for t from 0 to 1, each shrunk to `height` if given."""
    frames = [stylizer.stylize(photo, {first: 1.0 - t, second: t}) for t in np.linspace(0.0, 1.0, steps)]
    if height:
        frames = [to_height(frame, height) for frame in frames]
    return np.concatenate(frames, axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--first", required=True)
    parser.add_argument("--second", required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--height", type=int, default=128, help="height of each frame in the strip")
    parser.add_argument("--paint_height", type=int, default=256, help="height the photo is painted at")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model)
    photo = image_io.read_image(args.input)
    image = strip(stylizer, to_height(photo, args.paint_height), args.first, args.second, args.steps, args.height)
    options = {"quality": 85, "optimize": True} if args.output.lower().endswith((".jpg", ".jpeg")) else {}
    image_io.write_image(args.output, image, **options)
    print(f"wrote {args.output}: {args.first} -> {args.second} in {args.steps} steps")


if __name__ == "__main__":
    main()
