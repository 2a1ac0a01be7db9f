"""What adding a painting to a trained model costs on this machine: the new style's validation loss against CPU minutes.

    B="python benchmarks/add_style.py --model=saved_models/cin_style_default \
       --content=../shared/data/content/train --validation=../shared/data/content/test"
    S=../shared/data/styles
    $B --paintings=$S/picabia_edtaonisl.jpg --inits=nearest,mean,identity --steps=150 --every=25 --output_dir=out/inits
    $B --paintings=$S/picabia_edtaonisl.jpg --inits=nearest --steps=150 --every=25 --learning_rate=1e-3 \
       --output_dir=out/lr1e-3
    $B --paintings=$S/van_gogh_wheat_field_with_cypresses.jpg,$S/monet_charing_cross_bridge.jpg \
       --inits=nearest --steps=300 --every=50 --styles=$S --output_dir=out/long
    cp $S/munch_the_scream.jpg refit/munch_refit.jpg   # a bundled style again, under a new name
    $B --paintings=refit/munch_refit.jpg --inits=identity --steps=300 --every=50 --output_dir=out/refit

For each painting and each start of the new γ/β row (`init_from` of
`cin_style.add_styles`), runs `add_styles` on the model for `--steps` steps,
checkpointing every `--every` steps, then scores every checkpoint: the new
style's total training loss (content, Gram style, total variation at the
model's loss weights) on the validation photos (Kodak kodim05-08 at a 256-px
shorter side, as for the default model), printed against the minutes of
training that checkpoint took. The last lines put the model's own styles'
validation loss beside it (same photos, same loss, each against its own
painting), the bar a new style should reach. A sheet per run
(`<output_dir>/<painting>-<init>.png`: the validation photos, then the new
style at each checkpoint) shows it.
"""

import argparse
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from validation import DEFAULT_PHOTOS, load_photos, style_targets

from cin_style import image_io


def run_minutes(history, batch_size):
    """`{step: minutes of training up to that step}` from a run's progress history."""
    minutes, total = {}, 0.0
    for entry in history:
        total += batch_size / entry["images_per_second"] / 60.0
        minutes[entry["step"]] = total
    return minutes


def new_style_loss(model, index, photos, target, loss):
    """Mean total loss of style `index` of `model` over `photos` against Gram `target`, and the outputs."""
    from cin_style.network import num_styles_of

    num_styles = num_styles_of(model)
    totals, outputs = [], []
    for photo in photos.values():
        weights = np.zeros((1, num_styles), np.float32)
        weights[0, index] = 1.0
        out = np.clip(np.asarray(model({"image": photo[None], "style_weights": weights}, training=False)), 0, 1)
        totals.append(float(np.asarray(loss(out, photo[None], target)["total"])[0]))
        outputs.append(out[0])
    return float(np.mean(totals)), outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saved_models/cin_style_default")
    parser.add_argument("--paintings", required=True, help="comma-separated painting files")
    parser.add_argument("--content", required=True, help="training photos (a folder)")
    parser.add_argument("--validation", required=True, help="folder holding the validation photos")
    parser.add_argument("--styles", default=None, help="folder of the model's own paintings (for the bar)")
    parser.add_argument("--inits", default="nearest,mean,identity")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--learning_rate", type=float, default=1e-2)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--dtype_policy", default="mixed_bfloat16")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()

    from quality import training_settings

    from cin_style.config import TrainConfig
    from cin_style.losses import PerceptualLoss
    from cin_style.model_io import load_transformer, model_from_checkpoint
    from cin_style.training import add_styles

    base, names, _ = load_transformer(args.model)
    weights, style_image_size = training_settings(args.model)
    loss = PerceptualLoss(**weights)
    photos = load_photos(args.validation, DEFAULT_PHOTOS, 256)
    os.makedirs(args.output_dir, exist_ok=True)
    print(f"model {args.model} ({len(names)} styles); loss weights {weights}; validation {', '.join(photos)}")
    print(
        f"batch {args.batch_size}, {args.image_size}-px crops, learning rate {args.learning_rate}, {args.dtype_policy}"
    )
    print(f"{'painting':<40}{'init':>10}{'step':>7}{'minutes':>9}{'val loss':>10}")
    for painting in args.paintings.split(","):
        stem = os.path.splitext(os.path.basename(painting))[0]
        target = style_targets(loss, os.path.dirname(painting), [stem], style_image_size)[stem]
        for init in args.inits.split(","):
            folder = os.path.join(args.output_dir, f"{stem}-{init}")
            config = TrainConfig(
                styles=[painting],
                content=args.content,
                output_dir=folder,
                image_size=args.image_size,
                batch_size=args.batch_size,
                steps=args.steps,
                learning_rate=args.learning_rate,
                checkpoint_every=args.every,
                keep_checkpoints=args.steps // args.every + 1,
                style_image_size=style_image_size,
                seed=0,
                dtype_policy=args.dtype_policy,
                tensorboard=False,
                **{k: v for k, v in weights.items() if k.endswith("_weight")},
            )
            clock = time.perf_counter()
            result = add_styles(
                base, names, config, init_from=None if init == "identity" else init, verbose=0, resume=True
            )
            wall = time.perf_counter() - clock
            minutes = run_minutes(result.history, args.batch_size)
            start_model = add_styles_start(base, result)
            rows = [(0, 0.0, *new_style_loss(start_model, len(names), photos, target, loss))]
            for checkpoint in sorted(glob.glob(os.path.join(folder, "checkpoints", "ckpt-*"))):
                model, _, state = model_from_checkpoint(checkpoint)
                step = state["step"]
                rows.append(
                    (step, minutes.get(step, float("nan")), *new_style_loss(model, len(names), photos, target, loss))
                )
            for step, mins, value, _ in rows:
                print(f"{stem:<40}{init:>10}{step:>7}{mins:9.1f}{value:10.3f}", flush=True)
            print(f"# {stem} {init}: {wall / 60:.1f} min wall for {args.steps} steps (setup included)", flush=True)
            sheet = np.concatenate(
                [np.concatenate(list(photos.values()), axis=1)]
                + [np.concatenate(outputs, axis=1) for *_, outputs in rows],
                axis=0,
            )
            image_io.write_image(os.path.join(args.output_dir, f"{stem}-{init}.png"), sheet)
    if args.styles:
        targets = style_targets(loss, args.styles, names, style_image_size)
        own = [new_style_loss(base, i, photos, targets[n], loss)[0] for i, n in enumerate(names)]
        print(
            f"# the model's own {len(names)} styles: validation loss mean {np.mean(own):.3f}, "
            f"min {np.min(own):.3f}, max {np.max(own):.3f}"
        )


def add_styles_start(base, result):
    """The grown model before any step: the old model with the new row where `add_styles` started it."""
    from cin_style.network import with_more_styles

    return with_more_styles(base, 1, init_from=result.init_from)


if __name__ == "__main__":
    main()
