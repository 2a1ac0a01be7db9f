"""Contact sheet of a model: rows are photos, columns the photo then every style.

    python benchmarks/contact_sheet.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --photos=4 --size=192 --output=docs/styles.jpg

Each column is labelled with its style name. Written atomically; the format
follows the output's extension (use .jpg with --quality for a small file).
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import Stylizer, image_io  # noqa: E402

LABEL = 14


def square(image, side):
    image = image_io.resize_shorter_side(image, side)
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


def contact_sheet(stylizer, photo_paths, side, styles=None, max_columns=None):
    """PIL image: a header row of style names, then one row per photo."""
    names = styles or stylizer.style_names
    columns = ["photo", *names]
    width = len(columns) * side
    rows = []
    for path in photo_paths:
        photo = square(image_io.read_image(path), side)
        rows.append([photo] + [stylizer.stylize(photo, name) for name in names])
    sheet = Image.new("RGB", (width, LABEL * 2 + len(rows) * side), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(columns):
        label = name.replace("_", " ")
        draw.text((c * side + 3, 1 if c % 2 == 0 else LABEL), label[: side // 6], fill="black")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(Image.fromarray(image_io.to_uint8(tile)), (c * side, LABEL * 2 + r * side))
    return sheet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--content", required=True, help="folder of photos")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--size", type=int, default=192, help="side of each square tile")
    parser.add_argument("--output", required=True)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model)
    paths = image_io.list_image_files(args.content)[: args.photos]
    sheet = contact_sheet(stylizer, paths, args.size)
    options = {"quality": args.quality, "optimize": True} if args.output.lower().endswith((".jpg", ".jpeg")) else {}
    image_io.write_image(args.output, sheet, **options)
    print(f"wrote {args.output}: {len(paths)} photos x {stylizer.num_styles} styles, {sheet.size[0]}x{sheet.size[1]}")


if __name__ == "__main__":
    main()
