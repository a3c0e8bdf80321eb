"""Dagu's own record locks, taken inside statebox's ``flock`` so the two never interleave.

Dagu guards every write of record ``R`` (``v1/<scope>/<hex ns>/<hex key>``) with a
directory lock ``.../.dagu_lock``: it creates it with ``mkdir`` (which fails while another
holder has it), writes a random ``owner`` token file into it, and releases it by renaming
it to ``.dagu_lock.releasing.<pid>.<hex>`` and removing that. A lock whose directory is
more than 30 seconds old (its mtime) is stale and may be broken the same way; waiters
retry (Dagu every 50 ms). Two forms exist, and statebox takes both:

* the bucket form (Dagu v2.14 and later):
  ``<dir>/.dagu_record_locks/<first byte of sha256(R), %02x>/.dagu_lock``;
* the per-key form (Dagu v2.7.5 to v2.13): ``<dir>/R/.dagu_lock``, in a directory named
  like the record without ``.json``, which stays behind, empty, beside the record.

Holding them across statebox's read-check-write makes each Dagu version and statebox
exclude each other. The order is fixed: statebox's own ``flock`` buckets, then Dagu's
bucket locks by ascending bucket, then the per-key locks by ascending record id; they are
released in reverse. (Each Dagu version takes only one of them, so no order of Dagu's can
deadlock with it.) After a per-key lock is released, its ``<hex key>/`` directory is
removed if the record is gone (a delete, a purge, a failed first write), with the
namespace, scope and ``v1`` directories that leaves empty, as Dagu removes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

from ...core.errors import BackendUnavailableError
from ._dirs import opened_dir, prune_empty_dirs

__all__ = [
    "LEFTOVER_LOCK",
    "LOCKS_DIR",
    "LOCK_NAME",
    "STALE_AFTER",
    "DaguLocks",
    "dagu_bucket",
    "remove_lock_dir",
]

LOCKS_DIR: Final = ".dagu_record_locks"
LOCK_NAME: Final = ".dagu_lock"
OWNER: Final = "owner"
RECORD_SUFFIX: Final = ".json"
#: Lock directories a killed process may leave: one renamed away to be removed (Dagu's
#: and ours), and one statebox prepared to rename into place.
LEFTOVER_LOCK: Final = re.compile(r"\.dagu_lock\.(releasing\.|statebox-)")
#: Seconds after which Dagu treats a lock directory as abandoned.
STALE_AFTER: Final = 30.0
_FIRST_SLEEP: Final = 0.001
_MAX_SLEEP: Final = 0.05  # Dagu's own retry interval
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def dagu_bucket(record_id: str) -> str:
    """The name of the lock bucket Dagu uses for ``record_id``."""
    return f"{hashlib.sha256(record_id.encode()).digest()[0]:02x}"


def _released_name() -> str:
    return f"{LOCK_NAME}.releasing.{os.getpid()}.{secrets.token_hex(8)}"


def _discard(dir_fd: int) -> None:
    """Rename the lock away (as Dagu releases or breaks one), then remove what it held.
    A symlink or file planted under the lock's name is renamed, never followed."""
    released = _released_name()
    try:
        os.rename(LOCK_NAME, released, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        return  # broken or released by someone else meanwhile
    with contextlib.suppress(OSError):  # leftovers are harmless: every reader skips them
        remove_lock_dir(released, dir_fd)


def _write_owner(dir_fd: int, lock_name: str, token: str) -> None:
    lock_fd = os.open(lock_name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(OWNER, flags, 0o600, dir_fd=lock_fd)
        try:
            os.write(fd, token.encode())
        finally:
            os.close(fd)
    finally:
        os.close(lock_fd)


def remove_lock_dir(name: str, dir_fd: int) -> None:
    lock_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for entry in os.listdir(lock_fd):
            os.unlink(entry, dir_fd=lock_fd)
    finally:
        os.close(lock_fd)
    os.rmdir(name, dir_fd=dir_fd)


# renameat2(RENAME_NOREPLACE) puts a lock directory in place with its owner file already
# inside, so a writer killed mid-acquisition never leaves an owner-less lock (which only
# the 30 s rule could break). Linux only; elsewhere locks are made with mkdir, as Dagu does.
_LIBC = ctypes.CDLL(None, use_errno=True)
_RENAMEAT2 = getattr(_LIBC, "renameat2", None)
_RENAME_NOREPLACE = 1


def _prepare(dir_fd: int, token: str) -> str | None:
    """A private lock directory holding our owner file, to rename into place; None
    where that cannot be done atomically."""
    if _RENAMEAT2 is None:
        return None
    name = f"{LOCK_NAME}.statebox-{os.getpid()}-{secrets.token_hex(8)}"
    os.mkdir(name, 0o700, dir_fd=dir_fd)
    _write_owner(dir_fd, name, token)
    return name


def _rename_noreplace(source: str, target: str, dir_fd: int) -> bool:
    """Rename unless ``target`` exists (then False)."""
    assert _RENAMEAT2 is not None
    if _RENAMEAT2(dir_fd, source.encode(), dir_fd, target.encode(), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        return False
    if code in (errno.EINVAL, errno.ENOSYS):  # a filesystem without the flag
        raise NotImplementedError
    raise OSError(code, os.strerror(code), target)


class DaguLocks:
    """Dagu's record locks (both forms) under one state directory."""

    def __init__(self, root: str, timeout: float, durable: bool) -> None:
        self._root = root
        self._dir = os.path.join(root, LOCKS_DIR)
        self.timeout = timeout
        self._durable = durable
        self._host = socket.gethostname() or "unknown-host"

    @contextmanager
    def hold(self, record_ids: Iterable[str], deadline: float) -> Iterator[None]:
        """Hold Dagu's locks of every record in ``record_ids``: the bucket form (by
        ascending bucket), then the per-key form (by ascending record id)."""
        ids = sorted(set(record_ids))
        places = [os.path.join(self._dir, b) for b in sorted({dagu_bucket(r) for r in ids})]
        key_dirs = [os.path.join(self._root, record_id) for record_id in ids]
        held: list[tuple[str, str]] = []
        try:
            for place in [*places, *key_dirs]:
                held.append((place, self._acquire(place, deadline)))
            yield
        finally:
            for place, token in reversed(held):
                # Left behind, it is broken as stale after 30 s: never mask our outcome.
                with contextlib.suppress(OSError):
                    self._release(place, token)
            for key_dir in key_dirs:  # also when taking it failed: it may have been made
                with contextlib.suppress(OSError):
                    self._prune_key_dir(key_dir)

    def _prune_key_dir(self, key_dir: str) -> None:
        """Remove the per-key lock's directory when its record is gone, and the
        directories that leaves empty (namespace, scope, ``v1``). One holding a lock of
        old Dagu's is not empty, and stays."""
        # A plain lstat (one call, on every write): it only decides whether to try; the
        # removal itself walks without following links.
        if not os.path.lexists(key_dir + RECORD_SUFFIX):
            prune_empty_dirs(key_dir, 4, self._durable)

    def _acquire(self, place: str, deadline: float) -> str:
        """Take the lock ``<place>/.dagu_lock`` (making ``place`` if missing)."""
        token = f"{self._host}-{os.getpid()}-{secrets.token_hex(16)}"
        delay = _FIRST_SLEEP
        with opened_dir(place, create=True) as dir_fd:
            prepared = _prepare(dir_fd, token)
            try:
                while True:
                    if self._try(dir_fd, token, prepared):
                        prepared = None  # it is the lock now
                        return token
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise BackendUnavailableError(
                            f"Dagu's record lock {os.path.join(place, LOCK_NAME)} stayed held "
                            f"for {self.timeout:g}s (Dagu breaks it after {STALE_AFTER:g}s); "
                            "retry, or raise the wait with ?timeout=SECONDS in the store URL"
                        )
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, _MAX_SLEEP)
            finally:
                if prepared is not None:
                    with contextlib.suppress(OSError):
                        remove_lock_dir(prepared, dir_fd)

    def _abandoned(self, dir_fd: int) -> bool:
        """Held by a process of this host that no longer exists (a killed writer): broken
        at once rather than after 30 s. The owner token is Dagu's ``<host>-<pid>-<random>``;
        only a token naming this host is checked (processes sharing the directory under
        one host name must share a PID namespace), and a reused pid only means waiting."""
        try:
            lock_fd = os.open(LOCK_NAME, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                owner = os.open(OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=lock_fd)
                try:
                    token = os.read(owner, 4096).decode("utf-8", "replace")
                finally:
                    os.close(owner)
            finally:
                os.close(lock_fd)
        except OSError:
            return False  # no owner yet (or no directory): only the 30 s rule applies
        host, _, rest = token.rpartition("-")[0].rpartition("-")
        if host != self._host or not rest.isdigit():
            return False
        try:
            os.kill(int(rest), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # alive, another user's
        return False

    def _try(self, dir_fd: int, token: str, prepared: str | None) -> bool:
        try:
            held = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            fresh = time.time() - held.st_mtime <= STALE_AFTER
            if fresh and not self._abandoned(dir_fd):
                return False
            _discard(dir_fd)  # stale (Dagu's rule), or its holder is dead
        if prepared is not None:
            # Its mtime is what Dagu judges staleness by: now, not when it was prepared.
            os.utime(prepared, dir_fd=dir_fd, follow_symlinks=False)
            with contextlib.suppress(NotImplementedError):  # else: mkdir, as Dagu does
                return _rename_noreplace(prepared, LOCK_NAME, dir_fd)
        try:
            os.mkdir(LOCK_NAME, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            return False  # taken meanwhile
        try:
            _write_owner(dir_fd, LOCK_NAME, token)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False  # broken as stale by a racer between our mkdir and here
            with contextlib.suppress(OSError):
                _discard(dir_fd)
            raise
        return True

    def _release(self, place: str, token: str) -> None:
        with opened_dir(place, create=False) as dir_fd:
            try:
                lock_fd = os.open(LOCK_NAME, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                return  # broken as stale by another process: nothing of ours to remove
            try:
                owner = os.open(OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=lock_fd)
                try:
                    ours = os.read(owner, 4096) == token.encode()
                finally:
                    os.close(owner)
            except OSError:
                ours = False
            finally:
                os.close(lock_fd)
            if ours:  # never remove a lock another process has taken since
                _discard(dir_fd)
