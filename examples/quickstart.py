"""Quick start: build a slim multi-style network and run a photo through it.

Until the bundled trained model lands, this shows the public API end to end:
the network takes an image in [0, 1] and a style-weight row and returns an
image of the same size. The network here is untrained, so its output is a
washed-out version of the photo, not a painting.

    python examples/quickstart.py [--output stylized.png]
"""

import argparse
import os
import pathlib

import numpy as np
from PIL import Image

import cin_style

HERE = pathlib.Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(HERE / "parrots.jpg"))
    parser.add_argument("--output", default="stylized.png")
    args = parser.parse_args()

    model = cin_style.build_transformer(num_styles=4, alpha=0.25)
    with Image.open(args.input) as image:
        photo = np.asarray(image.convert("RGB"), np.float32)[None] / 255.0
    blend = np.array([[0.25, 0.25, 0.25, 0.25]], np.float32)
    out = np.asarray(model({"image": photo, "style_weights": blend}))[0]
    tmp = args.output + ".tmp.png"
    Image.fromarray(np.round(out * 255).astype(np.uint8)).save(tmp)
    os.replace(tmp, args.output)
    print(f"{photo.shape[1]}x{photo.shape[2]} photo -> {args.output} ({model.count_params():,} parameters, untrained)")


if __name__ == "__main__":
    main()
