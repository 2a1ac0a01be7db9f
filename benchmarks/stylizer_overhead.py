"""What the `Stylizer` itself costs per call: checks, conversions and copies around the model.

    python benchmarks/stylizer_overhead.py [--sizes=512,1024 --repeats=20]

A `Stylizer` whose model is a function that only copies a ready painting runs
`stylize` on a float32 array, a uint8 array and a PIL image of each size; the
milliseconds printed are the Stylizer's own work per call (the copy is printed
beside them). Set them against the model's time in `benchmarks/inference.py`
(the slim model at 1024 px: about 330 ms on two cores).
"""

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import Stylizer, image_io


def per_call(function, repeats):
    """Median seconds of `function()` over `repeats` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--input", default=os.path.join(os.path.dirname(__file__), "..", "examples", "parrots.jpg"))
    args = parser.parse_args()
    photo = image_io.read_image(args.input)
    print(f"{'size':>6}{'input':>10}{'stylize ms':>12}{'copy ms':>10}")
    for side in (int(s) for s in args.sizes.split(",")):
        image = image_io.resize(photo, side, side).astype(np.float32)
        painting = np.random.default_rng(0).random((1, side, side, 3), dtype=np.float32)
        stylizer = Stylizer(
            lambda images, weights, painting=painting: painting.copy(), [f"style_{i}" for i in range(16)]
        )
        copy = per_call(painting.copy, args.repeats)
        inputs = {"float32": image, "uint8": image_io.to_uint8(image), "PIL": Image.fromarray(image_io.to_uint8(image))}
        for kind, given in inputs.items():
            seconds = per_call(lambda given=given, stylizer=stylizer: stylizer.stylize(given, 3), args.repeats)
            print(f"{side:>6}{kind:>10}{seconds * 1e3:>12.2f}{copy * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
