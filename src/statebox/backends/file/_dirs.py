"""Directories opened without following symbolic links, so nothing is written outside.

Anyone who can write the store directory can plant a symlink in it: a namespace
directory pointing elsewhere, a history log or a lock file pointing at someone's file.
statebox never writes through one. Every write opens its directory by walking from ``/``
one component at a time with ``O_NOFOLLOW`` (the store's root is resolved with
``realpath`` when the store opens, so a legitimate path holds no link), checks each is a
directory, and then works relative to that descriptor (``openat``, ``renameat``,
``unlinkat``): a link planted at any moment is refused, never followed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ...errors import CorruptEntryError

__all__ = [
    "DIR_MODE",
    "fsync_at",
    "fsync_path",
    "open_dir",
    "opened_dir",
    "prune_empty_dirs",
    "refused",
]

DIR_MODE = 0o750
# O_PATH (Linux) needs no read permission and is cheap; it still serves as a dir_fd.
#: How often a directory is made again when a concurrent delete removes it meanwhile.
_VANISHED_RETRIES = 20
_SEARCH = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def refused(path: str, what: str) -> CorruptEntryError:
    """The error for a file statebox will not follow, read or write through."""
    return CorruptEntryError(
        f"{path} is {what}: the file store refuses to follow it, read it or write through "
        "it; it is left untouched: repair or remove it by hand"
    )


def fsync_at(dir_fd: int) -> None:
    """fsync the directory ``dir_fd`` (which may be an ``O_PATH`` descriptor)."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: str) -> None:
    """fsync a directory by name (harmless wherever the name leads: nothing is written)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_child(parent: int, name: str, path: str) -> int:
    try:
        fd = os.open(name, _SEARCH, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise refused(path, "a symbolic link or not a directory") from None
        raise
    if not stat.S_ISDIR(os.fstat(fd).st_mode):  # O_PATH|O_NOFOLLOW may open a link itself
        os.close(fd)
        raise refused(path, "a symbolic link or not a directory")
    return fd


def _open_or_make(parent: int, name: str, path: str, made: list[str] | None) -> int:
    try:
        return _open_child(parent, name, path)
    except FileNotFoundError:
        if made is None:
            raise
    try:
        os.mkdir(name, DIR_MODE, dir_fd=parent)
    except FileExistsError:
        pass  # made meanwhile by another writer
    else:
        made.append(os.path.dirname(path))
    return _open_child(parent, name, path)


def _walk(path: str, made: list[str] | None) -> int:
    fd = os.open("/", _SEARCH)
    walked = ""
    try:
        for name in path.split("/"):
            if not name:
                continue
            walked += "/" + name
            child = _open_or_make(fd, name, walked, made)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_dir(
    path: str, *, create: bool, durable: bool = False, unsynced: list[str] | None = None
) -> int:
    """A descriptor of the directory ``path`` (absolute, normalized), reached without
    following any symbolic link. FileNotFoundError when missing, unless ``create``:
    then missing directories are made, and with ``durable`` their parents fsynced — now,
    or, given ``unsynced``, by the caller once it has put a file in the directory (an
    empty directory is what a concurrent delete prunes: the window stays short)."""
    for attempt in range(_VANISHED_RETRIES + 1):
        made: list[str] | None = [] if create else None
        try:
            fd = _walk(path, made)
            if made and durable:
                if unsynced is None:
                    for parent in made:
                        fsync_path(parent)
                else:
                    unsynced.extend(made)
            return fd
        except FileNotFoundError:
            # A concurrent delete (Dagu's or ours) removed a directory it emptied between
            # our mkdir and our use of it: walk and make it again.
            if not create or attempt == _VANISHED_RETRIES:
                raise
    raise AssertionError("unreachable")


@contextmanager
def opened_dir(
    path: str, *, create: bool, durable: bool = False, unsynced: list[str] | None = None
) -> Iterator[int]:
    fd = open_dir(path, create=create, durable=durable, unsynced=unsynced)
    try:
        yield fd
    finally:
        os.close(fd)


def prune_empty_dirs(directory: str, levels: int, durable: bool) -> None:
    """Remove ``directory`` and up to ``levels - 1`` of its parents while they are empty,
    as Dagu does after a delete. A writer that meets a directory removed so simply
    creates it again (``_fsio.replace_file`` retries)."""
    for _ in range(levels):
        parent, name = os.path.split(directory)
        try:
            with opened_dir(parent, create=False) as parent_fd:
                os.rmdir(name, dir_fd=parent_fd)
                if durable:
                    fsync_at(parent_fd)
        except (FileNotFoundError, CorruptEntryError):
            return
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EBUSY):
                return
            raise
        directory = parent
