"""Checkpoints of a training run: atomic writes, resume points, and the output folder's lock.

A checkpoint is a folder `output_dir/checkpoints/ckpt-<step>/` holding the
transformer's weights, the Gram tables, the optimiser's step and moments, the
style-sampling seed, and `state.json` (written last: a folder without it is
never taken for a checkpoint). Folders are written under a temporary name,
synced to disk and renamed into place, so a killed run never leaves half a
checkpoint; an unreadable newest one is skipped for the one before it.
"""

import contextlib
import glob
import json
import logging
import os
import shutil

import numpy as np
from keras import ops

from cin_style.output_lock import LOCK_FILE, OutputDirBusyError, folder_lock

logger = logging.getLogger("cin_style")

#: Version of the checkpoint layout written by this module. 2: the optimiser's
#: step and slots by name, its learning rate left out (the config sets it).
CHECKPOINT_FORMAT = 2
#: The folder of checkpoints inside an output folder.
CHECKPOINT_DIR = "checkpoints"
#: The kinds of run that write checkpoints, with the command that resumes each.
RUN_COMMANDS = {
    "train": "cin-style-train",
    "distill": "cin-style-train --teacher=<the teacher>",
    "add_styles": "cin-style-add-style --model=<the base model>",
}


def _checkpoint_dirs(output_dir):
    pattern = os.path.join(output_dir, CHECKPOINT_DIR, "ckpt-*")
    found = [d for d in glob.glob(pattern) if os.path.isfile(os.path.join(d, "state.json"))]
    return sorted(found, key=lambda d: int(os.path.basename(d).split("-")[1]))


#: What a checkpoint folder holds; `state.json` is written last.
CHECKPOINT_FILES = ("transformer.weights.h5", "grams.npz", "optimizer.npz", "seed.npy", "state.json")


def checkpoint_problem(checkpoint):
    """Why `checkpoint` cannot be resumed from (a missing, truncated or corrupt file), or `None`."""
    import h5py

    try:
        with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as stream:
            state = json.load(stream)
        if not isinstance(state, dict) or not {"step", "style_names", "config"} <= set(state):
            return "state.json lacks step, style_names or config"
        for name in ("grams.npz", "optimizer.npz"):
            with np.load(os.path.join(checkpoint, name)) as saved:
                for key in saved.files:
                    saved[key]  # reads every array: checks sizes and CRCs
        np.load(os.path.join(checkpoint, "seed.npy"))
        with h5py.File(os.path.join(checkpoint, "transformer.weights.h5"), "r") as weights:
            weights.visit(lambda _: None)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def latest_checkpoint(output_dir):
    """The newest readable checkpoint folder under `output_dir`, or `None`.

    A newest checkpoint that cannot be read (a truncated file, bad JSON: a
    disk that filled up, a copy cut short) is skipped with a warning, and the
    one before it is used.
    """
    for checkpoint in reversed(_checkpoint_dirs(output_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        logger.warning("Skipping unreadable checkpoint %s (%s); trying the one before it", checkpoint, problem)
    return None


def _fsync_path(path):
    """Flushes a file's or a folder's entry to disk (folders: where the OS allows it)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a folder
    finally:
        os.close(descriptor)


def write_json_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)
    _fsync_path(os.path.dirname(path) or ".")


def save_checkpoint(trainer, output_dir, state, keep=3):
    """Writes `ckpt-<step>/` atomically: a temporary folder, then one rename.

    Holds the transformer weights, the Gram tables, the optimiser and seed
    state, and `state.json` (config, style names, step, the learning rate at
    that step) last, so a folder without `state.json` is never taken for a
    checkpoint. Every file and the folder are synced to disk before the
    rename; an existing checkpoint of the same step is replaced only once the
    new one is complete, and old ones are deleted only after that.
    """
    step = int(ops.convert_to_numpy(trainer.optimizer.iterations))
    root = os.path.join(output_dir, CHECKPOINT_DIR)
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"ckpt-{step:08d}")
    tmp = os.path.join(root, f".tmp-ckpt-{step:08d}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    trainer.transformer.save_weights(os.path.join(tmp, "transformer.weights.h5"))
    np.savez(
        os.path.join(tmp, "grams.npz"),
        **{name: ops.convert_to_numpy(table) for name, table in trainer.style_grams.items()},
    )
    np.savez(os.path.join(tmp, "optimizer.npz"), **_optimizer_state(trainer.optimizer))
    np.save(os.path.join(tmp, "seed.npy"), ops.convert_to_numpy(trainer.seed_generator.state))
    rate = float(ops.convert_to_numpy(trainer.optimizer.learning_rate))
    for name in CHECKPOINT_FILES[:-1]:
        _fsync_path(os.path.join(tmp, name))
    write_json_atomic(
        os.path.join(tmp, "state.json"),
        {**state, "step": step, "learning_rate": rate, "format": CHECKPOINT_FORMAT},
    )
    replaced = None
    if os.path.isdir(final):  # the same step again: keep the old one until the new one is in place
        replaced = os.path.join(root, f".old-ckpt-{step:08d}-{os.getpid()}")
        os.replace(final, replaced)
    os.replace(tmp, final)
    _fsync_path(root)
    if replaced:
        shutil.rmtree(replaced, ignore_errors=True)
    for old in _checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_stale_temporaries(output_dir):
    """Cleans what a killed run left: half-written `.tmp-*` files and folders are deleted; a
    checkpoint set aside for a rewrite of its step (`.old-ckpt-*`) goes back in place when the
    new one never arrived, else is deleted."""
    root = os.path.join(output_dir, CHECKPOINT_DIR)
    for old in sorted(glob.glob(os.path.join(root, ".old-ckpt-*"))):
        final = os.path.join(root, "ckpt-" + os.path.basename(old).split("-")[2])
        if not os.path.isdir(final):
            logger.warning("Restoring %s, set aside by a run killed while rewriting it", final)
            os.replace(old, final)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for path in glob.glob(os.path.join(root, ".tmp-*")) + glob.glob(os.path.join(output_dir, ".tmp-*")):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


@contextlib.contextmanager
def output_dir_lock(output_dir):
    """Holds `output_dir` for this run (see `cin_style.output_lock.folder_lock`), then cleans what a
    killed run left there (half-written checkpoints and models).

    Raises:
        OutputDirBusyError: If another run (another process, or an enclosing
            `output_dir_lock` in this one) holds the folder.
    """
    with folder_lock(output_dir):
        _remove_stale_temporaries(output_dir)
        yield


def _is_learning_rate(variable):
    return variable.path.rsplit("/", 1)[-1] == "learning_rate"


def _optimizer_state(optimizer):
    """The optimiser's step and slot variables, in order, without its learning rate."""
    slots = [v for v in optimizer.variables[1:] if not _is_learning_rate(v)]
    return {
        "iterations": ops.convert_to_numpy(optimizer.variables[0]),
        **{f"slot_{i:05d}": ops.convert_to_numpy(v) for i, v in enumerate(slots)},
    }


def _saved_optimizer_state(path):
    """`(iterations, [slot values])` from a checkpoint's optimizer.npz, either format."""
    with np.load(path) as saved:
        if "iterations" in saved.files:
            slots = sorted(k for k in saved.files if k.startswith("slot_"))
            return saved["iterations"], [saved[k] for k in slots]
        # Format 1: every variable by position; [0] the step, [1] the learning rate.
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        return values[0], values[2:]


def restore_checkpoint(trainer, checkpoint, grams=True):
    """Loads transformer weights, Gram tables, optimiser and seed state into `trainer`.

    The optimiser's step count and Adam moments are restored; its learning
    rate (or schedule) stays what `trainer` was compiled with, so a run
    resumed with a new `--learning_rate` or `--lr_schedule` goes on under
    those.

    Args:
        trainer: The `StyleTrainer` to load into (compiled).
        checkpoint: A checkpoint folder.
        grams: Restore the Gram tables too. `False` keeps the trainer's own
            (targets recomputed at another style size).
    """
    trainer.transformer.load_weights(os.path.join(checkpoint, "transformer.weights.h5"))
    if grams:
        with np.load(os.path.join(checkpoint, "grams.npz")) as saved:
            for name, table in trainer.style_grams.items():
                table.assign(saved[name])
    optimizer = trainer.optimizer
    optimizer.build(trainer.trainable_variables)
    iterations, values = _saved_optimizer_state(os.path.join(checkpoint, "optimizer.npz"))
    slots = [v for v in optimizer.variables[1:] if not _is_learning_rate(v)]
    if len(values) != len(slots):
        raise ValueError(
            f"Checkpoint {checkpoint} holds {len(values)} optimiser slot variables; this model has "
            f"{len(slots)}. Was it written by another network width or style count?"
        )
    optimizer.variables[0].assign(iterations)
    for variable, value in zip(slots, values):
        variable.assign(value)
    trainer.seed_generator.state.assign(np.load(os.path.join(checkpoint, "seed.npy")))


def read_state(checkpoint):
    """A checkpoint's `state.json`: its config, style names, step and kind of run."""
    with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as stream:
        return json.load(stream)


def resume_point(output_dir, resume, kind, set_aside=True):
    """`(checkpoint, its state)` a run of `kind` starts from (`(None, None)`: from scratch), after the checks.

    Refuses a folder holding checkpoints without `resume`, checkpoints that
    another kind of run wrote (naming the command that resumes them), and a
    folder whose checkpoints are all unreadable; unreadable ones newer than
    the chosen one are set aside as `unreadable-ckpt-*` (kept for inspection,
    never mistaken for the newest). A reader that does not own the folder
    (a non-chief worker) passes `set_aside=False` and leaves them be.
    """
    existing = _checkpoint_dirs(output_dir)
    if not resume:
        if existing:
            raise ValueError(
                f"{output_dir} already holds checkpoints; pass resume=True (--resume) to continue, "
                "or choose another output folder"
            )
        return None, None
    checkpoint = latest_checkpoint(output_dir)
    if existing and checkpoint is None:
        raise ValueError(f"No checkpoint in {output_dir} can be read (see the warnings above); nothing to resume")
    for newer in existing[existing.index(checkpoint) + 1 :] if checkpoint and set_aside else []:
        os.replace(newer, os.path.join(os.path.dirname(newer), "unreadable-" + os.path.basename(newer)))
    if checkpoint is None:
        return None, None
    state = read_state(checkpoint)
    written_by = state.get("kind", "train")
    if written_by != kind:
        command = RUN_COMMANDS.get(written_by, written_by)
        raise ValueError(
            f"{checkpoint} was written by a {written_by} run ({command}); "
            f"resume it with `{command} ... --resume`, not as a {kind} run"
        )
    return checkpoint, state


__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_FORMAT",
    "LOCK_FILE",
    "OutputDirBusyError",
    "checkpoint_problem",
    "latest_checkpoint",
    "output_dir_lock",
    "read_state",
    "restore_checkpoint",
    "resume_point",
    "save_checkpoint",
    "write_json_atomic",
]
