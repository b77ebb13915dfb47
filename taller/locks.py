"""Locks between processes: one holder at a time of a chat thread, a model's training, a run folder.

A lock is ``fcntl.flock`` on a small lock file under the data folder. The kernel drops it when
its holder exits, however it exits (``kill -9`` included), so a dead process never leaves a lock
held and nothing has to clean stale locks up. While held, the file says who holds it (pid, what
for, since when) so that a refusal can name the other process: "thread T is busy in another
process (pid 4242)". Lock files are never deleted: removing one while another process waits on
it would let two holders in.

``flock`` locks belong to an open file, not to a process, so two :class:`FileLock` objects on
one path exclude each other inside one process too (two threads of the server, say).

On a system without ``fcntl`` (Windows) locks are not taken: every acquire succeeds, and only
the in-process guards remain (see docs/trainers.md and docs/protocol.md).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from taller.errors import TallerError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCKS_WORK", "FileLock", "LockBusyError", "holder_of", "is_locked"]

LOCKS_WORK = fcntl is not None  # False on Windows: acquire always succeeds, is_locked says False

# A probe (is_locked) holds a shared lock for an instant; an acquire that meets one retries for
# this long before calling the lock busy.
PROBE_GRACE_S = 0.5
POLL_S = 0.05


class LockBusyError(TallerError):
    """Someone else holds the lock; ``holder`` is what the lock file says about them (or None)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


class FileLock:
    """An exclusive lock on ``path`` for this object's holder (not re-entrant)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._keep_note = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait_s: float = 0.0, note: str = "", stop: Callable[[], bool] | None = None) -> bool:
        """Take the lock, waiting up to ``wait_s`` seconds; False when someone else still holds it.

        ``note`` says what the holder does (written into the lock file for messages); ``stop``,
        polled while waiting, gives up early when it returns True.
        """
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        fd = _open(self.path)
        if fcntl is None:  # pragma: no cover - no locks on this system
            self._fd = fd
            return True
        deadline = time.monotonic() + max(wait_s, PROBE_GRACE_S)
        try:
            while not _try_flock(fd, fcntl.LOCK_EX):
                if time.monotonic() >= deadline or (stop is not None and stop()):
                    os.close(fd)
                    return False
                time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._keep_note = False
        info = json.dumps({"pid": os.getpid(), "note": note, "since": time.time()}).encode()
        try:  # only for messages: a full disk must not stop the lock from working
            os.ftruncate(fd, 0)
            os.pwrite(fd, info, 0)
        except OSError:
            pass
        return True

    def set_note(self, note: str) -> None:
        """Say what the holder does now (in the lock file, for other processes' messages)."""
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), "note": note, "since": time.time()}).encode()
        try:
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
        except OSError:
            pass

    def leave_note(self, **fields: Any) -> bool:
        """Write ``fields`` (with the holder's pid) into the lock file, to stay there after release.

        The last word of a holder that cannot write anything else: the note overwrites the few
        bytes already in the file, so it usually fits even on a full disk. True when written.
        """
        if self._fd is None:
            return False
        data = json.dumps({"pid": os.getpid(), **fields}, ensure_ascii=False).encode("utf-8")[:3000]
        try:
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
        except OSError:
            return False
        self._keep_note = True
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if not getattr(self, "_keep_note", False):
            try:
                os.ftruncate(fd, 0)  # the file no longer names a holder
            except OSError:
                pass
        self._keep_note = False
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> "FileLock":
        if not self.acquire():
            raise LockBusyError(f"{self.path} is locked by another process", holder_of(self.path))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # an abandoned lock must not stay held by a live process
        try:
            self.release()
        except Exception:
            pass


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some open file (in any process, this one included) holds the lock on ``path``."""
    path = Path(path)
    if fcntl is None or not path.is_file():
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def holder_of(path: str | os.PathLike) -> dict[str, Any] | None:
    """What the lock file says about its holder (``{"pid", "note", "since"}``), or None."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
        info = json.loads(data.decode("utf-8")) if data else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None
