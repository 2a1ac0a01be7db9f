"""The JSON metadata beside an exported model; readable without TensorFlow.

Keys: `format`, `cin_style_version`, `style_names`, `num_styles`, `alpha`,
`signatures`, `weights_sha256`, `exported_at`, `max_pixels` (the largest
request the serving graph accepts: batch x height x width; absent in models
exported before it existed) and `training` (the training config made portable
by `portable_training_config`, or `None`).
"""

import hashlib
import json
import ntpath
import os
import posixpath
import re

import numpy as np
from keras import ops

#: Version of the metadata layout; bumped on incompatible changes.
METADATA_FORMAT = 1
#: File name inside each SavedModel version folder.
METADATA_FILE = "cin_style.json"


#: Training settings that only name folders of the training machine: left out.
MACHINE_ONLY_KEYS = ("output_dir", "tfds_data_dir")


def _is_absolute(text):
    """An absolute path, POSIX or Windows, or one under a home folder (`~`)."""
    return posixpath.isabs(text) or ntpath.isabs(text) or text.startswith("~")


#: What a tensorflow-datasets name looks like: `name`, `name/config`, either with `:version`.
_TFDS_NAME = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.+-]+)?(:[0-9.*]+)?$")


def _last_name(path):
    """The final file or folder name of a POSIX or Windows path."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


def _names_only(value):
    """`value` with every absolute path in it, at any depth, replaced by its last name."""
    if isinstance(value, str):
        return _last_name(value) if _is_absolute(value) else value
    if isinstance(value, dict):
        return {key: _names_only(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_names_only(item) for item in value]
    return value


def portable_training_config(config):
    """A training config with names relative to the run instead of the training machine's paths.

    Style images become their file names (`/root/art/udnie.jpg` -> `udnie.jpg`),
    a content folder its final folder name, and `init_weights` and `teacher`
    their last names, relative paths too (`runs/base/model.keras` ->
    `model.keras`); a tensorflow-datasets name (`coco/2017`) is kept as it is.
    `output_dir` and `tfds_data_dir` are left out, and any other absolute
    path, at any depth, becomes its last name. Numbers and flags are kept.

    Content counts as a folder when it is one here, when it starts with `/`,
    `~`, `.` or a drive (the rule training applies), or when it cannot be a
    tfds name (`name`, `name/config`, optionally `:version`; so
    `data/photos/train` -> `train`). A relative `a/b` that is not a folder
    here reads as a tfds name and is kept.

    Args:
        config: A dict (e.g. `dataclasses.asdict(TrainConfig)`), or `None`.

    Returns:
        A new dict (the argument is left as it was), or `None` for `None`.
    """
    if config is None:
        return None
    portable = {key: value for key, value in config.items() if key not in MACHINE_ONLY_KEYS}
    styles = portable.get("styles")
    if isinstance(styles, str):
        portable["styles"] = _last_name(styles)
    elif isinstance(styles, (list, tuple)):
        portable["styles"] = [_last_name(s) if isinstance(s, str) else s for s in styles]
    content = portable.get("content")
    if isinstance(content, str) and (
        os.path.isdir(content) or _is_absolute(content) or content.startswith(".") or not _TFDS_NAME.match(content)
    ):
        portable["content"] = _last_name(content)
    for key in ("init_weights", "teacher"):
        if isinstance(portable.get(key), str):
            portable[key] = _last_name(portable[key])
    return _names_only(portable)


def version_dirs(export_dir):
    """Numeric version folders under a TF Serving base folder, oldest first."""
    if not os.path.isdir(export_dir):
        return []
    versions = [
        name for name in os.listdir(export_dir) if name.isdigit() and os.path.isdir(os.path.join(export_dir, name))
    ]
    return [os.path.join(export_dir, name) for name in sorted(versions, key=int)]


def resolve_saved_model_dir(path):
    """A SavedModel folder itself, or the newest version under a base folder; else `None`."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    complete = [d for d in version_dirs(path) if os.path.isfile(os.path.join(d, "saved_model.pb"))]
    return complete[-1] if complete else None


def read_metadata(path):
    """Reads the metadata of an exported model.

    Args:
        path: A version folder, a base folder (its newest version is read) or
            the JSON file itself.

    Returns:
        A dict with at least `format`, `style_names`, `num_styles`, `alpha`.

    Raises:
        FileNotFoundError: If no metadata is there.
        ValueError: If the file is not cin_style metadata, is of a newer
            format, or its fields are of the wrong kind (a format or
            `max_pixels` that is not a positive integer; style names that
            are not distinct non-empty strings, or not `num_styles` of them).
    """
    if os.path.isdir(path):
        folder = resolve_saved_model_dir(path) or path
        path = os.path.join(folder, METADATA_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No cin_style metadata at '{path}'")
    with open(path, encoding="utf-8") as stream:
        try:
            data = json.load(stream)
        except json.JSONDecodeError as error:
            raise ValueError(f"cin_style metadata '{path}' is not valid JSON: {error}") from error
    if not isinstance(data, dict) or "style_names" not in data or "format" not in data:
        raise ValueError(f"'{path}' is not cin_style metadata (no 'format' and 'style_names')")
    if not _is_count(data["format"]):
        raise ValueError(
            f"'{path}' has a bad metadata format: a positive integer is expected. Received: {data['format']!r}"
        )
    if data["format"] > METADATA_FORMAT:
        raise ValueError(
            f"'{path}' has metadata format {data['format']}; this cin_style reads up to {METADATA_FORMAT}. "
            "Upgrade cin_style."
        )
    _check_style_names(data["style_names"], path)
    if "num_styles" in data and data["num_styles"] != len(data["style_names"]):
        raise ValueError(f"'{path}' names {len(data['style_names'])} styles but says num_styles={data['num_styles']!r}")
    for key in ("max_pixels", "spatial_max_pixels"):
        if data.get(key) is not None and not _is_count(data[key]):
            raise ValueError(f"'{path}' has a bad {key}: a positive integer is expected. Received: {data[key]!r}")
    return data


def _is_count(value):
    """A positive int that is not a bool (JSON's `true` reads as one to Python)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_style_names(names, path):
    """Raises `ValueError` unless `names` is a non-empty list of distinct, non-empty strings."""
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(
            f"'{path}' has no list of style names (`style_names`: non-empty strings); is it cin_style's? "
            f"Received: {names!r}"[:400]
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"'{path}' names a style more than once: {repeated}")


def weights_hash(model):
    """SHA-256 over every weight of the model, in order: identifies a trained model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(ops.convert_to_numpy(weight))
        digest.update(weight.path.encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


#: What a training run writes beside its `model.keras`: style names, alpha and the training config.
STYLES_FILE = "styles.json"


def read_styles_file(model_path):
    """The `styles.json` beside a `.keras` model or in a training folder, or `None` where there is none.

    Args:
        model_path: A training output folder or a `.keras` file.

    Returns:
        `{"style_names": [...], "alpha": ..., "training": {...}}` as written by
        training (`training` may be absent in files from older versions).

    Raises:
        ValueError: If the file is there but is not such a JSON object, or
            its style names are empty or repeated.
    """
    model_path = os.fspath(model_path)
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path)
    path = os.path.join(folder, STYLES_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"'{path}' cannot be read as JSON: {error}") from error
    names = data.get("style_names") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"'{path}' has no list of style names (`style_names`); is it a cin_style styles.json?")
    _check_style_names(names, path)
    return data
