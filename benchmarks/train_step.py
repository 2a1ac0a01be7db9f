"""Training-step speed: the compiled step against an eager run, or float32 against mixed bfloat16.

    python benchmarks/train_step.py [--batch_size=4 --image_size=256 --steps=5]
    python benchmarks/train_step.py --against=mixed_bfloat16

Prints the median milliseconds per step and images per second of
`StyleTrainer.train_on_batch` for two set-ups measured alternately in one run
(so machine noise hits both), and their ratio. Default: compiled (tf.function
under TensorFlow, jit under JAX) against eager (`run_eagerly=True`), both
float32. `--against=mixed_bfloat16`: compiled float32 against compiled with
the mixed_bfloat16 dtype policy (training's `--dtype_policy`), and the
difference of their losses after the warm-up step.
"""

import argparse
import os
import statistics
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cin_style import build_transformer
from cin_style.losses import PerceptualLoss
from cin_style.trainer import StyleTrainer
from cin_style.training import dtype_policy_scope


def make_trainer(style_images, eager, jit_compile, dtype_policy="float32"):
    with dtype_policy_scope(dtype_policy):
        perceptual = PerceptualLoss()
        grams = perceptual.style_grams(style_images)
        keras.utils.set_random_seed(0)
        trainer = StyleTrainer(build_transformer(4), perceptual, grams, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=eager, jit_compile=jit_compile and not eager)
    return trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each kind (after one warm-up)")
    parser.add_argument("--jit_compile", action="store_true", help="XLA for the compiled step (TensorFlow)")
    parser.add_argument(
        "--against",
        choices=["eager", "mixed_bfloat16"],
        default="eager",
        help="what the compiled float32 step is compared with",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    styles = [rng.random((args.image_size, args.image_size, 3), dtype=np.float32) for _ in range(4)]
    photos = rng.random((args.batch_size, args.image_size, args.image_size, 3), dtype=np.float32)
    trainers = {"compiled": make_trainer(styles, False, args.jit_compile)}
    if args.against == "eager":
        trainers["eager"] = make_trainer(styles, True, False)
    else:
        trainers["bfloat16"] = make_trainer(styles, False, args.jit_compile, "mixed_bfloat16")
    times = {name: [] for name in trainers}
    first = {}
    for name, trainer in trainers.items():
        first[name] = float(np.asarray(trainer.train_on_batch(photos)).ravel()[0])  # warm-up: tracing/compilation
    for _ in range(args.steps):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            loss = trainer.train_on_batch(photos)
            times[name].append(time.perf_counter() - start)
            assert np.isfinite(np.asarray(loss)).all()
    print(f"backend={keras.backend.backend()} batch={args.batch_size} size={args.image_size}^2 steps={args.steps}")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"{name:>9}: median {medians[name] * 1000:8.1f} ms/step  {args.batch_size / medians[name]:6.2f} images/s")
    if args.against == "eager":
        print(f"ratio eager/compiled (speed-up of the compiled step): {medians['eager'] / medians['compiled']:.2f}x")
    else:
        print(
            f"first-step loss: float32 {first['compiled']:.4f}, mixed_bfloat16 {first['bfloat16']:.4f} "
            f"(relative difference {abs(first['bfloat16'] - first['compiled']) / first['compiled']:.2%})"
        )
        print(
            f"ratio float32/mixed_bfloat16 (speed-up of mixed_bfloat16): "
            f"{medians['compiled'] / medians['bfloat16']:.2f}x"
        )


if __name__ == "__main__":
    main()
