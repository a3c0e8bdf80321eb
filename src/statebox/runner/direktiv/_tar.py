"""Reading and writing the tar archives of an action's ``files`` and ``out/`` folders,
bounded and refusing anything but regular files and directories.

Reading is statebox's own small parser rather than :mod:`tarfile`: an archive comes from a
variable any function may have written, and :mod:`tarfile` follows header fields where
they point (a crafted size sends some versions into an endless loop) and knows links,
devices and sparse files we must refuse anyway. This one reads the formats GNU tar,
Go's ``archive/tar`` (Direktiv's) and :mod:`tarfile` write — ustar names with their
prefix, GNU long names (``L``), PAX ``path`` and ``size`` records — verifies each
header's checksum, and returns every member before anything is written, so a refusal
leaves the disk untouched:

- a member type other than a regular file (``0``, or NUL as old tars write it) or a
  directory (``5``) is refused: symbolic and hard links, character and block devices,
  fifos, contiguous and sparse files, GNU's other extensions;
- a name is read relative to the target even when it starts with ``/``; a ``..``
  component anywhere is refused (Direktiv refuses any name containing ``..``; statebox
  only the component, so ``notes..txt`` is a name);
- the uncompressed stream is bounded (``max_bytes``), gzip's output included, so a small
  ``tar.gz`` cannot expand into memory without end; so is the number of members.

Writing (:func:`tar_gz_dir`) packs regular files and directories only: a symbolic link,
fifo, socket or device under an ``out/`` folder is skipped, as Direktiv's ``tarGzDir``
skips it (following one could publish a file from outside the folder).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "ArchiveError",
    "Member",
    "gunzip_bounded",
    "read_file_bounded",
    "read_tar",
    "tar_gz_dir",
]

#: The most bytes an archive may hold once uncompressed (the whole tar stream).
MAX_ARCHIVE_BYTES: Final = 64 * 1_048_576
#: The most members (files, directories and header records) an archive may hold.
MAX_ARCHIVE_MEMBERS: Final = 10_000

_BLOCK: Final = 512
#: A GNU long name or PAX header bigger than this is not a name: refused.
_MAX_META: Final = 65_536
_REFUSED_TYPES: Final = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a fifo",
    b"7": "a contiguous file",
    b"S": "a sparse file",
}


class ArchiveError(Exception):
    """An archive statebox will not extract; ``refused`` when it is unsafe (a link, a
    device, a ``..`` name, too big), not merely unreadable. The caller names the variable."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


@dataclass(frozen=True, slots=True)
class Member:
    """A regular file (``data`` bytes) or a directory (``data`` None): ``parts`` is its
    path below the target, cleaned (no ``.``, no empty components, never ``..``)."""

    name: str
    parts: tuple[str, ...]
    data: bytes | None


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """Gunzip ``data`` (every member, as Go's reader does) into at most ``max_bytes``."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while rest and not inflater.eof:
                out += inflater.decompress(rest, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise ArchiveError(
                        f"archive is bigger than {max_bytes} bytes uncompressed", refused=True
                    )
                rest = inflater.unconsumed_tail
        except zlib.error as exc:
            raise ArchiveError(f"not gzip data ({exc})") from None
        if not inflater.eof:
            raise ArchiveError("gzip data is truncated")
        rest = inflater.unused_data
    return bytes(out)


def read_tar(stream: bytes, *, max_bytes: int, max_members: int) -> list[Member]:
    """Every member of the tar ``stream``, checked; raises :class:`ArchiveError` on the
    first problem. An empty stream is an empty archive."""
    if len(stream) > max_bytes:
        raise ArchiveError(f"archive is bigger than {max_bytes} bytes uncompressed", refused=True)
    members: list[Member] = []
    offset = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    records = 0
    while offset < len(stream):
        header = stream[offset : offset + _BLOCK]
        if len(header) < _BLOCK:
            raise ArchiveError("not a tar archive (truncated header)")
        if header == bytes(_BLOCK):
            break  # the end-of-archive marker; anything after it is padding
        _check_sum(header)
        records += 1
        if records > max_members:
            raise ArchiveError(f"archive has more than {max_members} members", refused=True)
        typeflag = header[156:157]
        name = long_name if long_name is not None else _header_name(header)
        name = pax.get("path", name)
        size = _size(pax["size"]) if "size" in pax else _number(header[124:136])
        start = offset + _BLOCK
        end = start + size
        if end > len(stream):
            raise ArchiveError(f"member {name!r} is truncated")
        data = stream[start:end]
        offset = start + -(-size // _BLOCK) * _BLOCK
        if typeflag in (b"L", b"x", b"g", b"K"):
            if size > _MAX_META:
                raise ArchiveError(f"extended header of {size} bytes", refused=True)
            if typeflag == b"L":
                long_name = _text(data.split(b"\0", 1)[0])
            elif typeflag == b"x":
                pax = _pax(data)
            continue  # K (a long link target) and g (global PAX) matter to no kept member
        long_name, pax = None, {}
        if typeflag in (b"\0", b"") and name.endswith("/"):
            typeflag = b"5"  # old tars mark directories by the name alone
        if typeflag in _REFUSED_TYPES:
            raise ArchiveError(
                f"member {name!r} is {_REFUSED_TYPES[typeflag]}: only regular files and "
                "directories are extracted",
                refused=True,
            )
        if typeflag not in (b"0", b"\0", b"5"):
            raise ArchiveError(
                f"member {name!r} has type {typeflag!r}: only regular files and directories "
                "are extracted",
                refused=True,
            )
        parts = clean_parts(name)
        if typeflag == b"5":
            members.append(Member(name, parts, None))
        elif not parts:
            raise ArchiveError(f"member {name!r} is a file with no name")
        else:
            members.append(Member(name, parts, data))
    return members


def clean_parts(name: str) -> tuple[str, ...]:
    """``name``'s components below the target: a leading ``/`` and ``.`` dropped, a
    ``..`` refused (so nothing can resolve outside the target), NUL refused."""
    if "\0" in name:
        raise ArchiveError(f"name {name!r} holds a NUL byte", refused=True)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"name {name!r} climbs out of the target with '..'", refused=True)
    return parts


def _check_sum(header: bytes) -> None:
    recorded = _number(header[148:156])
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)
    signed = sum(b - 256 if b > 127 else b for b in blanked)
    if recorded not in (unsigned, signed):
        raise ArchiveError("not a tar archive (bad header checksum)")


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        # Base-256: only sizes past 8 GiB (or negative ones) need it.
        raise ArchiveError("member size out of range", refused=True)
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveError("not a tar archive (bad number field)") from None


def _size(text: str) -> int:
    if not text.isdigit():
        raise ArchiveError(f"bad PAX size {text!r}")
    return int(text)


def _header_name(header: bytes) -> str:
    name = _text(header[0:100].split(b"\0", 1)[0])
    if header[257:263] == b"ustar\0":  # POSIX ustar: a prefix may hold the name's start
        prefix = _text(header[345:500].split(b"\0", 1)[0])
        if prefix:
            name = f"{prefix}/{name}"
    return name


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    # Records: "<length> <key>=<value>\n", the length counting the whole record.
    fields: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at)
        if space < 0 or not data[at:space].isdigit():
            raise ArchiveError("bad PAX header")
        length = int(data[at:space])
        record = data[at : at + length]
        if length <= space - at or len(record) < length or not record.endswith(b"\n"):
            raise ArchiveError("bad PAX header")
        key, sep, value = record[space - at + 1 : -1].partition(b"=")
        if not sep:
            raise ArchiveError("bad PAX header")
        fields[_text(key)] = _text(value)
        at += length
    return fields


def read_file_bounded(path: str, limit: int, name: str) -> bytes | None:
    """The bytes of the regular file at ``path`` (not followed if a link), at most
    ``limit`` of them; None when it is not a regular file (then it is skipped)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            return None
        raise ArchiveError(f"cannot read {name}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # a fifo (opened without blocking), a device, a socket
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ArchiveError(f"{name} is bigger than {limit} bytes", refused=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def tar_gz_dir(root: str, *, max_bytes: int, max_members: int) -> bytes:
    """The ``tar.gz`` of the directory ``root``: its regular files and directories (by
    sorted name, links never followed), each file's content at most ``max_bytes`` in all."""
    buffer = io.BytesIO()
    total = 0
    members = 0
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            entries = sorted(
                [(n, True) for n in dirnames if not os.path.islink(os.path.join(dirpath, n))]
                + [(n, False) for n in filenames]
            )
            for name, is_dir in entries:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                members += 1
                if members > max_members:
                    raise ArchiveError(f"it holds more than {max_members} entries", refused=True)
                full = os.path.join(dirpath, name)
                info = tarfile.TarInfo(rel)
                info.mtime = int(os.lstat(full).st_mtime)
                if is_dir:
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o750
                    tar.addfile(info)
                    continue
                try:
                    data = read_file_bounded(full, max_bytes - total, repr(rel))
                except ArchiveError as exc:
                    if not exc.refused:
                        raise
                    raise ArchiveError(
                        f"its files hold more than {max_bytes} bytes", refused=True
                    ) from None
                if data is None:
                    members -= 1
                    continue
                total += len(data)
                info.size = len(data)
                info.mode = stat.S_IMODE(os.lstat(full).st_mode) & 0o777
                tar.addfile(info, io.BytesIO(data))
        # os.walk lists symbolic links to directories among dirnames; they are skipped
        # above and, with followlinks=False, never entered.
    return buffer.getvalue()
