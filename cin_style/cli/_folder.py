"""A folder run of cin-style-stylize: paint each photo, write it on a second thread in the cores' idle time. No flags
here, so tests and benchmarks can import it beside other tools."""

import concurrent.futures
import os
import sys
import threading
import time

#: Seconds between the main thread's looks, while it waits for a low-priority write, at the writer's wait for a core.
CHECK_SECONDS = 0.025
#: A writer waited for this long that spent `STARVED_SHARE` of the time runnable but without a core is starved
#: by other programs (waiting alone, it has a core to itself). A writer blocked on a slow disk is not runnable.
STARVED_AFTER_SECONDS = 0.1
STARVED_SHARE = 0.5


def waiting_seconds(native_id):
    """Seconds thread `native_id` of this process has spent runnable but waiting for a core (Linux's schedstat), or
    None where that is not known."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


#: Whether writes can run at the lowest CPU priority: on Linux, where a thread's nice value is its own (elsewhere
#: `setpriority` would renice the whole process) and its wait for a core can be read, to notice it starving.
CAN_YIELD = sys.platform.startswith("linux") and waiting_seconds(threading.get_native_id()) is not None


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
    if instead it spends half of a tenth of a second runnable without a core
    (other programs keep the cores busy), that write is abandoned (at its
    next piece of the file, its temporary file removed) and done again at
    normal priority, as are the rest of the run's.

    A failure, a TensorFlow error included, is reported and the run goes on
    with the other files; reports come in the inputs' order. On Ctrl-C the
    file being written is finished (a fraction of a second, also through
    further Ctrl-Cs), so no temporary file is left behind.
    """
    failures = []

    def report(path, output, error):  # on a writer thread, or the main one for a painting's failure
        reason = describe_error(error)
        print(f"FAILED {output}: {reason}", file=sys.stderr)
        failures.append((path, reason))

    writers = _Writers(report)
    pending = None
    try:
        for path, style, output in work:
            try:
                painting = paint(path, style)()
            except Exception as error:
                writers.finish(pending)  # its report first
                pending = None
                report(path, output, error)
                continue
            writers.finish(pending)
            pending = writers.submit(path, output, painting)
            del painting  # the writer's now: freed once written
        writers.finish(pending)
    except BaseException:
        writers.finish_through_interrupts(pending)
        raise
    finally:
        writers.close()
    return failures


class _Abandoned(Exception):
    """Raised in a writer's `write_image` once its painting is to be written again at normal priority."""


class _Write:
    """One painting to write, on a writer thread, which reports it (unless the write is abandoned)."""

    def __init__(self, path, output, painting, report, low):
        self.path, self.output, self.painting, self.report, self.low = path, output, painting, report, low
        self.state = "writing"  # then "claimed" by the writer as it reports, or "abandoned"
        self.started = False
        self.lock = threading.Lock()
        self.future = None
        self.replacement = None  # the write at normal priority of an abandoned one

    def run(self):
        from cin_style import image_io

        with self.lock:
            if self.started:  # submitted again after a Ctrl-C interrupted its submit
                return
            self.started = True
        try:
            image_io.write_image(self.output, self.painting, progress=self._go_on)
            error = None
        except _Abandoned:
            return  # write_image removed its temporary file
        except Exception as caught:
            error = caught
        with self.lock:
            if self.state == "abandoned":  # written (or failed) all the same: the replacement reports
                return
            self.state = "claimed"
        if error is not None:
            self.report(self.path, self.output, error)
        else:
            print(f"wrote {self.output}")

    def _go_on(self):
        if self.state == "abandoned":
            raise _Abandoned

    def abandon(self):
        """Abandons the write unless its writer has claimed it (done); True if abandoned."""
        with self.lock:
            if self.state != "claimed":
                self.state = "abandoned"
            return self.state == "abandoned"


class _Writers:
    """Two one-thread pools: writes at nice 19 (where `CAN_YIELD`) until one starves, then at normal priority."""

    def __init__(self, report):
        self.report = report
        self.yielding = CAN_YIELD
        self.low_thread = None  # the low-priority writer's native id, once it runs at nice 19
        self.low = (
            concurrent.futures.ThreadPoolExecutor(1, "cin-style-writer", initializer=self._lower) if CAN_YIELD else None
        )
        self.normal = concurrent.futures.ThreadPoolExecutor(1, "cin-style-writer")
        for pool in (self.low, self.normal):  # their threads now: a Ctrl-C in a later submit starts none
            if pool is not None:
                pool.submit(int).result()

    def _lower(self):  # on the low pool's thread, once
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # refused (a sandbox): it writes at normal priority, waited for plainly
            return
        self.low_thread = threading.get_native_id()

    def submit(self, path, output, painting):
        pool = self.low if self.yielding else self.normal
        write = _Write(path, output, painting, self.report, low=pool is self.low)
        write.future = pool.submit(write.run)
        return write

    def finish(self, write):
        """Waits for `write` (None: nothing); one whose low-priority writer starves is written again at normal
        priority, as are the rest of the run's."""
        if write is None:
            return
        if write.low and write.state != "abandoned" and not self._wait_unless_starved(write):
            self.yielding = False
            write.abandon()
        if write.state == "abandoned":
            if write.replacement is None:
                write.replacement = _Write(write.path, write.output, write.painting, self.report, low=False)
            if write.replacement.future is None:  # (submitted twice after a Ctrl-C in submit: it runs once)
                write.replacement.future = self.normal.submit(write.replacement.run)
            write = write.replacement
        concurrent.futures.wait([write.future])

    def _wait_unless_starved(self, write):
        """Waits for a low-priority write: True once done, False once its writer starves."""
        thread = self.low_thread  # known since __init__; None where nice 19 was refused: a plain wait
        began, before = time.monotonic(), waiting_seconds(thread) if thread is not None else None
        while not concurrent.futures.wait([write.future], timeout=CHECK_SECONDS).done:
            if before is None:
                continue
            elapsed, now = time.monotonic() - began, waiting_seconds(thread)
            if now is not None and elapsed >= STARVED_AFTER_SECONDS and now - before >= STARVED_SHARE * elapsed:
                return False
        return True

    def finish_through_interrupts(self, write):
        """`finish(write)`, also when Ctrl-C interrupts it."""
        while True:
            try:
                self.finish(write)
                return
            except KeyboardInterrupt:
                continue

    def close(self):
        """Waits for both pools' threads (an abandoned write stops at its next piece), also through Ctrl-C."""
        for pool in (self.low, self.normal):
            while pool is not None:
                try:
                    pool.shutdown(wait=True)
                    pool = None
                except KeyboardInterrupt:
                    continue
