"""A folder run of cin-style-stylize: paint each photo, write it on a second thread in the cores' idle time. No flags
here, so tests and benchmarks can import it beside other tools."""

import concurrent.futures
import os
import sys
import threading
import time

#: Seconds between the main thread's looks at a low-priority writer while it waits for the writer's write.
CHECK_SECONDS = 0.025
#: A writer runnable at every look for this long and on a core for less than `STARVED_SHARE` of it is starved by
#: other programs (a writer waited for has a core to itself otherwise). One blocked on a slow disk is not runnable.
STARVED_AFTER_SECONDS = 0.1
STARVED_SHARE = 0.5


def thread_activity(thread):
    """`(runnable, cpu_seconds)` of `thread` (`(native_id, cpu_clock_id)`) of this process: whether Linux has it
    running or ready to run (state R, not asleep or in I/O), and its CPU clock; None where either is not known."""
    native_id, clock_id = thread
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as stat:  # bytes: a thread's name may not be UTF-8
            state = stat.read().rpartition(b")")[2].split()[0]
        return state == b"R", time.clock_gettime(clock_id)
    except (OSError, IndexError, ValueError):
        return None


def this_thread():
    """This thread as `thread_activity` takes it."""
    return threading.get_native_id(), time.pthread_getcpuclockid(threading.get_ident())


def _activity_known():
    try:
        activity = thread_activity(this_thread())
    except AttributeError:  # no time.pthread_getcpuclockid: not Unix
        return False
    return activity is not None and activity[0]  # this thread, running as it reads itself


#: Whether writes can run at the lowest CPU priority: on Linux, where a thread's nice value is its own (elsewhere
#: `setpriority` would renice the whole process) and its state and CPU clock can be read, to notice it starving.
CAN_YIELD = sys.platform.startswith("linux") and _activity_known()


#: Other programs using this many of this process's cores between photos make the run write at normal priority: a
#: writer at nice 19 would starve and stall the run's other threads whenever it is switched out holding Python's GIL
#: (measured: a slim folder run at 1024 px beside two busy programs took 1.27x the time of one at normal priority).
OTHERS_BUSY_CORES = 0.5
#: Seconds a look at the others' load must span at least: /proc/stat counts in hundredths of a second, so a look
#: may be off by a few hundredths (about one 0.1 s look in 300 read busy on an idle 2-core machine).
OTHERS_MIN_SECONDS = 0.05


def cpu_seconds(cores=None, path="/proc/stat"):
    """`(busy, ours)`: CPU seconds the cores this process may run on (`cores`, numbers; all where None) have been
    busy (Linux's /proc/stat; time stolen by a hypervisor counted) and this process's CPU seconds, or None where not
    known. The machine's total line where `cores` holds every core, or where the per-core lines do not name them
    (a container's /proc/stat numbering its own cores from 0): it is rounded once, not once a core."""
    try:
        with open(path) as stat:
            lines = {fields[0]: fields[1:] for fields in (line.split() for line in stat) if fields[0].startswith("cpu")}
        named = {f"cpu{core}" for core in cores} if cores is not None else set()
        per_core = [name for name in lines if name != "cpu"]
        chosen = sorted(named) if named and named < set(per_core) else ["cpu"]
        busy = 0
        for name in chosen:
            user, nice, system, _, _, irq, softirq, steal = (int(value) for value in lines[name][:8])
            busy += user + nice + system + irq + softirq + steal
    except (OSError, ValueError, KeyError):  # no /proc/stat, or another layout
        return None
    times = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), times.user + times.system


class _OthersBusy:
    """Looks, photo by photo, whether other programs kept `OTHERS_BUSY_CORES` or more of this process's cores busy
    (their busy CPU seconds less this process's, over the seconds between two looks): at the first look, which
    decides how the run starts, or at two looks in a row (one look in some hundreds reads busy on an idle machine).
    The cores are those this process may run on when the run starts."""

    def __init__(self, read=cpu_seconds, clock=time.monotonic):
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None  # None: not Linux
        self.read, self.clock = (lambda: read(cores)), clock
        self.last = (clock(), self.read())
        self.looks, self.busy_before = 0, False

    def look(self):
        """True if other programs are busy (looks under `OTHERS_MIN_SECONDS` after the last one do not count)."""
        now, reading = self.clock(), self.read()
        then, before = self.last
        if now - then < OTHERS_MIN_SECONDS:
            return False  # too short to count: measured at the next look, from the same start
        self.last = (now, reading)
        busy = (
            reading is not None
            and before is not None
            and (reading[0] - before[0]) - (reading[1] - before[1]) >= OTHERS_BUSY_CORES * (now - then)
        )
        verdict = busy and (self.looks == 0 or self.busy_before)
        self.looks, self.busy_before = self.looks + 1, busy
        return verdict


class _Starvation:
    """Looks at a low-priority writer while the run waits for it: starved once runnable at every look over the last
    `STARVED_AFTER_SECONDS` and on a core for less than `STARVED_SHARE` of that time. (Linux's schedstat adds a
    thread's wait for a core only once it gets one: at nice 19 beside busy programs, 0.3-4.5 s late.) A writer
    held back by a cgroup's CPU quota or a hypervisor looks starved too: one write is done again at normal
    priority, as are the rest of the run's, which costs that one write."""

    def __init__(self, thread, activity=thread_activity, clock=time.monotonic):
        self.thread, self.activity, self.clock = thread, activity, clock
        self.looks = []  # (seconds, CPU seconds) of the looks since the writer last was not runnable

    def look(self):
        """Looks once; True if the writer is starved."""
        now, activity = self.clock(), self.activity(self.thread)
        if activity is None or not activity[0]:
            self.looks = []
            return False
        self.looks.append((now, activity[1]))
        old_enough = [look for look in self.looks if now - look[0] >= STARVED_AFTER_SECONDS]
        if not old_enough:
            return False
        self.looks = self.looks[len(old_enough) - 1 :]  # the latest look old enough, and those after it
        then, cpu_then = old_enough[-1]
        return activity[1] - cpu_then < STARVED_SHARE * (now - then)


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
    painting leaves a core idle. That holds while nothing else runs: where
    other programs keep half a core busy during the first painting, or
    between photos twice in a row, the run writes at normal priority, since a
    nice-19 writer they keep from the cores stalls the run whenever it holds
    Python's GIL (`OTHERS_BUSY_CORES`).
    When a painting is done before the previous write, the main thread waits
    and the writer has the cores to itself; if instead it stays runnable for
    a tenth of a second but is on a core for less than half of it (other
    programs started), that write is abandoned (at its next piece of the
    file, its temporary file removed) and done again at normal priority, as
    are the rest of the run's.

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
    """Two one-thread pools: writes at nice 19 (where `CAN_YIELD`) until other programs keep the cores busy or one
    starves, then at normal priority."""

    def __init__(self, report):
        self.report = report
        self.yielding = CAN_YIELD
        self.low_thread = None  # the low-priority writer (`this_thread()` there), once it runs at nice 19
        self.low = (
            concurrent.futures.ThreadPoolExecutor(1, "cin-style-writer", initializer=self._lower) if CAN_YIELD else None
        )
        self.normal = concurrent.futures.ThreadPoolExecutor(1, "cin-style-writer")
        for pool in (self.low, self.normal):  # their threads now: a Ctrl-C in a later submit starts none
            if pool is not None:
                pool.submit(int).result()
        self.others_busy = _OthersBusy()  # from now: its first look spans the first painting

    def _lower(self):  # on the low pool's thread, once
        from cin_style import image_io

        image_io.image_format("x.png")  # Pillow's plugins imported now, not at nice 19 holding import locks and the GIL
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # refused (a sandbox): it writes at normal priority, waited for plainly
            return
        self.low_thread = this_thread()

    def submit(self, path, output, painting):
        if self.yielding and self.others_busy.look():
            self.yielding = False  # for the rest of the run
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
        if thread is None:
            concurrent.futures.wait([write.future])
            return True
        starvation = _Starvation(thread, thread_activity)  # looked up here, so that a test's stand-in applies
        starvation.look()
        while not concurrent.futures.wait([write.future], timeout=CHECK_SECONDS).done:
            if starvation.look():
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
