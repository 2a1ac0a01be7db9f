"""Quality of the fast model next to Gatys optimisation, under the model's own loss.

    python benchmarks/quality.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --styles=../shared/data/styles --photos=4

For each (photo, style): the total, content and style loss of (a) our model's
output, (b) Gatys et al. after --steps steps started from the photo, (c) the
photo itself, all under the model's training loss weights. Prints a table per
style and overall with the ratio ours/Gatys (lower is better; 1.0 means as
good as optimisation) and the time of each (speed-up ours vs Gatys).

Quality mode (--refine=0,10,30,100): our painting refined by
`cin_style.refine.refine` (what `Stylizer.stylize(refine=N)` runs, here with
Gram targets from the --styles image rather than the painting the model
carries: the same picture, resized the same way), the loss
after each step count, the step at which it reaches Gatys' loss, the step at
which Gatys from the photo reaches ours+30, and the wall time of ours+30
(painting, compile and steps) against Gatys'. Target: ours+30 within 1.2x
Gatys(500)'s loss in at most a tenth of its time.

    python benchmarks/quality.py --model=saved_models/cin_style_default \
        --content=../shared/data/content/test --styles=../shared/data/styles --photos=2 \
        --style_names=munch_the_scream,hokusai_great_wave --size=256,512

Writes `quality.csv` (every number) and `quality_sheet.png` (rows: photos;
columns: photo, then ours, ours+30 and Gatys for each style, whole pictures
--thumb px on the longer side, each labelled with its loss and seconds) to --output_dir
(a subfolder per size when several are given), and caches the Gatys results
there so reruns are fast.
"""

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import image_io

#: Where Gatys' seconds were measured: cached ones from another kind of machine are not compared.
MACHINE = f"{platform.machine()} {os.cpu_count()} cpus {os.environ.get('KERAS_BACKEND', 'tensorflow')}"
#: Refine steps measured by default (losses and wall time after each), and the one compared with Gatys.
REFINE_STEPS = (0, 10, 30, 100)
REFERENCE_REFINE = 30


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


def labelled_rows_sheet(rows, thumb):
    """Each photo's row of labelled pictures, `(label, image)` pairs, scaled to `thumb` px on the longer side
    (whole pictures, not crops), the rows stacked on white."""
    from PIL import Image

    from cin_style.sheets import BACKGROUND, labelled_grid

    lines = []
    for row in rows:
        height, width = row[0][1].shape[:2]
        scale = thumb / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        cells = [(label, Image.fromarray(image_io.to_uint8(image)).resize(size, Image.LANCZOS)) for label, image in row]
        lines.append(labelled_grid(cells, columns=len(cells))[0])
    sheet = Image.new("RGB", (max(line.width for line in lines), sum(line.height for line in lines)), BACKGROUND)
    top = 0
    for line in lines:
        sheet.paste(line, (0, top))
        top += line.height
    return sheet


def _seconds(value):
    return "" if math.isnan(value) else f", {value:.1f} s" if value < 10 else f", {value:.0f} s"


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
    refine_steps=REFINE_STEPS,
    reference_refine=REFERENCE_REFINE,
):
    """Runs the comparison; returns the list of per-(photo, style) rows."""
    from cin_style import Stylizer
    from cin_style.gatys import optimize
    from cin_style.losses import PerceptualLoss, mix_targets
    from cin_style.refine import DEFAULT_TILE, refine

    refine_steps = sorted(set(refine_steps))
    if refine_steps and size > DEFAULT_TILE:
        # Above it the refine works in tiles and its per-step losses would be the tiles', not the image's.
        raise ValueError(f"Refine steps are measured at sizes up to {DEFAULT_TILE} px. Received: size={size}")
    reference = reference_refine if reference_refine in refine_steps else (refine_steps or [0])[-1]

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
        pictures[photo_path] = [(os.path.basename(photo_path), photo)]
    for name in names:
        style_path = find_style_image(styles, name)
        style_image = image_io.resize_shorter_side(image_io.read_image(style_path), style_image_size)
        targets = mix_targets(loss.style_grams([style_image]), np.ones((1, 1), np.float32))
        for photo_path in photo_paths:
            photo = pictures[photo_path][0][1]

            def losses(image, photo=photo, targets=targets):
                parts = loss(image[None], photo[None], targets)
                return {k: float(np.asarray(v)[0]) for k, v in parts.items()}

            began = time.perf_counter()
            ours = stylizer.stylize(photo, name)
            ours_seconds = time.perf_counter() - began
            # File names, not paths: a cache computed on another machine (say a GPU one) is reused here, its
            # seconds only where it was computed on this kind of machine (else NaN: no time is compared).
            key_inputs = json.dumps(
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
            )
            key = hashlib.sha256(key_inputs.encode()).hexdigest()[:20]
            cache = os.path.join(output_dir, "cache", f"gatys-{key}.npz")
            gatys_image = None
            if os.path.isfile(cache):
                with np.load(cache) as saved:
                    if "history" in saved:  # older caches lack the loss curve: computed again
                        gatys_image, gatys_seconds = saved["image"], float(saved["seconds"])
                        gatys_curve = [float(v) for v in saved["history"]]
                        if "machine" not in saved or str(saved["machine"]) != MACHINE:
                            gatys_seconds = float("nan")
            if gatys_image is None:
                began = time.perf_counter()
                result = optimize(
                    photo,
                    style_image,
                    steps=steps,
                    optimizer=optimizer,
                    perceptual_loss=loss,
                    style_size=min(style_image.shape[:2]),
                    verbose=verbose,
                )
                gatys_image, gatys_seconds = result.image, time.perf_counter() - began  # compile included
                # history[k]: the loss after k steps (each step records the loss of the pixels it started from).
                gatys_curve = [h["total"] for h in result.history[1:]] + [result.losses["total"]]
                tmp = cache + ".tmp.npz"
                np.savez(
                    tmp,
                    image=gatys_image,
                    seconds=gatys_seconds,
                    history=np.asarray(gatys_curve),
                    machine=MACHINE,
                    key_inputs=key_inputs,  # what the file name hashes: a miss can be explained
                )
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
            refined = ours
            if refine_steps:
                refined = _refine_curve(
                    row, refine, photo, ours, style_image, style_image_size, loss, refine_steps, losses, reference
                )
                row["refine_steps_to_gatys"] = next(
                    (k for k in range(max(refine_steps) + 1) if row["_curve"][k] <= row["gatys_total"]), None
                )
                target = row[f"refine{reference}_total"]
                curve = [row["photo_total"], *gatys_curve]  # Gatys from the photo: after 0 steps, the photo
                row["gatys_steps_to_refine"] = next((k for k, v in enumerate(curve) if v <= target), None)
                row["reference_refine"] = reference
                del row["_curve"], row["_images"]
            results.append(row)
            pictures[photo_path].append((f"{name} {row['ours_total']:.2f}{_seconds(ours_seconds)}", ours))
            if refine_steps:
                pictures[photo_path].append(
                    (
                        f"+{reference} steps: {row[f'refine{reference}_total']:.2f}"
                        f"{_seconds(row[f'refine{reference}_seconds'])}",
                        refined,
                    )
                )
            pictures[photo_path].append(
                (f"Gatys({steps}): {row['gatys_total']:.2f}{_seconds(gatys_seconds)}", gatys_image)
            )
            log(
                f"{name:>45} {row['photo']:>24}  ours {row['ours_total']:.3f}  gatys {row['gatys_total']:.3f}  "
                f"photo {row['photo_total']:.3f}"
            )
    sheet_rows = [pictures[p] for p in photo_paths]
    image_io.write_image(os.path.join(output_dir, "quality_sheet.png"), labelled_rows_sheet(sheet_rows, thumb))
    write_csv(results, os.path.join(output_dir, "quality.csv"))
    log(table(results) + ("\n\n" + refine_table(results) if refine_steps else ""))
    return results


def _refine_curve(row, refine, photo, ours, style_image, style_image_size, loss, refine_steps, losses, reference):
    """Refines `ours` for max(refine_steps) steps with `cin_style.refine.refine`, recording in `row` the loss and
    wall seconds after each of `refine_steps` (`refine<k>_total`, `refine<k>_seconds`, the seconds including
    the network's painting and the compile); returns the painting after the reference number of steps."""
    longest = max(refine_steps)
    curve, clock, snapshots = [], [], {}
    began = time.perf_counter()

    def record(step, parts):
        curve.append(parts["total"])  # the loss of the pixels step `step` started from: after step - 1 steps
        clock.append(time.perf_counter() - began)

    final = (
        refine(
            photo, ours, [style_image], [1.0], longest, loss, style_size=style_image_size, verbose=0, callback=record
        )
        if longest
        else ours
    )
    curve = [*curve, losses(final)["total"]] if longest else [row["ours_total"]]
    row["_curve"] = curve
    for k in refine_steps:
        row[f"refine{k}_total"] = curve[k]
        seconds = 0.0 if k == 0 else clock[k - 1]  # the callback of step k runs after its update
        row[f"refine{k}_seconds"] = row["ours_seconds"] + seconds
    if reference == longest:
        snapshots[reference] = final
    else:  # the painting after the reference steps, for the sheet: refined again to that step
        snapshots[reference] = refine(
            photo, ours, [style_image], [1.0], reference, loss, style_size=style_image_size, verbose=0
        )
    row["_images"] = snapshots
    return snapshots[reference]


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


def refine_table(rows):
    """The quality-mode table: loss after each refine step count next to Gatys', the crossing steps, the times."""
    steps = sorted(int(key[6:-6]) for key in rows[0] if key.startswith("refine") and key.endswith("_total"))
    reference, gatys_steps = rows[0]["reference_refine"], rows[0]["gatys_steps"]
    header = (
        f"{'style':<45} "
        + " ".join(f"{'+' + str(k):>7}" for k in steps)
        + f" {'gatys':>7} {f'+{reference}/G':>7} {'+k=G':>6} {f'G=+{reference}':>7}"
        + f" {f'+{reference} s':>8} {'gatys s':>8} {'time':>6}"
    )
    lines = [header, "-" * len(header)]
    groups = {}
    for row in rows:
        groups.setdefault(row["style"], []).append(row)

    def crossing(group, key, limit):
        found = [r[key] for r in group]
        return f">{limit}" if None in found else f"{statistics.fmean(found):.0f}"

    for name, group in [*groups.items(), ("OVERALL", rows)]:
        mean = lambda key, group=group: statistics.fmean(r[key] for r in group)
        ratio = statistics.fmean(r[f"refine{reference}_total"] / r["gatys_total"] for r in group)
        time_ratio = mean(f"refine{reference}_seconds") / mean("gatys_seconds")
        lines.append(
            f"{name:<45} "
            + " ".join(f"{mean(f'refine{k}_total'):7.3f}" for k in steps)
            + f" {mean('gatys_total'):7.3f} {ratio:7.2f} {crossing(group, 'refine_steps_to_gatys', max(steps)):>6}"
            + f" {crossing(group, 'gatys_steps_to_refine', gatys_steps):>7}"
            + f" {mean(f'refine{reference}_seconds'):8.1f} {mean('gatys_seconds'):8.1f} {time_ratio:6.3f}"
        )
    ratio = statistics.fmean(r[f"refine{reference}_total"] / r["gatys_total"] for r in rows)
    time_ratio = statistics.fmean(r[f"refine{reference}_seconds"] for r in rows) / statistics.fmean(
        r["gatys_seconds"] for r in rows
    )
    lines.append(
        f"ours+{reference} steps: {ratio:.2f}x Gatys({gatys_steps})'s loss (target <= 1.2) in {time_ratio:.3f} of its "
        f"time (target <= 0.1). +k=G: refine steps to reach Gatys' loss; G=+{reference}: Gatys steps from the photo "
        f"to reach ours+{reference}; times include the network's painting and the compile."
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--content", required=True, help="folder of photos")
    parser.add_argument("--styles", required=True, help="folder with the model's style images (file stem = style name)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--size", default="256", help="longer side of each photo; several: 256,512 (one run each)")
    parser.add_argument(
        "--refine", default=",".join(map(str, REFINE_STEPS)), help="refine steps to measure ('' for none)"
    )
    parser.add_argument("--photos", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--style_names", default=None, help="comma-separated subset of styles")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "lbfgs"])
    parser.add_argument("--output_dir", default="benchmarks/results/quality")
    parser.add_argument("--thumb", type=int, default=128, help="longer side of each picture on the sheet")
    args = parser.parse_args()
    for size in [int(side) for side in args.size.split(",")]:
        print(f"== {size} px")
        run(
            args.model,
            args.content,
            args.styles,
            steps=args.steps,
            size=size,
            photos=args.photos,
            output_dir=args.output_dir if "," not in args.size else os.path.join(args.output_dir, str(size)),
            optimizer=args.optimizer,
            style_names=args.style_names.split(",") if args.style_names else None,
            verbose=0,
            thumb=args.thumb,
            refine_steps=[int(k) for k in args.refine.split(",") if k],
        )


if __name__ == "__main__":
    main()
