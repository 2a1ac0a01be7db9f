"""Adding a painting to an exported model (the bundled one too): rebuild, fit the new row, export the next version."""

import logging
import shutil

import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import STYLE_NAMES, distinct_style_model, run_cli, tiny_config

pytestmark = pytest.mark.tensorflow_only

NEW_STYLE = "picabia_edtaonisl"


def saved_model_outputs(folder, image, styles):
    """The float signature's output of an exported model for each style index."""
    import tensorflow as tf

    blend = tf.saved_model.load(str(folder)).signatures["stylize_blend_float"]
    outputs = []
    for style in styles:
        weights = np.zeros((1, blend.structured_input_signature[1]["style_weights"].shape[1]), np.float32)
        weights[0, style] = 1.0
        outputs.append(blend(image=tf.constant(image), style_weights=tf.constant(weights))["stylized_image"].numpy())
    return outputs


@pytest.fixture(scope="module")
def exported_base(tmp_path_factory):
    """A 3-style slim model exported as version 3 of a TF Serving base folder."""
    from cin_style.export import export_saved_model

    base = tmp_path_factory.mktemp("base")
    export_saved_model(distinct_style_model(3), base, STYLE_NAMES, version=3)
    return base


def test_bundled_model_rebuilt_from_its_saved_model_paints_the_same_pixels():
    from cin_style.bundled import bundled_model_path
    from cin_style.metadata import read_metadata, weights_hash
    from cin_style.model_io import load_transformer

    model, names, version = load_transformer(bundled_model_path())
    assert names == read_metadata(bundled_model_path())["style_names"] and len(names) == 16 and version >= 1
    assert weights_hash(model) == read_metadata(bundled_model_path())["weights_sha256"]
    image = np.random.default_rng(0).random((1, 40, 56, 3)).astype(np.float32)
    folder = f"{bundled_model_path()}/{version}"
    assert load_transformer(folder)[1:] == (names, version)  # a version folder names the same model
    for style, expected in zip((0, 12), saved_model_outputs(folder, image, (0, 12))):
        weights = np.eye(16, dtype=np.float32)[[style]]
        ours = np.clip(np.asarray(model({"image": image, "style_weights": weights})), 0.0, 1.0)
        np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_init_weights_from_a_saved_model_copies_its_weights_bit_for_bit(tmp_path, caplog):
    """`TrainConfig.init_weights` (`--init_weights`) takes an export too: a new schedule from a bundled model."""
    from cin_style.export import export_saved_model
    from cin_style.model_io import load_initial_weights
    from cin_style.network import build_transformer

    trained = distinct_style_model(3, seed=5)
    version = export_saved_model(trained, tmp_path / "served", STYLE_NAMES)
    for source in (tmp_path / "served", version):  # the base folder (its newest version) or a version folder
        fresh = build_transformer(3, alpha=0.25)
        load_initial_weights(fresh, str(source))
        for ours, theirs in zip(fresh.get_weights(), trained.get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match=r"its network \(3 styles, .*does not match this run's \(4 styles"):
        load_initial_weights(build_transformer(4, alpha=0.25), str(version))
    # The run's styles are compared with the export's: the same ones in another order would start each style from
    # another's rows (a folder of the paintings lists them by name; the bundled models do not).
    with pytest.raises(ValueError, match="holds this run's styles in another order"):
        load_initial_weights(build_transformer(3, alpha=0.25), str(version), STYLE_NAMES[::-1])
    load_initial_weights(build_transformer(3, alpha=0.25), str(version), STYLE_NAMES)
    with caplog.at_level(logging.WARNING, logger="cin_style"):
        load_initial_weights(build_transformer(3, alpha=0.25), str(version), ["a", "b", "c"])
    assert f"{version} was trained on styles {STYLE_NAMES}; this run's styles ['a', 'b', 'c'] start" in caplog.text


def test_add_style_cli_extends_a_saved_model_and_exports_the_next_version(shared_data, photos, tmp_path, exported_base):
    from cin_style import Stylizer

    result = run_cli(
        "cin_style.cli.add_style",
        f"--model={exported_base}",
        f"--styles={shared_data / 'styles' / f'{NEW_STYLE}.jpg'}",
        f"--content={photos}",
        f"--output_dir={tmp_path / 'grown'}",
        "--image_size=32",
        "--batch_size=2",
        "--steps=2",
        "--checkpoint_every=2",
        "--style_image_size=48",
        "--seed=0",
        "--notensorboard",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Model now has 4 styles: {', '.join([*STYLE_NAMES, NEW_STYLE])}" in result.stdout
    version = tmp_path / "grown" / "saved_model" / "4"  # the base's version + 1
    assert f"SavedModel: {version}" in result.stdout
    stylizer = Stylizer.load(tmp_path / "grown" / "saved_model")
    assert stylizer.style_names == [*STYLE_NAMES, NEW_STYLE]
    image = np.random.default_rng(1).random((1, 36, 44, 3)).astype(np.float32)
    before = saved_model_outputs(exported_base / "3", image, range(3))
    after = saved_model_outputs(version, image, range(4))
    for old, new in zip(before, after[:3]):
        np.testing.assert_array_equal(new, old)  # the old styles, bit for bit
    painted = stylizer.stylize(image[0], NEW_STYLE)
    assert all(np.abs(painted - old[0]).mean() > 0.01 for old in before)


def test_add_style_refuses_bad_input_before_any_training(shared_data, photos, tmp_path, exported_base):
    from cin_style.image_io import ImageReadError
    from cin_style.model_io import load_transformer
    from cin_style.training import add_styles

    model, names, _ = load_transformer(exported_base)

    def add(painting, output_dir):
        config = tiny_config(shared_data, photos, output_dir, styles=[str(painting)], steps=2)
        return add_styles(model, names, config, verbose=0)

    with pytest.raises(ValueError, match=r"already has styles named \['munch_the_scream'\]"):
        add(shared_data / "styles" / "munch_the_scream.jpg", tmp_path / "clash")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        add(broken, tmp_path / "broken_run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "styles.json").write_text('{"style_names": ["a", "b"]}')
    with pytest.raises(ValueError, match=r"already holds another model \(styles \['a', 'b'\]\)"):
        add(shared_data / "styles" / f"{NEW_STYLE}.jpg", tmp_path / "other")
    for folder in ("clash", "broken_run", "other"):
        assert not (tmp_path / folder / "checkpoints").exists()
    no_metadata = tmp_path / "plain" / "1"
    no_metadata.mkdir(parents=True)
    shutil.copy(exported_base / "3" / "saved_model.pb", no_metadata / "saved_model.pb")
    with pytest.raises(ValueError, match="is a SavedModel but has no cin_style metadata"):
        load_transformer(tmp_path / "plain")
    with pytest.raises(FileNotFoundError, match="No model in"):
        load_transformer(tmp_path / "clash")


def test_nearest_start_picks_the_style_whose_outputs_share_the_paintings_grams(shared_data, photos, vgg_weights):
    from cin_style.data import photo_crops
    from cin_style.losses import PerceptualLoss
    from cin_style.training import nearest_styles

    model = distinct_style_model(3)
    perceptual = PerceptualLoss(vgg_weights=vgg_weights)
    crops = list(photo_crops(photos, 64, 3, seed=0).batch(0))
    # "Paintings" that are the model's own outputs for styles 2 and 0: each must find its style.
    paintings = [
        np.asarray(model({"image": crops[0][None], "style_weights": np.eye(3, dtype=np.float32)[[style]]}))[0]
        for style in (2, 0)
    ]
    assert nearest_styles(model, perceptual, perceptual.style_grams(paintings), crops) == [2, 0]


def test_add_styles_reports_where_each_new_row_started_also_after_a_resume(shared_data, photos, tmp_path):
    import json
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from add_style import add_styles_start

    from cin_style.network import cin_layers
    from cin_style.training import add_styles

    base = distinct_style_model(3)
    names = list(STYLE_NAMES)
    paintings = [str(shared_data / "styles" / f"{name}.jpg") for name in ("van_gogh_starry_night", NEW_STYLE)]
    config = tiny_config(shared_data, photos, tmp_path / "named", steps=1, checkpoint_every=1, styles=paintings[:1])
    named = add_styles(base, names, config, init_from=STYLE_NAMES[1], verbose=0)
    assert named.init_from == [1]
    state = json.loads((tmp_path / "named" / "checkpoints" / "ckpt-00000001" / "state.json").read_text())
    assert state["init_from"] == [1]
    # The add-style benchmark scores step 0 from it: the named style's rows, copied.
    grown = add_styles_start(base, named)
    for old, new in zip(cin_layers(base), cin_layers(grown)):
        np.testing.assert_array_equal(new.gamma.numpy()[3], old.gamma.numpy()[1])
        np.testing.assert_array_equal(new.beta.numpy()[3], old.beta.numpy()[1])

    config = tiny_config(shared_data, photos, tmp_path / "nearest", steps=1, checkpoint_every=1, styles=paintings)
    nearest = add_styles(base, names, config, init_from="nearest", verbose=0).init_from
    assert len(nearest) == 2 and set(nearest) <= {0, 1, 2}
    config.steps = 2
    resumed = add_styles(base, names, config, init_from="nearest", resume=True, verbose=0)
    assert resumed.resumed_from and resumed.init_from == nearest  # read back from the checkpoint, not chosen again


def test_add_style_checkpoints_of_a_slim_base_export_and_start_other_runs(shared_data, photos, tmp_path, capsys):
    """The checkpoints record the base model's alpha (0.25), not `TrainConfig`'s default (1.0) the
    CLI passes: `cin-style-export --checkpoint` and `init_weights` rebuild the network from them."""
    from cin_style.checkpoints import latest_checkpoint, read_state
    from cin_style.config import TrainConfig
    from cin_style.model_io import load_initial_weights
    from cin_style.network import build_transformer
    from cin_style.training import add_styles

    painting = str(shared_data / "styles" / f"{NEW_STYLE}.jpg")
    config = tiny_config(shared_data, photos, tmp_path / "grown", steps=2, styles=[painting], alpha=TrainConfig.alpha)
    assert config.alpha == 1.0  # the CLI's default, whatever the base model's width
    result = add_styles(distinct_style_model(3), STYLE_NAMES, config, verbose=0)
    checkpoint = latest_checkpoint(tmp_path / "grown")
    # cin-style-export's main in this process (test_tflite runs the tool as a process).
    status, _, stderr = run_tool(
        capsys, "export", f"--checkpoint={tmp_path / 'grown'}", f"--export_dir={tmp_path / 'served'}"
    )
    assert status == 0, stderr[-3000:]  # was: "31 objects could not be loaded"
    assert read_state(checkpoint)["config"]["alpha"] == result.config.alpha == 0.25
    image = np.random.default_rng(2).random((1, 36, 44, 3)).astype(np.float32)
    served = saved_model_outputs(tmp_path / "served" / "1", image, range(4))
    for style, output in enumerate(served):
        ours = result.model({"image": image, "style_weights": np.eye(4, dtype=np.float32)[[style]]})
        np.testing.assert_allclose(output, np.clip(np.asarray(ours), 0.0, 1.0), atol=1e-6)
    fresh = build_transformer(4, alpha=0.25)
    load_initial_weights(fresh, checkpoint)
    for ours, theirs in zip(fresh.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
