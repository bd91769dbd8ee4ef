"""One writer per project: an OS lock on ``project.sqlite.lock``.

SQLite alone would keep two writers from corrupting the database, but two
app windows interleaving their undo stacks would still confuse the user. So
a writer takes an exclusive, non-blocking ``flock`` on a lock file next to
the database and writes its pid and host name into it, for the message the
second writer gets. The OS drops the lock when the process dies (even by
SIGKILL), so a stale lock file is harmless and is never deleted (deleting a
lock file races with a process that is opening it).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from tagger_gui.core.errors import ProjectError, ProjectLockedError

__all__ = ["ProjectLock"]


class ProjectLock:
    """An exclusive advisory lock on ``path``, released by :meth:`release` or by death.

    Parameters
    ----------
    path : path-like
        The lock file (created if missing).
    what : str
        How to name the locked thing in messages (the project folder).
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`ProjectLockedError` naming the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ProjectError(
                f"cannot open the project {self.what} for writing: {self.path} cannot be "
                f"created ({exc.strerror}); open it read-only instead"
            ) from None
        try:
            _lock(fd)
        except (BlockingIOError, PermissionError):
            holder = _read_holder(fd)
            os.close(fd)
            raise ProjectLockedError(
                f"project is open elsewhere ({holder}): {self.what}. Close the other "
                "tagger window or command, or open the project read-only."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the message of the next one to try.
        info = f"{os.getpid()} {socket.gethostname()}\n".encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, info)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (closing the descriptor drops it). Idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 256).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if len(text) >= 2:
        return f"pid {text[0]} on host {text[1]}"
    return "by a process that is starting"
