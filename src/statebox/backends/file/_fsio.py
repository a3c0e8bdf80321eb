"""Durable file primitives: atomic replace, directory fsync, reads that treat absence as None.

Every replacement goes through a temp file in the same directory named ``.tmp-<random>``
(Dagu's are ``<name>.json.tmp.<digits>``): it never ends in ``.json`` and starts with a
dot, so no reader ever takes it for a record. It is fsynced before the atomic
``os.replace``, and the directory after, so a crash leaves the old file or the new one.

Nothing here follows a symbolic link (``_dirs``): directories are walked with
``O_NOFOLLOW`` and files opened with it, and a read refuses anything but a regular file
(a FIFO planted as a record would block a plain ``open``) or one over its size limit,
before reading a byte.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

from ...core.errors import CorruptEntryError
from ._dirs import fsync_at, fsync_path, open_dir, open_no_symlinks, opened_dir, refused

__all__ = [
    "TEMP_PREFIX",
    "Syncs",
    "fsync_file",
    "make_dirs",
    "open_regular",
    "read_file",
    "remove_file",
    "replace_file",
]

TEMP_PREFIX = ".tmp-"
_FILE_MODE = 0o600
#: How often a write recreates a directory that a concurrent delete emptied and removed.
_VANISHED_RETRIES = 20


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Syncs:
    """The fsyncs a commit may owe after its lock is released (directories of renames,
    appended logs): they make it durable, but nothing else waits for them."""

    def __init__(self) -> None:
        self.dirs: set[str] = set()
        self.files: set[str] = set()

    def flush(self) -> None:
        # A file or directory gone since was replaced or removed, durably, by a later writer.
        for path in sorted(self.files):
            with contextlib.suppress(FileNotFoundError):
                fsync_file(path)
        for path in sorted(self.dirs):
            with contextlib.suppress(FileNotFoundError):
                fsync_path(path)


def make_dirs(path: str, durable: bool) -> None:
    """``mkdir -p`` (never through a symlink) that fsyncs the parent of every directory
    it creates."""
    os.close(open_dir(path, create=True, durable=durable))


def open_regular(path: str, flags: int = os.O_RDONLY, dir_fd: int | None = None) -> int:
    """Open a file that must be a regular file and no symlink; FileNotFoundError when
    absent, CorruptEntryError (naming it) for anything else."""
    # O_NONBLOCK: opening a FIFO planted here must not wait for a writer.
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if dir_fd is None:  # no symlinked directory on the way either
            fd = open_no_symlinks(path, flags)
        else:
            fd = os.open(os.path.basename(path), flags, _FILE_MODE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refused(path, "a symbolic link") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # a directory; a socket
            raise refused(path, "not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise refused(path, "not a regular file")
    return fd


def read_file(path: str, max_size: int | None = None) -> bytes | None:
    """The file's bytes, or None when it (or its directory) does not exist. A symlink
    (or a symlinked directory on the way), a non-regular file or one over ``max_size``
    bytes is a CorruptEntryError naming it."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if max_size is not None and size > max_size:
            raise CorruptEntryError(
                f"{path} holds {size} bytes, more than the {max_size} a file store record "
                "may have; it is left untouched: repair or remove it by hand"
            )
        cap = (1 << 62) if max_size is None else max_size + 1
        chunks = [os.read(fd, min(max(size, 4096) + 1, cap))]
        total = len(chunks[0])
        while chunks[-1] and total < cap:  # the file grew since fstat (never here: replaced)
            chunks.append(os.read(fd, min(1 << 20, cap - total)))
            total += len(chunks[-1])
        if total > cap - 1 and max_size is not None:
            raise CorruptEntryError(f"{path} grew past {max_size} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_temp(dir_fd: int, data: bytes, durable: bool, mtime_ns: int | None) -> str:
    tmp = TEMP_PREFIX + secrets.token_hex(8)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, _FILE_MODE, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mtime_ns is not None:  # Dagu sets a record's mtime to its updated_at
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    return tmp


def replace_file(
    path: str,
    data: bytes,
    durable: bool,
    syncs: Syncs | None = None,
    mtime_ns: int | None = None,
) -> None:
    """Atomically make ``path`` hold ``data``: temp file, fsync, rename, fsync directory
    (now, or through ``syncs``). The directory is created if missing, again if a
    concurrent delete (ours or Dagu's) removes it meanwhile."""
    directory, name = os.path.split(path)
    for attempt in range(_VANISHED_RETRIES + 1):
        unsynced: list[str] = []
        with opened_dir(directory, create=True, durable=durable, unsynced=unsynced) as dir_fd:
            try:
                tmp = _write_temp(dir_fd, data, durable, mtime_ns)
            except FileNotFoundError:
                if attempt < _VANISHED_RETRIES:
                    continue  # the directory was emptied and removed since we opened it
                raise
            for made_in in unsynced:  # directories made above, now that one holds a file
                with contextlib.suppress(FileNotFoundError):
                    fsync_path(made_in)
            try:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                os.unlink(tmp, dir_fd=dir_fd)
                raise
            if durable:
                if syncs is None:
                    fsync_at(dir_fd)
                else:
                    syncs.dirs.add(directory)
            return


def remove_file(path: str, durable: bool, syncs: Syncs | None = None) -> bool:
    """Remove ``path`` if it exists (fsyncing its directory); True when it existed.
    A symlink there is removed itself; its target is never touched."""
    directory, name = os.path.split(path)
    try:
        dir_fd = open_dir(directory, create=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        if durable:
            if syncs is None:
                fsync_at(dir_fd)
            else:
                syncs.dirs.add(directory)
        return True
    finally:
        os.close(dir_fd)
