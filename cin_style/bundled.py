"""Where the default model bundled with cin_style is.

The repository keeps it in its top-level `saved_models/` folder (a TF-Serving layout:
numbered version folders, each a SavedModel). A wheel ships that folder as the package data
`cin_style/saved_models/` (see setup.py); a source checkout or an editable install has it
beside the package, at `<checkout>/saved_models/`.
"""

import importlib.resources
import os
import pathlib

#: The bundled model's folder name.
BUNDLED_MODEL_NAME = "cin_style_default"
#: The bundled slim model (alpha 0.25, the same styles): ~5x faster, coarser.
SLIM_MODEL_NAME = "cin_style_slim"


def bundled_model_path(name=BUNDLED_MODEL_NAME):
    """The bundled model's folder (a `pathlib.Path`): the installed package's copy first, then the checkout's.

    If neither exists (a broken install), the package's location, so an error names where it should be.
    """
    package = importlib.resources.files(__package__)
    candidates = [pathlib.Path(__file__).resolve().parents[1] / "saved_models" / name]
    if isinstance(package, pathlib.Path):  # a real folder, not a zip import (TensorFlow needs files)
        candidates.insert(0, package / "saved_models" / name)
    return next((path for path in candidates if path.is_dir()), candidates[0])


#: Words the command-line tools accept as `--model` for the bundled models.
MODEL_KEYWORDS = {"default": BUNDLED_MODEL_NAME, "slim": SLIM_MODEL_NAME}


def resolve_model_keyword(path):
    """`path`, or the bundled model's folder when `path` is one of `MODEL_KEYWORDS` and no such file exists."""
    if path in MODEL_KEYWORDS and not os.path.exists(path):
        return str(bundled_model_path(MODEL_KEYWORDS[path]))
    return path
