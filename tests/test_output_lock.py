"""The output folder's lock: one run at a time, taken atomically, released however the holder ends."""

import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from cin_style.output_lock import LOCK_FILE, OutputDirBusyError, folder_lock

#: Races of `CONTENDERS` processes, each against a stale lock file.
TRIALS = 20
CONTENDERS = 3


def _reaped_pid():
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _removing_after_a_pause(remove):
    def slow(path, *args, **kwargs):
        time.sleep(0.01)
        return remove(path, *args, **kwargs)

    return slow


def _contend(root, start, done, results):
    """Each trial: wait for the others, try the lock of `root/<trial>`, hold it until every contender has tried.

    Every file removal waits 10 ms first, as a process preempted there would: a lock that removes
    a stale lock file it has read, then creates its own, was held by two in 2-8 of 150 such races
    without the pause, and in nearly every one with it.
    """
    os.remove = _removing_after_a_pause(os.remove)
    for trial in range(TRIALS):
        start.wait()
        try:
            with folder_lock(os.path.join(root, str(trial))):
                results.put((trial, True))
                done.wait()
        except OutputDirBusyError:
            results.put((trial, False))
            done.wait()


def test_processes_racing_for_a_stale_lock_never_both_hold_it(tmp_path):
    stale = str(_reaped_pid())  # a run killed while it held the folder
    for trial in range(TRIALS):
        (tmp_path / str(trial)).mkdir()
        (tmp_path / str(trial) / LOCK_FILE).write_text(stale)
    context = multiprocessing.get_context("spawn")
    start, done, results = context.Barrier(CONTENDERS), context.Barrier(CONTENDERS), context.Queue()
    contenders = [
        context.Process(target=_contend, args=(str(tmp_path), start, done, results)) for _ in range(CONTENDERS)
    ]
    for process in contenders:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(TRIALS * CONTENDERS)]
    for process in contenders:
        process.join(timeout=60)
        assert process.exitcode == 0
    winners = [sum(won for trial, won in outcomes if trial == t) for t in range(TRIALS)]
    assert winners == [1] * TRIALS
    assert not [trial for trial in range(TRIALS) if (tmp_path / str(trial) / LOCK_FILE).exists()]  # released


def _holds(folder):
    """Whether another process is refused `folder`'s lock right now."""
    probe = (
        "import sys\nfrom cin_style.output_lock import OutputDirBusyError, folder_lock\n"
        "try:\n    with folder_lock(sys.argv[1]):\n        pass\nexcept OutputDirBusyError:\n    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", probe, str(folder)], timeout=120).returncode == 3


def test_a_nested_lock_in_one_process_is_refused_and_the_outer_one_stays_held(tmp_path):
    from cin_style.checkpoints import output_dir_lock  # a training run's: the lock, then its clean-up

    with output_dir_lock(tmp_path):
        with pytest.raises(
            OutputDirBusyError, match=f"in use by another training run \\(this process, pid {os.getpid()}\\)"
        ):
            with output_dir_lock(tmp_path):
                pass
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
        assert _holds(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()
    assert not _holds(tmp_path)


def test_the_model_and_training_modules_import_where_fcntl_does_not_exist():
    code = (
        "import sys; sys.modules['fcntl'] = None; import cin_style.model_io, cin_style.training, cin_style.checkpoints"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
