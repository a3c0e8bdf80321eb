"""Durable file primitives: atomic replace, directory fsync, reads that treat absence as None.

Every replacement goes through a temp file in the same directory named ``.tmp-<random>``
(Dagu's own temp naming): it never ends in ``.json`` and starts with a dot, so no reader
ever takes it for a record. It is fsynced before the atomic ``os.replace``, and the
directory after, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = [
    "TEMP_PREFIX",
    "Syncs",
    "fsync_dir",
    "fsync_file",
    "make_dirs",
    "read_file",
    "remove_file",
    "replace_file",
]

TEMP_PREFIX = ".tmp-"
_DIR_MODE = 0o750
_FILE_MODE = 0o600


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
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
                fsync_dir(path)


def make_dirs(path: str, durable: bool) -> None:
    """``mkdir -p`` that also fsyncs the parent of every directory it creates."""
    missing: list[str] = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, _DIR_MODE)
        except FileExistsError:
            continue
        if durable:
            fsync_dir(os.path.dirname(directory))


def read_file(path: str) -> bytes | None:
    """The file's bytes, or None when it (or its directory) does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        chunks = [os.read(fd, max(os.fstat(fd).st_size, 4096) + 1)]
        while chunks[-1]:  # the file grew since fstat (it never does here: files are replaced)
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_temp(directory: str, data: bytes, durable: bool) -> str:
    tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def replace_file(path: str, data: bytes, durable: bool, syncs: Syncs | None = None) -> None:
    """Atomically make ``path`` hold ``data``: temp file, fsync, rename, fsync directory
    (now, or through ``syncs``)."""
    directory = os.path.dirname(path)
    try:
        tmp = _write_temp(directory, data, durable)
    except FileNotFoundError:
        # First file of a keyspace (or a directory Dagu removed when it emptied it).
        make_dirs(directory, durable)
        tmp = _write_temp(directory, data, durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    if durable:
        if syncs is None:
            fsync_dir(directory)
        else:
            syncs.dirs.add(directory)


def remove_file(path: str, durable: bool, syncs: Syncs | None = None) -> bool:
    """Remove ``path`` if it exists (fsyncing its directory); True when it existed."""
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if durable:
        if syncs is None:
            fsync_dir(os.path.dirname(path))
        else:
            syncs.dirs.add(os.path.dirname(path))
    return True
