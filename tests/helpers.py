"""Small builders shared by tests."""

import os
import subprocess
import sys

import keras
import numpy as np

from cin_style import build_transformer
from cin_style.network import cin_layers

STYLE_NAMES = ["hokusai_great_wave", "munch_the_scream", "picabia_udnie"]


def distinct_style_model(num_styles=3, seed=0):
    """A slim transformer whose styles differ: random γ/β rows, fixed seed."""
    keras.utils.set_random_seed(seed)
    model = build_transformer(num_styles, alpha=0.25)
    rng = np.random.default_rng(seed)
    for layer in cin_layers(model):
        shape = keras.ops.convert_to_numpy(layer.gamma).shape
        layer.gamma.assign(rng.normal(1.0, 0.4, shape).astype("float32"))
        layer.beta.assign(rng.normal(0.0, 0.4, shape).astype("float32"))
    return model


def saved_style_model(folder):
    """A `distinct_style_model` saved as `folder/model.keras` with `styles.json`, as training does; the file."""
    import json

    distinct_style_model().save(folder / "model.keras")
    (folder / "styles.json").write_text(json.dumps({"style_names": STYLE_NAMES}))
    return folder / "model.keras"


#: The two styles of the tiny training runs.
TRAIN_STYLES = ("hokusai_great_wave", "munch_the_scream")


def tiny_config(shared_data, photos, output_dir, **overrides):
    """A `TrainConfig` for a few-second run: 32-px crops, batch 2, 4 steps, slim network, seed 0."""
    from cin_style.config import TrainConfig

    settings = dict(
        styles=[str(shared_data / "styles" / f"{name}.jpg") for name in TRAIN_STYLES],
        content=str(photos),
        output_dir=str(output_dir),
        image_size=32,
        batch_size=2,
        steps=4,
        checkpoint_every=2,
        style_image_size=48,
        alpha=0.25,
        seed=0,
        tensorboard=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def run_cli(module, *args, timeout=300):
    """Runs `python -m module args...`; returns the completed process (stdout, stderr as text)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
