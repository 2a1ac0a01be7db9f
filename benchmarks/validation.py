"""Validation loss of trained models, side by side: the loss they were trained on, on photos they never saw.

    python benchmarks/validation.py saved_models/cin_style_default runs/my_model [...] \
        --content=../shared/data/content/test --styles=../shared/data/styles

For every style of the first model and each validation photo (Kodak kodim05-08
by default, at a 256-px shorter side, i.e. 384x256: the training scale), paints
the photo with each model and scores it with the training loss (content, Gram
style and total variation, at the first model's loss weights, Gram targets from
the painting at its style-image size). Prints the mean total loss per style,
one column per model, then the mean total, content and style loss of each
model; lower is better. Models may be anything `Stylizer.load` takes
(SavedModel folder, .keras file, training folder) and must share the styles.
`--precisions=float32,bfloat16` scores each model in each precision
(`Stylizer.load(precision=...)`), a column each (`bfloat16+xla`: with
`jit_compile=True` too); `--tflite=float32,float16,
dynamic_range` also each model's TFLite files of those quantizations, exported
at each photo's size and run with LiteRT (`pip install -e .[bench]`).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import image_io

DEFAULT_PHOTOS = ("kodim05", "kodim06", "kodim07", "kodim08")


def load_photos(folder, names=DEFAULT_PHOTOS, size=256):
    """The named photos of `folder` at a `size` shorter side, float32 (h, w, 3)."""
    photos = {}
    for name in names:
        path = next(
            (
                os.path.join(folder, name + ext)
                for ext in image_io.IMAGE_EXTENSIONS
                if os.path.isfile(os.path.join(folder, name + ext))
            ),
            None,
        )
        if path is None:
            raise FileNotFoundError(f"No photo '{name}' in {folder}")
        photos[name] = image_io.resize_shorter_side(image_io.read_image(path), size)
    return photos


def style_targets(loss, styles_folder, names, style_image_size):
    """`{style: Gram targets}` from the paintings `styles_folder/<style>.*`."""
    from quality import find_style_image

    from cin_style.losses import mix_targets

    targets = {}
    for name in names:
        painting = image_io.resize_shorter_side(
            image_io.read_image(find_style_image(styles_folder, name)), style_image_size
        )
        targets[name] = mix_targets(loss.style_grams([painting]), np.ones((1, 1), np.float32))
    return targets


class TFLitePainter:
    """Paints as a `Stylizer` does, through TFLite files of the model at `path` (its `quantization`), one
    exported per image size on first use (a TFLite file has a fixed input size)."""

    def __init__(self, path, quantization):
        from cin_style.model_io import load_transformer

        self.model, self.style_names, _ = load_transformer(path)
        self.quantization = None if quantization == "float32" else quantization
        self.folder = tempfile.mkdtemp(prefix="cin_style-validation-")
        self.painters = {}

    def stylize(self, photo, style):
        from cin_style.tflite import TFLiteStylizer, export_tflite

        height, width = photo.shape[:2]
        if (height, width) not in self.painters:
            file = os.path.join(self.folder, f"{self.quantization}-{width}x{height}.tflite")
            size = (height, width)
            export_tflite(self.model, file, self.style_names, size=size, quantization=self.quantization)
            self.painters[height, width] = TFLiteStylizer(file, num_threads=2)
        return self.painters[height, width].stylize(photo.astype(np.float32), style)


def validation_losses(stylizer, photos, targets, loss):
    """`{style: {"total", "content", "style", "tv"}}`: each loss part's mean over the photos."""
    result = {}
    for style, target in targets.items():
        parts = {}
        for photo in photos.values():
            out = stylizer.stylize(photo, style)
            for key, value in loss(out[None], photo[None], target).items():
                parts.setdefault(key, []).append(float(np.asarray(value)[0]))
        result[style] = {key: float(np.mean(values)) for key, values in parts.items()}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="models to compare (the first sets styles and loss weights)")
    parser.add_argument("--content", required=True, help="folder holding the validation photos")
    parser.add_argument("--styles", required=True, help="folder with the style paintings (file stem = style name)")
    parser.add_argument("--photos", default=",".join(DEFAULT_PHOTOS), help="comma-separated photo file stems")
    parser.add_argument("--size", type=int, default=256, help="shorter side of the photos")
    parser.add_argument(
        "--precisions", default="float32", help="comma-separated: each model in each precision (+xla: jit_compile)"
    )
    parser.add_argument("--tflite", default="", help="comma-separated TFLite quantizations to score as well")
    args = parser.parse_args()

    from quality import training_settings

    from cin_style import Stylizer
    from cin_style.losses import PerceptualLoss

    precisions = args.precisions.split(",")
    runs = [(path, precision) for path in args.models for precision in precisions]
    stylizers = [
        Stylizer.load(path, precision=precision.removesuffix("+xla"), jit_compile=precision.endswith("+xla"))
        for path, precision in runs
    ]
    for path in args.models:
        for quantization in filter(None, args.tflite.split(",")):
            runs.append((path, f"tflite {quantization}"))
            stylizers.append(TFLitePainter(path, quantization))
    names = stylizers[0].style_names
    for (path, _), stylizer in zip(runs, stylizers):
        if stylizer.style_names != names:
            raise SystemExit(f"{path} has other styles than {args.models[0]}")
    weights, style_image_size = training_settings(args.models[0])
    loss = PerceptualLoss(**weights)
    photos = load_photos(args.content, args.photos.split(","), args.size)
    targets = style_targets(loss, args.styles, names, style_image_size)
    results = [validation_losses(stylizer, photos, targets, loss) for stylizer in stylizers]
    labels = [f"[{i}]" for i in range(len(runs))]
    for label, (path, precision) in zip(labels, runs):
        print(f"{label} {path}" + (f" ({precision})" if len(precisions) > 1 or precision.startswith("tflite") else ""))
    print(f"total loss per style, mean over {', '.join(photos)} at a {args.size}-px shorter side")
    print(f"{'style':<48}" + "".join(f"{label:>9}" for label in labels))
    for name in names:
        print(f"{name:<48}" + "".join(f"{r[name]['total']:9.3f}" for r in results))
    for part in ("total", "content", "style"):
        print(f"{'MEAN ' + part:<48}" + "".join(f"{np.mean([r[n][part] for n in names]):9.3f}" for r in results))
    if len(results) > 1:
        better = [sum(r[n]["total"] < results[0][n]["total"] for n in names) for r in results[1:]]
        print(
            "styles better than [0]: " + ", ".join(f"{label} {b}/{len(names)}" for label, b in zip(labels[1:], better))
        )


if __name__ == "__main__":
    main()
