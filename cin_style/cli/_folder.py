"""A folder run of cin-style-stylize: paint each photo, write it on a second thread. No flags here, so tests
and benchmarks can import it beside other tools."""

import concurrent.futures
import sys


def describe_error(error):
    """One line for an error: the expected kinds as they read, others with their type (e.g. TensorFlow's)."""
    if isinstance(error, (ValueError, OSError)):  # ImageReadError and StyleError among them
        return str(error)
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def paint_folder(work, paint):
    """Paints and writes each `(input, style, output)` of a folder run; returns `[(input, reason)]` of failures.

    Each painting is written on a second thread while the next one paints:
    Pillow's encoders release the GIL, and a PNG's encoding costs about a
    third of the slim model's painting. So at most two paintings are in
    memory, one being written and one painting. A failure, a TensorFlow
    error included, is reported and the run goes on with the other files;
    reports come in the inputs' order. On Ctrl-C the file being written is
    finished (a fraction of a second, also through further Ctrl-Cs), so no
    temporary file is left behind.
    """
    from cin_style import image_io

    failures = []

    def report(path, output, error):
        reason = describe_error(error)
        print(f"FAILED {output}: {reason}", file=sys.stderr)
        failures.append((path, reason))

    def write(path, output, painting):  # on the writer thread, one file at a time
        try:
            image_io.write_image(output, painting)
        except Exception as error:
            report(path, output, error)
        else:
            print(f"wrote {output}")

    pending = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cin-style-writer") as writer:
        try:
            for path, style, output in work:
                try:
                    painting = paint(path, style)()
                except Exception as error:
                    if pending is not None:  # its report first
                        pending.result()
                    report(path, output, error)
                    continue
                if pending is not None:
                    pending.result()
                pending = writer.submit(write, path, output, painting)
                del painting  # the writer's now: freed once written
        except BaseException:
            _finish_through_interrupts(pending)
            raise
        if pending is not None:
            pending.result()
    return failures


def _finish_through_interrupts(future):
    """Waits for `future` (a file being written) to finish, also when Ctrl-C interrupts the wait."""
    while future is not None:
        try:
            concurrent.futures.wait([future])
            return
        except KeyboardInterrupt:
            continue
