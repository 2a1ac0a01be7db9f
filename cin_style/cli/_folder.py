"""A folder run of cin-style-stylize: paint each photo, write it on a second thread in the cores' idle time. No flags
here, so tests and benchmarks can import it beside other tools."""

import os
import sys
import threading
import time

#: Whether writer threads can be given the lowest CPU priority: Linux, where a thread's nice value is its own
#: (elsewhere `setpriority` would renice the whole process) and another thread's CPU time can be read.
CAN_YIELD = sys.platform.startswith("linux") and hasattr(time, "pthread_getcpuclockid")
#: Seconds between the main thread's looks, while it waits for a write, at how much the writer has run.
CHECK_SECONDS = 0.025
#: A writer waited for this long that ran less than `STARVED_SHARE` of the time is starved by other work on the
#: machine (waiting alone, it has a core to itself: nearly all of the time).
STARVED_AFTER_SECONDS = 0.1
STARVED_SHARE = 0.5


def describe_error(error):
    """One line for an error: the expected kinds as they read, others with their type (e.g. TensorFlow's)."""
    if isinstance(error, (ValueError, OSError)):  # ImageReadError and StyleError among them
        return str(error)
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def paint_folder(work, paint):
    """Paints and writes each `(input, style, output)` of a folder run; returns `[(input, reason)]` of failures.

    Each painting is written on a second thread while the next one paints,
    so at most two paintings are in memory, one being written and one
    painting. On Linux the writer runs at the lowest CPU priority (nice 19):
    a PNG's encoding costs a third of the slim model's painting, and at equal
    priority it takes a core from the painting's parallel operations, which
    then wait for their slowest part; at nice 19 it runs in the time the
    painting leaves a core idle. When a painting is done before the previous
    write, the main thread waits and the writer has the cores to itself;
    but if it is starved there (other programs keep the cores busy), the
    main thread abandons that write, writes the painting itself, and the
    rest of the run writes at normal priority.

    A failure, a TensorFlow error included, is reported and the run goes on
    with the other files; reports come in the inputs' order. On Ctrl-C the
    file being written is finished (a fraction of a second, also through
    further Ctrl-Cs), so no temporary file is left behind.
    """
    failures = []

    def report(path, output, error):
        reason = describe_error(error)
        print(f"FAILED {output}: {reason}", file=sys.stderr)
        failures.append((path, reason))

    writes = _Writes(report)
    pending = None
    try:
        for path, style, output in work:
            try:
                painting = paint(path, style)()
            except Exception as error:
                writes.finish(pending)  # its report first
                pending = None
                report(path, output, error)
                continue
            writes.finish(pending)
            pending = writes.start(path, output, painting)
            del painting  # the writer's now: freed once written
        writes.finish(pending)
    except BaseException:
        writes.finish_through_interrupts(pending)
        raise
    finally:
        writes.close()
    return failures


class _Abandoned(Exception):
    """Raised in a writer thread's `write_image` once the main thread has taken its painting over."""


class _Write:
    """One painting being written on its own thread."""

    def __init__(self, path, output, painting, yield_cores):
        self.path, self.output, self.painting = path, output, painting
        self.yield_cores = yield_cores
        self.error = None
        self.abandoned = False
        self.reported = False
        self.clock = None  # its CPU-time clock, once it runs at low priority
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cin-style-writer")
        self.thread.start()

    def _run(self):
        from cin_style import image_io

        try:
            if self.yield_cores:
                self._yield_cores()
            image_io.write_image(self.output, self.painting, progress=self._go_on)
        except _Abandoned:
            pass  # write_image removed its temporary file
        except Exception as error:
            self.error = error
        finally:
            self.done.set()

    def _yield_cores(self):
        """Lowers this thread to nice 19, with its CPU-time clock for `wait`; where either is refused (a
        sandbox), it writes at normal priority and is waited for plainly."""
        try:
            clock = time.pthread_getcpuclockid(threading.get_ident())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            return
        self.clock = clock

    def _go_on(self):
        if self.abandoned:
            raise _Abandoned

    def wait(self):
        """Waits for the write: True once written (or failed); False if its thread is starved (then abandoned)."""
        began, ran_before = time.monotonic(), self._ran()
        while not self.done.wait(CHECK_SECONDS):
            if ran_before is None:  # not known yet, or not yielding
                began, ran_before = time.monotonic(), self._ran()
                continue
            waited, ran = time.monotonic() - began, self._ran()
            if ran is not None and waited >= STARVED_AFTER_SECONDS and ran - ran_before < STARVED_SHARE * waited:
                self.abandoned = True
                return False
        return True

    def _ran(self):
        """The writer thread's CPU seconds so far, or None (not yielding, not started yet, or ended)."""
        try:
            return time.clock_gettime(self.clock) if self.clock is not None else None
        except OSError:  # ended
            return None


class _Writes:
    """Starts writes on writer threads and finishes them in order: reports each, takes starved ones over."""

    def __init__(self, report):
        self.report = report
        self.yield_cores = CAN_YIELD
        self.abandoned = []  # threads stopping at their next piece of the file

    def start(self, path, output, painting):
        return _Write(path, output, painting, self.yield_cores)

    def finish(self, write):
        """Waits for `write` (None: nothing) and reports it, once; writes it here if its thread is starved."""
        if write is None or write.reported:
            return
        if write.abandoned or not write.wait():
            self.yield_cores = False  # the machine is busy: later writes at normal priority
            if write.thread not in self.abandoned:
                self.abandoned.append(write.thread)
            error = self._write_here(write)
        else:
            error = write.error
        write.reported = True
        if error is not None:
            self.report(write.path, write.output, error)
        else:
            print(f"wrote {write.output}")

    @staticmethod
    def _write_here(write):
        from cin_style import image_io

        try:
            image_io.write_image(write.output, write.painting)
        except Exception as error:
            return error
        return None

    def finish_through_interrupts(self, write):
        """`finish(write)`, also when Ctrl-C interrupts it (a write interrupted here starts again)."""
        while True:
            try:
                self.finish(write)
                return
            except KeyboardInterrupt:
                continue

    def close(self):
        """Waits for the abandoned threads to stop (each at its next piece of the file, removing its temporary
        file), also through Ctrl-C."""
        while self.abandoned:
            try:
                self.abandoned[-1].join()
            except KeyboardInterrupt:
                continue
            self.abandoned.pop()
