"""Print a training run's loss curve from its TensorBoard logs.

    python benchmarks/loss_curve.py runs/my_model [--every=50]

One line per logged step (thinned to --every): total, content, style and TV
loss as Keras logged them (running means over the current 'epoch' of
checkpoint_every steps).
"""

import argparse
import glob
import os

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util


def curve(run_dir):
    """`{step: {tag: value}}` from `run_dir/logs/train`."""
    points = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "logs", "train", "events.out.tfevents.*"))):
        events = EventAccumulator(path, size_guidance={"tensors": 0, "scalars": 0})
        events.Reload()
        for tag in events.Tags().get("tensors", []):
            if not tag.startswith("batch_"):
                continue
            for event in events.Tensors(tag):
                points.setdefault(event.step, {})[tag[len("batch_") :]] = float(
                    tensor_util.make_ndarray(event.tensor_proto)
                )
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()
    points = curve(args.run_dir)
    if not points:
        raise SystemExit(f"No TensorBoard batch scalars under {args.run_dir}/logs/train")
    print(f"{'step':>6} {'loss':>8} {'content':>8} {'style':>8} {'tv':>8}")
    for step in sorted(points):
        if step % args.every == 0 or step == max(points):
            p = points[step]
            print(
                f"{step:6d} {p.get('loss', float('nan')):8.3f} {p.get('content_loss', float('nan')):8.3f} "
                f"{p.get('style_loss', float('nan')):8.3f} {p.get('tv_loss', float('nan')):8.4f}"
            )


if __name__ == "__main__":
    main()
