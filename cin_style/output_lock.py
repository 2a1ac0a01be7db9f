"""One run per output folder: an exclusive `flock` on `<folder>/.lock`, held while the run lives.

The kernel grants the lock to one open file at a time, atomically, and
releases it when the holder's process ends, however it ends (a crash, a
SIGKILL): there is no pid to check and nothing stale to take over. The lock
belongs to the open file, not to the process, so a second lock on the same
folder inside one process is refused like any other. Needs `fcntl` (Linux,
macOS); on NFS the lock is only as good as the server's lock manager.
"""

import contextlib
import os

#: The file whose `flock` marks an output folder as in use; it holds the holder's pid (for messages).
LOCK_FILE = ".lock"


class OutputDirBusyError(ValueError):
    """Another live run is writing into the same output folder."""


@contextlib.contextmanager
def folder_lock(folder):
    """Holds `folder` (created if need be) for the caller; a second holder is refused while this one lives.

    The lock file is removed on release; one a killed holder left behind is
    simply taken.

    Raises:
        OutputDirBusyError: If another process, or an enclosing `folder_lock`
            in this one, holds `folder`.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    descriptor = _take(path, folder)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # while still locked: whoever opened this file meanwhile finds it gone, starts over
        os.close(descriptor)


def _take(path, folder):
    """An open descriptor of the file at `path` (created if need be) that holds its exclusive `flock`."""
    import fcntl  # here, not at the top: importing model_io or training must not need it (Windows has none)

    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            who = f"this process, pid {holder}" if holder == str(os.getpid()) else f"pid {holder}"
            raise OutputDirBusyError(
                f"{folder} is in use by another training run ({who}); wait for it to finish, stop it, or "
                "choose another output folder"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        # A holder that let go between our open and our lock had removed this file first: the lock
        # that counts is on the file now at `path` (or on none yet), so start over.
        try:
            current = os.path.samestat(os.fstat(descriptor), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            return descriptor
        os.close(descriptor)


__all__ = ["LOCK_FILE", "OutputDirBusyError", "folder_lock"]
