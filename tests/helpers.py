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


#: Tiny runs step eagerly under TensorFlow: tracing the step takes longer than running a few of them op by op
#: (a 4-step run beside a second test worker 16-20 s compiled, 10-11 s eager; alone 5.5 s, 4.1-4.9 s). Under JAX
#: they stay jit-compiled, as on a GPU (with the suite's compilation cache, compiling is no slower than eager).
#: Tests about the compiled step itself (tracing, mixed precision, steps_per_execution, a compiled resume,
#: strategies, the CLI's defaults) pass `run_eagerly=False` or use the CLI.
EAGER = keras.backend.backend() == "tensorflow"


def assert_same_training(losses, weights, reference_losses, reference_weights, rate=1e-3, atol=5e-5):
    """Same losses; weights equal (within `atol`) but for the few an Adam step moves by ±rate on a near-zero
    gradient. Two trainings on other data or other style picks differ by about `rate` in almost every weight."""
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-4)
    assert weights.shape == reference_weights.shape
    # Adam moves each weight by about the rate per step whatever the gradient's size; a gradient that
    # is ~0 can flip sign between two summation orders, so a few weights may differ by up to a step,
    # while other data or other style picks would move almost all of them.
    close = np.isclose(weights, reference_weights, rtol=1e-4, atol=atol)
    assert close.mean() > 0.99, f"{(~close).sum()} of {weights.size} weights differ"
    assert np.abs(weights - reference_weights).max() <= 2 * rate * len(losses)


def tiny_config(shared_data, photos, output_dir, **overrides):
    """A `TrainConfig` for a few-second run: 32-px crops, batch 2, 4 steps, slim network, seed 0; eager under
    TensorFlow (see `EAGER`)."""
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
        run_eagerly=EAGER and not overrides.get("jit_compile", False),
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


def image_signature_calls(loaded, shape, value=120, spatial=True):
    """`{signature: call}` for the signatures of a loaded SavedModel that take images, on a batch of `shape`.

    Images are filled with `value`; rows are style 0 or equal weights of 3 styles. `spatial=False` leaves out
    `stylize_spatial` and `stylize_spatial_float`, whose own limit is lower.
    """
    import tensorflow as tf

    batch, height, width = shape[:3]
    u8 = tf.fill(shape, tf.constant(value, tf.uint8))
    f32 = tf.cast(u8, tf.float32) / 255
    index = tf.zeros([batch], tf.int32)
    weights = tf.ones([batch, 3], tf.float32)
    s = loaded.signatures
    calls = {
        "serving_default": lambda: s["serving_default"](image=u8, style_index=index),
        "stylize_blend": lambda: s["stylize_blend"](image=u8, style_weights=weights),
        "stylize_float": lambda: s["stylize_float"](image=f32, style_index=index),
        "stylize_blend_float": lambda: s["stylize_blend_float"](image=f32, style_weights=weights),
    }
    if spatial:
        style_map = tf.ones([batch, height, width, 3], tf.float32)
        calls["stylize_spatial"] = lambda: s["stylize_spatial"](image=u8, style_weights=style_map)
        calls["stylize_spatial_float"] = lambda: s["stylize_spatial_float"](image=f32, style_weights=style_map)
    return calls


def xla_marks(painter):
    """{op type: set of `_XlaCompile` marks} in the graph a `cin_style.precision.network_painters` painter traced,
    over the ops that carry a mark (those made within its jit scope)."""
    marks = {}
    for op in painter.tf_function.get_concrete_function().graph.get_operations():
        try:
            mark = op.get_attr("_XlaCompile")
        except ValueError:  # no mark: outside the jit scope
            continue
        marks.setdefault(op.type, set()).add(mark)
    return marks
