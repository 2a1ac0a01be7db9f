"""Contact sheet of a model: every style on a few photos.

    python benchmarks/contact_sheet.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --photos=4 --size=192 --output=docs/styles.jpg
    python benchmarks/contact_sheet.py ... --styles=../shared/data/styles --blocks=2

Default layout: rows are photos, columns the photo then every style, each
column labelled with its style name. Photos are painted at --paint_size
(default 256, the size the model was trained at: its brush strokes are sized
for it) and shrunk to the --size tiles, as a user would see a painted photo
scaled down. With --styles (the folder of the
paintings, file stem = style name) the sheet is by style instead, for models
with many styles: a row per style, labelled with its full name, holding the
painting and then the photos in that style, under a header row of the photos;
--blocks sets how many such columns of rows stand side by side. Written
atomically; the format follows the output's extension (use .jpg with --quality
for a small file).
"""

import argparse
import math
import os
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from quality import find_style_image

from cin_style import Stylizer, image_io

LABEL = 14


def square(image, side):
    image = image_io.resize_shorter_side(image, side)
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


def painted_tiles(stylizer, path, names, side, paint_size=None):
    """The photo at `path` as a `side` square, then painted in each style at `paint_size`, shrunk to `side`."""
    photo = image_io.read_image(path)
    big = square(photo, paint_size or side)
    return [square(photo, side)] + [square(stylizer.stylize(big, name), side) for name in names]


def contact_sheet(stylizer, photo_paths, side, styles=None, paint_size=None):
    """PIL image: a header row of style names, then one row per photo."""
    names = styles or stylizer.style_names
    columns = ["photo", *names]
    width = len(columns) * side
    rows = [painted_tiles(stylizer, path, names, side, paint_size) for path in photo_paths]
    sheet = Image.new("RGB", (width, LABEL * 2 + len(rows) * side), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(columns):
        label = name.replace("_", " ")
        draw.text((c * side + 3, 1 if c % 2 == 0 else LABEL), label[: side // 6], fill="black")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(Image.fromarray(image_io.to_uint8(tile)), (c * side, LABEL * 2 + r * side))
    return sheet


def style_rows_sheet(stylizer, photo_paths, side, style_folder, blocks=2, gap=8, paint_size=None, names=None):
    """PIL image: a labelled row per style (painting, then the photos painted), in `blocks` side by side.

    `names` picks the styles shown (default: all), in that order."""
    names = list(names or stylizer.style_names)
    tiles_of = [painted_tiles(stylizer, path, names, side, paint_size) for path in photo_paths]
    photos = [tiles[0] for tiles in tiles_of]
    paintings = {name: square(image_io.read_image(find_style_image(style_folder, name)), side) for name in names}
    per_block = math.ceil(len(names) / blocks)
    row_height = side + LABEL
    block_width = (1 + len(photos)) * side
    sheet = Image.new("RGB", (blocks * block_width + (blocks - 1) * gap, (1 + per_block) * row_height), "white")
    draw = ImageDraw.Draw(sheet)
    for b in range(blocks):
        left = b * (block_width + gap)
        draw.text((left + 3, 1), "painting", fill="black")
        for c, photo in enumerate(photos, start=1):
            draw.text((left + c * side + 3, 1), os.path.basename(photo_paths[c - 1]), fill="black")
            sheet.paste(Image.fromarray(image_io.to_uint8(photo)), (left + c * side, LABEL))
        for r, name in enumerate(names[b * per_block : (b + 1) * per_block], start=1):
            top = r * row_height
            index = b * per_block + r - 1
            draw.text((left + 3, top + 1), f"{stylizer.style_names.index(name)}: {name}", fill="black")
            tiles = [paintings[name]] + [painted[1 + index] for painted in tiles_of]
            for c, tile in enumerate(tiles):
                sheet.paste(Image.fromarray(image_io.to_uint8(tile)), (left + c * side, top + LABEL))
    return sheet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--content", required=True, help="folder of photos")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--size", type=int, default=192, help="side of each square tile")
    parser.add_argument(
        "--paint_size",
        type=int,
        default=256,
        help="side the photos are painted at before shrinking to --size (the training size)",
    )
    parser.add_argument("--output", required=True)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    parser.add_argument("--styles", default=None, help="folder of the paintings: lay the sheet out by style")
    parser.add_argument("--blocks", type=int, default=2, help="with --styles: columns of style rows")
    parser.add_argument("--only", default=None, help="with --styles: comma-separated styles to show (default: all)")
    parser.add_argument("--photo_names", default=None, help="comma-separated photo file names (default: the first)")
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model)
    paths = image_io.list_image_files(args.content)[: args.photos]
    if args.photo_names:
        paths = [os.path.join(args.content, name) for name in args.photo_names.split(",")]
    if args.styles:
        only = args.only.split(",") if args.only else None
        sheet = style_rows_sheet(
            stylizer, paths, args.size, args.styles, blocks=args.blocks, paint_size=args.paint_size, names=only
        )
    else:
        sheet = contact_sheet(stylizer, paths, args.size, paint_size=args.paint_size)
    options = {"quality": args.quality, "optimize": True} if args.output.lower().endswith((".jpg", ".jpeg")) else {}
    image_io.write_image(args.output, sheet, **options)
    print(f"wrote {args.output}: {len(paths)} photos x {stylizer.num_styles} styles, {sheet.size[0]}x{sheet.size[1]}")


if __name__ == "__main__":
    main()
