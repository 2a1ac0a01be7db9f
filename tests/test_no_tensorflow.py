"""Training and stylising under JAX where TensorFlow cannot be imported (the lent GPU machines).

The script below runs in a fresh interpreter with `import tensorflow` (and
tensorflow_datasets) made to fail as if they were not installed: two training
steps with a checkpoint, a resume to four, and painting through the `.keras`
model the run saved. In the second CI environment TensorFlow is really absent.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.no_tensorflow

SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    BLOCKED = ("tensorflow", "tensorflow_datasets", "tensorboard")

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named '{name}' (blocked by the test)")

    sys.meta_path.insert(0, NoTensorFlow())
    # As where they are not installed: importing them fails, and importlib.util.find_spec says None (what
    # etils.epath asks before JAX's compilation cache reads or writes an entry; the finder alone made that
    # question raise, so the cache was never used here). A None in sys.modules is no module loaded.
    for name in BLOCKED:
        sys.modules[name] = None
    import numpy as np
    import cin_style
    from cin_style import Stylizer
    from cin_style.training import TrainConfig, model_from_checkpoint, train

    styles, content, out = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    config = TrainConfig(styles=styles, content=content, output_dir=out, image_size=32, batch_size=2, steps=2,
                         checkpoint_every=2, style_image_size=48, alpha=0.25, seed=0)
    first = train(config, verbose=0)
    config.steps = 4
    resumed = train(config, resume=True, verbose=0)
    stylizer = Stylizer.load(out)
    photo = np.random.default_rng(0).random((40, 48, 3), dtype=np.float32)
    painted = {name: stylizer.stylize(photo, name) for name in stylizer.style_names}
    # The saved model is the one the last checkpoint holds.
    rebuilt, _, _ = model_from_checkpoint(out)
    direct = np.asarray(rebuilt({"image": photo[None], "style_weights": np.eye(2, dtype="float32")[[1]]}))[0]
    print(json.dumps({
        "backend": __import__("keras").backend.backend(),
        "steps": [h["step"] for h in first.history + resumed.history],
        "resumed_from": resumed.resumed_from,
        "styles": stylizer.style_names,
        "shapes": [list(p.shape) for p in painted.values()],
        "difference_to_checkpoint": float(abs(painted[stylizer.style_names[1]] - direct).max()),
        "tensorflow_modules": sorted(
            m for m, module in sys.modules.items() if module is not None and m.split(".")[0] in BLOCKED
        ),
    }))
""")


@pytest.mark.skipif(
    os.environ.get("CIN_STYLE_TF_FREE_PASS") == "1" and importlib.util.find_spec("tensorflow") is not None,
    reason="tests/run.sh runs it where TensorFlow is really not installed (.venv-notf), not simulated here",
)
def test_train_resume_and_stylize_under_jax_without_tensorflow(shared_data, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((shared_data / "content" / "train").glob("*.jpg"))[:4]:
        (photos / path.name).write_bytes(path.read_bytes())
    styles = [str(shared_data / "styles" / f"{name}.jpg") for name in ("hokusai_great_wave", "munch_the_scream")]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(styles), str(photos), str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert report["steps"] == [1, 2, 3, 4]
    assert report["resumed_from"].endswith("ckpt-00000002")
    assert report["styles"] == ["hokusai_great_wave", "munch_the_scream"]
    assert report["shapes"] == [[40, 48, 3], [40, 48, 3]]
    assert report["difference_to_checkpoint"] < 1e-5
    assert report["tensorflow_modules"] == []
    assert (tmp_path / "run" / "checkpoints" / "ckpt-00000004" / "state.json").is_file()
