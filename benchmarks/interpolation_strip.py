"""An interpolation strip: one photo, from one style to another in N steps.

    python benchmarks/interpolation_strip.py --model=saved_models/cin_style_default \
        --input=examples/parrots.jpg --first=hokusai_great_wave --second=munch_the_scream --output=docs/interpolation.jpg
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import Stylizer, image_io  # noqa: E402


def strip(stylizer, photo, first, second, steps):
    """The frames side by side: weights (1 - t, t) for t from 0 to 1."""
    frames = [stylizer.stylize(photo, {first: 1.0 - t, second: t}) for t in np.linspace(0.0, 1.0, steps)]
    return np.concatenate(frames, axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--first", required=True)
    parser.add_argument("--second", required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model)
    photo = image_io.read_image(args.input)
    height, width = photo.shape[:2]
    photo = image_io.resize_shorter_side(photo, round(args.height * min(height, width) / height))
    image = strip(stylizer, photo, args.first, args.second, args.steps)
    options = {"quality": 85, "optimize": True} if args.output.lower().endswith((".jpg", ".jpeg")) else {}
    image_io.write_image(args.output, image, **options)
    print(f"wrote {args.output}: {args.first} -> {args.second} in {args.steps} steps")


if __name__ == "__main__":
    main()
