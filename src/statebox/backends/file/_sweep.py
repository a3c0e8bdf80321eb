"""Removing what writers killed mid-write left behind: temp files and lock directories.

A writer killed between creating its temp file and renaming it leaves an orphan:
statebox's ``.tmp-<16 hex>`` or Dagu's ``<name>.json.tmp.<digits>`` (``os.CreateTemp``).
One killed while releasing (or, for statebox, preparing) a Dagu record lock leaves a
``.dagu_lock.releasing.*`` or ``.dagu_lock.statebox-*`` directory. Nothing reads them, but
they pile up. When a store opens it removes those older than :data:`ORPHAN_AGE` (a live
writer holds one for the length of one write), at most once every :data:`SWEEP_EVERY`
seconds per directory, so opening stays cheap. The walk never follows a symlink, and
never enters or removes a lock (``.dagu_lock``) itself: those are broken only by the rule
that Dagu breaks them by (_dagulock).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from typing import Final

from ._dagulock import LEFTOVER_LOCK, LOCK_NAME, remove_lock_dir
from ._dirs import opened_dir
from ._locks import open_created

__all__ = ["ORPHAN_AGE", "SWEEP_EVERY", "is_temp_name", "sweep_temp_files"]

ORPHAN_AGE: Final = 600.0
SWEEP_EVERY: Final = 600.0
_TEMP: Final = re.compile(r"\.tmp-[0-9a-f]{16}\Z|.+\.json\.tmp\.[0-9]+\Z")
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: How deep directories are entered: statebox/history/<scope>/<hex ns>/,
#: statebox/v1/statebox/<hex ns>/, v1/<s>/<ns>/<key>/.
_MAX_DEPTH: Final = 5


def is_temp_name(name: str) -> bool:
    return _TEMP.match(name) is not None


def sweep_temp_files(root: str, marker: str) -> int:
    """Remove orphaned temp files and lock directories under ``root``, unless a sweep ran
    recently (``marker`` is the file whose mtime says when). Returns how many were
    removed."""
    with contextlib.suppress(FileNotFoundError):
        if time.time() - os.stat(marker, follow_symlinks=False).st_mtime < SWEEP_EVERY:
            return 0
    fd = open_created(marker)
    try:
        os.utime(fd)
    finally:
        os.close(fd)
    with opened_dir(root, create=False) as search_fd:
        # A readable descriptor of the same directory: scandir and unlinkat use it.
        dir_fd = os.open(".", _DIR_FLAGS, dir_fd=search_fd)
    try:
        return _sweep(dir_fd, (), time.time() - ORPHAN_AGE)
    finally:
        os.close(dir_fd)


def _is_key_dir(where: tuple[str, ...], info: os.stat_result) -> bool:
    """A ``v1/<scope>/<ns>/<key>/`` directory (the per-key Dagu lock's) holding no
    subdirectory (a directory's link count is 2 plus its subdirectories on most
    filesystems): nothing in it to sweep. One per key: skipping them keeps a sweep of a
    big store cheap."""
    return len(where) == 3 and where[0] == "v1" and info.st_nlink == 2


def _sweep(dir_fd: int, where: tuple[str, ...], older_than: float) -> int:
    """Sweep the directory open as ``dir_fd`` (``where``: its path below the root)."""
    removed = 0
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if LEFTOVER_LOCK.match(entry.name):
                    if info.st_mtime < older_than:
                        with contextlib.suppress(OSError):  # removed meanwhile, or not ours
                            remove_lock_dir(entry.name, dir_fd)
                            removed += 1
                elif (
                    len(where) < _MAX_DEPTH
                    and entry.name != LOCK_NAME
                    and not _is_key_dir(where, info)
                ):
                    removed += _sweep_child(dir_fd, entry.name, where, older_than)
            elif is_temp_name(entry.name) and info.st_mtime < older_than:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=dir_fd)
                    removed += 1
    return removed


def _sweep_child(parent_fd: int, name: str, where: tuple[str, ...], older_than: float) -> int:
    try:  # O_NOFOLLOW: a directory swapped for a symlink since it was listed is not entered
        child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError:  # removed meanwhile (a delete empties and removes directories), a link
        return 0
    try:
        return _sweep(child, (*where, name), older_than)
    finally:
        os.close(child)
