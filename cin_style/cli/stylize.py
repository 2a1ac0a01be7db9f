"""cin-style-stylize: paint photos with a trained cin_style model.

    cin-style-stylize --input=photo.jpg --style=hokusai_great_wave --output=painted.png
    cin-style-stylize --input=photos/ --style="munch_the_scream:0.7,picabia_udnie:0.3" --output=painted/
    cin-style-stylize --input=photo.jpg --sheet --output=all_styles.png
    cin-style-stylize --list_styles
    cin-style-stylize --input=clip.mp4 --style=munch_the_scream --output=painted.mp4   # pip install cin_style[video]
    cin-style-stylize --input=photo.jpg --regions=labels.png --style=0:munch_the_scream,1:hokusai_great_wave \
        --feather=24 --output=regions.png

A folder is painted file by file into one flat output folder, each output named
`<input stem>_<style>.png`. Inputs that would share an output name (`a.jpg` and
`a.png`, the same name in two subfolders, or names differing only in case, one
file on macOS and Windows) are refused before any work, all clashes listed. A
file that fails (an unreadable image, a TensorFlow error such as running out of
memory) is reported, the run goes on, and it ends with status 1 and the failures
listed.
"""

import os
import pathlib
import sys

from absl import app, flags

from cin_style.bundled import bundled_model_path, resolve_model_keyword
from cin_style.cli._common import fail, reject_extra_args
from cin_style.video import VIDEO_EXTENSIONS

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    None,
    "SavedModel folder, .keras file or training folder; `slim` or `default` for a bundled model (slim: ~4x "
    "faster, coarser) (default: $CIN_STYLE_MODEL, else the bundled default model).",
)
flags.DEFINE_string("input", None, "An image file or a folder of images.")
flags.DEFINE_string(
    "output",
    None,
    "Output file (for one input) or folder: a folder input is written flat as "
    "<stem>_<style>.png; inputs that would share a name (a.jpg and a.png, or one name in two "
    "subfolders) are refused before any work.",
)
flags.DEFINE_string("style", None, "A style name, an index, or a blend: name:0.7,other:0.3.")
flags.DEFINE_string(
    "regions",
    None,
    "A label image (PNG; one grey level or palette index per region), resized to each photo; --style then "
    "gives each label its style: 0:munch_the_scream,1:hokusai_great_wave (names or indices).",
)
flags.DEFINE_float("feather", 0.0, "With --regions: width in pixels of the soft edge between regions.")
flags.DEFINE_enum(
    "region_blend",
    "features",
    ["features", "outputs"],
    "With --regions. features: the styles mix inside the network, one pass. outputs: each style painted alone "
    "and the paintings mixed pixel by pixel, one pass per style.",
)
flags.DEFINE_float("strength", 1.0, "1.0: full style; 0.0: the photo.")
flags.DEFINE_bool("preserve_color", False, "Keep the photo's colours (the same as --colors=luminance).")
flags.DEFINE_enum(
    "colors",
    "style",
    ["style", "luminance", "histogram"],
    "style: the painting's colours. luminance: the painting's light and dark in the photo's hues. "
    "histogram: each channel remapped to the photo's histogram.",
)
flags.DEFINE_float(
    "smoothing",
    0.6,
    "Videos: how much a still pixel leans on the previous painted frame, in [0, 1) (0: frames painted alone).",
)
flags.DEFINE_float("scale", 1.0, "Stroke size: 2 doubles the strokes, 0.5 halves them (painted at size / scale).")
flags.DEFINE_integer("max_size", None, "Downscale so the longer side is at most this.")
flags.DEFINE_bool("list_styles", False, "Print the model's styles and exit.")
flags.DEFINE_bool("sheet", False, "Write one PNG with the photo in every style.")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")

#: The bundled model: shipped in the package (wheel install), else in the source checkout (editable install).
BUNDLED_MODEL = bundled_model_path()


def default_model():
    return os.environ.get("CIN_STYLE_MODEL") or str(BUNDLED_MODEL)


def parse_style(spec, names):
    """`"name"`, `"3"` or `"a:0.7,b:0.3"` as a Stylizer style."""
    spec = spec.strip()
    if ":" not in spec:
        return int(spec) if spec.isdigit() and spec not in names else spec
    blend = {}
    for part in spec.split(","):
        key, _, weight = part.strip().rpartition(":")
        if not key:
            raise ValueError(f"Blend part {part!r} must look like name:weight")
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"Blend weight {weight!r} of {key!r} is not a number") from None
        key = int(key) if key.isdigit() and key not in names else key
        blend[key] = blend.get(key, 0.0) + value
    return blend


def parse_region_styles(spec, names):
    """`"0:name,1:3"` as `{label: style}` for a label image."""
    styles = {}
    for part in spec.split(","):
        label, _, style = part.strip().partition(":")
        if not label.strip().isdigit() or not style.strip():
            raise ValueError(f"with --regions, each part must look like label:style (e.g. 0:{names[0]}); got {part!r}")
        style = style.strip()
        styles[int(label)] = int(style) if style.isdigit() and style not in names else style
    return styles


def style_label(spec):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.replace(":", "-").replace(",", "+"))[:80]


def contact_sheet(stylizer, image_path, max_size):
    """The photo and every style, labelled, in a grid (PIL image)."""
    from PIL import ImageDraw

    from cin_style import image_io

    photo = stylizer._prepare(image_path, max_size or 512)[0][0]
    tiles = [("photo", photo)] + list(zip(stylizer.style_names, stylizer.stylize_all(photo)))
    height, width = photo.shape[:2]
    columns = min(4, len(tiles))
    rows = -(-len(tiles) // columns)
    label = 18
    from PIL import Image

    sheet = Image.new("RGB", (columns * width, rows * (height + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, tile) in enumerate(tiles):
        x, y = (i % columns) * width, (i // columns) * (height + label)
        sheet.paste(Image.fromarray(image_io.to_uint8(tile)), (x, y))
        draw.text((x + 4, y + height + 3), name, fill="black")
    return sheet


def main(argv):
    reject_extra_args(argv)
    from cin_style import image_io
    from cin_style.stylizer import ModelLoadError, StyleError, Stylizer

    model_path = resolve_model_keyword(FLAGS.model or default_model())
    try:
        stylizer = Stylizer.load(model_path)
    except ModelLoadError as error:
        hint = "" if FLAGS.model else " (pass --model or set CIN_STYLE_MODEL)"
        fail(f"{error}{hint}")
    if FLAGS.list_styles:
        for index, name in enumerate(stylizer.style_names):
            print(f"{index:3d}  {name}")
        return 0
    if not FLAGS.input:
        fail("--input is required: an image file or a folder of images")
    if not FLAGS.output:
        fail("--output is required: a file (one input) or a folder")
    if not os.path.exists(FLAGS.input):
        fail(f"--input not found: {FLAGS.input}")
    if FLAGS.sheet:
        if os.path.isdir(FLAGS.input):
            fail("--sheet takes one image as --input, not a folder")
        _write_one(lambda: contact_sheet(stylizer, FLAGS.input, FLAGS.max_size), FLAGS.output)
        return 0
    if not FLAGS.style:
        fail("--style is required: a name, an index or a blend (see --list_styles)")
    style, regions, label = None, None, FLAGS.style
    if FLAGS.regions:
        regions = _regions_from_flags(stylizer)
        label = "regions"
    else:
        try:
            style = parse_style(FLAGS.style, stylizer.style_names)
            stylizer.style_weights(style)
        except (ValueError, StyleError) as error:
            fail(f"--style: {error}")
    if not 0.0 <= FLAGS.strength <= 1.0:
        fail(f"--strength must be in [0, 1]. Received: {FLAGS.strength}")
    if FLAGS.preserve_color and FLAGS.colors == "histogram":
        fail("give --preserve_color (luminance) or --colors=histogram, not both")
    colors = "luminance" if FLAGS.preserve_color else (None if FLAGS.colors == "style" else FLAGS.colors)
    if not FLAGS.scale > 0:
        fail(f"--scale must be positive. Received: {FLAGS.scale}")

    options = dict(
        regions=regions,
        feather=FLAGS.feather,
        region_blend=FLAGS.region_blend,
        strength=FLAGS.strength,
        preserve_color=colors,
        scale=FLAGS.scale,
    )

    def paint(path):
        return lambda: stylizer.stylize(path, style, max_size=FLAGS.max_size, **options)

    if os.path.splitext(FLAGS.input)[1].lower() in VIDEO_EXTENSIONS:
        _stylize_video(stylizer, style, options)
        return 0
    if not os.path.isdir(FLAGS.input):
        output = FLAGS.output
        if os.path.isdir(output):
            output = os.path.join(output, f"{pathlib.Path(FLAGS.input).stem}_{style_label(label)}.png")
        _write_one(paint(FLAGS.input), output)
        return 0
    inputs = image_io.list_image_files(FLAGS.input)
    if not inputs:
        fail(f"No images (jpg, png, webp, bmp) in folder {FLAGS.input}")
    outputs = folder_outputs(inputs, FLAGS.output, style_label(label))
    os.makedirs(FLAGS.output, exist_ok=True)
    if not os.access(FLAGS.output, os.W_OK):
        fail(f"Output folder is not writable: {FLAGS.output}")
    failures = []
    for path, output in zip(inputs, outputs):
        reason = _write_one(paint(path), output, in_batch=True)
        if reason is not None:
            failures.append((path, reason))
    print(f"{len(inputs) - len(failures)} of {len(inputs)} images stylised into {FLAGS.output}")
    if failures:
        lines = [f"{len(failures)} of {len(inputs)} images failed:"] + [
            f"  {path}: {reason}" for path, reason in failures
        ]
        print("\n".join(lines), file=sys.stderr)
        return 1
    return 0


def _stylize_video(stylizer, style, options):
    from cin_style.video import VideoError, stylize_video

    if FLAGS.max_size is not None:
        fail("--max_size does not apply to videos: the output keeps the input's size")
    try:
        result = stylize_video(
            stylizer, FLAGS.input, FLAGS.output, style, smoothing=FLAGS.smoothing, overwrite=FLAGS.overwrite, **options
        )
    except (VideoError, ValueError, OSError) as error:  # StyleError, RegionError among them
        fail(str(error))
    sound = "with its audio" if result["audio"] else "no audio"
    print(
        f"wrote {FLAGS.output}: {result['frames']} frames, {result['size'][0]}x{result['size'][1]} at "
        f"{result['fps']:g} fps, {sound} ({result['frames'] / max(result['seconds'], 1e-9):.1f} frames/s)"
    )


def _regions_from_flags(stylizer):
    """`(labels, {label: style})` from --regions and --style, checked whole before any photo is read."""
    from cin_style.regions import RegionError, read_labels
    from cin_style.stylizer import StyleError

    if not os.path.isfile(FLAGS.regions):
        fail(f"--regions not found: {FLAGS.regions}")
    try:
        labels = read_labels(FLAGS.regions)
        styles = parse_region_styles(FLAGS.style, stylizer.style_names)
        stylizer.style_map((labels, styles), *labels.shape, feather=FLAGS.feather)
    except (ValueError, OSError) as error:  # RegionError, StyleError, ImageReadError among them
        kind = "--style" if isinstance(error, StyleError) and not isinstance(error, RegionError) else "--regions"
        fail(f"{kind}: {error}")
    return labels, styles


def folder_outputs(inputs, output_dir, label):
    """The output file of each input of a folder run, `<stem>_<label>.png` side by side in `output_dir`.

    Ends the tool, before any work, if two inputs would get one output name
    (compared ignoring case, as macOS and Windows file systems do).
    """
    outputs = [os.path.join(output_dir, f"{pathlib.Path(path).stem}_{label}.png") for path in inputs]
    by_name = {}
    for path, output in zip(inputs, outputs):
        by_name.setdefault(os.path.basename(output).casefold(), []).append(path)
    clashes = [paths for paths in by_name.values() if len(paths) > 1]
    if clashes:
        listed = "; ".join(" and ".join(paths) for paths in clashes)
        fail(
            f"{len(clashes)} group(s) of inputs would write the same output file: {listed}. "
            "Rename them or stylise the subfolders one at a time."
        )
    return outputs


def _describe(error):
    """One line for an error: the expected kinds as they read, others with their type (e.g. TensorFlow's)."""
    if isinstance(error, (ValueError, OSError)):  # ImageReadError and StyleError among them
        return str(error)
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _write_one(make, output, in_batch=False):
    """Renders and writes one output atomically.

    Alone, ends the tool on a failure (a TensorFlow error included, as one
    line). In a batch, reports any failure, a TensorFlow error included,
    and returns its reason (`None` on success) so the run goes on with the
    other files.
    """
    from cin_style import image_io
    from cin_style.stylizer import StyleError

    if os.path.exists(output) and not FLAGS.overwrite:
        message = f"{output} exists; pass --overwrite to replace it"
        if in_batch:
            print(f"FAILED {output}: {message}", file=sys.stderr)
            return message
        fail(message)
    if in_batch:
        try:
            image_io.write_image(output, make())
        except Exception as error:
            reason = _describe(error)
            print(f"FAILED {output}: {reason}", file=sys.stderr)
            return reason
    else:
        try:
            image_io.write_image(output, make())
        except (image_io.ImageReadError, StyleError, ValueError, OSError) as error:
            fail(str(error))
        except Exception as error:  # a TensorFlow error (out of memory, ...): one line, not a traceback
            fail(f"{FLAGS.input}: {_describe(error)}")
    print(f"wrote {output}")
    return None


def run():
    app.run(main)


if __name__ == "__main__":
    run()
