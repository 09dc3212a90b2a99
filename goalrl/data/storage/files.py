"""Crash-safe file primitives of the writer: atomic replace, full writes, the writer lock.

Also ``DeferSigint``, which holds Ctrl-C until an append has finished.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import threading
from pathlib import Path
from typing import Any

from goalrl.data.storage.format import LOCK_FILE, TMP_PREFIX, DatasetError

fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class FolderLock:
    """Exclusive flock on <root>/.writer.lock: one writer (or repair) per dataset at a time.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DatasetError(f"{self.path}: another writer has this dataset open") from None
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the flock
            self.fd = -1


class DeferSigint:
    """Hold Ctrl-C until the block ends, so an append is never half-applied in memory.

    The on-disk commit is atomic anyway; this keeps the writer object consistent for code
    that catches KeyboardInterrupt and goes on. Only possible in the main thread.
    """

    def __enter__(self) -> DeferSigint:
        self._received = False
        self._installed = False
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous: Any = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except ValueError:  # e.g. not the main interpreter
                pass
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self._received = True

    def __exit__(self, *exc: Any) -> None:
        if not self._installed:
            return
        if self._previous is None:  # installed from C: the best we can do is Python's default
            self._previous = signal.default_int_handler
        signal.signal(signal.SIGINT, self._previous)
        if self._received:
            if callable(self._previous):
                self._previous(signal.SIGINT, None)
            elif self._previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)
