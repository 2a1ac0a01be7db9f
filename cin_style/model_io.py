"""Trained transformers as Keras models, from wherever they are kept.

`model.keras` files and training folders, checkpoints, and exported
SavedModels (the bundled models among them: their variables are mapped by
name onto the network rebuilt from the metadata, so the SavedModel stays the
one copy of the weights). Used to resume, to start a run from trained weights
(`init_weights`), to grow a model by new styles, and to export.
"""

import contextlib
import importlib.util
import logging
import os

import keras
import numpy as np

from cin_style.checkpoints import latest_checkpoint, read_state
from cin_style.metadata import read_metadata, read_styles_file, resolve_saved_model_dir, weights_hash
from cin_style.network import build_transformer, dtype_policy_scope, num_styles_of

logger = logging.getLogger("cin_style")

#: The trained model's file inside a training output folder.
MODEL_FILE = "model.keras"


def model_from_checkpoint(path):
    """A transformer and its style names and config from a checkpoint.

    Args:
        path: A checkpoint folder (`ckpt-*`) or a training output folder (its
            newest checkpoint is used).

    Returns:
        `(model, style_names, state)` where `state` is the checkpoint's
        `state.json` (config, step).

    Raises:
        FileNotFoundError: If there is no readable checkpoint at `path`.
    """
    checkpoint = path if os.path.isfile(os.path.join(path, "state.json")) else latest_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"No checkpoint in '{path}'")
    state = read_state(checkpoint)
    names = state["style_names"]
    model = build_transformer(
        len(names), alpha=state["config"]["alpha"], output_norm=state["config"].get("output_norm", True)
    )
    model.load_weights(os.path.join(checkpoint, "transformer.weights.h5"))
    return model, names, state


def initial_weights_kind(source):
    """What an `init_weights` source is: `"keras"`, `"checkpoint"`, `"saved_model"`, or `None` for nothing usable.

    In this order: a `.keras` file or a training folder's `model.keras`; a
    checkpoint folder or a training folder's newest checkpoint; an exported
    SavedModel (a version folder, or a base folder's newest version).
    """
    source = os.fspath(source)
    if os.path.isfile(source):
        return "keras" if source.endswith(".keras") else None
    if not os.path.isdir(source):
        return None
    if os.path.isfile(os.path.join(source, MODEL_FILE)):
        return "keras"
    if os.path.isfile(os.path.join(source, "state.json")) or latest_checkpoint(source) is not None:
        return "checkpoint"
    if resolve_saved_model_dir(source):
        return "saved_model"
    return None


def check_initial_weights(source):
    """`initial_weights_kind(source)` once this process can read it, for `TrainConfig.validate` and the run alike.

    Raises:
        ValueError: If nothing usable is at `source`, or it is an exported
            SavedModel and TensorFlow is not installed.
    """
    kind = initial_weights_kind(source)
    if kind is None:
        raise ValueError(
            f"`init_weights`: no model in {source} (expected a .keras file, a training folder, "
            "a checkpoint or an exported SavedModel)"
        )
    if kind == "saved_model" and importlib.util.find_spec("tensorflow") is None:
        raise ValueError(
            f"`init_weights`: {source} is an exported SavedModel; reading it needs TensorFlow: give "
            "a .keras file, a training folder or a checkpoint instead"
        )
    return kind


def _generic(names):
    return all(name == f"style_{i}" for i, name in enumerate(names))


def load_initial_weights(transformer, source, style_names=None):
    """Copies a trained model's weights into `transformer` (see `TrainConfig.init_weights`).

    Args:
        transformer: The freshly built network to fill.
        source: A `.keras` model, a training output folder (its `model.keras`,
            else its newest checkpoint), a checkpoint folder, or an exported
            SavedModel (base or version folder, the bundled models among them;
            needs TensorFlow): see `initial_weights_kind`. A model saved in
            another precision (say float16) is cast to the network's.
        style_names: The run's styles, in its order, to compare with the
            source's: row `i` of every γ/β table starts from the source's
            style `i`.

    Raises:
        ValueError: If nothing usable is at `source` or this process cannot
            read it (`check_initial_weights`), the source's weights do not fit
            the network (another number of styles, width or output layer), or
            it holds the run's styles in another order (each style would
            start from another's rows).
    """
    source = os.fspath(source)
    kind = check_initial_weights(source)
    if kind == "saved_model":
        model, names, source = model_from_saved_model(source)  # the version folder it read
    elif kind == "checkpoint":
        model, names, _ = model_from_checkpoint(source)
    else:
        model, names = load_trained(source)
    theirs = [tuple(w.shape) for w in model.weights]
    ours = [tuple(w.shape) for w in transformer.weights]
    if theirs != ours:
        raise ValueError(
            f"Cannot start from {source}: its network ({num_styles_of(model)} styles, "
            f"{len(theirs)} weights) does not match this run's ({num_styles_of(transformer)} styles, "
            f"{len(ours)} weights); styles, alpha and output_norm must be the same"
        )
    names, style_names = list(names), None if style_names is None else list(style_names)
    if style_names is not None and names != style_names and not _generic(names):
        if sorted(names) == sorted(style_names):
            raise ValueError(
                f"Cannot start from {source}: it holds this run's styles in another order ({names}; the run's: "
                f"{style_names}), so each style would start from another's γ/β rows: give the styles in its order"
            )
        logger.warning(
            "%s was trained on styles %s; this run's styles %s start from their rows, position by position",
            source,
            names,
            style_names,
        )
    transformer.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    logger.info("Started from the weights of %s", source)


def load_trained(output_dir_or_model):
    """Loads `model.keras` and the style names from a training output folder (or the file itself).

    Returns:
        `(model, style_names)`; names are `style_<i>` when no `styles.json` is beside the model.

    Raises:
        FileNotFoundError: If there is no `model.keras` there.
    """
    path = output_dir_or_model
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No trained model at '{model_path}'")
    model = keras.saving.load_model(model_path)
    saved = read_styles_file(folder)
    names = saved["style_names"] if saved else [f"style_{i}" for i in range(num_styles_of(model))]
    return model, names


def model_from_saved_model(path):
    """Rebuilds the Keras transformer of a SavedModel that cin_style exported.

    The network is built from the metadata (styles, alpha; the output layer's
    kind from the variables), and each of its weights takes the SavedModel
    variable of the same name. The result is checked against the weights
    hash recorded at export, so it is the exported model, bit for bit.
    Needs TensorFlow (to read the SavedModel).

    Args:
        path: A SavedModel base folder (its newest version) or a version folder.

    Returns:
        `(model, style_names, version_folder)`.

    Raises:
        FileNotFoundError: If no SavedModel is at `path`.
        ValueError: If it has no cin_style metadata, or its variables do not
            fit the network the metadata describes.
    """
    folder = resolve_saved_model_dir(path) if os.path.isdir(path) else None
    if folder is None:
        raise FileNotFoundError(f"No SavedModel at '{path}' (no saved_model.pb, nor numbered version folders)")
    try:
        metadata = read_metadata(folder)
    except FileNotFoundError as error:
        raise ValueError(
            f"'{folder}' is a SavedModel but has no cin_style metadata ({error}); only models exported by "
            "cin_style (cin-style-export) can be rebuilt"
        ) from error
    import tensorflow as tf

    loaded = tf.saved_model.load(folder)
    variables = {v.name.split(":")[0]: v for v in loaded.signatures["stylize_blend_float"].variables}
    names = list(metadata["style_names"])
    output_norm = any(name.startswith("output_cin/") for name in variables)
    with dtype_policy_scope("float32"):  # the exported network, whatever policy the caller set globally
        model = build_transformer(len(names), alpha=metadata["alpha"], output_norm=output_norm)
    ours = {w.path: tuple(w.shape) for w in model.weights}
    theirs = {name: tuple(v.shape) for name, v in variables.items()}
    if ours != theirs:
        differ = sorted(set(ours) ^ set(theirs)) or sorted(n for n in ours if ours[n] != theirs[n])
        raise ValueError(
            f"The variables of '{folder}' do not fit a {len(names)}-style network of alpha {metadata['alpha']} "
            f"(first differences: {differ[:3]}); was its metadata edited?"
        )
    for weight in model.weights:
        weight.assign(variables[weight.path].numpy())
    expected = metadata.get("weights_sha256")
    if expected and weights_hash(model) != expected:
        raise ValueError(f"The weights rebuilt from '{folder}' do not match the hash in its metadata")
    return model, names, folder


def load_transformer(path):
    """A trained transformer and its style names from any place a model is kept.

    Args:
        path: A SavedModel base folder (its newest version) or version folder
            (needs TensorFlow), a `.keras` file, or a training output folder
            (its `model.keras`).

    Returns:
        `(model, style_names, saved_model_version)`; the version is the
        SavedModel's version number, or `None` for other sources.

    Raises:
        FileNotFoundError: If nothing is at `path`, or nothing loadable.
        ValueError: If a SavedModel there lacks cin_style metadata or does not fit it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model path not found: '{path}'")
    if os.path.isdir(path) and resolve_saved_model_dir(path):
        model, names, folder = model_from_saved_model(path)
        version = os.path.basename(os.path.normpath(folder))
        return model, names, int(version) if version.isdigit() else None
    if os.path.isfile(path) and not path.endswith(".keras"):
        raise FileNotFoundError(
            f"'{path}' is not a model: expected a SavedModel folder, a .keras file or a training folder"
        )
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, MODEL_FILE)):
        raise FileNotFoundError(
            f"No model in '{path}': expected a SavedModel (saved_model.pb, or numbered version folders), "
            f"or a training folder with {MODEL_FILE}"
        )
    model, names = load_trained(path)
    return model, names, None


def recorded_training_config(path):
    """The training settings recorded with a model (SavedModel metadata or `styles.json`), or `{}`."""
    path = os.fspath(path)
    if os.path.isdir(path) and resolve_saved_model_dir(path):
        with contextlib.suppress(FileNotFoundError, ValueError):
            return read_metadata(path).get("training") or {}
        return {}
    with contextlib.suppress(ValueError):
        return (read_styles_file(path) or {}).get("training") or {}
    return {}


__all__ = [
    "MODEL_FILE",
    "check_initial_weights",
    "initial_weights_kind",
    "load_initial_weights",
    "load_trained",
    "load_transformer",
    "model_from_checkpoint",
    "model_from_saved_model",
    "recorded_training_config",
]
