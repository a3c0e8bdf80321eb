"""Cross-process locks (``flock`` on lock-bucket files) and the watch counter.

A lock is waited for with short sleeps up to a deadline, then reported as
:class:`BackendUnavailableError` naming the lock file — never skipped. ``flock`` locks
belong to an open file description, so every acquisition opens its own descriptor: two
threads of one process exclude each other exactly like two processes. Buckets are always
taken in ascending order, so holders of several never deadlock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from ...core.errors import BackendUnavailableError
from ._dirs import opened_dir
from ._fsio import open_regular

__all__ = ["BucketLocks", "ChangeCounter", "flock_until"]

_FIRST_SLEEP = 0.00005
_MAX_SLEEP = 0.002


def flock_until(fd: int, path: str, deadline: float, timeout: float) -> None:
    """Take an exclusive ``flock`` on ``fd``, waiting until ``deadline`` (monotonic)."""
    delay = _FIRST_SLEEP
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackendUnavailableError(
                    f"file store lock {path} stayed held by another writer for {timeout:g}s; "
                    "retry, or raise the wait with ?timeout=SECONDS in the store URL"
                ) from None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_SLEEP)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot lock {path}: {exc}; the file store needs a local filesystem "
                "that supports flock()"
            ) from exc


def open_created(path: str) -> int:
    """Open (creating) a small file of statebox's own, never through a symlink: a lock
    file or the change counter planted as a link would make us create or overwrite
    someone else's file."""
    with opened_dir(os.path.dirname(path), create=True) as dir_fd:
        return open_regular(path, os.O_RDWR | os.O_CREAT, dir_fd=dir_fd)


class BucketLocks:
    def __init__(self, lock_path: Callable[[int], str], locks_dir: str, timeout: float) -> None:
        self._path = lock_path
        self._dir = locks_dir
        self.timeout = timeout

    def deadline(self) -> float:
        return time.monotonic() + self.timeout

    def _open(self, path: str) -> int:
        try:
            return open_created(path)
        except OSError as exc:
            raise BackendUnavailableError(f"cannot open lock file {path}: {exc}") from exc

    @contextmanager
    def hold(self, buckets: Iterable[int], deadline: float | None = None) -> Iterator[None]:
        """Hold every bucket (taken in ascending order) for the ``with`` block."""
        if deadline is None:
            deadline = self.deadline()
        held: list[int] = []
        try:
            for bucket in sorted(set(buckets)):
                path = self._path(bucket)
                fd = self._open(path)
                try:
                    flock_until(fd, path, deadline, self.timeout)
                except BaseException:
                    os.close(fd)
                    raise
                held.append(fd)
            yield
        finally:
            for fd in reversed(held):
                os.close(fd)  # closing the last descriptor releases its flock


class ChangeCounter:
    """Two 64-bit counters in one small file: every commit, and journaled commits.

    Bumped under its own ``flock`` (held for microseconds, never while waiting for
    another lock); read without a lock, so a watcher's poll is one ``pread``.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._fd: int | None = None
        self._pid = 0
        self._mutex = threading.Lock()

    def _file(self) -> int:
        # After a fork the inherited descriptor would share its flock with the parent.
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = open_created(self._path)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot open the change counter {self._path}: {exc}"
                ) from exc
            self._pid = os.getpid()
        return self._fd

    def read(self) -> tuple[int, int]:
        """(commits, journaled commits)."""
        data = os.pread(self._file(), 16, 0).ljust(16, b"\0")
        return int.from_bytes(data[:8], "little"), int.from_bytes(data[8:], "little")

    def bump(self, journaled: bool) -> None:
        with self._mutex:
            fd = self._file()
            deadline = time.monotonic() + self._timeout
            flock_until(fd, self._path, deadline, self._timeout)
            try:
                commits, journals = self.read()
                data = ((commits + 1) % 2**64).to_bytes(8, "little") + (
                    (journals + int(journaled)) % 2**64
                ).to_bytes(8, "little")
                os.pwrite(fd, data, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None
