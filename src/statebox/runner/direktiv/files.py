"""An action's files: variables written into its temp directory before the function runs
(``files:``), and the ``out/`` folders read back into variables after it.

``files:`` entries (Direktiv's sidecar, ``pkg/sidecar/worker.go`` ``writeFile``/``untar``):
``plain`` writes the variable's bytes (a JSON entry: its JSON text), ``base64`` their
decoding, ``tar`` and ``tar.gz`` extract them into a directory; the path is ``as`` (or
the key) below the temp directory, parent directories made ``0750``, ``permissions``
applied to every file written (as Go's ``os.Chmod`` of a parsed octal: the ``0777``
bits; a member's own mode is ignored, as Direktiv ignores it). A missing (or empty)
variable gives an empty file, or an empty directory.

Two deliberate departures, both safer or kinder and never changing a workflow that works
in Direktiv: archives are checked whole first (see :mod:`._tar`: only regular files and
directories; no ``..``; links, devices and fifos refused; size- and count-bounded), and
so is every ``files:`` entry of the action, so a refusal writes *nothing* — Direktiv
writes members until the bad one. And a ``base64`` file whose variable is a JSON string
(set without ``mimeType``) decodes that string; Direktiv would fail on its quotes.

Errors are :class:`~.errors.DirektivError` with :data:`~.errors.FILES_REFUSED` (unsafe) or
:data:`~.errors.FILES_FAILED` (unreadable, not base64, not a tar, a bad ``out/`` name, I/O);
uncatchable, as Direktiv reports a sidecar's file errors (an internal error, no code).

``out/`` (:func:`prepare_out`, :func:`collect_out`): ``out/instance``, ``out/workflow``
and ``out/namespace`` (Direktiv's ``out/file`` maps to nothing in statebox). Each regular
file in one becomes a binary variable of that scope named by the file; each directory the
``tar.gz`` of its regular files and directories. A symbolic link, fifo, socket or device
is skipped, as Direktiv skips it: following one could publish a file from outside the
folder. A name that is not a variable name is an error. They are read after the
function's process group has ended, links never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

from ...core.values import JSON_CONTENT_TYPE
from . import _tar
from ._gofmt import b64decode_strict, go_loads
from ._tar import ArchiveError, clean_parts, gunzip_bounded, read_file_bounded, read_tar
from .errors import FILES_FAILED, FILES_REFUSED, DirektivError
from .model import FileSpec
from .names import NAME_RE, is_name
from .variables import OCTET_STREAM

if TYPE_CHECKING:
    from .variables import Variables

__all__ = [
    "MAX_FILES_BYTES",
    "OUT_SCOPES",
    "collect_out",
    "materialize",
    "prepare_out",
]

#: The most bytes all of an action's ``files:`` may write (and its ``out/`` folders hold).
MAX_FILES_BYTES: Final = 2 * _tar.MAX_ARCHIVE_BYTES
#: The ``out/`` folders statebox reads, in Direktiv's order.
OUT_SCOPES: Final = ("namespace", "workflow", "instance")

_DIR_MODE: Final = 0o750
_Path = tuple[str, ...]


class _Plan:
    """Everything to write, as a tree checked for clashes before anything is written."""

    def __init__(self, max_bytes: int) -> None:
        self.kinds: dict[_Path, Literal["dir", "file"]] = {}
        self.files: dict[_Path, tuple[bytes, int | None]] = {}
        self.total = 0
        self.max_bytes = max_bytes

    def add_dir(self, parts: _Path) -> None:
        for i in range(1, len(parts) + 1):
            prefix = parts[:i]
            if self.kinds.get(prefix) == "file":
                raise ArchiveError(f"{'/'.join(prefix)!r} is both a file and a directory")
            self.kinds[prefix] = "dir"

    def add_file(self, parts: _Path, data: bytes, mode: int | None) -> None:
        self.add_dir(parts[:-1])
        if self.kinds.get(parts) == "dir":
            raise ArchiveError(f"{'/'.join(parts)!r} is both a directory and a file")
        self.total += len(data)
        if self.total > self.max_bytes:
            raise ArchiveError(
                f"the files add up to more than {self.max_bytes} bytes", refused=True
            )
        self.kinds[parts] = "file"
        self.files[parts] = (data, mode)


def materialize(
    specs: Sequence[FileSpec],
    variables: Variables,
    tempdir: str,
    *,
    max_archive_bytes: int = _tar.MAX_ARCHIVE_BYTES,
    max_members: int = _tar.MAX_ARCHIVE_MEMBERS,
    max_bytes: int = MAX_FILES_BYTES,
) -> None:
    """Write each of ``specs``' variables into ``tempdir`` (see the module docstring):
    every one read and checked first, then all written."""
    plan = _Plan(max_bytes)
    for spec in specs:
        dest = spec.as_ or spec.key
        try:
            parts = clean_parts(dest)
            if not parts:
                raise ArchiveError("the name is empty")
            raw = variables.read_raw(spec.scope, spec.key)
            data = b"" if raw is None else raw[0]
            mode = None if spec.permissions is None else spec.permissions & 0o777
            if spec.type == "plain":
                plan.add_file(parts, data, mode)
            elif spec.type == "base64":
                plan.add_file(parts, _b64decode(data, raw[1] if raw else ""), mode)
            else:
                stream = data
                if spec.type == "tar.gz" and data:
                    stream = gunzip_bounded(data, max_archive_bytes)
                members = read_tar(stream, max_bytes=max_archive_bytes, max_members=max_members)
                plan.add_dir(parts)
                for member in members:
                    where = parts + member.parts
                    if member.data is None:
                        plan.add_dir(where)
                    else:
                        plan.add_file(where, member.data, mode)
        except ArchiveError as exc:
            raise _error(
                exc, f"{spec.scope} variable {spec.key!r} as {spec.type} {dest!r}"
            ) from None
    _check_disk(plan, tempdir)
    _write(plan, tempdir)


def _b64decode(data: bytes, content_type: str) -> bytes:
    if content_type == JSON_CONTENT_TYPE:
        try:
            value = go_loads(data)
        except ValueError:
            value = None
        if isinstance(value, str):
            data = value.encode("utf-8", "surrogatepass")
    try:
        return b64decode_strict(data)
    except ValueError as exc:
        raise ArchiveError(str(exc)) from None


def _error(exc: ArchiveError, what: str) -> DirektivError:
    code = FILES_REFUSED if exc.refused else FILES_FAILED
    verb = "refused" if exc.refused else "cannot write"
    return DirektivError(code, f"files: {verb} {what}: {exc.message}", catchable=False)


def _check_disk(plan: _Plan, tempdir: str) -> None:
    """Refuse, before writing, a planned path whose place on disk holds a link or the
    other kind of thing (a file where a directory goes, or the reverse)."""
    for parts, kind in plan.kinds.items():
        path = os.path.join(tempdir, *parts)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _disk_error(parts, exc) from None
        clash = (
            stat.S_ISLNK(mode)
            or (kind == "dir" and not stat.S_ISDIR(mode))
            or (kind == "file" and not stat.S_ISREG(mode))
        )
        if clash:
            raise DirektivError(
                FILES_REFUSED,
                f"files: refused: {'/'.join(parts)!r} already exists in the temp directory "
                f"and is not a {'directory' if kind == 'dir' else 'regular file'}",
                catchable=False,
            )


def _write(plan: _Plan, tempdir: str) -> None:
    # kinds lists every directory before what it holds (add_dir adds prefixes first).
    for parts, kind in plan.kinds.items():
        if kind == "dir":
            path = os.path.join(tempdir, *parts)
            try:
                os.mkdir(path, _DIR_MODE)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise _disk_error(parts, NotADirectoryError("not a directory")) from None
            except OSError as exc:
                raise _disk_error(parts, exc) from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for parts, (data, mode) in plan.files.items():
        try:
            fd = os.open(os.path.join(tempdir, *parts), flags, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if mode is not None:
                    os.fchmod(fd, mode)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _disk_error(parts, exc) from None


def _disk_error(parts: _Path, exc: OSError) -> DirektivError:
    reason = exc.strerror or str(exc)
    return DirektivError(
        FILES_FAILED, f"files: cannot write {'/'.join(parts)!r}: {reason}", catchable=False
    )


def prepare_out(tempdir: str) -> None:
    """Make ``out/instance``, ``out/workflow`` and ``out/namespace`` in ``tempdir``."""
    for path in ["out", *(os.path.join("out", scope) for scope in OUT_SCOPES)]:
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.join(tempdir, path), _DIR_MODE)


def collect_out(
    tempdir: str,
    *,
    max_bytes: int = _tar.MAX_ARCHIVE_BYTES,
    max_members: int = _tar.MAX_ARCHIVE_MEMBERS,
) -> list[tuple[str, str, bytes, str]]:
    """``(scope, key, bytes, content_type)`` of each file and folder in ``out/<scope>/``
    (see the module docstring), at most ``max_bytes`` of file content in all."""
    found: list[tuple[str, str, bytes, str]] = []
    left = max_bytes
    for scope in OUT_SCOPES:
        folder = os.path.join(tempdir, "out", scope)
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                continue  # replaced by a file or a link: nothing of it is read
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _out_error(f"out/{scope}", exc.strerror or str(exc), refused=False) from None
        for name in names:
            where = f"out/{scope}/{name}"
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                continue
            if not is_name(name):
                raise _out_error(
                    where, f"not a variable name (must match {NAME_RE.pattern})", refused=False
                )
            try:
                if stat.S_ISDIR(mode):
                    data: bytes | None = _tar.tar_gz_dir(
                        path, max_bytes=left, max_members=max_members
                    )
                else:
                    data = read_file_bounded(path, left, repr(where))
            except ArchiveError as exc:
                problem = exc.message
                if exc.refused:
                    problem += (
                        f" (the out/ folders may hold {max_bytes} bytes in all, "
                        f"{max_members} entries in a folder)"
                    )
                raise _out_error(where, problem, refused=exc.refused) from None
            if data is None:
                continue
            left -= len(data)
            found.append((scope, name, data, OCTET_STREAM))
    return found


def _out_error(where: str, problem: str, *, refused: bool) -> DirektivError:
    code = FILES_REFUSED if refused else FILES_FAILED
    return DirektivError(code, f"out: {where}: {problem}", catchable=False)
