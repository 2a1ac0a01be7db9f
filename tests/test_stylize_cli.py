"""cin-style-stylize as a user runs it."""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import STYLE_NAMES, saved_style_model
from PIL import Image


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return saved_style_model(tmp_path_factory.mktemp("trained")).parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("kodim05", "kodim23"):
        with Image.open(shared_data / "content" / "test" / f"{name}.jpg") as image:
            image.convert("RGB").resize((48, 32)).save(folder / f"{name}.jpg")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    return folder


def stylize(*args):
    return subprocess.run(
        [sys.executable, "-m", "cin_style.cli.stylize", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_list_styles(model_dir):
    result = stylize(f"--model={model_dir}", "--list_styles")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0", STYLE_NAMES[0], "1", STYLE_NAMES[1], "2", STYLE_NAMES[2]]


def test_one_file_by_name_then_refuses_to_overwrite(model_dir, photos, tmp_path):
    out = tmp_path / "painted.png"
    args = [f"--model={model_dir}", f"--input={photos / 'kodim23.jpg'}", "--style=munch_the_scream", f"--output={out}"]
    first = stylize(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert Image.open(out).size == (48, 32)
    again = stylize(*args)
    assert again.returncode != 0 and "painted.png exists; pass --overwrite to replace it" in again.stderr
    replaced = stylize(*args, "--overwrite", "--style=munch_the_scream:0.7,2:0.3", "--strength=0.8", "--preserve_color")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["painted.png"]  # nothing half-written left


def test_folder_run_reports_failures_and_finishes_the_rest(model_dir, photos, tmp_path):
    result = stylize(f"--model={model_dir}", f"--input={photos}", "--style=2", f"--output={tmp_path / 'out'}")
    assert result.returncode == 1
    assert sorted(os.listdir(tmp_path / "out")) == ["kodim05_2.png", "kodim23_2.png"]
    assert "FAILED" in result.stderr and "broken.jpg' is not an image Pillow can read" in result.stderr
    assert "2 of 3 images stylised" in result.stdout


def test_sheet_shows_the_photo_and_every_style(model_dir, photos, tmp_path):
    result = stylize(
        f"--model={model_dir}", f"--input={photos / 'kodim05.jpg'}", "--sheet", f"--output={tmp_path / 'sheet.png'}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (32 + 18, 4 * 48, 3)  # photo + 3 styles in one labelled row


@pytest.mark.parametrize(
    "args, message",
    [
        (["--style=munch"], "Unknown style name 'munch'. Did you mean: munch_the_scream"),
        (["--style=3"], "Style index 3 is out of range"),
        (["--style=munch_the_scream:lots"], "Blend weight 'lots' of 'munch_the_scream' is not a number"),
        (["--style=munch_the_scream:-1,0:2"], "must be non-negative"),
        (["--style=0", "--model=/no/such/model"], "Model path not found: '/no/such/model'"),
        (["--style=0", "--output=/proc/version/out.png"], "Output folder does not exist"),
        (["--style=0", "--scale=0"], "--scale must be positive"),
        (["--style=0", "--preserve_color", "--colors=histogram"], "not both"),
    ],
)
def test_bad_arguments_fail_with_the_reason(model_dir, photos, tmp_path, args, message):
    base = [f"--model={model_dir}", f"--input={photos / 'kodim05.jpg'}", f"--output={tmp_path / 'x.png'}"]
    result = stylize(*base, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_unwritable_output_folder_is_named(tmp_path, monkeypatch):
    from cin_style import image_io

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OSError, match="Output folder is not writable"):
        image_io.write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))


def test_written_images_get_the_usual_permissions(tmp_path):
    from cin_style import image_io

    old = os.umask(0o022)
    try:
        image_io.write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["x.png"]


def test_writing_an_image_never_changes_the_process_umask(tmp_path, monkeypatch):
    # Reading the umask means setting it for a moment, which races with other threads.
    from cin_style import image_io

    def no_umask(mask):
        raise AssertionError("write_image changed the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    image_io.write_image(tmp_path / "y.jpg", np.zeros((4, 4, 3), np.uint8), quality=90)
    assert os.listdir(tmp_path) == ["y.jpg"]


@pytest.fixture
def run_main():
    """Runs cin-style-stylize's `main` in this process (so tests can monkeypatch): `(status, stdout, stderr)`."""
    from absl import flags

    from cin_style.cli import stylize as cli

    def run(capsys, *args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["cin-style-stylize", *args])
        try:
            status = cli.main(["cin-style-stylize"])
        except SystemExit as stop:
            status = stop.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    yield run
    flags.FLAGS.unparse_flags()


def _photo_tree(folder, source, names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.open(source).save(folder / name)
    return folder


@pytest.mark.parametrize(
    "names, clash",
    [
        (["a.jpg", "a.png", "b.jpg"], ["a.jpg", "a.png"]),
        (["x/kodim.jpg", "y/kodim.jpg", "z/other.jpg"], ["x/kodim.jpg", "y/kodim.jpg"]),
        (["Kodim.jpg", "kodim.png"], ["Kodim.jpg", "kodim.png"]),  # one file on macOS and Windows
    ],
    ids=["same_stem_two_extensions", "same_name_two_subfolders", "names_differing_in_case"],
)
def test_folder_inputs_that_share_an_output_name_are_refused_before_any_work(
    model_dir, photos, tmp_path, run_main, capsys, names, clash
):
    tree = _photo_tree(tmp_path / "in", photos / "kodim05.jpg", names)
    out = tmp_path / "out"
    status, stdout, stderr = run_main(
        capsys, f"--model={model_dir}", f"--input={tree}", "--style=1", f"--output={out}", "--overwrite"
    )
    assert status == 1
    assert "would write the same output file" in stderr, stderr[-2000:]
    for name in clash:
        assert os.path.join(str(tree), name) in stderr
    assert "wrote" not in stdout
    assert not out.exists() or os.listdir(out) == []  # nothing painted, nothing overwritten


@pytest.mark.tensorflow_only
def test_folder_run_reports_tensorflow_errors_per_file_and_finishes_the_rest(
    model_dir, photos, tmp_path, run_main, capsys, monkeypatch
):
    import tensorflow as tf

    from cin_style.stylizer import Stylizer

    tree = _photo_tree(tmp_path / "in", photos / "kodim05.jpg", ["a.jpg", "b.jpg", "c.jpg", "sub/d.jpg"])
    errors = {
        "a.jpg": tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[1,64,32,48]"),
        "c.jpg": tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [1,32,48,3] vs. [1,30,48,3]"),
    }
    real_stylize = Stylizer.stylize

    def flaky_stylize(self, image, *args, **kwargs):
        error = errors.get(os.path.basename(image))
        if error is not None:
            raise error
        return real_stylize(self, image, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "stylize", flaky_stylize)
    out = tmp_path / "out"
    status, stdout, stderr = run_main(capsys, f"--model={model_dir}", f"--input={tree}", "--style=0", f"--output={out}")
    assert status == 1
    assert sorted(os.listdir(out)) == ["b_0.png", "d_0.png"]
    assert "2 of 4 images stylised" in stdout
    # The failures are listed together at the end, each with its input and reason.
    summary = stderr[stderr.rindex("2 of 4 images failed:") :].splitlines()
    assert len(summary) == 3, stderr[-2000:]
    assert str(tree / "a.jpg") in summary[1] and "ResourceExhaustedError: OOM when allocating tensor" in summary[1]
    assert str(tree / "c.jpg") in summary[2] and "InvalidArgumentError: Incompatible shapes" in summary[2]

    # One input alone: the same error ends the tool with that line, no traceback, no file.
    status, stdout, stderr = run_main(
        capsys, f"--model={model_dir}", f"--input={tree / 'a.jpg'}", "--style=0", f"--output={tmp_path / 'a.png'}"
    )
    assert status != 0 and not (tmp_path / "a.png").exists()
    assert "a.jpg: ResourceExhaustedError: OOM when allocating tensor" in stderr and "Traceback" not in stderr


def test_regions_paint_each_label_in_its_style_and_refuse_labels_without_one(model_dir, photos, tmp_path):
    from cin_style import Stylizer

    labels = np.zeros((8, 12), np.uint8)
    labels[:, 6:] = 1  # right half; resized to the 48x32 photo
    Image.fromarray(labels).save(tmp_path / "labels.png")
    photo = str(photos / "kodim05.jpg")
    output = tmp_path / "regions.png"
    common = [f"--model={model_dir}", f"--input={photo}", f"--regions={tmp_path / 'labels.png'}"]
    result = stylize(*common, f"--style=0:{STYLE_NAMES[0]},1:2", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = Stylizer.load(model_dir).stylize(photo, regions=(labels, {0: STYLE_NAMES[0], 1: 2}))
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(expected))
    missing = stylize(*common, f"--style=0:{STYLE_NAMES[0]}", f"--output={tmp_path / 'missing.png'}")
    assert missing.returncode == 1 and "--regions: Labels [1] of the label image have no style" in missing.stderr
    malformed = stylize(*common, "--style=sky:1", f"--output={tmp_path / 'malformed.png'}")
    assert malformed.returncode == 1 and "each part must look like label:style" in malformed.stderr
    assert not (tmp_path / "missing.png").exists() and not (tmp_path / "malformed.png").exists()


def test_scale_and_histogram_colors_reach_the_stylizer(model_dir, photos, tmp_path):
    from cin_style import Stylizer

    photo = str(photos / "kodim05.jpg")
    output = tmp_path / "big_strokes.png"
    result = stylize(f"--model={model_dir}", f"--input={photo}", "--style=1", "--scale=1.5", "--colors=histogram")
    assert result.returncode != 0 and "--output is required" in result.stderr
    result = stylize(
        f"--model={model_dir}",
        f"--input={photo}",
        "--style=1",
        "--scale=1.5",
        "--colors=histogram",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = Stylizer.load(model_dir).stylize(photo, 1, scale=1.5, preserve_color="histogram")
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(expected))


@pytest.mark.tensorflow_only
def test_model_slim_picks_the_bundled_slim_model_with_the_default_models_styles():
    from cin_style.bundled import SLIM_MODEL_NAME, bundled_model_path
    from cin_style.metadata import read_metadata

    default, slim = (read_metadata(bundled_model_path(name)) for name in ("cin_style_default", SLIM_MODEL_NAME))
    assert slim["alpha"] == 0.25 and default["alpha"] == 1.0
    result = stylize("--model=slim", "--list_styles")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[1::2] == default["style_names"] == slim["style_names"]
