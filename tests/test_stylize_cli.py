"""cin-style-stylize as a user runs it."""

import contextlib
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import STYLE_NAMES, saved_style_model, xla_marks
from PIL import Image

from cin_style.sheets import BACKGROUND, label_height


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


@pytest.fixture(scope="module")
def loaded(model_dir):
    """The test model as a Stylizer, loaded once: the pictures the tool must write."""
    from cin_style import Stylizer

    return Stylizer.load(model_dir)


def stylize_in_a_process(*args):
    """Runs `python -m cin_style.cli.stylize args...` as a process of its own (TensorFlow imported anew, 3-9 s)."""
    return subprocess.run(
        [sys.executable, "-m", "cin_style.cli.stylize", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def stylize(capsys):
    """cin-style-stylize run in this process, answered as `subprocess.run` answers (returncode, stdout, stderr)."""

    def run(*args):
        status, out, err = run_tool(capsys, "stylize", *args)
        return subprocess.CompletedProcess(["cin-style-stylize", *args], status, out, err)

    return run


def test_list_styles(model_dir, stylize):
    result = stylize(f"--model={model_dir}", "--list_styles")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0", STYLE_NAMES[0], "1", STYLE_NAMES[1], "2", STYLE_NAMES[2]]


def test_one_file_by_name_then_refuses_to_overwrite(model_dir, photos, tmp_path, stylize):
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


@pytest.mark.tensorflow_only
def test_precision_bfloat16_paints_what_the_float32_run_paints_to_rounding(model_dir, photos, tmp_path, stylize):
    outputs = {}
    for precision in ("float32", "bfloat16"):
        outputs[precision] = tmp_path / f"{precision}.png"
        args = [f"--model={model_dir}", f"--input={photos / 'kodim23.jpg'}", "--style=munch_the_scream"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a CPU without bfloat16 instructions warns (test_precision)
            result = stylize(*args, f"--output={outputs[precision]}", f"--precision={precision}")
        assert result.returncode == 0, result.stderr[-2000:]
    exact, rounded = (np.asarray(Image.open(outputs[p]), dtype=np.int16) for p in ("float32", "bfloat16"))
    assert 0 < np.abs(exact - rounded).mean() < 2  # uint8 levels
    refused = stylize(f"--model={model_dir}", "--list_styles", "--precision=float16")
    assert refused.returncode != 0 and "--precision" in refused.stderr and "float16" in refused.stderr


@pytest.mark.tensorflow_only
def test_jit_compile_paints_with_xla_what_the_plain_run_paints(model_dir, photos, tmp_path, stylize, monkeypatch):
    from cin_style.stylizer import Stylizer

    loaded, real_load = [], Stylizer.load.__func__

    def load(cls, *args, **kwargs):
        loaded.append(real_load(cls, *args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(Stylizer, "load", classmethod(load))
    args = [f"--model={model_dir}", f"--input={photos / 'kodim23.jpg'}", "--style=munch_the_scream"]
    for name, extra in (("plain", []), ("fused", ["--jit_compile"])):
        result = stylize(*args, f"--output={tmp_path / name}.png", *extra)
        assert result.returncode == 0, result.stderr[-2000:]
    assert [stylizer.jit_compile for stylizer in loaded] == [False, True]
    assert xla_marks(loaded[1]._run)["Conv2D"] == {False} and True in xla_marks(loaded[1]._run)["Mean"]
    assert not hasattr(loaded[0]._run, "tf_function")  # the plain run does not paint through network_painters
    plain, fused = (np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=np.int16) for name in ("plain", "fused"))
    assert np.abs(plain - fused).max() <= 1  # float rounding, seen in uint8 levels


def test_precision_bfloat16_under_another_backend_is_refused_in_one_line(model_dir, photos, tmp_path, stylize):
    import keras

    args = [f"--model={model_dir}", f"--input={photos / 'kodim23.jpg'}", f"--output={tmp_path / 'out.png'}"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.backend, "backend", lambda: "jax")
        refused = stylize(*args, "--style=munch_the_scream", "--precision=bfloat16")
        refused_xla = stylize(*args, "--style=munch_the_scream", "--jit_compile")
    assert refused.returncode == 1 and "under the 'jax' backend it would be slower" in refused.stderr
    assert refused_xla.returncode == 1 and "needs the TensorFlow backend, not 'jax'" in refused_xla.stderr
    for result in (refused, refused_xla):
        assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()


def test_folder_run_reports_failures_and_finishes_the_rest(model_dir, photos, tmp_path):
    # A real process: a run with failures ends with exit status 1 (`main` returns 1, absl's app.run exits with it).
    result = stylize_in_a_process(
        f"--model={model_dir}", f"--input={photos}", "--style=2", f"--output={tmp_path / 'out'}"
    )
    assert result.returncode == 1
    # An index style is named after the style in the output names.
    assert sorted(os.listdir(tmp_path / "out")) == [f"kodim05_{STYLE_NAMES[2]}.png", f"kodim23_{STYLE_NAMES[2]}.png"]
    assert "FAILED" in result.stderr and "broken.jpg' is not an image Pillow can read" in result.stderr
    assert "2 of 3 images stylised" in result.stdout


def _grey_painter(before_painting, side=4):
    """A `paint(path, style)` for `paint_folder` whose paintings are grey `side` x `side` images, made after
    `before_painting(path)` (which may raise to fail that photo)."""

    def paint(path, style):
        def make():
            before_painting(path)
            return np.full((side, side, 3), 0.5, np.float32)

        return make

    return paint


def test_folder_run_writes_each_painting_while_the_next_one_paints(tmp_path, monkeypatch, capsys):
    import threading

    from cin_style import image_io
    from cin_style.cli import _folder as tool

    b_is_painting = threading.Event()
    overlapped = []
    real_write = image_io.write_image

    def write_when_b_paints(output, image, **options):
        if output.endswith("a.png"):  # sequential writing would time out here: b paints after a is written
            overlapped.append(b_is_painting.wait(timeout=5))
        real_write(output, image, **options)

    def before_painting(path):
        if path == "b":
            b_is_painting.set()
        if path == "c":
            raise ValueError("c is broken")

    paint = _grey_painter(before_painting)
    monkeypatch.setattr(tool, "STARVED_AFTER_SECONDS", float("inf"))  # never found starved, however busy
    monkeypatch.setattr(image_io, "write_image", write_when_b_paints)
    work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "abcd"]
    assert tool.paint_folder(work, paint) == [("c", "c is broken")]
    assert overlapped == [True]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "d.png"]
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"wrote {tmp_path / name}.png" for name in "abd"]  # in the inputs' order
    assert err.strip() == f"FAILED {tmp_path / 'c.png'}: c is broken"


def test_folder_run_reports_write_and_paint_failures_in_order_with_one_write_outstanding(tmp_path, monkeypatch, capsys):
    import threading
    import time

    from cin_style import image_io
    from cin_style.cli import _folder as tool

    events, lock = [], threading.Lock()
    real_write = image_io.write_image

    def log(event):
        with lock:
            events.append(event)

    def write(output, image, **options):
        name = os.path.basename(output)[0]
        log(f"write {name}")
        if name == "a":
            raise OSError("disk full")
        if name == "c":
            time.sleep(0.2)  # a slow disk: the painting must not run ahead of the writing
        real_write(output, image, **options)
        log(f"wrote {name}")

    def before_painting(path):
        log(f"paint {path}")
        if path == "b":
            raise ValueError("b is broken")

    paint = _grey_painter(before_painting)
    monkeypatch.setattr(tool, "STARVED_AFTER_SECONDS", float("inf"))  # never found starved, however busy
    monkeypatch.setattr(image_io, "write_image", write)
    work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "abcde"]
    assert tool.paint_folder(work, paint) == [("a", "disk full"), ("b", "b is broken")]
    assert sorted(os.listdir(tmp_path)) == ["c.png", "d.png", "e.png"]
    # d paints while c is written, e only once c is: never two paintings waiting to be written.
    assert events.index("paint d") < events.index("wrote c") < events.index("paint e")
    assert capsys.readouterr().err.splitlines() == [
        f"FAILED {tmp_path / 'a.png'}: disk full",
        f"FAILED {tmp_path / 'b.png'}: b is broken",
    ]


def test_ctrl_c_in_a_folder_run_lets_the_file_being_written_finish(tmp_path, monkeypatch):
    import concurrent.futures
    import time

    from cin_style import image_io
    from cin_style.cli import _folder as tool

    real_write, real_wait = image_io.write_image, concurrent.futures.wait

    def slow_write(output, image, **options):
        time.sleep(0.3)
        real_write(output, image, **options)

    def before_painting(path):
        if path == "b":
            raise KeyboardInterrupt

    paint = _grey_painter(before_painting, side=64)
    interrupts = []

    def wait_interrupted_once(futures, *args, **kwargs):  # a second Ctrl-C while the file is being written
        if not interrupts:
            interrupts.append(1)
            raise KeyboardInterrupt
        return real_wait(futures, *args, **kwargs)

    monkeypatch.setattr(tool, "STARVED_AFTER_SECONDS", float("inf"))  # never found starved, however busy
    monkeypatch.setattr(image_io, "write_image", slow_write)
    monkeypatch.setattr(concurrent.futures, "wait", wait_interrupted_once)
    work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "abc"]
    with pytest.raises(KeyboardInterrupt):
        tool.paint_folder(work, paint)
    assert interrupts == [1]
    assert os.listdir(tmp_path) == ["a.png"]  # finished, and no temporary file left
    assert Image.open(tmp_path / "a.png").size == (64, 64)


def _priority():
    import threading

    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _a_thread_can_lower_its_priority():
    import threading

    from cin_style.cli._folder import CAN_YIELD

    if not CAN_YIELD:  # not Linux, or a thread's state and CPU clock cannot be read
        return False
    lowered = []

    def lower():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            lowered.append(True)
        except OSError:  # a sandbox
            pass

    thread = threading.Thread(target=lower)
    thread.start()
    thread.join()
    return bool(lowered)


needs_yielding_writers = pytest.mark.skipif(
    not _a_thread_can_lower_its_priority(),
    reason="a thread's own CPU priority, state and CPU clock are Linux's (and some sandboxes refuse a lower priority)",
)


@needs_yielding_writers
def test_folder_run_writes_at_the_lowest_cpu_priority_leaving_the_painting_at_its_own(tmp_path, monkeypatch, capsys):
    from cin_style import image_io
    from cin_style.cli import _folder as tool

    real_write, seen = image_io.write_image, {}

    def write(output, image, **options):
        seen[os.path.basename(output)] = _priority()
        real_write(output, image, **options)

    def before_painting(path):
        seen[f"paint {path}"] = _priority()

    monkeypatch.setattr(image_io, "write_image", write)
    monkeypatch.setattr(tool, "STARVED_AFTER_SECONDS", float("inf"))  # never taken over, however busy the machine
    monkeypatch.setattr(tool, "OTHERS_BUSY_CORES", float("inf"))  # nor given up for other programs
    main_priority = _priority()
    if main_priority == 19:
        pytest.skip("pytest runs at nice 19 already: the writer cannot go lower")
    work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "ab"]
    assert tool.paint_folder(work, _grey_painter(before_painting)) == []
    assert seen == {"paint a": main_priority, "paint b": main_priority, "a.png": 19, "b.png": 19}
    assert _priority() == main_priority
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / name}.png" for name in "ab"]


def _starving_b(tmp_path, monkeypatch):
    """`(paint, calls, writer_threads)` for a folder run of a, b, c, d whose low-priority write of b starves: from
    its first piece on, `thread_activity` says its thread is runnable but never on a core. a is written before b
    paints, so it is never waited for; the starved write keeps its temporary file until abandoned."""
    import threading
    import time

    from cin_style import image_io
    from cin_style.cli import _folder as tool

    real_write, calls, lock = image_io.write_image, [], threading.Lock()
    a_written, starving, writer_threads, low_writer = threading.Event(), threading.Event(), set(), []

    def write(output, image, progress=None, **options):
        name = os.path.basename(output)[0]
        with lock:
            calls.append((name, _priority()))
            writer_threads.add(threading.current_thread())
        if name == "a":
            low_writer.append(threading.current_thread())  # the first write is the low-priority writer's
        # Told apart by thread, not by priority: where pytest runs at nice 19, both writers are at 19.
        if name == "b" and threading.current_thread() is low_writer[0]:

            def starved():
                starving.set()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    time.sleep(0.01)
                    try:
                        progress()  # raises once abandoned
                    except Exception:
                        time.sleep(0.3)  # still starved: a while to its next piece, where it stops
                        raise
                raise AssertionError("the starved write was not abandoned")

            real_write(output, image, progress=starved, **options)
            return
        real_write(output, image, progress=progress, **options)
        if name == "a":
            a_written.set()

    def thread_activity(thread):  # the starved writer is runnable all the time, its CPU clock stopped
        return (True, 0.0) if starving.is_set() else (False, 0.0)

    def before_painting(path):
        if path == "b":
            assert a_written.wait(10)

    monkeypatch.setattr(image_io, "write_image", write)
    monkeypatch.setattr(tool, "thread_activity", thread_activity)
    monkeypatch.setattr(tool, "OTHERS_BUSY_CORES", float("inf"))  # yielding, however busy the machine
    return _grey_painter(before_painting), calls, writer_threads


@needs_yielding_writers
def test_a_starved_write_is_done_again_at_normal_priority_as_is_the_rest_of_the_run(tmp_path, monkeypatch, capsys):
    from cin_style.cli import _folder as tool

    paint, calls, writer_threads = _starving_b(tmp_path, monkeypatch)
    work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "abcd"]
    main_priority = _priority()
    assert tool.paint_folder(work, paint) == []
    assert calls == [
        ("a", 19),
        ("b", 19),  # starved
        ("b", main_priority),  # again, at normal priority
        ("c", main_priority),  # and the rest of the run
        ("d", main_priority),
    ]
    assert not any(thread.is_alive() for thread in writer_threads)  # the starved one stopped before the return
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "c.png", "d.png"]  # no temporary file left
    assert all(Image.open(tmp_path / f"{name}.png").size == (4, 4) for name in "abcd")
    assert capsys.readouterr().out.splitlines() == [f"wrote {tmp_path / name}.png" for name in "abcd"]


@needs_yielding_writers
def test_ctrl_c_while_a_starved_write_is_done_again_still_finishes_that_file(tmp_path, monkeypatch):
    import concurrent.futures

    from cin_style.cli import _folder as tool

    paint, calls, _ = _starving_b(tmp_path, monkeypatch)
    real_wait, real_abandon, interrupts, abandoned = concurrent.futures.wait, tool._Write.abandon, [], []

    def abandon(write):
        abandoned.append(write.output)
        return real_abandon(write)

    def interrupted_once_waiting_for_the_new_write(futures, timeout=None, **kwargs):
        if timeout is None and abandoned and not interrupts:  # the first plain wait after b starved: b again
            interrupts.append(1)
            raise KeyboardInterrupt
        return real_wait(futures, timeout=timeout, **kwargs)

    monkeypatch.setattr(tool._Write, "abandon", abandon)
    monkeypatch.setattr(concurrent.futures, "wait", interrupted_once_waiting_for_the_new_write)
    work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "abcd"]
    with pytest.raises(KeyboardInterrupt):
        tool.paint_folder(work, paint)
    assert interrupts == [1] and abandoned == [str(tmp_path / "b.png")]
    assert [name for name, _ in calls] == ["a", "b", "b"]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # b finished after all, no temporary file left
    assert Image.open(tmp_path / "b.png").size == (4, 4)


def test_an_abandoned_write_that_completes_anyway_stays_silent_and_a_finished_one_stays_claimed(
    tmp_path, monkeypatch, capsys
):
    from cin_style import image_io
    from cin_style.cli import _folder as tool

    real_write, reports = image_io.write_image, []
    grey = np.full((4, 4, 3), 0.5, np.float32)
    late = tool._Write("p", str(tmp_path / "late.png"), grey, lambda *args: reports.append(args), low=True)

    def written_then_abandoned(output, image, progress=None, **options):  # abandoned after its last piece
        real_write(output, image, **options)
        assert late.abandon()

    monkeypatch.setattr(image_io, "write_image", written_then_abandoned)
    late.run()
    assert reports == [] and capsys.readouterr().out == ""  # its replacement reports it
    assert (tmp_path / "late.png").exists()
    monkeypatch.setattr(image_io, "write_image", real_write)
    done = tool._Write("q", str(tmp_path / "done.png"), grey, lambda *args: reports.append(args), low=True)
    done.run()
    assert not done.abandon() and done.state == "claimed"
    assert capsys.readouterr().out == f"wrote {tmp_path / 'done.png'}\n"
    done.run()  # submitted twice (a Ctrl-C in its submit): runs once
    assert capsys.readouterr().out == "" and reports == []


def test_writes_yield_wherever_linux_shows_a_threads_state_and_cpu_clock():
    # Probed apart from the code under test: were its reading broken, the tests that need it would skip silently.
    import threading
    import time

    from cin_style.cli._folder import CAN_YIELD

    if not sys.platform.startswith("linux"):
        assert not CAN_YIELD  # elsewhere setpriority would lower the whole process
        return
    readable = os.path.exists(f"/proc/self/task/{threading.get_native_id()}/stat")
    try:
        time.clock_gettime(time.pthread_getcpuclockid(threading.get_ident()))
        clock = True
    except (AttributeError, OSError):  # no such function, or a sandbox refusing the clock
        clock = False
    assert CAN_YIELD == (readable and clock)


@needs_yielding_writers
def test_thread_activity_reads_another_threads_state_and_cpu_clock():
    import hashlib
    import threading
    import time

    from cin_style.cli._folder import this_thread, thread_activity

    threads, release, data = {}, threading.Event(), bytes(1 << 20)

    def block():  # as a writer blocked on a slow disk
        threads["blocked"] = this_thread()
        release.wait()

    def work():  # as a writer encoding: hashing, like Pillow's encoder, runs without the GIL
        threads["working"] = this_thread()
        while not release.is_set():
            hashlib.sha256(data).digest()

    workers = [threading.Thread(target=block), threading.Thread(target=work)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(threads) < 2:
            time.sleep(0.01)
        time.sleep(0.05)
        before = {name: thread_activity(thread) for name, thread in threads.items()}
        # Until the worker has had 0.03 s of a core, however long a busy machine (or pytest at nice 19) takes.
        while thread_activity(threads["working"])[1] - before["working"][1] < 0.03 and time.monotonic() < deadline:
            time.sleep(0.01)
        after = {name: thread_activity(thread) for name, thread in threads.items()}
        looks = [(name, thread_activity(threads[name])) for _ in range(20) for name in threads]  # (may want the GIL)
    finally:
        release.set()
        for worker in workers:
            worker.join()
    assert not any(runnable for name, (runnable, _) in looks if name == "blocked")  # at every look
    assert any(runnable for name, (runnable, _) in looks if name == "working")
    assert after["working"][1] - before["working"][1] >= 0.03  # its own CPU clock runs...
    assert after["blocked"][1] == before["blocked"][1]  # ...not this thread's or the process's


@needs_yielding_writers
def test_thread_activity_reads_a_thread_whose_name_is_cut_inside_a_character():
    # Linux keeps 15 bytes of a thread's name, which may end inside a UTF-8 character (a program named in Cyrillic).
    import threading

    from cin_style.cli._folder import _activity_known, this_thread, thread_activity

    found = []

    def named():
        try:
            with open(f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as comm:
                comm.write("стилизатор".encode()[:15])
        except OSError:  # a sandbox
            return
        found.append(thread_activity(this_thread()))
        found.append(_activity_known())

    thread = threading.Thread(target=named)
    thread.start()
    thread.join()
    if not found:
        pytest.skip("a thread's name cannot be written here")
    assert found[0][0] is True and found[1] is True


def test_a_writer_is_starved_once_runnable_at_every_look_for_a_tenth_of_a_second_with_under_half_a_core():
    from cin_style.cli._folder import STARVED_AFTER_SECONDS, _Starvation

    assert STARVED_AFTER_SECONDS == 0.1

    def looks(*activities):
        """Whether each look, 0.025 s apart, finds the writer starved, given `(runnable, cpu_seconds)` at each."""
        clock, found = iter(0.025 * step for step in range(len(activities))), iter(activities)
        starvation = _Starvation(None, lambda thread: next(found), lambda: next(clock))
        return [starvation.look() for _ in activities]

    stopped = [(True, 1.0)] * 6
    assert looks(*stopped) == [False] * 4 + [True] * 2  # a tenth of a second runnable without a core
    assert looks(*[(True, 1.0 + 0.55 * 0.025 * step) for step in range(8)]) == [False] * 8  # over half a core
    assert looks(*[(True, 1.0 + 0.4 * 0.025 * step) for step in range(6)]) == [False] * 4 + [True] * 2
    asleep_once = stopped[:3] + [(False, 1.0)] + stopped[:4] + stopped[:1]
    assert looks(*asleep_once) == [False] * 8 + [True]  # blocked at a look: the tenth of a second starts again
    assert looks(*[None] * 8) == [False] * 8  # not known (the thread gone): never starved
    # Only the last tenth of a second counts: a writer that had its core, then lost it.
    lost = [(True, 1.0 + 0.025 * step) for step in range(8)] + [(True, 1.175)] * 4  # lost at 0.175 s
    verdicts = looks(*lost)
    assert verdicts[:9] == [False] * 9 and verdicts[10:] == [True, True]  # (at 0.225 s: half a core exactly)


@contextlib.contextmanager
def _busy_programs(count, core=None):
    """`count` programs spinning (on `core` alone where given), started and spinning when the block begins,
    killed when it ends."""
    pin = f"import os\nos.sched_setaffinity(0, {{{core}}})\n" if core is not None else ""
    spin = pin + "print('spinning', flush=True)\nwhile True: pass"
    programs = [subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        for program in programs:
            assert program.stdout.readline() == "spinning\n"
        yield
    finally:
        for program in programs:
            program.kill()
            program.wait()


@needs_yielding_writers
def test_a_write_starved_by_busy_programs_on_its_core_is_noticed_and_done_again_at_normal_priority(
    tmp_path, monkeypatch
):
    # Real threads on a real core: two programs spin on the low-priority writer's core, where at nice 19 it gets a
    # sliver of it (a third even where pytest, and so the two programs, already run at nice 19).
    import hashlib
    import threading
    import time

    from cin_style import image_io
    from cin_style.cli import _folder as tool

    cpu = min(os.sched_getaffinity(0))
    real_lower, real_write, low_thread, calls, data = tool._Writers._lower, image_io.write_image, [], [], bytes(1 << 16)

    def lower_on_that_core(writers):
        os.sched_setaffinity(0, {cpu})  # the calling thread: the low pool's
        low_thread.append(threading.current_thread())
        real_lower(writers)

    def write(output, image, progress=None, **options):  # 60 ms of CPU, as a PNG's encoding, in pieces
        calls.append((os.path.basename(output)[0], threading.current_thread() is low_thread[0], _priority()))
        clock = time.pthread_getcpuclockid(threading.get_ident())
        began = time.clock_gettime(clock)
        while time.clock_gettime(clock) - began < 0.06:
            hashlib.sha256(data).digest()  # without the GIL, as Pillow's encoder
            if progress is not None:
                progress()  # raises once abandoned
        real_write(output, image, **options)

    monkeypatch.setattr(tool._Writers, "_lower", lower_on_that_core)
    monkeypatch.setattr(image_io, "write_image", write)
    monkeypatch.setattr(tool, "OTHERS_BUSY_CORES", float("inf"))  # the load as if it came after the first photo
    grey = np.full((4, 4, 3), 0.5, np.float32)
    with _busy_programs(2, core=cpu):
        work = [(name, 0, str(tmp_path / f"{name}.png")) for name in "ab"]
        assert tool.paint_folder(work, lambda path, style: lambda: grey) == []
    main_priority = _priority()
    # a, waited for at once (b paints in no time), starved and was done again on the normal writer, as was b.
    assert calls == [("a", True, 19), ("a", False, main_priority), ("b", False, main_priority)]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # no temporary file left


def test_other_programs_are_busy_once_they_used_half_a_core_at_the_first_look_or_two_in_a_row():
    from cin_style.cli._folder import OTHERS_BUSY_CORES, OTHERS_MIN_SECONDS, _OthersBusy

    assert (OTHERS_BUSY_CORES, OTHERS_MIN_SECONDS) == (0.5, 0.05)

    def looks(*steps):
        """Each look's verdict, given `(seconds, (machine busy, ours))` at the start and at each look."""
        found = iter(steps)
        step = [None]

        def clock():
            step[0] = next(found)
            return step[0][0]

        others = _OthersBusy(lambda cores: step[0][1], clock)
        return [others.look() for _ in steps[1:]]

    def every_tenth(*others):
        """Looks 0.1 s apart at which this process used 0.15 s of CPU and the others `others` more."""
        busy, steps = 10.0, [(0.0, (10.0, 1.0))]
        for step, extra in enumerate(others, 1):
            busy += 0.15 + extra
            steps.append((0.1 * step, (busy, 1.0 + 0.15 * step)))
        return looks(*steps)

    assert every_tenth(0.06) == [True]  # over half a core at the first look
    assert every_tenth(0.04) == [False]  # 0.4 of a core
    assert every_tenth(0.0, 0.06, 0.0, 0.06, 0.06, 0.06) == [False, False, False, False, True, True]
    # Looks under 0.05 s apart are counted from the same start: others busy 0.03 s of 0.04 s show at the next one.
    assert looks((0.0, (10.0, 1.0)), (0.04, (10.03, 1.0)), (0.06, (10.031, 1.0))) == [False, True]
    # No reading at the start: the first look cannot tell, so two busy looks in a row.
    assert looks((0.0, None), (0.1, (10.2, 1.0)), (0.2, (10.4, 1.0)), (0.3, (10.6, 1.0))) == [False, False, True]


def test_cpu_seconds_counts_this_process_within_the_machines_busy_time():
    import threading
    import time

    from cin_style.cli._folder import cpu_seconds

    if cpu_seconds() is None:
        pytest.skip("no /proc/stat")

    def spin():  # until this thread has had 0.2 s of a core, however long a busy machine takes to give it
        clock, deadline = time.pthread_getcpuclockid(threading.get_ident()), time.monotonic() + 60
        while time.clock_gettime(clock) < 0.2 and time.monotonic() < deadline:
            pass

    before = cpu_seconds()
    spinner = threading.Thread(target=spin)
    spinner.start()
    spinner.join()
    after = cpu_seconds()
    ours, busy = after[1] - before[1], after[0] - before[0]
    assert ours >= 0.18  # the spinning thread's, counted as this process's (to hundredths)
    assert busy >= ours - 0.05  # the cores' busy time holds this process's (to /proc/stat's hundredths)


def test_cpu_seconds_reads_the_cores_this_process_may_run_on_or_the_total_line(tmp_path):
    from cin_style.cli._folder import cpu_seconds

    stat = tmp_path / "stat"
    #              user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(
        "cpu  700 20 100 9000 50 5 5 10 300 0\n"
        "cpu0 300 10 50 4000 20 2 3 5 100 0\n"
        "cpu1 400 10 50 5000 30 3 2 5 200 0\n"
        "intr 12345 0 0\n"
    )

    def busy(cores):
        return cpu_seconds(cores, path=stat)[0] * os.sysconf("SC_CLK_TCK")

    # Guest time is inside user time already; idle and iowait are not busy.
    assert busy({1}) == 400 + 10 + 50 + 3 + 2 + 5
    assert busy({0, 1}) == busy(None) == 700 + 20 + 100 + 5 + 5 + 10  # all of them: the total line
    assert busy({4, 5}) == busy(None)  # numbered apart from the affinity (lxcfs): the total line
    stat.write_text("cpu  700 20 100\ncpu0 300 10 50\n")
    assert cpu_seconds({0}, path=stat) is None  # another layout
    assert cpu_seconds({0}, path=tmp_path / "missing") is None


@needs_yielding_writers
def test_pillows_plugins_are_imported_before_the_writer_lowers_its_priority(tmp_path, monkeypatch):
    from PIL import Image

    from cin_style.cli import _folder as tool

    real_init, inits = Image.init, []

    def init():
        if Image._initialized < 2:  # importing plugins, not a quick return
            inits.append(_priority())
        return real_init()

    monkeypatch.setattr(Image, "_initialized", 0)  # as in a fresh process
    monkeypatch.setattr(Image, "init", init)
    monkeypatch.setattr(tool, "OTHERS_BUSY_CORES", float("inf"))
    monkeypatch.setattr(tool, "STARVED_AFTER_SECONDS", float("inf"))
    grey = np.full((4, 4, 3), 0.5, np.float32)
    assert tool.paint_folder([("a", 0, str(tmp_path / "a.png"))], lambda path, style: lambda: grey) == []
    assert inits == [_priority()]  # once, at the run's own priority


@needs_yielding_writers
def test_a_folder_run_beside_busy_programs_writes_at_normal_priority_from_the_first_photo(tmp_path, monkeypatch):
    import threading
    import time

    from cin_style import image_io
    from cin_style.cli import _folder as tool

    real_lower, real_write, low_thread, written_on = tool._Writers._lower, image_io.write_image, [], []

    def lower(writers):
        low_thread.append(threading.current_thread())
        real_lower(writers)

    def write(output, image, **options):
        written_on.append(threading.current_thread())
        real_write(output, image, **options)

    def paint(path, style):
        time.sleep(0.1)  # long enough for a look at the others' load
        return lambda: np.full((4, 4, 3), 0.5, np.float32)

    monkeypatch.setattr(tool._Writers, "_lower", lower)
    monkeypatch.setattr(image_io, "write_image", write)
    # On this process's cores (their affinity is its): a whole core busy at least.
    with _busy_programs(min(2, len(os.sched_getaffinity(0)))):
        assert tool.paint_folder([(name, 0, str(tmp_path / f"{name}.png")) for name in "abc"], paint) == []
    assert len(low_thread) == 1 and len(written_on) == 3
    assert low_thread[0] not in written_on  # all three at normal priority
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "c.png"]


def test_sheet_shows_the_photo_and_every_style(model_dir, photos, tmp_path, stylize):
    result = stylize(
        f"--model={model_dir}", f"--input={photos / 'kodim05.jpg'}", "--sheet", f"--output={tmp_path / 'sheet.png'}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (32 + label_height(48), 4 * 48, 3)  # photo + 3 styles in one labelled row


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
def test_bad_arguments_fail_with_the_reason(model_dir, photos, tmp_path, stylize, args, message):
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


def test_writing_an_image_with_an_unknown_extension_is_refused_not_written_as_png(tmp_path):
    from cin_style import image_io

    with pytest.raises(ValueError, match=r"Cannot write '\.bmp2' images.*Received: path="):
        image_io.write_image(tmp_path / "x.bmp2", np.zeros((4, 4, 3), np.uint8))
    assert os.listdir(tmp_path) == []
    image_io.write_image(tmp_path / "x.webp", np.zeros((4, 4, 3), np.uint8))
    assert Image.open(tmp_path / "x.webp").format == "WEBP"


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

    def run(capsys, *args):
        return run_tool(capsys, "stylize", *args)

    return run


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
    assert sorted(os.listdir(out)) == [f"b_{STYLE_NAMES[0]}.png", f"d_{STYLE_NAMES[0]}.png"]
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


def test_regions_paint_each_label_in_its_style_and_refuse_labels_without_one(
    model_dir, photos, tmp_path, stylize, loaded
):
    labels = np.zeros((8, 12), np.uint8)
    labels[:, 6:] = 1  # right half; resized to the 48x32 photo
    Image.fromarray(labels).save(tmp_path / "labels.png")
    photo = str(photos / "kodim05.jpg")
    output = tmp_path / "regions.png"
    common = [f"--model={model_dir}", f"--input={photo}", f"--regions={tmp_path / 'labels.png'}"]
    result = stylize(*common, f"--style=0:{STYLE_NAMES[0]},1:2", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = loaded.stylize(photo, regions=(labels, {0: STYLE_NAMES[0], 1: 2}))
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(expected))
    missing = stylize(*common, f"--style=0:{STYLE_NAMES[0]}", f"--output={tmp_path / 'missing.png'}")
    assert missing.returncode == 1 and "--regions: Labels [1] of the label image have no style" in missing.stderr
    malformed = stylize(*common, "--style=sky:1", f"--output={tmp_path / 'malformed.png'}")
    assert malformed.returncode == 1 and "each part must look like label:style" in malformed.stderr
    assert not (tmp_path / "missing.png").exists() and not (tmp_path / "malformed.png").exists()


def test_scale_and_histogram_colors_reach_the_stylizer(model_dir, photos, tmp_path, stylize, loaded):
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
    expected = loaded.stylize(photo, 1, scale=1.5, preserve_color="histogram")
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(expected))


@pytest.mark.tensorflow_only
def test_model_slim_picks_the_bundled_slim_model_with_the_default_models_styles(stylize):
    from cin_style.bundled import SLIM_MODEL_NAME, bundled_model_path
    from cin_style.metadata import read_metadata

    default, slim = (read_metadata(bundled_model_path(name)) for name in ("cin_style_default", SLIM_MODEL_NAME))
    assert slim["alpha"] == 0.25 and default["alpha"] == 1.0
    result = stylize("--model=slim", "--list_styles")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[1::2] == default["style_names"] == slim["style_names"]


def _two_photos(folder, photos):
    folder.mkdir()
    for name in ("kodim05", "kodim23"):
        shutil.copy(photos / f"{name}.jpg", folder / f"{name}.jpg")
    return folder


def test_a_list_of_styles_writes_one_output_per_photo_and_style_named_after_the_style(
    model_dir, photos, tmp_path, run_main, capsys, loaded
):
    tree, out = _two_photos(tmp_path / "in", photos), tmp_path / "out"
    status, stdout, stderr = run_main(
        capsys, f"--model={model_dir}", f"--input={tree}", "--style=munch_the_scream,0", f"--output={out}"
    )
    assert status == 0, stderr[-2000:]
    assert "4 of 4 images stylised" in stdout
    stylizer = loaded
    for photo in ("kodim05", "kodim23"):
        for style in ("munch_the_scream", "hokusai_great_wave"):  # index 0 is hokusai_great_wave
            expected = np.asarray(stylizer.stylize(str(tree / f"{photo}.jpg"), style))
            np.testing.assert_array_equal(np.asarray(Image.open(out / f"{photo}_{style}.png")), expected)
    assert len(os.listdir(out)) == 4

    # One photo in several styles: one file each in the --output folder; an image file name is refused.
    one = tmp_path / "one"
    status, stdout, stderr = run_main(
        capsys, f"--model={model_dir}", f"--input={tree / 'kodim05.jpg'}", "--style=1,2", f"--output={one}"
    )
    assert status == 0, stderr[-2000:]
    assert sorted(os.listdir(one)) == [f"kodim05_{STYLE_NAMES[1]}.png", f"kodim05_{STYLE_NAMES[2]}.png"]
    status, _, stderr = run_main(
        capsys,
        f"--model={model_dir}",
        f"--input={tree / 'kodim05.jpg'}",
        "--style=1,2",
        f"--output={tmp_path / 'x.png'}",
    )
    assert status == 1 and "--output must be a folder" in stderr and not (tmp_path / "x.png").exists()
    status, _, stderr = run_main(
        capsys, f"--model={model_dir}", f"--input={tree}", "--style=1,,2", f"--output={tmp_path / 'bad'}"
    )
    assert status == 1 and "a list of styles needs a name or index between each comma" in stderr
    # One style twice, by index and by name (or 1 and 01): refused, not painted once and then "skipped".
    for listed in (f"1,{STYLE_NAMES[1]}", "1,01"):
        status, _, stderr = run_main(
            capsys, f"--model={model_dir}", f"--input={tree}", f"--style={listed}", f"--output={tmp_path / 'twice'}"
        )
        assert status == 1 and f"{STYLE_NAMES[1]} listed more than once" in stderr, stderr[-2000:]
        assert not (tmp_path / "twice").exists()


def test_second_folder_run_skips_existing_outputs_with_one_summary_line_and_exits_0(
    model_dir, photos, tmp_path, run_main, capsys
):
    tree, out = _two_photos(tmp_path / "in", photos), tmp_path / "out"
    args = [f"--model={model_dir}", f"--input={tree}", "--style=munch_the_scream", f"--output={out}"]
    status, stdout, stderr = run_main(capsys, *args)
    assert status == 0 and "2 of 2 images stylised" in stdout, stderr[-2000:]
    written = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    (out / "kodim23_munch_the_scream.png").unlink()

    status, stdout, stderr = run_main(capsys, *args)
    assert status == 0, stderr[-2000:]
    assert "FAILED" not in stderr and "failed" not in stderr
    assert stdout.splitlines()[-1] == (
        f"1 of 2 images stylised into {out}; 1 skipped (outputs exist; --overwrite to redo)"
    )
    assert (out / "kodim05_munch_the_scream.png").stat().st_mtime_ns == written["kodim05_munch_the_scream.png"]
    assert (out / "kodim23_munch_the_scream.png").exists()

    status, stdout, stderr = run_main(capsys, *args, "--overwrite")
    assert status == 0 and stdout.splitlines()[-1] == f"2 of 2 images stylised into {out}", stderr[-2000:]


def test_sheet_of_chosen_styles_names_each_picture(model_dir, photos, tmp_path, run_main, capsys, loaded):
    photo = str(photos / "kodim05.jpg")
    status, _, stderr = run_main(
        capsys,
        f"--model={model_dir}",
        f"--input={photo}",
        "--sheet",
        "--style=munch_the_scream,0",
        f"--output={tmp_path / 'sheet.png'}",
    )
    assert status == 0, stderr[-2000:]
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    label = label_height(48)
    assert sheet.shape == (32 + label, 3 * 48, 3)  # the photo and the two chosen styles, not all three
    stylizer = loaded
    for column, style in ((1, "munch_the_scream"), (2, STYLE_NAMES[0])):
        np.testing.assert_array_equal(
            sheet[:32, 48 * column : 48 * (column + 1)], np.asarray(stylizer.stylize(photo, style))
        )
    strips = [sheet[32:, 48 * c : 48 * (c + 1)] for c in range(3)]
    assert all((strip != BACKGROUND).any() for strip in strips)
    assert not np.array_equal(strips[1], strips[2])


@pytest.mark.parametrize("name", ["x.bmp2", "x"])
def test_output_without_an_image_extension_is_refused_before_any_work(
    model_dir, photos, tmp_path, run_main, capsys, monkeypatch, name
):
    from cin_style.stylizer import Stylizer

    def no_painting(*args, **kwargs):
        raise AssertionError("painted before the output was checked")

    monkeypatch.setattr(Stylizer, "stylize", no_painting)
    monkeypatch.setattr(Stylizer, "stylize_all", no_painting)
    for extra in (["--style=0"], ["--sheet"]):
        status, _, stderr = run_main(
            capsys, f"--model={model_dir}", f"--input={photos / 'kodim05.jpg'}", *extra, f"--output={tmp_path / name}"
        )
        assert status == 1
        assert "--output must end in an image extension such as .png, .jpg or .webp" in stderr, stderr[-2000:]
        assert f"Received: --output={tmp_path / name}" in stderr
    assert os.listdir(tmp_path) == []


def test_regions_take_a_default_style_for_labels_without_one(model_dir, photos, tmp_path, run_main, capsys, loaded):
    labels = np.zeros((8, 12), np.uint8)
    labels[:, 6:] = 1
    Image.fromarray(labels).save(tmp_path / "labels.png")
    photo = str(photos / "kodim05.jpg")
    common = [f"--model={model_dir}", f"--input={photo}", f"--regions={tmp_path / 'labels.png'}"]
    status, _, stderr = run_main(capsys, *common, f"--style=0:{STYLE_NAMES[0]}", f"--output={tmp_path / 'no.png'}")
    assert status == 1 and "have no style" in stderr and "--default_style" in stderr, stderr[-2000:]
    output = tmp_path / "regions.png"
    status, _, stderr = run_main(
        capsys, *common, f"--style=0:{STYLE_NAMES[0]}", "--default_style=2", f"--output={output}"
    )
    assert status == 0, stderr[-2000:]
    expected = loaded.stylize(photo, 2, regions=(labels, {0: STYLE_NAMES[0]}))
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(expected))
    # Label 1 is painted in style 2, not left unpainted or in style 0.
    assert not np.array_equal(np.asarray(expected), np.asarray(loaded.stylize(photo, 0)))


def test_a_folder_input_into_an_existing_file_fails_in_one_line_and_writes_nothing(
    model_dir, photos, tmp_path, stylize
):
    taken = tmp_path / "painted.png"
    taken.write_bytes(b"mine")
    result = stylize(f"--model={model_dir}", f"--input={photos}", "--style=0", f"--output={taken}")
    assert result.returncode == 1
    assert f"--output {taken} is a file, but this run writes into a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert taken.read_bytes() == b"mine" and sorted(os.listdir(tmp_path)) == ["painted.png"]


@pytest.mark.parametrize(
    "styles_file, message",
    [
        ('{"style_names": ["a", "b"]}', "styles.json' names 2 styles but the model holds 3"),
        ('{"style_names": ["a", "b"', "cannot be read as JSON"),
    ],
)
def test_list_styles_of_a_model_whose_styles_file_does_not_fit_fails_in_one_line(
    model_dir, tmp_path, stylize, styles_file, message
):
    shutil.copy(model_dir / "model.keras", tmp_path / "model.keras")  # the module's model, with styles.json broken
    (tmp_path / "styles.json").write_text(styles_file)
    result = stylize(f"--model={tmp_path}", "--list_styles")
    assert result.returncode == 1 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


def test_list_styles_of_a_saved_model_with_bad_metadata_fails_in_one_line(tmp_path, stylize):
    version = tmp_path / "served" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")  # the metadata is read first, so the graph is never opened
    (version / "cin_style.json").write_text('{"format": "1", "style_names": ["a", "b"]}')
    result = stylize(f"--model={tmp_path / 'served'}", "--list_styles")
    assert result.returncode == 1 and result.stdout == ""
    assert "bad metadata format: a positive integer is expected. Received: '1'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.tensorflow_only  # the tool's plumbing; refining runs under JAX in test_refine
def test_refine_paints_what_the_stylizer_refines_and_is_refused_where_it_cannot(
    model_dir, photos, tmp_path, stylize, loaded, shared_data
):
    from cin_style import Stylizer
    from cin_style.paintings import write_paintings

    carrying = tmp_path / "carrying"
    shutil.copytree(model_dir, carrying)
    write_paintings(carrying / "paintings", [shared_data / "styles" / f"{name}.jpg" for name in STYLE_NAMES], 48)
    photo, out = str(photos / "kodim05.jpg"), tmp_path / "refined.png"
    result = stylize(f"--model={carrying}", f"--input={photo}", "--style=1", "--refine=2", f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    refined = np.asarray(Image.open(out), np.int16)
    expected = np.asarray(Stylizer.load(carrying).stylize(photo, 1, refine=2, verbose=0), np.int16)
    assert np.abs(refined - expected).max() <= 1
    assert np.abs(refined - np.asarray(loaded.stylize(photo, 1), np.int16)).mean() > 0.5  # refining changed it
    refused = [
        ([f"--model={model_dir}", "--style=1"], "carries no painting for style 1 ('munch_the_scream')"),
        ([f"--model={carrying}", "--style=1", "--sheet"], "--refine paints one picture at a time"),
        ([f"--model={carrying}", "--style=7"], "Style index 7 is out of range"),
    ]
    for args, message in refused:
        result = stylize(*args, f"--input={photo}", "--refine=2", f"--output={tmp_path / 'no.png'}")
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr[-2000:])
    labels = tmp_path / "labels.png"
    Image.fromarray(np.zeros((8, 12), np.uint8)).save(labels)
    result = stylize(
        f"--model={carrying}",
        f"--input={photo}",
        f"--regions={labels}",
        "--style=0:1",
        "--refine=2",
        f"--output={tmp_path / 'no.png'}",
    )
    assert result.returncode == 1 and "--refine paints one style or blend over the whole photo" in result.stderr
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read: refused first")
    result = stylize(
        f"--model={carrying}", f"--input={clip}", "--style=1", "--refine=2", f"--output={tmp_path / 'v.mp4'}"
    )
    assert result.returncode == 1 and "too slow for every frame of a video" in result.stderr
    missing = tmp_path / "nowhere.h5"
    result = stylize(
        f"--model={carrying}",
        f"--input={photo}",
        "--style=1",
        "--refine=2",
        f"--vgg_weights={missing}",
        f"--output={tmp_path / 'no.png'}",
    )
    assert result.returncode == 1 and str(missing) in result.stderr
    assert not (tmp_path / "no.png").exists() and not (tmp_path / "v.mp4").exists()
