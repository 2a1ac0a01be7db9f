"""Quick start: paint a photo with the bundled model from Python.

Loads `saved_models/cin_style_default` with `cin_style.Stylizer`, lists its
styles, and writes three pictures of the photo: one style by name, a 50/50
blend of two styles, and the first style at half strength with the photo's
own colours kept. Pictures already there are left alone unless --overwrite.

    python examples/quickstart.py [--input photo.jpg] [--output_dir .] [--overwrite]
"""

import argparse
import os
import pathlib

import cin_style
from cin_style import image_io

HERE = pathlib.Path(__file__).resolve().parent
BUNDLED_MODEL = HERE.parent / "saved_models" / "cin_style_default"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(HERE / "parrots.jpg"))
    parser.add_argument("--output_dir", default=".")
    parser.add_argument("--model", default=os.environ.get("CIN_STYLE_MODEL") or str(BUNDLED_MODEL))
    parser.add_argument("--overwrite", action="store_true", help="Replace pictures a previous run wrote.")
    args = parser.parse_args(argv)

    stylizer = cin_style.Stylizer.load(args.model)
    first, second = stylizer.style_names[0], stylizer.style_names[-1]
    print(f"{stylizer.num_styles} styles: {', '.join(stylizer.style_names)}")
    paintings = {
        f"quickstart_{first}.png": lambda: stylizer.stylize(args.input, first),
        "quickstart_blend.png": lambda: stylizer.stylize(args.input, {first: 0.5, second: 0.5}),
        "quickstart_soft.png": lambda: stylizer.stylize(args.input, first, strength=0.5, preserve_color=True),
    }
    existing = [name for name in paintings if os.path.exists(os.path.join(args.output_dir, name))]
    if existing and not args.overwrite:
        parser.error(f"{', '.join(existing)} already in {args.output_dir}; pass --overwrite to replace them")
    written = []
    for name, paint in paintings.items():
        path = os.path.join(args.output_dir, name)
        picture = paint()
        image_io.write_image(path, picture)
        written.append(path)
        print(f"wrote {path} ({picture.width}x{picture.height})")
    return written


if __name__ == "__main__":
    main()
