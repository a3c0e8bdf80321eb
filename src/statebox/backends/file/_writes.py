"""Planning a write: from the planned entry of each key to the file operations.

Ops come in three groups, run in this order: ``before`` (meta files, which name the
version they describe and so are harmless until the record changes), ``primary`` (record
and blob files: their renames are the commit) and ``after`` (history lines, removals of
what is no longer needed). One primary op commits by its own rename; more go through a
journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...core.errors import ValueTooLargeError, quoted
from ...core.model import Keyspace
from ...core.values import JSON_CONTENT_TYPE
from ..base import Entry, HistoryRecord
from ._codec import MAX_BLOB_BYTES, MAX_RECORD_BYTES, encode_blob, encode_record
from ._history import tail_lines
from ._journal import Op
from ._layout import KeyPaths
from ._reads import Loaded, as_history, history_line, same_version
from ._sidecodec import Meta, encode_history_line, encode_meta

__all__ = ["FilePlan"]


def _needs_meta(entry: Entry | None) -> bool:
    return entry is not None and (entry.expires_at is not None or bool(entry.updated_by.principal))


@dataclass
class FilePlan:
    before: list[Op] = field(default_factory=list)
    primary: list[Op] = field(default_factory=list)
    after: list[Op] = field(default_factory=list)

    @property
    def ops(self) -> list[Op]:
        return [*self.before, *self.primary, *self.after]

    @property
    def journaled(self) -> bool:
        """More than one record file changes: only a journal makes that atomic."""
        return len(self.primary) > 1

    def add_key(
        self,
        keyspace: Keyspace,
        key: str,
        paths: KeyPaths,
        loaded: Loaded,
        final: Entry | None,
        records: list[HistoryRecord],
        history_limit: int,
    ) -> None:
        """The ops that take ``key`` from ``loaded`` to ``final``, with its history."""
        self._record(keyspace, key, paths, loaded, final)
        if loaded.meta_file and not _needs_meta(final):
            self.after.append(Op("remove", paths.meta))
        if not records:
            return
        if history_limit <= 0:
            self.after.append(Op("remove", paths.history))
        else:
            lines = _history_lines(paths, key, loaded.entry, records, history_limit)
            self.after.append(Op("append", paths.history, lines=tuple(lines)))

    def add_import(
        self,
        keyspace: Keyspace,
        key: str,
        paths: KeyPaths,
        loaded: Loaded,
        final: Entry | None,
        history: tuple[HistoryRecord, ...],
    ) -> None:
        """The ops that put an imported key in place of ``loaded``: its record (or its
        removal) and its whole history log, rewritten with ``history`` (newest first),
        each line keeping all of them. The log's replacement is a primary op: with the
        record's, two renames, so the import commits by a journal (``journaled``) and a
        crash never leaves a record with the old log or the reverse."""
        self._record(keyspace, key, paths, loaded, final)
        if loaded.meta_file and not _needs_meta(final):
            self.after.append(Op("remove", paths.meta))
        if not history:
            self.primary.append(Op("remove", paths.history))
            return
        lines = [
            encode_history_line(record, number, number)
            for number, record in enumerate(reversed(history), 1)
        ]
        log = "".join(f"{line}\n" for line in lines).encode("utf-8")
        self.primary.append(Op("write", paths.history, log))

    def _record(
        self, keyspace: Keyspace, key: str, paths: KeyPaths, loaded: Loaded, final: Entry | None
    ) -> None:
        old = loaded.entry
        old_is_json = old is not None and old.content_type == JSON_CONTENT_TYPE
        if final is None:
            if old is not None:
                self.primary.append(Op("remove", paths.record if old_is_json else paths.blob))
            return
        if _needs_meta(final):
            who = final.updated_by.principal
            meta = Meta(final.version, final.updated_at, final.expires_at, who)
            # The old version's meta stays valid until the record is replaced.
            metas = [meta] if loaded.meta is None else [meta, loaded.meta]
            self.before.append(Op("write", paths.meta, encode_meta(metas)))
        if final.content_type == JSON_CONTENT_TYPE:
            record = _bounded(encode_record(keyspace, key, final), MAX_RECORD_BYTES, keyspace, key)
            self.primary.append(Op("write", paths.record, record, mtime_ns=final.updated_at))
            if old is not None and not old_is_json:
                self.primary.append(Op("remove", paths.blob))
        else:
            blob = _bounded(encode_blob(keyspace, key, final), MAX_BLOB_BYTES, keyspace, key)
            self.primary.append(Op("write", paths.blob, blob, mtime_ns=final.updated_at))
            if old_is_json:
                self.primary.append(Op("remove", paths.record))


def _bounded(data: bytes, limit: int, keyspace: Keyspace, key: str) -> bytes:
    # Readers refuse bigger files unread (_reads.load): never write one.
    if len(data) > limit:
        raise ValueTooLargeError(
            f"value too large for the file store: the record file of key {quoted(key)} (scope "
            f"{quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}) would have "
            f"{len(data)} bytes, and the file store reads records of at most {limit}"
        )
    return data


def _history_lines(
    paths: KeyPaths, key: str, stored: Entry | None, records: list[HistoryRecord], limit: int
) -> list[str]:
    seq = keep = 0
    last = tail_lines(paths.history, 1)
    if last:
        newest, seq, keep = history_line(last[0], paths, key)
        if stored is not None and not same_version(newest, stored):
            # A crash lost the stored version's line: it belongs before the new ones.
            records = [as_history(stored), *records]
    lines = []
    for record in records:
        seq, keep = seq + 1, min(limit, keep + 1)
        lines.append(encode_history_line(record, seq, keep))
    return lines
