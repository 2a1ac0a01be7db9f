"""Videos: frames streamed through the Stylizer, size, rate and audio kept, flicker damped, nothing half-written."""

import os
import subprocess

import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import saved_style_model
from PIL import Image

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="pip install -e .[video]")

from cin_style import Stylizer
from cin_style.video import VideoError, damp_flicker, flicker, open_frames, stylize_video

pytestmark = pytest.mark.tensorflow_only  # ffmpeg round trips are slow: once, under TensorFlow

FPS = 8
SIZE = (48, 32)  # width, height
FRAMES = 10


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    return Stylizer.load(saved_style_model(tmp_path_factory.mktemp("trained")))


@pytest.fixture(scope="module")
def clip(shared_data, tmp_path_factory):
    """A still photo with camera noise, 10 frames at 8 fps, with one second of a 440 Hz tone."""
    folder = tmp_path_factory.mktemp("clip")
    with Image.open(shared_data / "content" / "test" / "kodim23.jpg") as image:
        photo = np.asarray(image.convert("RGB").resize(SIZE), np.float32)
    rng = np.random.default_rng(0)
    silent = folder / "silent.mp4"
    writer = imageio_ffmpeg.write_frames(str(silent), SIZE, fps=FPS, macro_block_size=2, quality=10)
    writer.send(None)
    for _ in range(FRAMES):
        writer.send(np.clip(photo + rng.normal(0, 2, photo.shape), 0, 255).astype(np.uint8))
    writer.close()
    path = folder / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(silent), "-f", "lavfi", "-i", "sine=440:duration=5"]
        + ["-shortest", "-c:v", "copy", "-c:a", "aac", str(path)],
        check=True,
        timeout=60,
    )
    return path


def _read(path):
    meta, frames = open_frames(path)
    return meta, [frame.astype(np.float32) / 255.0 for frame in frames]


def test_a_video_keeps_its_frame_count_size_rate_and_audio(stylizer, clip, tmp_path):
    output = tmp_path / "painted.mp4"
    result = stylize_video(stylizer, clip, output, 1, verbose=0)
    assert result["frames"] == FRAMES and result["size"] == SIZE and result["fps"] == FPS and result["audio"]
    meta, frames = _read(output)
    assert len(frames) == FRAMES and tuple(meta["size"]) == SIZE and meta["fps"] == FPS
    from cin_style.video import has_audio

    assert has_audio(output)
    _, originals = _read(clip)
    painted = stylizer.stylize(originals[0], 1)
    near, other = np.abs(frames[0] - painted).mean(), np.abs(frames[0] - stylizer.stylize(originals[0], 0)).mean()
    assert near < 0.5 * other, (near, other)  # the first frame is that frame painted, H.264 aside
    assert [name for name in os.listdir(tmp_path) if name.startswith(".tmp")] == []


def test_smoothing_damps_flicker_on_a_still_scene(stylizer, clip):
    _, frames = _read(clip)
    painted = [stylizer.stylize(frame, 2) for frame in frames]
    damped, previous = [], None
    for t, frame in enumerate(frames):
        previous = damp_flicker(painted[t], previous, frame, frames[t - 1] if t else None, 0.6)
        damped.append(previous)
    before, after = flicker(painted, frames), flicker(damped, frames)
    assert after < 0.6 * before, (before, after)
    moving = [frame[::-1] if t % 2 else frame for t, frame in enumerate(frames)]  # every pixel changes
    moved = damp_flicker(painted[1], painted[0], moving[1], moving[0], 0.6)
    assert np.abs(moved - painted[1]).mean() < 0.1 * np.abs(painted[0] - painted[1]).mean()  # no ghost


def test_regions_are_read_once_per_video_and_paint_each_frame_as_stylize_does(stylizer, clip, tmp_path, monkeypatch):
    from cin_style import regions as regions_module

    left = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    left[:, : SIZE[0] // 2] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    reads = []
    original = regions_module.read_mask
    monkeypatch.setattr(regions_module, "read_mask", lambda *a, **k: reads.append(1) or original(*a, **k))
    regions = [(tmp_path / "left.png", 0)]
    output = tmp_path / "painted.mp4"
    result = stylize_video(stylizer, clip, output, 2, regions=regions, feather=4, smoothing=0.0, verbose=0)
    assert result["frames"] == FRAMES and len(reads) == 1  # not once per frame
    _, frames = _read(output)
    _, originals = _read(clip)
    for t in (0, FRAMES - 1):
        painted = stylizer.stylize(originals[t], 2, regions=regions, feather=4)
        near, other = np.abs(frames[t] - painted).mean(), np.abs(frames[t] - stylizer.stylize(originals[t], 2)).mean()
        assert near < 0.5 * other, (t, near, other)  # each frame is that frame painted by region, H.264 aside


def test_missing_corrupt_and_existing_files_are_refused_before_any_work(stylizer, clip, tmp_path):
    with pytest.raises(VideoError, match="Video not found"):
        stylize_video(stylizer, tmp_path / "none.mp4", tmp_path / "out.mp4", 0, verbose=0)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(VideoError, match="Cannot read .*corrupt.mp4.* as a video"):
        stylize_video(stylizer, corrupt, tmp_path / "out.mp4", 0, verbose=0)
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    with pytest.raises(VideoError, match="exists; pass overwrite=True"):
        stylize_video(stylizer, clip, tmp_path / "exists.mp4", 0, verbose=0)
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"
    with pytest.raises(VideoError, match="Cannot write '.gif' videos"):
        stylize_video(stylizer, clip, tmp_path / "out.gif", 0, verbose=0)
    from cin_style.stylizer import StyleError

    with pytest.raises(StyleError, match="Unknown style name"):
        stylize_video(stylizer, clip, tmp_path / "out.mp4", "nope", verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["corrupt.mp4", "exists.mp4"]


def test_an_interrupted_run_leaves_no_output_file(stylizer, clip, tmp_path):
    calls = []
    original = stylizer.stylize

    def stop_at_the_fifth_frame(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    stylizer.stylize = stop_at_the_fifth_frame
    try:
        with pytest.raises(KeyboardInterrupt):
            stylize_video(stylizer, clip, tmp_path / "painted.mp4", 0, verbose=0)
    finally:
        del stylizer.stylize
    assert len(calls) == 5 and os.listdir(tmp_path) == []


#: Paints a video in a process of its own, and stops to say so at the fourth frame (where SIGTERM comes).
PAINT_UNTIL_TERMINATED = """
import sys, time
from cin_style import Stylizer
from cin_style.video import stylize_video

stylizer = Stylizer.load(sys.argv[1])
paint, calls = stylizer.stylize, []

def slowly(*args, **kwargs):
    calls.append(1)
    if len(calls) == 4:
        print("painting frame 4", flush=True)
        time.sleep(120)
    return paint(*args, **kwargs)

stylizer.stylize = slowly
stylize_video(stylizer, sys.argv[2], sys.argv[3], 0, verbose=0)
print("finished", flush=True)
"""


def test_a_run_ended_by_sigterm_leaves_neither_its_temporary_file_nor_an_output(stylizer, clip, tmp_path):
    import signal
    import sys
    import time

    folder = tmp_path / "out"
    folder.mkdir()
    command = [sys.executable, "-c", PAINT_UNTIL_TERMINATED, str(stylizer.source), str(clip), str(folder / "v.mp4")]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline() == "painting frame 4\n"
        deadline = time.monotonic() + 30
        while not os.listdir(folder) and time.monotonic() < deadline:  # ffmpeg opens it on its own time
            time.sleep(0.05)
        assert [name for name in os.listdir(folder) if name.startswith(".tmp-")], "no half-written file to clean"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == -signal.SIGTERM  # ended as SIGTERM ends a process, after cleaning up
    finally:
        run.kill()
        run.wait()
    assert os.listdir(folder) == []


def test_stylize_cli_paints_a_video_and_names_a_corrupt_one(stylizer, clip, tmp_path, capsys):
    # In this process: the tool's real process runs in test_stylize_cli and test_cli_help.
    model = stylizer.source
    output = tmp_path / "painted.mp4"
    command = [f"--model={model}", "--style=1"]
    status, stdout, stderr = run_tool(capsys, "stylize", *command, f"--input={clip}", f"--output={output}")
    assert status == 0, stderr[-2000:]
    assert f"wrote {output}: {FRAMES} frames, 48x32 at {FPS} fps, with its audio" in stdout
    assert len(_read(output)[1]) == FRAMES
    corrupt = tmp_path / "corrupt.mov"
    corrupt.write_bytes(b"not a video at all")
    status, stdout, stderr = run_tool(
        capsys, "stylize", *command, f"--input={corrupt}", f"--output={tmp_path / 'x.mp4'}"
    )
    assert status == 1 and "as a video" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "x.mp4").exists()
