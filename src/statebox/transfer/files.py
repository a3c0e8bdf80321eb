"""Dump files: writing the lines, reading them back, and where a resumed dump goes on.

A dump is read and written as bytes, one record per ``\\n``-ended line (a value may hold
a raw U+2028, which ``str.splitlines`` would split on). A line without its ``\\n`` is torn
(the writer was interrupted): :func:`resume_position` drops it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..core.errors import InvalidRequestError
from .codec import HEADER, DumpRecord, check_header, decode_line, encode_line
from .dump import DumpPosition

__all__ = ["read_dump", "resume_position", "write_dump"]

_CHUNK = 1 << 16


def write_dump(
    out: BinaryIO, records: Iterable[DumpRecord], *, header: bool = True
) -> Iterator[DumpRecord]:
    """Write ``records`` to ``out`` (after the header when ``header``), yielding each once
    its line is written, so a caller counts them as they go."""
    if header:
        out.write(HEADER.encode() + b"\n")
    for record in records:
        out.write(encode_line(record).encode("utf-8") + b"\n")
        yield record


def read_dump(stream: BinaryIO, name: str = "the dump") -> Iterator[DumpRecord]:
    """The records of a dump, line by line; the header is checked first."""
    first = True
    for number, raw in enumerate(stream, 1):
        if not raw.endswith(b"\n") and raw.strip():
            # A torn last line: an interrupted 'statebox dump' (resume it with --resume).
            raise InvalidRequestError(
                f"{name} ends in an incomplete line {number}: was its dump interrupted? "
                "(finish it with 'statebox dump --output FILE --resume')"
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestError(f"line {number} of {name} is not UTF-8: {exc}") from exc
        if first:
            check_header(line, name)
            first = False
        elif line.strip():
            yield decode_line(line, f"line {number} of {name}")
    if first:
        raise InvalidRequestError(f"{name} is empty: a dump starts with the line {HEADER}")


def _last_line(fd: int, size: int) -> tuple[int, bytes, int]:
    """``(start, text, end)``: the file's last complete line (without its ``\\n``), where
    it starts, and where the complete lines end (after that ``\\n``; what follows is
    torn). ``end`` is 0 when no line is complete. Read backwards, chunk by chunk."""
    start = size
    data = b""
    while start > 0:
        start = max(0, start - _CHUNK)
        data = os.pread(fd, size - start - len(data), start) + data
        newline = data.rfind(b"\n")
        if newline < 0:
            continue
        previous = data.rfind(b"\n", 0, newline)
        if previous >= 0 or start == 0:
            return start + previous + 1, data[previous + 1 : newline], start + newline + 1
    return 0, b"", 0


def resume_position(path: str) -> tuple[DumpPosition | None, bool]:
    """Prepare the dump file ``path`` to be continued: a torn last line is cut off.
    Returns the last key it holds (None: none yet) and whether it has its header (a
    missing file, or one without a complete line, has not: the caller writes it)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None, False
    try:
        size = os.fstat(fd).st_size
        start, line, end = _last_line(fd, size)
        if end < size:
            os.ftruncate(fd, end)  # the torn line: it is written again
            os.fsync(fd)
        if end == 0:
            return None, False
        text = line.decode("utf-8", "replace")
        if start == 0:  # the only complete line: the header
            check_header(text, path)
            return None, True
        record = decode_line(text, f"the last line of {path}")
        return DumpPosition(record.scope, record.namespace, record.key), True
    finally:
        os.close(fd)
