"""Directories opened without following symbolic links, so nothing is written outside.

Anyone who can write the store directory can plant a symlink in it: a namespace
directory pointing elsewhere, a history log or a lock file pointing at someone's file.
statebox never writes through one. Every write opens its directory by walking from ``/``
one component at a time with ``O_NOFOLLOW`` (the store's root is resolved with
``realpath`` when the store opens, so a legitimate path holds no link), checks each is a
directory, and then works relative to that descriptor (``openat``, ``renameat``,
``unlinkat``): a link planted at any moment is refused, never followed.

Walking costs a few system calls per component, so where Linux has ``openat2`` (5.6
and later) a path is first opened in one call with ``RESOLVE_NO_SYMLINKS``, which fails
on meeting any link; only then (or when a directory must be made) is it walked, for the
precise answer. Reads are refused the same way (:func:`open_no_symlinks`); without
``openat2`` a read opens the file by its path and asks the kernel (``/proc/self/fd``)
which path it really opened, walking only when that is not the path asked for.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ...core.errors import CorruptEntryError

__all__ = [
    "DIR_MODE",
    "fsync_at",
    "list_dir",
    "open_no_symlinks",
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
_PROC_FD = "/proc/self/fd"
_HAS_PROC_FD = os.path.isdir(_PROC_FD)  # Linux with /proc: the cheap check is possible
_SEARCH = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPENAT2 = 437  # the same number on every Linux architecture
_AT_FDCWD = -100
_RESOLVE_NO_SYMLINKS = 0x04


class _OpenHow(ctypes.Structure):
    _fields_ = [  # struct open_how (linux/openat2.h)
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


_syscall = getattr(ctypes.CDLL(None, use_errno=True), "syscall", None)
_openat2_usable = sys.platform == "linux" and _syscall is not None


def _openat2_no_links(path: str, flags: int) -> int | None:
    """``path`` opened in one call that fails (ELOOP) on meeting any symbolic link; None
    where ``openat2`` is missing (an old kernel, or a sandbox that forbids it)."""
    global _openat2_usable
    if not _openat2_usable:
        return None
    assert _syscall is not None
    how = _OpenHow(flags, 0, _RESOLVE_NO_SYMLINKS)
    encoded = os.fsencode(path)
    fd = int(_syscall(_OPENAT2, _AT_FDCWD, encoded, ctypes.byref(how), ctypes.sizeof(how)))
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM):  # not there, or filtered by seccomp
        _openat2_usable = False
        return None
    raise OSError(code, os.strerror(code), path)


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
    try:
        fd = _openat2_no_links(path, _SEARCH)
    except FileNotFoundError:
        if not create:
            raise
    except OSError:
        pass  # a link (ELOOP) or a file on the way: the walk says which, precisely
    else:
        if fd is not None:
            return fd
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


def _proc_checked_open(path: str, flags: int) -> int | None:
    """``path`` opened by name, if the kernel says (``/proc/self/fd``) it opened exactly
    that path, following no link; None when that cannot be told (then walk)."""
    if not _HAS_PROC_FD:
        return None
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    try:
        if os.readlink(f"{_PROC_FD}/{fd}") == path:
            return fd
    except OSError:
        pass
    os.close(fd)  # a link on the way, or the file was replaced since: walk
    return None


def open_no_symlinks(path: str, flags: int) -> int:
    """Open the existing ``path`` (absolute, normalized) with no symbolic link in any of
    its components: a symlinked directory on the way, or a link (or, asked for a
    directory, a file) at the end, is a CorruptEntryError naming it. FileNotFoundError
    when it is missing. (Without ``openat2``, a dangling link on the way reads as
    missing: it leads nowhere.)"""
    if flags & os.O_CREAT:
        raise ValueError("open_no_symlinks never creates: walk with opened_dir instead")
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = _openat2_no_links(path, flags)
        if fd is None:  # no openat2 here
            fd = _proc_checked_open(path, flags)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        fd = None  # a link (or a file) on the way: the walk below names it
    if fd is not None:
        return fd
    directory, name = os.path.split(path)
    with opened_dir(directory, create=False) as dir_fd:
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise refused(path, "a symbolic link") from None
            if exc.errno == errno.ENOTDIR:
                raise refused(path, "not a directory") from None
            raise


def list_dir(path: str) -> list[str]:
    """The names in the directory ``path``; [] when it is missing. A symlinked directory,
    at ``path`` or on the way, is a CorruptEntryError naming it: it is never listed."""
    try:
        fd = open_no_symlinks(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return []
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)
