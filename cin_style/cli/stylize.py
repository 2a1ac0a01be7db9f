"""cin-style-stylize: paint photos with a trained cin_style model.

    cin-style-stylize --input=photo.jpg --style=hokusai_great_wave --output=painted.png
    cin-style-stylize --input=photos/ --style=munch_the_scream,hokusai_great_wave --output=painted/
    cin-style-stylize --input=photos/ --style="munch_the_scream:0.7,picabia_udnie:0.3" --output=painted/
    cin-style-stylize --input=photo.jpg --sheet --output=all_styles.png
    cin-style-stylize --input=photo.jpg --sheet --style=munch_the_scream,picabia_udnie --output=two_styles.png
    cin-style-stylize --list_styles
    cin-style-stylize --input=clip.mp4 --style=munch_the_scream --output=painted.mp4   # pip install cin_style[video]
    cin-style-stylize --input=photo.jpg --regions=labels.png --style=0:munch_the_scream,1:hokusai_great_wave \
        --feather=24 --output=regions.png

A folder, or one photo in several styles, is painted file by file into one
flat output folder, each output named `<input stem>_<style name>.png`; outputs
that exist are skipped (counted in the summary) unless --overwrite. Inputs
that would share an output name (`a.jpg` and `a.png`, the same name in two
subfolders, or names differing only in case, one file on macOS and Windows)
are refused before any work, all clashes listed. A
file that fails (an unreadable image, a TensorFlow error such as running out of
memory) is reported, the run goes on, and it ends with status 1 and the failures
listed.
"""

import os
import pathlib
import sys

from absl import flags

from cin_style.bundled import bundled_model_path, resolve_model_keyword
from cin_style.cli._common import fail, reject_extra_args, run_tool, setup_logging, vgg_weights_or_fail
from cin_style.cli._folder import describe_error, paint_folder
from cin_style.precision import PRECISIONS
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
flags.DEFINE_string(
    "style",
    None,
    "A style name or index; several, one output each: name,other; or a blend: name:0.7,other:0.3.",
)
flags.DEFINE_string(
    "default_style",
    None,
    "With --regions: the style of the labels --style gives none (a name, an index or a blend).",
)
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
flags.DEFINE_integer(
    "refine",
    0,
    "Quality mode: this many optimisation steps on the painting's pixels under the model's own loss, from the "
    "model's painting, at the picture's own resolution (30 brings it close to Gatys' quality; a step takes about "
    "10 s per megapixel on two CPU cores: 1.7 s at 512 px; --max_size bounds it). "
    "Needs the paintings the model carries and VGG19's weights ($CIN_STYLE_VGG19_WEIGHTS or Keras' download).",
    lower_bound=0,
)
flags.DEFINE_string(
    "vgg_weights",
    None,
    "With --refine: Keras' VGG19 no-top weights file (default: $CIN_STYLE_VGG19_WEIGHTS, else Keras' cache "
    "~/.keras/models); imagenet: let Keras download it (80 MB).",
)
flags.DEFINE_enum(
    "precision",
    "float32",
    PRECISIONS,
    "bfloat16: convolutions in bfloat16, about twice as fast on CPUs with AVX512-BF16 or AMX (recent Xeons), "
    "within about a third of a uint8 level of float32 on average.",
)
flags.DEFINE_bool(
    "jit_compile",
    False,
    "Hand the work between the convolutions to XLA (TensorFlow): 0.6-0.9x the time per painting on a 2-core AMX "
    "Xeon, after 3.4-5.4 s of compiling per image size; for videos and folders of many photos of one size (sides "
    "up to 2048 px: larger images are painted layer by layer without it).",
)
flags.DEFINE_bool("list_styles", False, "Print the model's styles and exit.")
flags.DEFINE_bool("sheet", False, "Write one PNG with the photo in every style, or in the styles --style lists.")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs (a folder run skips them otherwise).")

#: What --help shows, in this order (a flag left out of every group is listed under "Other flags").
HELP_GROUPS = [
    ("Model and styles", ["model", "style", "list_styles", "sheet"]),
    ("Input and output", ["input", "output", "overwrite", "max_size"]),
    ("Speed", ["precision", "jit_compile"]),
    ("Look", ["strength", "colors", "preserve_color", "scale"]),
    ("Quality mode", ["refine", "vgg_weights"]),
    ("Regions (one style per area of the photo)", ["regions", "default_style", "feather", "region_blend"]),
    ("Videos", ["smoothing"]),
]

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


def parse_styles(spec, names):
    """`"a,b,3"` as a list of styles, one output each; a single style or a blend as a list of one."""
    if ":" in spec or "," not in spec:
        return [parse_style(spec, names)]
    parts = [part.strip() for part in spec.split(",")]
    if not all(parts):
        raise ValueError(f"a list of styles needs a name or index between each comma. Received: --style={spec}")
    styles = [parse_style(part, names) for part in parts]
    labels = [output_label(style, names) for style in styles]  # `1` and `munch_the_scream` are one style
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} listed more than once. Received: --style={spec}")
    return styles


def output_label(style, names):
    """A style as it names its output files: a style's name (also for an index), `a-0.7+b-0.3` for a blend."""
    if isinstance(style, dict):
        spec = "+".join(f"{output_label(key, names)}-{weight:g}" for key, weight in style.items())
    else:
        spec = names[style] if isinstance(style, int) and 0 <= style < len(names) else str(style)
    return style_label(spec)


def image_format(path):
    """The Pillow format `path`'s extension asks for, or `None` for no extension or one Pillow cannot write."""
    from cin_style import image_io

    return image_io.image_format(path) if os.path.splitext(path)[1] else None


def check_output_file(output):
    """Ends the tool, before any work, if `output`'s extension names no image format Pillow can write."""
    if image_format(output) is None:
        extension = os.path.splitext(output)[1] or "no extension"
        fail(
            f"--output must end in an image extension such as .png, .jpg or .webp ({extension} is not one "
            f"Pillow can write), or be an existing folder. Received: --output={output}"
        )


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


def contact_sheet(stylizer, image_path, max_size, styles=None):
    """The photo and every style (or each of `styles`, `(style, name)` pairs), named, 4 to a row (PIL image)."""
    from cin_style.sheets import labelled_grid

    photo = stylizer._prepare(image_path, max_size or 512)[0][0]
    if styles is None:
        painted = list(zip(stylizer.style_names, stylizer.stylize_all(photo)))
    else:
        painted = [(name, stylizer.stylize(photo, style)) for style, name in styles]
    return labelled_grid([("photo", photo), *painted], columns=4)[0]


def _check_refine(stylizer, jobs):
    """With --refine, reads what refining needs (the paintings, VGG19) once the cheap checks have passed; ends
    the run if the model carries no painting of a style or VGG19 cannot be read."""
    from cin_style.vgg import VGGWeightsError

    if not FLAGS.refine:
        return
    try:
        for style, _ in jobs:
            stylizer.check_refine(style)
    except (ValueError, VGGWeightsError) as error:  # PaintingsError, StyleError among them
        fail(str(error))


def main(argv):
    reject_extra_args(argv)
    setup_logging()
    from cin_style import image_io
    from cin_style.stylizer import ModelLoadError, Stylizer

    model_path = resolve_model_keyword(FLAGS.model or default_model())
    vgg_weights = vgg_weights_or_fail(FLAGS.vgg_weights) if FLAGS.refine else None
    precision = "float32" if FLAGS.list_styles else FLAGS.precision  # listing paints nothing
    jit_compile = FLAGS.jit_compile and not FLAGS.list_styles
    try:
        stylizer = Stylizer.load(model_path, precision=precision, jit_compile=jit_compile, vgg_weights=vgg_weights)
    except ModelLoadError as error:
        hint = "" if FLAGS.model else " (pass --model or set CIN_STYLE_MODEL)"
        fail(f"{error}{hint}")
    except ValueError as error:  # a precision or XLA that this Keras backend cannot paint with, refused before loading
        fail(str(error))
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
        if FLAGS.regions:
            fail("--sheet paints the whole photo in each style; give --regions without --sheet")
        if FLAGS.refine:
            fail("--refine paints one picture at a time; give it without --sheet")
        chosen = _styles_from_flags(stylizer) if FLAGS.style else None
        check_output_file(FLAGS.output)
        _write_one(lambda: contact_sheet(stylizer, FLAGS.input, FLAGS.max_size, chosen), FLAGS.output)
        return 0
    if not FLAGS.style:
        fail("--style is required: a name, an index or a blend (see --list_styles)")
    regions = None
    if FLAGS.regions:
        labels, region_styles, default = _regions_from_flags(stylizer)
        regions = (labels, region_styles)
        jobs = [(default, "regions")]  # (style, output label)
    else:
        if FLAGS.default_style:
            fail("--default_style applies with --regions only")
        jobs = _styles_from_flags(stylizer)
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

    video = os.path.splitext(FLAGS.input)[1].lower() in VIDEO_EXTENSIONS
    if FLAGS.refine:
        if FLAGS.regions:
            fail("--refine paints one style or blend over the whole photo; give it without --regions")
        if video:
            fail("--refine takes seconds per picture, too slow for every frame of a video; give it without --refine")
        options["refine"] = FLAGS.refine

    def paint(path, style):
        return lambda: stylizer.stylize(path, style, max_size=FLAGS.max_size, **options)

    if video:
        if len(jobs) > 1:
            fail(f"a video is painted in one style; --style lists {len(jobs)}")
        _stylize_video(stylizer, jobs[0][0], options)
        return 0
    if not os.path.isdir(FLAGS.input) and len(jobs) == 1:
        (style, label), output = jobs[0], FLAGS.output
        if os.path.isdir(output):
            output = os.path.join(output, f"{pathlib.Path(FLAGS.input).stem}_{label}.png")
        else:
            check_output_file(output)
        _check_refine(stylizer, jobs)
        _write_one(paint(FLAGS.input, style), output)
        return 0
    if not os.path.isdir(FLAGS.input) and image_format(FLAGS.output) is not None:
        fail(f"--style lists {len(jobs)} styles, one output each: --output must be a folder. Received: {FLAGS.output}")
    if os.path.exists(FLAGS.output) and not os.path.isdir(FLAGS.output):
        fail(
            f"--output {FLAGS.output} is a file, but this run writes into a folder (a folder --input, or several "
            "styles); give a new or existing folder"
        )
    inputs = image_io.list_image_files(FLAGS.input) if os.path.isdir(FLAGS.input) else [FLAGS.input]
    if not inputs:
        fail(f"No images (jpg, png, webp, bmp) in folder {FLAGS.input}")
    by_style = [folder_outputs(inputs, FLAGS.output, label) for _, label in jobs]
    work = [(path, style, outputs[i]) for i, path in enumerate(inputs) for (style, _), outputs in zip(jobs, by_style)]
    names = [output for _, _, output in work]
    clashes = sorted({output for output in names if names.count(output) > 1})
    if clashes:  # e.g. photo `p_b` in style `c` and photo `p` in style `b_c`
        fail(f"{len(clashes)} outputs would be written twice ({', '.join(clashes[:3])}); rename the photos or styles")
    try:
        os.makedirs(FLAGS.output, exist_ok=True)
    except OSError as error:
        fail(f"Cannot make the output folder {FLAGS.output}: {error}")
    if not os.access(FLAGS.output, os.W_OK):
        fail(f"Output folder is not writable: {FLAGS.output}")
    _check_refine(stylizer, jobs)
    existing = set() if FLAGS.overwrite else {output for output in names if os.path.exists(output)}  # before the run
    todo = [(path, style, output) for path, style, output in work if output not in existing]
    skipped = len(work) - len(todo)
    failures = paint_folder(todo, paint)
    summary = f"{len(work) - skipped - len(failures)} of {len(work)} images stylised into {FLAGS.output}"
    print(summary + (f"; {skipped} skipped (outputs exist; --overwrite to redo)" if skipped else ""))
    if failures:
        lines = [f"{len(failures)} of {len(work)} images failed:"] + [
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


def _styles_from_flags(stylizer):
    """`[(style, output label)]` from --style, each style checked before any photo is read."""
    from cin_style.stylizer import StyleError

    try:
        styles = parse_styles(FLAGS.style, stylizer.style_names)
        for style in styles:
            stylizer.style_weights(style)
    except (ValueError, StyleError) as error:
        fail(f"--style: {error}")
    return [(style, output_label(style, stylizer.style_names)) for style in styles]


def _regions_from_flags(stylizer):
    """`(labels, {label: style}, default style)` from --regions, --style and --default_style, checked whole
    before any photo is read."""
    from cin_style.regions import RegionError, UncoveredRegionError, read_labels
    from cin_style.stylizer import StyleError

    if not os.path.isfile(FLAGS.regions):
        fail(f"--regions not found: {FLAGS.regions}")
    try:
        labels = read_labels(FLAGS.regions, max_pixels=stylizer.max_pixels)
        styles = parse_region_styles(FLAGS.style, stylizer.style_names)
        default = None if FLAGS.default_style is None else parse_style(FLAGS.default_style, stylizer.style_names)
        stylizer.style_map((labels, styles), *labels.shape, default=default, feather=FLAGS.feather)
    except (ValueError, OSError) as error:  # RegionError, StyleError, ImageReadError among them
        kind = "--style" if isinstance(error, StyleError) and not isinstance(error, RegionError) else "--regions"
        hint = " (--default_style=STYLE)" if isinstance(error, UncoveredRegionError) else ""
        fail(f"{kind}: {error}{hint}")
    return labels, styles, default


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


def _write_one(make, output):
    """Renders and writes one output atomically; ends the tool on a failure (a TensorFlow error as one line)."""
    from cin_style import image_io
    from cin_style.stylizer import StyleError

    if os.path.exists(output) and not FLAGS.overwrite:
        fail(f"{output} exists; pass --overwrite to replace it")
    try:
        image_io.write_image(output, make())
    except (image_io.ImageReadError, StyleError, ValueError, OSError) as error:
        fail(str(error))
    except Exception as error:  # a TensorFlow error (out of memory, ...): one line, not a traceback
        fail(f"{FLAGS.input}: {describe_error(error)}")
    print(f"wrote {output}")


def run():
    run_tool(main, __doc__, HELP_GROUPS, __name__)


if __name__ == "__main__":
    run()
