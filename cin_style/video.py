"""Painting a video: frames streamed through a `Stylizer`, audio kept, flicker damped.

Frames are read and written one at a time through ffmpeg (the `imageio-ffmpeg`
wheel ships it: `pip install cin_style[video]`), so a clip of any length needs
the memory of a few frames. The output is written to a temporary file beside
it and renamed when complete: an interrupted run (an exception, Ctrl-C, or a
SIGTERM in the main thread) removes it and leaves no half video.

Flicker: each frame gets its own instance statistics, so a still scene
shimmers from frame to frame. `smoothing` blends each painted frame with the
previous output where the input did not change (per pixel, fading out where
it moves), which damps the shimmer without dragging moving objects.
"""

import contextlib
import os
import re
import signal
import subprocess
import threading
import time

import numpy as np

from cin_style import image_io

#: Extensions the command-line tool treats as video.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
#: Input change (mean over RGB, in [0, 1]) at which the blend with the previous frame has faded to 1/e.
MOTION_SCALE = 0.02


class VideoError(ValueError):
    """A video that cannot be read or written, or settings a video run cannot use."""


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise VideoError(f"Painting videos needs imageio-ffmpeg ({error}): pip install 'cin_style[video]'") from None
    return imageio_ffmpeg


def has_audio(path):
    """Whether the file at `path` has an audio stream (asked of ffmpeg itself)."""
    exe = _ffmpeg().get_ffmpeg_exe()
    probe = subprocess.run([exe, "-hide_banner", "-i", os.fspath(path)], capture_output=True, text=True, timeout=60)
    return re.search(r"Stream #\S+.*: Audio:", probe.stderr) is not None


def open_frames(path):
    """`(meta, frames)`: ffmpeg's metadata (fps, size, duration) and a generator of uint8 `(h, w, 3)` frames.

    Raises:
        VideoError: For a missing file or one ffmpeg cannot decode.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"Video not found: '{path}'")
    reader = _ffmpeg().read_frames(path, pix_fmt="rgb24")
    try:
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as error:
        reader.close()
        first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise VideoError(f"Cannot read '{path}' as a video: {first}") from None
    width, height = meta["size"]

    def frames():
        try:
            for raw in reader:
                yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)
        finally:
            reader.close()

    return meta, frames()


def damp_flicker(painted, previous_output, frame, previous_frame, smoothing):
    """`painted` blended with the previous output where the input stayed still.

    The blend weight is `smoothing * exp(-change / MOTION_SCALE)` per pixel,
    `change` being the mean |difference| of the input frames over RGB (in
    [0, 1]): still pixels lean on the previous output, moving ones do not.
    """
    if previous_output is None or not smoothing:
        return painted
    change = np.abs(frame - previous_frame).mean(axis=-1, keepdims=True)
    weight = smoothing * np.exp(-change / MOTION_SCALE)
    return (1.0 - weight) * painted + weight * previous_output


def flicker(outputs, inputs, still=0.01):
    """Mean |frame-to-frame change| of `outputs` at the pixels where `inputs` changed less than `still`.

    The flicker measure of `benchmarks/video_flicker.py`: a painting of a
    still scene should not change where the scene did not.
    """
    total, count = 0.0, 0
    for t in range(1, len(outputs)):
        static = np.abs(inputs[t] - inputs[t - 1]).mean(axis=-1) < still
        total += float(np.abs(outputs[t] - outputs[t - 1]).mean(axis=-1)[static].sum())
        count += int(static.sum())
    return total / max(count, 1)


def stylize_video(
    stylizer, input_path, output_path, style=None, *, smoothing=0.6, overwrite=False, quality=8, verbose=1, **options
):
    """Paints every frame of a video and writes it with the input's size, frame rate and audio.

    Args:
        stylizer: A `cin_style.Stylizer`.
        input_path: A video file ffmpeg reads (mp4, mov, mkv, webm, ...).
        output_path: Where to write it: .mp4, .m4v, .mov or .mkv (H.264
            video; the audio re-encoded as AAC).
        style: As for `Stylizer.stylize`.
        smoothing: How much a still pixel leans on the previous output, in
            [0, 1); 0 paints each frame on its own. Defaults to `0.6`.
        overwrite: Replace an existing output. Defaults to `False`.
        quality: ffmpeg's quality, 0 to 10. Defaults to `8`.
        verbose: 1 for a progress bar with frames/s, 0 for none.
        **options: `Stylizer.stylize` keywords (`regions`, `feather`,
            `strength`, `preserve_color`, `scale`, `max_size` is refused: the
            output keeps the input's size).

    Returns:
        `{"frames": n, "fps": fps, "size": (width, height), "audio": bool,
        "seconds": wall time}`.

    Raises:
        VideoError: For a missing or unreadable input, an existing output
            without `overwrite`, or bad settings, before any frame is painted.
        StyleError, RegionError: For bad styles or regions, likewise.
    """
    import keras

    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
        raise VideoError(f"`smoothing` must be a number in [0, 1). Received: smoothing={smoothing!r}")
    if "max_size" in options:
        raise VideoError("`max_size` does not apply to videos: the output keeps the input's size")
    output_path = os.fspath(output_path)
    if os.path.exists(output_path) and not overwrite:
        raise VideoError(f"{output_path} exists; pass overwrite=True (--overwrite) to replace it")
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise VideoError(f"Output folder does not exist: {folder}")
    container = _container(output_path)
    meta, frames = open_frames(input_path)
    width, height = meta["size"]
    fps = float(meta["fps"])
    if width % 2 or height % 2:
        frames.close()
        raise VideoError(f"H.264 needs even sides; '{input_path}' is {width}x{height}")
    if min(width, height) < 16:
        frames.close()
        raise VideoError(f"'{input_path}' is {width}x{height}; the smallest side cin_style stylises is 16 pixels")
    first = next(frames, None)
    if first is None:
        raise VideoError(f"'{input_path}' holds no frames")
    try:  # the first frame first: every style, region and size error comes before any output exists
        if options.get("regions") is not None:  # one map for every frame: masks are read and feathered once
            feather = options.pop("feather", 0)
            options["regions"] = stylizer.style_map(options["regions"], height, width, default=style, feather=feather)
            style = None
        first_painted = stylizer.stylize(first.astype(np.float32) / 255.0, style, **options)
    except BaseException:
        frames.close()
        raise
    audio = has_audio(input_path)
    expected = int(round(float(meta.get("duration") or 0) * fps)) or None
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(output_path)}")
    writer = _ffmpeg().write_frames(
        tmp,
        (width, height),
        fps=fps,
        codec="libx264",
        quality=quality,
        macro_block_size=2,
        audio_path=os.fspath(input_path) if audio else None,
        audio_codec="aac" if audio else None,
        output_params=["-f", container],
    )
    progress = keras.utils.Progbar(expected, unit_name="frame", verbose=verbose) if verbose else None
    start, count = time.monotonic(), 0
    previous_frame = previous_output = None
    with _sigterm_unwinds():  # a SIGTERM cleans up too, then ends the process as it would have
        try:
            writer.send(None)
            for frame in _chain(first, frames):
                current = frame.astype(np.float32) / 255.0
                painted = first_painted if count == 0 else stylizer.stylize(current, style, **options)
                painted = damp_flicker(painted, previous_output, current, previous_frame, smoothing)
                writer.send(np.ascontiguousarray(image_io.to_uint8(painted)))
                previous_frame, previous_output, count = current, painted, count + 1
                if progress is not None:
                    rate = count / max(time.monotonic() - start, 1e-9)
                    progress.update(count, values=[("frames/s", rate)], finalize=False)
            writer.close()
            os.replace(tmp, output_path)
        except BaseException:
            try:
                writer.close()
                frames.close()
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
            raise
    if progress is not None:
        progress.update(count, finalize=True)
    return {"frames": count, "fps": fps, "size": (width, height), "audio": audio, "seconds": time.monotonic() - start}


def _chain(first, rest):
    yield first
    yield from rest


class _Terminated(BaseException):
    """A SIGTERM, raised in the main thread by `_sigterm_unwinds` so that clean-up code runs."""


@contextlib.contextmanager
def _sigterm_unwinds():
    """While inside, a SIGTERM unwinds the main thread (`except`/`finally` blocks run), then ends the
    process as it would have: the default action is restored and the signal sent again.

    Changes nothing where SIGTERM would not have ended the process at once: outside the main
    thread (Python runs handlers there only), or where the program ignores it or handles it itself.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def unwind(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during the clean-up ends it at once
        raise _Terminated

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise  # only if the signal is blocked in this thread: it ends the process once unblocked
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: Output containers for H.264 video, by extension.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def _container(path):
    """ffmpeg's format name for `path`'s extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise VideoError(
            f"Cannot write {extension or 'no extension'!r} videos; name the output {sorted(OUTPUT_FORMATS)}"
        )
    return OUTPUT_FORMATS[extension]
