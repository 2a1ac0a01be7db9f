"""The JSON metadata beside an exported model; readable without TensorFlow."""

import json
import os

#: Version of the metadata layout; bumped on incompatible changes.
METADATA_FORMAT = 1
#: File name inside each SavedModel version folder.
METADATA_FILE = "cin_style.json"


def version_dirs(export_dir):
    """Numeric version folders under a TF Serving base folder, oldest first."""
    if not os.path.isdir(export_dir):
        return []
    versions = [name for name in os.listdir(export_dir) if name.isdigit() and os.path.isdir(os.path.join(export_dir, name))]
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
        ValueError: If the file is not cin_style metadata or is of a newer format.
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
    if data["format"] > METADATA_FORMAT:
        raise ValueError(
            f"'{path}' has metadata format {data['format']}; this cin_style reads up to {METADATA_FORMAT}. Upgrade cin_style."
        )
    return data
