"""Which Gatys optimiser converges better per second: Adam or L-BFGS-B?

    python benchmarks/gatys_optimizers.py [--size=192 --seconds=60]

Runs both on the same photo and painting under the default training loss,
interleaving nothing (one after the other, each with the same wall-clock
budget), and prints the total loss each reached at fixed fractions of the
budget, and the ratio Adam/L-BFGS at the end (above 1: L-BFGS is ahead).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import image_io
from cin_style.gatys import optimize
from cin_style.losses import PerceptualLoss


class Budget(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--content",
        default=os.path.join(os.environ.get("CIN_STYLE_DATA", "../shared/data"), "content/test/kodim23.jpg"),
    )
    parser.add_argument(
        "--style",
        default=os.path.join(os.environ.get("CIN_STYLE_DATA", "../shared/data"), "styles/van_gogh_starry_night.jpg"),
    )
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    loss = PerceptualLoss()
    photo = image_io.read_image(args.content)
    photo = image_io.resize_shorter_side(photo, round(min(photo.shape[:2]) * args.size / max(photo.shape[:2])))
    style = image_io.read_image(args.style)
    marks = [0.25, 0.5, 0.75, 1.0]
    reached = {}
    for name in ("adam", "lbfgs"):
        trace = []
        began = [None]

        def callback(step, parts, trace=trace, began=began):
            now = time.perf_counter()
            began[0] = began[0] or now
            trace.append((now - began[0], parts["total"]))
            if now - began[0] > args.seconds:
                raise Budget()

        try:
            optimize(photo, style, steps=100000, optimizer=name, perceptual_loss=loss, callback=callback, verbose=0)
        except Budget:
            pass
        reached[name] = [min(total for t, total in trace if t <= m * args.seconds) for m in marks]
        print(
            f"{name:>6}: {len(trace)} steps in {trace[-1][0]:.0f} s; loss at "
            + ", ".join(f"{m * args.seconds:.0f}s {v:.3f}" for m, v in zip(marks, reached[name]))
        )
    print(
        f"ratio adam/lbfgs at {args.seconds:.0f} s: {reached['adam'][-1] / reached['lbfgs'][-1]:.2f} "
        f"({'L-BFGS' if reached['adam'][-1] > reached['lbfgs'][-1] else 'Adam'} converges better per second)"
    )


if __name__ == "__main__":
    main()
