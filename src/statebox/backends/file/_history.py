"""A key's history: an append-only log of JSON lines (see ``_codec.encode_history_line``).

Each line carries its sequence number ``n`` and ``k``, how many lines the write that
appended it keeps; readers take the last ``k`` lines, so trimming is only an
optimization: once the log holds more than ``2k + 8`` lines it is rewritten (atomically)
with its last ``k``. A line cut short by a crash is ignored and cut off by the next
append. Appends are idempotent, so a journal can redo one after a crash.
"""

from __future__ import annotations

import json
import os

from ._dirs import fsync_path, opened_dir
from ._fsio import Syncs, open_regular, read_file, replace_file

__all__ = ["append_lines", "read_lines", "tail_lines"]

_CHUNK = 8192


def read_lines(path: str) -> list[str] | None:
    """Every complete line, oldest first; None when the log does not exist."""
    raw = read_file(path)
    if raw is None:
        return None
    return [line.decode("utf-8") for line in raw.split(b"\n")[:-1]]


def _tail(fd: int, size: int, count: int) -> tuple[list[bytes], int]:
    """The last ``count`` complete lines, and the offset where the complete part ends."""
    end, buf, chunk = size, b"", _CHUNK
    while True:
        start = max(0, end - chunk)
        buf = os.pread(fd, end - start, start) + buf
        end = start
        last_newline = buf.rfind(b"\n")
        if last_newline >= 0:
            complete = buf[:last_newline]
            if complete.count(b"\n") >= count or start == 0:
                lines = complete.split(b"\n")
                return lines[-count:], start + last_newline + 1
        elif start == 0:
            return [], 0
        chunk *= 2


def tail_lines(path: str, count: int) -> list[str]:
    """The last ``count`` complete lines ([] when the log is missing or empty)."""
    try:
        fd = open_regular(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    try:
        lines, _ = _tail(fd, os.fstat(fd).st_size, count)
    finally:
        os.close(fd)
    return [line.decode("utf-8") for line in lines]


def _first_seq(fd: int) -> int:
    buf, offset = b"", 0
    while b"\n" not in buf:
        chunk = os.pread(fd, _CHUNK, offset)
        if not chunk:
            break
        buf += chunk
        offset += len(chunk)
    return int(json.loads(buf.split(b"\n", 1)[0])["n"])


def _open_log(path: str, durable: bool) -> tuple[int, bool]:
    """The log opened for appending (never through a symlink), and whether it was created."""
    unsynced: list[str] = []
    with opened_dir(
        os.path.dirname(path), create=True, durable=durable, unsynced=unsynced
    ) as dir_fd:
        try:
            return open_regular(path, os.O_RDWR, dir_fd=dir_fd), False
        except FileNotFoundError:
            fd = open_regular(path, os.O_RDWR | os.O_CREAT, dir_fd=dir_fd)
    for made_in in unsynced:  # directories made above, now that one holds the log
        fsync_path(made_in)
    return fd, True


def append_lines(path: str, lines: list[str], durable: bool, syncs: Syncs | None = None) -> None:
    """Append ``lines`` unless (a prefix of) them is already at the end of the log."""
    fd, created = _open_log(path, durable)
    try:
        size = os.fstat(fd).st_size
        last, end = _tail(fd, size, 1)
        if end < size:
            os.ftruncate(fd, end)  # a line torn by a crash
        if last and last[0].decode("utf-8") in lines:  # redone after a crash
            lines = lines[lines.index(last[0].decode("utf-8")) + 1 :]
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        os.pwrite(fd, data, end)
        if durable and syncs is not None:
            syncs.files.add(path)
            if created:
                syncs.dirs.add(os.path.dirname(path))
        elif durable:
            os.fsync(fd)
            if created:
                fsync_path(os.path.dirname(path))
        newest = json.loads(lines[-1])
        keep, count = int(newest["k"]), int(newest["n"]) - _first_seq(fd) + 1
        if count > 2 * keep + 8:
            kept, _ = _tail(fd, end + len(data), keep)
            replace_file(path, b"".join(line + b"\n" for line in kept), durable, syncs)
    finally:
        os.close(fd)
