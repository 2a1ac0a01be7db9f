"""Training recipes at equal wall-clock budgets on this machine: validation loss against minutes.

    python benchmarks/recipe.py --minutes=20 --evals=4 --output_dir=/tmp/recipes \
        --styles=../shared/data/styles --content=../shared/data/content/train \
        --validation=../shared/data/content/test [--candidates=baseline,cosine,...]

Every candidate starts from the same point (a fresh network from the same
seed, or the trained model `--init_weights` names, for comparing ways to
continue training; the 16 styles of the default model) and trains for the same number of
minutes, in `--evals` equal stretches (`--max_minutes`, then `--resume`). After
each stretch its model is scored on the validation loss of
`benchmarks/validation.py` (16 styles x kodim05-08 at 384x256, the default
loss weights). Evaluation time is not counted. Prints one table: minutes of
training (rows) against candidates (columns), then crops seen and steps per
minute. Candidates (all mixed_bfloat16, batch 4, Adam 1e-3 unless said):

- `baseline`: 256-px crops, full width, constant rate (version 3's CPU recipe);
- `lowres`: 128-px crops with Gram targets at a 128-px style size for the
  first 3/4 of the budget, then 256 px (targets at 256);
- `half_width`: `alpha=0.5` (Johnson et al.: no quality loss for IN nets);
- `cosine`: the rate decays along a cosine to 1% at the end of the budget
  (its step count is sized from a 20-step probe), 100 warm-up steps;
- `combined`: `lowres` + `half_width` + `cosine`;
- `slim`: `alpha=0.25` (the slim model's width), perceptual loss;
- `slim_distill`: `alpha=0.25` distilled from `--teacher` (pixels + the light
  VGG feature term of `cin_style.distillation`); `slim_distill_pixels`: pixels only;
- `slim_anchor2`, `slim_anchor8`: `alpha=0.25`, perceptual loss plus 2 or 8 times
  the mean absolute pixel difference to `--teacher`'s outputs;
- `slim_anchor8_spike1`, `slim_anchor8_spike4`: `slim_anchor8` plus the spike
  penalty (`cin_style.spike_penalty`, against white ovals) at weight 1 or 4.

`--threads=1` runs each process on one thread, so that candidates can train
side by side, one per core, with equal CPU each.

Pause other work on the machine while it runs: it times training.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from validation import load_photos, style_targets, validation_losses

#: The default model's styles, in its order.
DEFAULT_STYLES = (
    "van_gogh_starry_night",
    "munch_the_scream",
    "turner_shipwreck_of_the_minotaur",
    "matisse_woman_with_a_hat",
    "gauguin_te_fare",
    "kandinsky_composition_vii",
    "picabia_udnie",
    "monet_water_lilies_1906",
    "monet_san_giorgio_maggiore_at_dusk",
    "degas_dance_foyer_at_the_opera",
    "seurat_sunday_on_la_grande_jatte",
    "delaunay_portrait_of_jean_metzinger",
    "hokusai_great_wave",
    "hiroshige_numazu_tokaido",
    "huang_gongwang_dwelling_in_the_fuchun_mountains",
    "claude_lorrain_harbour_with_large_tower",
)
BASE = dict(
    batch_size=4,
    image_size=256,
    style_image_size=256,
    learning_rate=1e-3,
    style_weight=0.3,
    dtype_policy="mixed_bfloat16",
    seed=0,
    tensorboard=False,
    keep_checkpoints=1,
)
#: Stands for `--teacher` in the candidates that distil.
TEACHER = "<teacher>"
#: name -> (overrides for the whole run, overrides for the last quarter or None, cosine?)
CANDIDATES = {
    "baseline": ({}, None, False),
    "lowres": ({"image_size": 128, "style_image_size": 128}, {"image_size": 256, "style_image_size": 256}, False),
    "half_width": ({"alpha": 0.5}, None, False),
    "cosine": ({}, None, True),
    "combined": (
        {"image_size": 128, "style_image_size": 128, "alpha": 0.5},
        {"image_size": 256, "style_image_size": 256},
        True,
    ),
    "slim": ({"alpha": 0.25}, None, False),
    "slim_distill": ({"alpha": 0.25, "teacher": TEACHER}, None, False),
    "slim_distill_pixels": ({"alpha": 0.25, "teacher": TEACHER, "feature_weight": 0.0}, None, False),
    "slim_anchor2": ({"alpha": 0.25, "teacher": TEACHER, "teacher_weight": 2.0}, None, False),
    "slim_anchor8": ({"alpha": 0.25, "teacher": TEACHER, "teacher_weight": 8.0}, None, False),
    "slim_anchor8_spike1": (
        {"alpha": 0.25, "teacher": TEACHER, "teacher_weight": 8.0, "spike_weight": 1.0},
        None,
        False,
    ),
    "slim_anchor8_spike4": (
        {"alpha": 0.25, "teacher": TEACHER, "teacher_weight": 8.0, "spike_weight": 4.0},
        None,
        False,
    ),
}


def steps_per_minute(config, vgg_weights):
    """Steps per minute of `config`'s first phase, from 20 steps after compilation."""
    import dataclasses
    import tempfile

    from cin_style.training import train

    with tempfile.TemporaryDirectory() as out:
        probe = dataclasses.replace(
            config,
            output_dir=out,
            steps=25,
            checkpoint_every=25,
            lr_schedule="constant",
            warmup_steps=0,
            max_minutes=None,
        )
        history = train(probe, vgg_weights=vgg_weights, verbose=0).history
    seconds = sum(config.batch_size / h["images_per_second"] for h in history[5:])
    return 60.0 * len(history[5:]) / seconds


def run_candidate(name, args, photos, targets, loss, log=print):
    """Trains one candidate in `args.evals` stretches; returns [(minutes, steps, validation total)]."""
    import dataclasses

    from cin_style import Stylizer
    from cin_style.training import TrainConfig, train

    overrides, last_quarter, cosine = CANDIDATES[name]
    styles = [os.path.join(args.styles, f"{s}.jpg") for s in DEFAULT_STYLES]
    if overrides.get("teacher") == TEACHER:
        overrides = {**overrides, "teacher": args.teacher}
        if "teacher_weight" not in overrides:  # distillation: the teacher's styles
            styles = []
    config = TrainConfig(
        styles=styles,
        content=args.content,
        output_dir=os.path.join(args.output_dir, name),
        steps=10**6,
        checkpoint_every=10**5,
        init_weights=args.init_weights,
        **{**BASE, "learning_rate": args.learning_rate, **overrides},
    )
    if cosine:
        rate = steps_per_minute(config, args.vgg_weights)
        if last_quarter:  # the 256-px quarter runs ~4x slower per step
            later = steps_per_minute(dataclasses.replace(config, **last_quarter), args.vgg_weights)
            total = int(rate * args.minutes * 0.75 + later * args.minutes * 0.25)
        else:
            total = int(rate * args.minutes)
        config = dataclasses.replace(config, steps=total, lr_schedule="cosine", warmup_steps=100)
        log(f"{name}: cosine over {total} steps")
    points, spent = [], 0.0
    for stretch in range(1, args.evals + 1):
        phase = config
        if last_quarter and stretch > args.evals * 0.75:
            phase = dataclasses.replace(config, **last_quarter)
        began = time.perf_counter()
        result = train(
            dataclasses.replace(phase, max_minutes=args.minutes / args.evals),
            resume=stretch > 1,
            vgg_weights=args.vgg_weights,
            verbose=0,
        )
        spent += (time.perf_counter() - began) / 60.0
        step = result.history[-1]["step"] if result.history else 0
        scores = validation_losses(Stylizer.load(phase.output_dir), photos, targets, loss)
        total = sum(s["total"] for s in scores.values()) / len(scores)
        points.append((spent, step, total))
        log(f"{name}: {spent:5.1f} min, step {step}, validation {total:.4f}")
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training minutes per candidate")
    parser.add_argument("--evals", type=int, default=4, help="validation points per candidate")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--styles", required=True)
    parser.add_argument("--content", required=True)
    parser.add_argument("--validation", required=True, help="folder with kodim05-08")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--vgg_weights", default=None)
    parser.add_argument(
        "--teacher", default="saved_models/cin_style_default", help="the model the slim_distill candidates learn from"
    )
    parser.add_argument("--init_weights", default=None, help="a trained model every candidate starts from")
    parser.add_argument("--learning_rate", type=float, default=BASE["learning_rate"])
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow's thread pools' size (default: its own)")
    args = parser.parse_args()
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from cin_style.losses import PerceptualLoss

    loss = PerceptualLoss(style_weight=BASE["style_weight"], vgg_weights=args.vgg_weights)
    photos = load_photos(args.validation)
    targets = style_targets(loss, args.styles, DEFAULT_STYLES, BASE["style_image_size"])
    names = args.candidates.split(",")
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        raise SystemExit(f"Unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
    results = {name: run_candidate(name, args, photos, targets, loss) for name in names}
    print(f"\nvalidation total loss (16 styles x {', '.join(photos)}) after each stretch of training")
    print(f"{'stretch':>8}" + "".join(f"{name:>22}" for name in names))
    for i in range(args.evals):
        cells = "".join(f"{results[n][i][2]:>9.4f} @{results[n][i][0]:5.1f} min{'':>2}" for n in names)
        print(f"{i + 1:>8}{cells}")
    print(f"{'steps':>8}" + "".join(f"{results[n][-1][1]:>22}" for n in names))
    print(f"{'crops':>8}" + "".join(f"{results[n][-1][1] * BASE['batch_size']:>22}" for n in names))


if __name__ == "__main__":
    main()
