"""Quality mode on large images: refining at a smaller working size against refining at full resolution.

Refining an image at a working size and adding the upsampled change to the
full-size painting is cheaper than optimising every pixel; tiles at full
resolution bound the memory of a large image. This measures the three, one
run side by side: for each photo (at its own size, e.g. the Kodak photos'
768 x 512) and style, the model's loss at full size of the painting, of the
painting refined at --working_side with the change upsampled, refined at full
resolution in tiles of --tile px, and refined whole at full resolution
(`cin_style.refine.refine`'s default for images within its tile), with the
wall time of each (painting, compile and steps included), and a sheet.

    python benchmarks/refine_working_size.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --photos=2 --style_names=munch_the_scream --steps=30
"""

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from quality import labelled_rows_sheet

from cin_style import image_io


def upsampled_change(refine, photo, painting, working_side, *args, **kwargs):
    """`painting` plus the change `refine` makes to it at `working_side` (longer side), upsampled to its size."""
    height, width = photo.shape[:2]
    scale = working_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_photo, small_painting = (image_io.resize(image, *size) for image in (photo, painting))
    change = refine(small_photo, small_painting, *args, **kwargs) - small_painting
    return np.clip(painting + image_io.resize(change, width, height), 0.0, 1.0).astype(np.float32)


def run(
    model,
    content,
    *,
    steps=30,
    photos=2,
    style_names=None,
    working_side=512,
    tile=512,
    output_dir,
    thumb=384,
    log=print,
):
    """Returns one row per (photo, style): the full-size losses and seconds of the painting and the three refines."""
    from cin_style import Stylizer
    from cin_style.losses import mix_targets
    from cin_style.refine import model_loss, refine

    stylizer = Stylizer.load(model)
    loss = model_loss(stylizer.training_config)
    style_size = int(stylizer.training_config.get("style_image_size") or 256)
    names = style_names or stylizer.style_names[:1]
    paths = image_io.list_image_files(content)[: photos or None]
    if not paths:
        raise ValueError(f"No photos in {content}")
    os.makedirs(output_dir, exist_ok=True)
    rows, sheet_rows = [], []
    for name in names:
        painting_of_style = np.asarray(stylizer.style_image(name), np.float32) / 255.0
        targets = mix_targets(loss.style_grams([painting_of_style]), np.ones((1, 1), np.float32))
        for path in paths:
            photo = image_io.read_image(path)
            longer = max(photo.shape[:2])
            if longer <= max(working_side, tile):
                raise ValueError(
                    f"{path} is not larger than the working size {working_side} and the tile {tile}: nothing to compare"
                )

            def total(image, photo=photo, targets=targets):
                return float(np.asarray(loss(image[None], photo[None], targets)["total"])[0])

            began = time.perf_counter()
            painted = stylizer.stylize(photo, name)
            painted_seconds = time.perf_counter() - began
            row = {"photo": os.path.basename(path), "style": name, "size": "x".join(map(str, photo.shape[1::-1]))}
            row.update(painted_total=total(painted), painted_seconds=painted_seconds)
            common = dict(style_size=style_size, verbose=0)
            targets_and_steps = ([painting_of_style], [1.0], steps, loss)
            results = {}
            for label in ("working", "tiles", "full"):
                began = time.perf_counter()
                if label == "working":
                    image = upsampled_change(refine, photo, painted, working_side, *targets_and_steps, **common)
                else:
                    side = tile if label == "tiles" else longer
                    image = refine(photo, painted, *targets_and_steps, tile=side, **common)
                row[f"{label}_seconds"] = painted_seconds + time.perf_counter() - began
                row[f"{label}_total"] = total(image)
                results[label] = image
            rows.append(row)
            log(
                f"{name:>28} {row['photo']:>12} {row['size']:>8}  painted {row['painted_total']:.3f}  "
                f"+{steps} at {working_side}: {row['working_total']:.3f} in {row['working_seconds']:.1f} s  "
                f"+{steps} in {tile}-px tiles: {row['tiles_total']:.3f} in {row['tiles_seconds']:.1f} s  "
                f"+{steps} whole: {row['full_total']:.3f} in {row['full_seconds']:.1f} s"
            )
            sheet_rows.append(
                [
                    (row["photo"], photo),
                    (f"{name} {row['painted_total']:.2f}", painted),
                    (
                        f"+{steps} at {working_side}: {row['working_total']:.2f}, {row['working_seconds']:.0f} s",
                        results["working"],
                    ),
                    (
                        f"+{steps} {tile}-px tiles: {row['tiles_total']:.2f}, {row['tiles_seconds']:.0f} s",
                        results["tiles"],
                    ),
                    (f"+{steps} whole: {row['full_total']:.2f}, {row['full_seconds']:.0f} s", results["full"]),
                ]
            )
    image_io.write_image(os.path.join(output_dir, "refine_working_size.png"), labelled_rows_sheet(sheet_rows, thumb))
    log(summary(rows, steps, working_side, tile))
    return rows


def summary(rows, steps, working_side, tile):
    mean = lambda key: statistics.fmean(r[key] for r in rows)
    drop = mean("painted_total") - mean("full_total")

    def share(label):
        return (mean("painted_total") - mean(f"{label}_total")) / drop if drop > 0 else math.nan

    return (
        f"mean over {len(rows)}: painted {mean('painted_total'):.3f}; +{steps} whole at full resolution "
        f"{mean('full_total'):.3f} in {mean('full_seconds'):.1f} s; in {tile}-px tiles {mean('tiles_total'):.3f} "
        f"in {mean('tiles_seconds'):.1f} s ({share('tiles'):.0%} of the whole image's loss drop); at {working_side} "
        f"upsampled {mean('working_total'):.3f} in {mean('working_seconds'):.1f} s ({share('working'):.0%} of it)."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--content", required=True, help="folder of photos larger than the working size")
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument("--style_names", default=None, help="comma-separated; default: the model's first style")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--working_side", type=int, default=512, help="longer side of the upsampled-change refine")
    parser.add_argument("--tile", type=int, default=512, help="side of the tiles of the tiled refine")
    parser.add_argument("--output_dir", default="benchmarks/results/refine_working_size")
    parser.add_argument("--thumb", type=int, default=384, help="longer side of each picture on the sheet")
    args = parser.parse_args()
    run(
        args.model,
        args.content,
        steps=args.steps,
        photos=args.photos,
        style_names=args.style_names.split(",") if args.style_names else None,
        working_side=args.working_side,
        tile=args.tile,
        output_dir=args.output_dir,
        thumb=args.thumb,
    )


if __name__ == "__main__":
    main()
