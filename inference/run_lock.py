"""One run per checkpoint folder: an exclusive OS lock held for the whole run.

Two runs writing one folder would overwrite each other's state and history, and both would
finish with exit status 0. So a run with a checkpoint folder holds an exclusive lock on the
file ``DIR/run.lock`` from before it reads or prepares the folder until it ends:

* the lock is the operating system's (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
  Windows), taken without waiting; the kernel drops it when the process ends, however it ends
  (an exception, Ctrl-C, SIGKILL, a crash), so the lock of a killed run never blocks
  ``resume``: what is left is a file that nothing holds;
* while held, the file says who holds it (pid, host, start time, command line), and a second
  run is refused with :class:`FolderInUseError` naming that holder;
* on release the file is emptied, unlocked and closed; it is never deleted (deleting a lock
  file races with a run that has just opened it, and would give two holders).

A ``flock`` lock belongs to one open file, so two runs in one process (threads) exclude each
other too. Locks on network file systems are only as good as the server's support for them.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from pathlib import Path
from types import TracebackType

from .run_state import LOCK_FILE, CheckpointError

__all__ = ["FolderLock", "FolderInUseError", "LOCK_FILE"]

_WINDOWS_OFFSET = 1 << 20  # Windows locks a byte range: one byte past the holder's details,
#                            so another process can still read them


class FolderInUseError(CheckpointError):
    """Another run holds the checkpoint folder's lock."""


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when another holds it."""
    if os.name == "nt":  # pragma: no cover (tested on POSIX)
        import msvcrt
        os.lseek(fd, _WINDOWS_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover (tested on POSIX)
        import msvcrt
        os.lseek(fd, _WINDOWS_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    """Who holds the lock, in words, from the details it wrote."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"pid {info['pid']} on host {info['host']}, started {info['started']}"
                f" ({info['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that has not yet written its pid and host"


class FolderLock:
    """The exclusive lock on checkpoint folder ``folder`` (see the module notes).

    ``with FolderLock(folder): ...`` takes it or raises :class:`FolderInUseError` naming the
    holder; the folder is created first when ``create`` (a fresh run), and the lock is released
    on leaving the block."""

    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.create = create
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The lock file, ``folder/run.lock``."""
        return self.folder / LOCK_FILE

    def acquire(self) -> FolderLock:
        """Take the lock (see the class notes)."""
        if self.folder.exists() and not self.folder.is_dir():
            raise CheckpointError(f"checkpoint path {self.folder} exists and is not a folder")
        if self.create:
            self.folder.mkdir(parents=True, exist_ok=True)
        elif not self.folder.is_dir():
            raise CheckpointError(f"cannot resume: there is no checkpoint folder {self.folder}")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise FolderInUseError(
                f"checkpoint folder {self.folder} is in use by another run ("
                f"{_holder(self.path)}); two runs in one folder would overwrite each other's "
                f"state. Wait for that run to end, or choose another folder")
        details = {"pid": os.getpid(), "host": socket.gethostname(),
                   "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds"),
                   "command": " ".join(sys.argv) or "python"}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(details).encode("utf-8"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the lock file, unlock it and close it (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
