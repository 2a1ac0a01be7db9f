"""Quality of the fast model next to Gatys optimisation, under the model's own loss.

    python benchmarks/quality.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --styles=../shared/data/styles --photos=4

For each (photo, style): the total, content and style loss of (a) our model's
output, (b) Gatys et al. after --steps steps started from the photo, (c) the
photo itself, all under the model's training loss weights. Prints a table per
style and overall with the ratio ours/Gatys (lower is better; 1.0 means as
good as optimisation) and the time of each (speed-up ours vs Gatys). Writes
`quality.csv` (every number) and `quality_sheet.png` (rows: photos; columns:
photo, then ours and Gatys for each style) to --output_dir, and caches the
Gatys results there so reruns are fast.
"""

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import image_io


def training_settings(model_path):
    """Loss weights and style image size the model was trained with (metadata or styles.json)."""
    from cin_style.model_io import recorded_training_config

    training = recorded_training_config(model_path)
    keys = ("content_weight", "style_weight", "tv_weight")
    return {k: training[k] for k in keys if training.get(k) is not None}, int(training.get("style_image_size", 256))


def find_style_image(folder, name):
    for extension in image_io.IMAGE_EXTENSIONS:
        path = os.path.join(folder, name + extension)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"No image for style '{name}' in {folder} (expected {name}.jpg or similar)")


def _thumbnail(image, side):
    return (
        image_io.resize_shorter_side(image, side)[:side, :side] if min(image.shape[:2]) != side else image[:side, :side]
    )


def _sheet(rows, thumb):
    lines = [np.concatenate([_thumbnail(tile, thumb) for tile in row], axis=1) for row in rows]
    return np.concatenate(lines, axis=0)


def run(
    model,
    content,
    styles,
    *,
    steps=500,
    size=256,
    photos=None,
    output_dir="benchmarks/results/quality",
    optimizer="adam",
    style_names=None,
    thumb=128,
    verbose=1,
    log=print,
):
    """Runs the comparison; returns the list of per-(photo, style) rows."""
    from cin_style import Stylizer
    from cin_style.gatys import optimize
    from cin_style.losses import PerceptualLoss, mix_targets

    os.makedirs(os.path.join(output_dir, "cache"), exist_ok=True)
    stylizer = Stylizer.load(model)
    weights, style_image_size = training_settings(model)
    loss = PerceptualLoss(**weights)
    names = style_names or stylizer.style_names
    photo_paths = image_io.list_image_files(content)[: photos or None]
    if not photo_paths:
        raise ValueError(f"No photos in {content}")
    results, sheet_rows = [], []
    pictures = {}
    for photo_path in photo_paths:
        photo = image_io.read_image(photo_path)
        scale = size / max(photo.shape[:2])
        photo = image_io.resize_shorter_side(photo, max(16, round(min(photo.shape[:2]) * scale)))
        pictures[photo_path] = [photo]
    for name in names:
        style_path = find_style_image(styles, name)
        style_image = image_io.resize_shorter_side(image_io.read_image(style_path), style_image_size)
        targets = mix_targets(loss.style_grams([style_image]), np.ones((1, 1), np.float32))
        for photo_path in photo_paths:
            photo = pictures[photo_path][0]

            def losses(image, photo=photo, targets=targets):
                parts = loss(image[None], photo[None], targets)
                return {k: float(np.asarray(v)[0]) for k, v in parts.items()}

            began = time.perf_counter()
            ours = stylizer.stylize(photo, name)
            ours_seconds = time.perf_counter() - began
            # File names, not paths: a cache computed on another machine (say a GPU one) is reused here.
            key = hashlib.sha256(
                json.dumps(
                    [
                        os.path.basename(photo_path),
                        os.path.basename(style_path),
                        steps,
                        size,
                        optimizer,
                        weights,
                        style_image_size,
                        round(float(photo.sum()), 2),
                    ],
                    sort_keys=True,
                ).encode()
            ).hexdigest()[:20]
            cache = os.path.join(output_dir, "cache", f"gatys-{key}.npz")
            if os.path.isfile(cache):
                with np.load(cache) as saved:
                    gatys_image, gatys_seconds = saved["image"], float(saved["seconds"])
            else:
                result = optimize(
                    photo,
                    style_image,
                    steps=steps,
                    optimizer=optimizer,
                    perceptual_loss=loss,
                    style_size=min(style_image.shape[:2]),
                    verbose=verbose,
                )
                gatys_image, gatys_seconds = result.image, result.seconds
                tmp = cache + ".tmp.npz"
                np.savez(tmp, image=gatys_image, seconds=gatys_seconds)
                os.replace(tmp, cache)
            row = {
                "style": name,
                "photo": os.path.basename(photo_path),
                "ours_seconds": ours_seconds,
                "gatys_seconds": gatys_seconds,
                "gatys_steps": steps,
            }
            for label, image in (("ours", ours), ("gatys", gatys_image), ("photo", photo)):
                for part, value in losses(image).items():
                    row[f"{label}_{part}"] = value
            results.append(row)
            pictures[photo_path] += [ours, gatys_image]
            log(
                f"{name:>45} {row['photo']:>24}  ours {row['ours_total']:.3f}  gatys {row['gatys_total']:.3f}  "
                f"photo {row['photo_total']:.3f}"
            )
    sheet_rows = [pictures[p] for p in photo_paths]
    image_io.write_image(os.path.join(output_dir, "quality_sheet.png"), _sheet(sheet_rows, thumb))
    write_csv(results, os.path.join(output_dir, "quality.csv"))
    log(table(results))
    return results


def write_csv(rows, path):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def summary(rows):
    """Mean losses, ratio ours/Gatys and speed-up over a group of rows."""
    mean = lambda key: statistics.fmean(r[key] for r in rows)
    return {
        "ours_total": mean("ours_total"),
        "gatys_total": mean("gatys_total"),
        "photo_total": mean("photo_total"),
        "ours_content": mean("ours_content"),
        "gatys_content": mean("gatys_content"),
        "ours_style": mean("ours_style"),
        "gatys_style": mean("gatys_style"),
        "ratio": statistics.fmean(r["ours_total"] / r["gatys_total"] for r in rows),
        "ours_seconds": mean("ours_seconds"),
        "gatys_seconds": mean("gatys_seconds"),
    }


def table(rows):
    """The printed table: one line per style, then the overall line."""
    header = (
        f"{'style':<45} {'ours':>8} {'gatys':>8} {'photo':>8} {'ours/gatys':>10} "
        f"{'ours s':>7} {'gatys s':>8} {'speed-up':>9}"
    )
    lines = [header, "-" * len(header)]
    groups = {}
    for row in rows:
        groups.setdefault(row["style"], []).append(row)
    for name, group in [*groups.items(), ("OVERALL", rows)]:
        s = summary(group)
        lines.append(
            f"{name:<45} {s['ours_total']:8.3f} {s['gatys_total']:8.3f} {s['photo_total']:8.3f} {s['ratio']:10.2f} "
            f"{s['ours_seconds']:7.2f} {s['gatys_seconds']:8.1f} "
            f"{s['gatys_seconds'] / max(s['ours_seconds'], 1e-9):8.0f}x"
        )
    worst = max(summary(g)["ratio"] for g in groups.values())
    lines.append(
        f"mean ratio ours/Gatys {summary(rows)['ratio']:.2f}; worst style {worst:.2f} "
        f"(Gatys: {rows[0]['gatys_steps']} steps from the photo)"
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--content", required=True, help="folder of photos")
    parser.add_argument("--styles", required=True, help="folder with the model's style images (file stem = style name)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--size", type=int, default=256, help="longer side of each photo")
    parser.add_argument("--photos", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--style_names", default=None, help="comma-separated subset of styles")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "lbfgs"])
    parser.add_argument("--output_dir", default="benchmarks/results/quality")
    args = parser.parse_args()
    run(
        args.model,
        args.content,
        args.styles,
        steps=args.steps,
        size=args.size,
        photos=args.photos,
        output_dir=args.output_dir,
        optimizer=args.optimizer,
        style_names=args.style_names.split(",") if args.style_names else None,
        verbose=0,
    )


if __name__ == "__main__":
    main()
