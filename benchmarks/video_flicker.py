"""Video flicker: frames painted alone against frames damped by `smoothing`, on clips made for it.

    python benchmarks/video_flicker.py [--photo=kodim23.jpg --width=256 --frames=32 --style=munch_the_scream]

Two clips are made from one photo, in memory: a still camera with sensor
noise (sigma 2 grey levels), and the same with a slow pan (0.5 px per frame).
Each is painted by the bundled model with `smoothing` 0 (every frame alone),
0.3, 0.6 and 0.8 (`cin_style.video.damp_flicker`, the rule `stylize_video`
uses), and two numbers printed per setting:

- flicker: mean |frame-to-frame change| of the painting where the input
  changed by less than 1% (`cin_style.video.flicker`): what a viewer sees as
  shimmer on a still scene;
- lag: mean |damped - painted alone| where the input changed by more than 5%:
  how far smoothing drags moving content behind (ghosting).
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
DATA = os.environ.get("CIN_STYLE_DATA", os.path.join(ROOT, "..", "shared", "data"))

from cin_style import Stylizer, image_io
from cin_style.bundled import bundled_model_path
from cin_style.video import damp_flicker, flicker


def make_clip(photo, width, frames, pan, rng):
    """`frames` crops of `width` x 3/4 width, moving `pan` px per frame, with noise."""
    height = width * 3 // 4
    base = image_io.resize(photo, width + int(np.ceil(pan * frames)) + 2, height + 2)
    clip = []
    for t in range(frames):
        shift = pan * t
        left, part = int(shift), shift - int(shift)
        crop = (1 - part) * base[1 : height + 1, left : left + width] + part * base[
            1 : height + 1, left + 1 : left + width + 1
        ]
        clip.append(np.clip(crop + rng.normal(0, 2 / 255, crop.shape), 0, 1).astype(np.float32))
    return clip


def damped(painted, clip, smoothing):
    out, previous = [], None
    for t, frame in enumerate(clip):
        previous = damp_flicker(painted[t], previous, frame, clip[t - 1] if t else None, smoothing)
        out.append(previous)
    return out


def lag(outputs, painted, clip, moving=0.05):
    total, count = 0.0, 0
    for t in range(1, len(clip)):
        mask = np.abs(clip[t] - clip[t - 1]).mean(axis=-1) > moving
        total += float(np.abs(outputs[t] - painted[t]).mean(axis=-1)[mask].sum())
        count += int(mask.sum())
    return total / max(count, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default=os.path.join(DATA, "content", "test", "kodim23.jpg"))
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--style", default="munch_the_scream")
    parser.add_argument("--model", default=None, help="default: the bundled model")
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model or bundled_model_path())
    photo = image_io.read_image(args.photo)
    rng = np.random.default_rng(0)
    print(f"{os.path.basename(args.photo)}, {args.width} px wide, {args.frames} frames, style {args.style}")
    print(f"{'clip':12s} {'smoothing':>9s} {'flicker':>8s} {'vs alone':>8s} {'lag':>7s}")
    for name, pan in (("still+noise", 0.0), ("slow pan", 0.5)):
        clip = make_clip(photo, args.width, args.frames, pan, rng)
        painted = [stylizer.stylize(frame, args.style) for frame in clip]
        alone = flicker(painted, clip)
        for smoothing in (0.0, 0.3, 0.6, 0.8):
            out = damped(painted, clip, smoothing)
            value = flicker(out, clip)
            print(f"{name:12s} {smoothing:9.1f} {value:8.4f} {value / alone:8.2f} {lag(out, painted, clip):7.4f}")


if __name__ == "__main__":
    main()
