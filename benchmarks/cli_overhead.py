"""What a folder run of cin-style-stylize costs per photo beyond the Stylizer's painting.

    python benchmarks/cli_overhead.py [--models=cin_style_default,cin_style_slim --precision=bfloat16
                                       --sizes=512,1024 --photos=6 --jit_compile]

For each model and size, `--photos` copies of a JPEG photo of that size are
painted as the tool paints a folder (`cin_style.cli._folder.paint_folder`:
read, paint, then PNG written on a second thread at the lowest CPU priority
while the next photo paints), the same with the writer at normal priority
(`normal`, as before 2026-12-06), and as the tool did at first (`before`:
paint, then write at Pillow's default zlib level 6, one photo after another).
Each is set against the Stylizer painting the same photo from an array already
in memory (`stylize`), all in one run, so the ratios printed hold on a noisy
machine. The
JPEG decoding and PNG encoding alone are printed too (the encoding with
`image_io.write_image`'s defaults and with Pillow's own, zlib level 6, which the
tool used before): the file codecs are what a folder run adds. `--jit_compile`
loads the Stylizer with `jit_compile=True` (`--jit_compile` of the tool).
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cin_style import Stylizer, image_io
from cin_style.cli import _folder

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stylizer_overhead import per_call as median_seconds  # a sibling script, as fuzz.py imports fuzz_cases

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def sequential(work, paint):
    """The folder loop before this change: paint, then write at Pillow's default (zlib level 6), one photo after
    another."""
    for path, style, output in work:
        image_io.write_image(output, paint(path, style)(), compress_level=6)


def measure(stylizer, image, photos, repeats):
    """Seconds per photo: `alone` (stylize an array), `folder` (the tool's folder loop), `normal` (the same, its
    writer at normal priority), `before` (the folder loop as it was at first: sequential, level 6), `decode` (the
    JPEG), `encode` (the PNG, write_image's defaults), `level6` (the PNG at Pillow's default)."""
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "photo.jpg")
        Image.fromarray(image_io.to_uint8(image)).save(source, quality=95)
        array = image_io.read_image(source)
        work = [(source, 3, os.path.join(folder, f"out_{i}.png")) for i in range(photos)]
        painting = stylizer.stylize(array, 3)
        alone_png = os.path.join(folder, "alone.png")

        def paint(path, style):
            return lambda: stylizer.stylize(path, style)

        row = {"alone": median_seconds(lambda: stylizer.stylize(array, 3), repeats * photos)}
        with contextlib.redirect_stdout(io.StringIO()):  # its "wrote ..." lines
            row["folder"] = median_seconds(lambda: _folder.paint_folder(work, paint), repeats) / photos
            yielding, _folder.CAN_YIELD = _folder.CAN_YIELD, False
            try:
                row["normal"] = median_seconds(lambda: _folder.paint_folder(work, paint), repeats) / photos
            finally:
                _folder.CAN_YIELD = yielding
        row["before"] = median_seconds(lambda: sequential(work, paint), repeats) / photos
        row["decode"] = median_seconds(lambda: image_io.read_image(source), repeats * photos)
        row["encode"] = median_seconds(lambda: image_io.write_image(alone_png, painting), repeats * photos)
        row["level6"] = median_seconds(
            lambda: image_io.write_image(alone_png, painting, compress_level=6), repeats * photos
        )
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cin_style_default,cin_style_slim")
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--jit_compile", action="store_true", help="Stylizer.load(jit_compile=True)")
    parser.add_argument("--photos", type=int, default=6, help="photos per folder run")
    parser.add_argument("--repeats", type=int, default=3, help="folder runs timed per engine (median)")
    parser.add_argument("--input", default=os.path.join(REPO, "examples", "parrots.jpg"))
    args = parser.parse_args()
    photo = image_io.read_image(args.input)
    print(
        f"{'model':<18}{'size':>6}{'stylize ms':>12}{'folder ms':>11}{'ratio':>7}{'normal ms':>11}{'ratio':>7}"
        f"{'before ms':>11}{'ratio':>7}"
        f"{'decode ms':>11}{'encode ms':>11}{'level 6 ms':>12}"
    )
    for model in args.models.split(","):
        stylizer = Stylizer.load(
            os.path.join(REPO, "saved_models", model), precision=args.precision, jit_compile=args.jit_compile
        )
        for side in (int(s) for s in args.sizes.split(",")):
            row = measure(stylizer, image_io.resize(photo, side, side), args.photos, args.repeats)
            ms = {key: value * 1e3 for key, value in row.items()}
            print(
                f"{model:<18}{side:>6}{ms['alone']:>12.1f}{ms['folder']:>11.1f}{row['folder'] / row['alone']:>7.2f}"
                f"{ms['normal']:>11.1f}{row['normal'] / row['alone']:>7.2f}"
                f"{ms['before']:>11.1f}{row['before'] / row['alone']:>7.2f}{ms['decode']:>11.1f}{ms['encode']:>11.1f}"
                f"{ms['level6']:>12.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
