"""The paintings a model carries: one image per style, at the size of its Gram targets.

Refining a painting (`Stylizer.stylize(refine=N)`) needs each style's Gram
targets, so a model keeps its styles' paintings beside its weights: a training
run in `<run>/paintings/`, an exported SavedModel version in
`<version>/assets/paintings/` (the SavedModel's own place for files that travel
with it). Each is `NNN.png`, by style index, resized so its shorter side is the
style-target size the model was trained with (`style_image_size`, 256 by
default): what the Gram targets are computed from, nothing larger.
"""

import os
import shutil
import tempfile

import numpy as np
from PIL import Image

from cin_style import image_io
from cin_style.metadata import resolve_saved_model_dir

#: The paintings' folder in a training run (and in a `.keras` model's folder).
RUN_FOLDER = "paintings"
#: The paintings' folder in an exported SavedModel version.
SAVED_MODEL_FOLDER = os.path.join("assets", "paintings")


class PaintingsError(ValueError):
    """A model without the paintings asked of it, or paintings that cannot be used."""


def painting_file(folder, index):
    """The file of style `index`'s painting in a paintings `folder`."""
    return os.path.join(folder, f"{index:03d}.png")


def fitted(image, size):
    """`image` (path, PIL image or array) as float32 RGB with its shorter side `size` (the style-target size)."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = image_io.read_image(image)
    elif hasattr(image, "mode") and hasattr(image, "size"):
        image = image_io.to_rgb_array(image)
    else:
        image = image_io.array_to_rgb(image)[0]
    return image_io.resize_shorter_side(image, size)


def write_paintings(folder, paintings, size, first_index=0):
    """Writes `paintings` (one image or `None` per style, from `first_index` on) into `folder`, resized.

    Each file is written to a temporary name and renamed into place, so a
    crash leaves whole files only. Returns the indices written.
    """
    os.makedirs(folder, exist_ok=True)
    written = []
    for offset, painting in enumerate(paintings):
        if painting is None:
            continue
        index = first_index + offset
        pixels = image_io.to_uint8(fitted(painting, size))
        handle, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
        os.close(handle)
        try:
            Image.fromarray(pixels).save(tmp, "PNG")
            os.replace(tmp, painting_file(folder, index))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        written.append(index)
    return written


def copy_paintings(source, destination, count):
    """Copies the paintings of styles `0..count-1` that the folder `source` holds into `destination`; their indices."""
    copied = []
    for index, path in enumerate(carried(source, count)):
        if path is not None:
            os.makedirs(destination, exist_ok=True)
            shutil.copyfile(path, painting_file(destination, index))
            copied.append(index)
    return copied


def paintings_folder(model_path):
    """Where the model at `model_path` keeps its paintings, or `None` if it keeps none.

    `model_path`: a SavedModel (a version folder or a base folder: its newest
    version), a training run folder, a `.keras` file (its folder) or a
    checkpoint folder (its run's).
    """
    model_path = os.path.abspath(os.fspath(model_path))  # no trailing separator; a bare file name has a folder
    if os.path.isfile(model_path):
        model_path = os.path.dirname(model_path)
    version = resolve_saved_model_dir(model_path) if os.path.isdir(model_path) else None
    parent = os.path.dirname(model_path)
    for folder in (
        os.path.join(version, SAVED_MODEL_FOLDER) if version else None,
        os.path.join(model_path, RUN_FOLDER),
        os.path.join(os.path.dirname(parent), RUN_FOLDER) if os.path.basename(parent) == "checkpoints" else None,
    ):
        if folder and os.path.isdir(folder):
            return folder
    return None


def carried(folder, count):
    """The paintings of styles `0..count-1` in a paintings `folder`: one path or `None` per style."""
    return [
        painting_file(folder, index) if folder and os.path.isfile(painting_file(folder, index)) else None
        for index in range(count)
    ]


def find_paintings(folder, style_names):
    """One path per style name: the image `<name>.<ext>` in `folder` (`None` where there is none)."""
    if not os.path.isdir(folder):
        raise PaintingsError(f"No such folder of paintings: {folder}")
    found = []
    for name in style_names:
        paths = [os.path.join(folder, name + ext) for ext in image_io.IMAGE_EXTENSIONS]
        found.append(next((path for path in paths if os.path.isfile(path)), None))
    return found


def read_painting(folder, index, name, source):
    """Style `index`'s painting (float32 RGB) from the paintings `folder` of the model at `source`.

    Raises:
        PaintingsError: If the model carries no painting for the style, saying
            how to give it one.
    """
    path = painting_file(folder, index) if folder else None
    if path is None or not os.path.isfile(path):
        raise PaintingsError(
            f"{source} carries no painting for style {index} ('{name}'), which refining needs (models exported "
            "before paintings travelled with them carry none). Export it again with its paintings: "
            "cin-style-export --model=<the model> --paintings=<folder of the style images, named after the styles>"
        )
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255.0
