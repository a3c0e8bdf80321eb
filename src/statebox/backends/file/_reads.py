"""Reading a file store: one key's files, a keyspace's names, a key's kept history.

Nothing here locks: every file is replaced atomically, so a read sees a whole old or a
whole new file. The caller finishes pending journals first (``FileBackend._settle``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import os
from collections.abc import Iterable, Iterator

from ...core.errors import CorruptEntryError, quoted
from ...core.model import Keyspace
from ..base import Entry, HistoryRecord
from ._codec import MAX_BLOB_BYTES, MAX_RECORD_BYTES, Stored, decode_record
from ._dirs import list_dir, open_no_symlinks
from ._fsio import read_file
from ._history import read_lines
from ._layout import KeyPaths
from ._sidecodec import MAX_META_BYTES, Meta, decode_history_line, decode_meta

__all__ = [
    "Loaded",
    "as_history",
    "history_line",
    "kept_history",
    "key_from_name",
    "listdir",
    "load",
    "meta_keys",
    "names_in_range",
    "same_version",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    """One key as stored: its entry (live or expired) and its meta file."""

    entry: Entry | None
    meta: Meta | None  # the meta of exactly this version, if any
    meta_file: bool  # a meta file exists (perhaps describing an older version)


def listdir(path: str) -> list[str]:
    """The names in a keyspace's directory; a symlinked one is refused, never listed."""
    return list_dir(path)


def _real_entries(path: str, directories: bool) -> list[str]:
    """The real subdirectories (or else files) of ``path``, skipping anything planted
    (symlinks, other kinds); none when ``path`` is missing or itself planted."""
    try:
        fd = open_no_symlinks(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, CorruptEntryError):
        return []
    try:
        with os.scandir(fd) as entries:
            return [
                entry.name
                for entry in entries
                if (entry.is_dir if directories else entry.is_file)(follow_symlinks=False)
            ]
    finally:
        os.close(fd)


def key_from_name(hex_name: str) -> str | None:
    """The text a hex file name encodes, or None for a name statebox would not write."""
    if hex_name != hex_name.lower():
        return None
    try:
        return bytes.fromhex(hex_name).decode("utf-8")
    except ValueError:
        return None


def _verified(stored: Stored, paths: KeyPaths, where: str) -> Stored:
    """``stored`` if it is the entry its file name says and its value matches its hash;
    else CorruptEntryError naming the file (a record copied or linked from another
    namespace, or edited by hand, is never served as this key)."""
    try:
        claimed = "/".join(
            ("v1", stored.scope, stored.namespace.encode().hex(), stored.key.encode().hex())
        )
    except UnicodeEncodeError:
        claimed = ""
    if claimed != paths.record_id:
        raise CorruptEntryError(
            f"the record file {where} holds the entry scope={quoted(stored.scope)} "
            f"namespace={quoted(stored.namespace)} key={quoted(stored.key)}, not the one its "
            "name says; "
            "it is left untouched: repair or remove it by hand"
        )
    if hashlib.sha256(stored.data).hexdigest() != stored.hash:
        raise CorruptEntryError(
            f"the record file {where}: its value does not match its hash {quoted(stored.hash)}; "
            "it is left untouched: repair or remove it by hand"
        )
    return stored


def load(paths: KeyPaths, key: str, *, for_write: bool = False) -> Loaded:
    """The key's record (or blob) with its TTL and principal from the meta file. Only a
    regular file of bounded size whose identity and hash check out is served."""
    where, raw = paths.record, read_file(paths.record, MAX_RECORD_BYTES)
    if raw is None:
        where, raw = paths.blob, read_file(paths.blob, MAX_BLOB_BYTES)
    if raw is None:
        # A writer must know of a meta file left without its record, to remove it.
        return Loaded(None, None, for_write and os.path.lexists(paths.meta))
    stored = _verified(decode_record(raw, where), paths, where)
    meta_raw = read_file(paths.meta, MAX_META_BYTES)
    meta = None
    if meta_raw is not None:
        meta = next((m for m in decode_meta(meta_raw, paths.meta) if m.matches(stored)), None)
    who = stored.updated_by
    if meta is not None and meta.principal:
        who = who._replace(principal=meta.principal)
    entry = Entry(
        key=key,
        version=stored.version,
        hash=stored.hash,
        data=stored.data,
        content_type=stored.content_type,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        updated_by=who,
        expires_at=meta.expires_at if meta is not None else None,
    )
    return Loaded(entry, meta, meta_raw is not None)


def _hex_successor(prefix: str) -> str | None:
    """The smallest hex string above every string starting with ``prefix`` (None: none)."""
    trimmed = prefix.rstrip("f")
    if not trimmed:
        return None
    last = trimmed[-1]
    return trimmed[:-1] + ("a" if last == "9" else chr(ord(last) + 1))


def _keys(names: Iterable[str]) -> Iterator[str]:
    previous = None
    for name in names:
        if name.endswith((".json", ".blob")):
            hex_name = name[:-5]
            if hex_name != previous:  # a key's record and blob file sort side by side
                yield hex_name
            previous = hex_name


def _ascending(names: list[str], first: int) -> Iterator[str]:
    if 0 < first < len(names) // 4:
        head = heapq.nsmallest(first, names)
        yield from head
        names = [name for name in names if name > head[-1]]
    names.sort()
    yield from names


def names_in_range(dirs: tuple[str, str], low: str, floor: str, first: int) -> Iterator[str]:
    """Hex names of a keyspace's records and blobs that start with ``low`` and sort after
    ``floor``, ascending: one directory listing each, no file read.

    ``.`` sorts below every hex digit, so whole file names sort as their hex keys do and
    the range is two string comparisons per name. The first ``first`` come from a
    partial sort; the rest are sorted only if the caller reads on."""
    lower = (max(low, floor + ".~") if floor else low) or "/"  # "/": above dot-files
    upper = _hex_successor(low)
    names: list[str] = []
    for directory in dirs:
        listing = listdir(directory)
        if upper is None:
            names += [name for name in listing if lower < name]
        else:
            names += [name for name in listing if lower < name < upper]
    return _keys(_ascending(names, first))


def as_history(entry: Entry) -> HistoryRecord:
    return HistoryRecord(
        entry.key,
        entry.version,
        entry.hash,
        entry.data,
        entry.content_type,
        entry.created_at,
        entry.updated_at,
        entry.updated_by,
    )


def same_version(record: HistoryRecord, entry: Entry) -> bool:
    return not record.deleted and (record.version, record.updated_at) == (
        entry.version,
        entry.updated_at,
    )


def history_line(line: str, paths: KeyPaths, key: str) -> tuple[HistoryRecord, int, int]:
    """A parsed history line: (record, sequence number, keep count)."""
    try:
        return decode_history_line(line, key)
    except ValueError as exc:
        raise CorruptEntryError(f"cannot parse the history log {paths.history}: {exc}") from exc


def kept_history(paths: KeyPaths, key: str, current: Entry | None) -> list[HistoryRecord]:
    """The kept versions, newest first. The current entry is always the newest: a crash
    between its rename and its history line is repaired here."""
    lines = read_lines(paths.history)
    if not lines:
        return []  # history was never kept, or turned off
    parsed = [history_line(line, paths, key) for line in lines]
    keep = parsed[-1][2]
    kept = [record for record, _, _ in parsed[-keep:]]
    if current is not None and not same_version(kept[-1], current):
        # Its write kept one line more, unless the log already held more than it kept
        # (the limit was reached).
        grown = keep + 1 if len(parsed) == keep else keep
        kept = [*kept, as_history(current)][-grown:]
    kept.reverse()
    return kept


def meta_keys(meta_root: str) -> Iterator[tuple[Keyspace, str]]:
    """Every (keyspace, key) with a meta file: the only keys that can expire. Planted
    symlinks are skipped; other planted files are refused when read (and skipped)."""
    for scope in _real_entries(meta_root, directories=True):
        for hex_ns in _real_entries(os.path.join(meta_root, scope), directories=True):
            namespace = key_from_name(hex_ns)
            if namespace is None:
                continue
            for name in _real_entries(os.path.join(meta_root, scope, hex_ns), False):
                key = key_from_name(name[: -len(".meta")]) if name.endswith(".meta") else None
                if key is not None:
                    yield Keyspace(scope, namespace), key
