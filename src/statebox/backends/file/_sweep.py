"""Removing the temp files that writers killed mid-write left behind.

A writer killed between creating its temp file and renaming it leaves an orphan:
statebox's ``.tmp-<16 hex>`` or Dagu's ``<name>.json.tmp.<digits>`` (``os.CreateTemp``).
Nothing reads them, but they pile up. When a store opens it removes those older than
:data:`ORPHAN_AGE` (a live writer holds its temp file for the length of one write), at
most once every :data:`SWEEP_EVERY` seconds per directory, so opening stays cheap. The
walk never follows a symlink and never enters Dagu's lock directories.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from typing import Final

from ._dagulock import LOCKS_DIR
from ._dirs import opened_dir
from ._locks import open_created

__all__ = ["ORPHAN_AGE", "SWEEP_EVERY", "is_temp_name", "sweep_temp_files"]

ORPHAN_AGE: Final = 600.0
SWEEP_EVERY: Final = 600.0
_TEMP: Final = re.compile(r"\.tmp-[0-9a-f]{16}\Z|.+\.json\.tmp\.[0-9]+\Z")
_MAX_DEPTH: Final = 5  # statebox/history/<scope>/<hex ns>/<file>


def is_temp_name(name: str) -> bool:
    return _TEMP.match(name) is not None


def sweep_temp_files(root: str, marker: str) -> int:
    """Remove orphaned temp files under ``root``, unless a sweep ran recently (``marker``
    is the file whose mtime says when). Returns how many were removed."""
    with contextlib.suppress(FileNotFoundError):
        if time.time() - os.stat(marker, follow_symlinks=False).st_mtime < SWEEP_EVERY:
            return 0
    fd = open_created(marker)
    try:
        os.utime(fd)
    finally:
        os.close(fd)
    return _sweep(root, time.time() - ORPHAN_AGE, 0)


def _sweep(directory: str, older_than: float, depth: int) -> int:
    try:
        with opened_dir(directory, create=False) as search_fd:
            # A readable descriptor of the same directory: scandir and unlinkat use it.
            dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=search_fd)
    except (FileNotFoundError, NotADirectoryError):
        return 0  # removed meanwhile (a delete empties and removes directories)
    removed = 0
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    if depth < _MAX_DEPTH and entry.name != LOCKS_DIR:
                        removed += _sweep(f"{directory}/{entry.name}", older_than, depth + 1)
                elif is_temp_name(entry.name) and info.st_mtime < older_than:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=dir_fd)
                        removed += 1
    finally:
        os.close(dir_fd)
    return removed
