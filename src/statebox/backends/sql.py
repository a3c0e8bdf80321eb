"""The SQL middle layer shared by SQLite and PostgreSQL.

The statements and the apply loop live here once; a concrete backend supplies a
:class:`Dialect` (types, placeholder style, row locking) and the pair ``_read`` /
``_write``, which run a function on a connection-like object: for reads, and inside an
exclusive write transaction that commits on success and rolls back on any error.

Keys and namespaces are stored as their UTF-8 bytes (``BLOB`` / ``BYTEA``), so both
databases order and compare them by byte, as SPEC §4 requires, without collations.
"""

from __future__ import annotations

import functools
import json
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence

from ..core.model import Keyspace, UpdatedBy
from ..core.versions import check_fence, history_record, plan
from .base import (
    Applied,
    Backend,
    Entry,
    HistoryRecord,
    KeyImport,
    KeyspaceInfo,
    Lease,
    Mutation,
    WriteContext,
    check_batches,
)
from .keyrange import prefix_upper_bound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple, Protocol, TypeVar

    T = TypeVar("T")
else:  # typing is not imported at CLI start-up: typing.NamedTuple's classes, built
    # faster, and Protocol a plain base class
    from ..core._tuples import NamedTuple

    Protocol = object

__all__ = ["SCHEMA_VERSION", "Change", "Dialect", "SqlBackend", "SqlConnection"]

SCHEMA_VERSION = 1


class SqlCursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqlConnection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ...) -> SqlCursor: ...


class Dialect(NamedTuple):
    name: str
    #: DB-API parameter marker: ``?`` (sqlite3) or ``%s`` (psycopg).
    param: str
    blob: str
    bigint: str
    history_id: str
    #: Appended to the read of the current row inside a write transaction.
    lock_row: str
    #: Tables clustered on their primary key (SQLite ``WITHOUT ROWID``): history is keyed
    #: by ``(scope, namespace, key, id)`` with per-key ids (the key's newest id + 1, read
    #: with the entry), so a durable write dirties one page per table and no index pages.
    #: Otherwise (PostgreSQL) history ids come from an identity column.
    clustered: bool = False
    #: Appended to a ``TEXT`` column compared or sorted by byte (lease names): PostgreSQL's
    #: ``COLLATE "C"``; SQLite's ``TEXT`` compares bytes already.
    bytewise: str = ""

    def q(self, sql: str) -> str:
        return sql if self.param == "?" else sql.replace("?", self.param)

    def schema(self) -> list[str]:
        """The DDL of the current :data:`SCHEMA_VERSION`, every statement idempotent."""
        from ._sql_schema import schema  # only when a database is set up

        return schema(self)


_ENTRY_COLUMNS = "version, hash, content_type, data, created_at, updated_at, updated_by, expires_at"
_HISTORY_COLUMNS = (
    "key, version, hash, content_type, data, created_at, updated_at, updated_by, deleted"
)
_WHERE_KEY = "scope = ? AND namespace = ? AND key = ?"
#: The largest LIMIT sent: a larger one is no limit in practice, and SQLite refuses a
#: literal beyond a 64-bit integer ("datatype mismatch"), as PostgreSQL does beyond BIGINT.
_MAX_LIMIT = 2**63 - 1
# The statements of the hot paths, built once (``?`` markers; ``Dialect.q`` adapts them).
# Those from _INSERT_ENTRY on are the clustered (SQLite) writer's: PostgreSQL writes with
# the statements of ._pg_write (and imports, ._sql_import, with some of these).
_SELECT_ENTRY = f"SELECT {_ENTRY_COLUMNS} FROM statebox_entries WHERE {_WHERE_KEY}"
_INSERT_ENTRY = (
    f"INSERT INTO statebox_entries (scope, namespace, key, {_ENTRY_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_ENTRY = (
    "UPDATE statebox_entries SET version = ?, hash = ?, content_type = ?, data = ?, "
    f"created_at = ?, updated_at = ?, updated_by = ?, expires_at = ? WHERE {_WHERE_KEY}"
)
_DELETE_ENTRY = f"DELETE FROM statebox_entries WHERE {_WHERE_KEY}"
_INSERT_HISTORY_WITH_ID = (
    f"INSERT INTO statebox_history (id, scope, namespace, {_HISTORY_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CLEAR_HISTORY = f"DELETE FROM statebox_history WHERE {_WHERE_KEY}"
# Clustered (SQLite) writes read the entry and the id of the key's keep-th newest history
# record in one statement, and trim only when that record exists: always one row, the
# entry's columns NULL when it is missing. Parameters: scope, namespace, key, keep - 1.
_SELECT_ENTRY_AND_TRIM_BOUND = (
    f"SELECT {_ENTRY_COLUMNS}, (SELECT id FROM statebox_history WHERE scope = ?1 AND "
    "namespace = ?2 AND key = ?3 ORDER BY id DESC LIMIT 1 OFFSET ?4), (SELECT id FROM "
    "statebox_history WHERE scope = ?1 AND namespace = ?2 AND key = ?3 ORDER BY id DESC "
    "LIMIT 1) FROM (SELECT 1) "
    "LEFT JOIN statebox_entries ON scope = ?1 AND namespace = ?2 AND key = ?3"
)
_TRIM_HISTORY_UPTO = f"DELETE FROM statebox_history WHERE {_WHERE_KEY} AND id <= ?"


@functools.lru_cache(maxsize=256)  # a store writes as one run context: encode it once
def _dump_updated_by(who: UpdatedBy) -> str:
    return json.dumps(who.to_dict(), ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=256)  # a few writers write most rows: parse each once
def _load_updated_by(text: str) -> UpdatedBy:
    return UpdatedBy.from_dict(json.loads(text)) if text else UpdatedBy()


def _entry(key: str, row: Sequence[Any]) -> Entry:
    # Positional: the hot path of every get (both drivers give ints for the integers).
    return Entry(
        key, row[0], row[1], bytes(row[3]), row[2], row[4], row[5], _load_updated_by(row[6]), row[7]
    )


def _entry_params(entry: Entry) -> tuple[Any, ...]:
    return (
        entry.version,
        entry.hash,
        entry.content_type,
        entry.data,
        entry.created_at,
        entry.updated_at,
        _dump_updated_by(entry.updated_by),
        entry.expires_at,
    )


def _history_params(record: HistoryRecord) -> tuple[Any, ...]:
    """A history record's columns from ``version`` on (``_HISTORY_COLUMNS`` after key)."""
    return (
        record.version,
        record.hash,
        record.content_type,
        record.data,
        record.created_at,
        record.updated_at,
        _dump_updated_by(record.updated_by),
        1 if record.deleted else 0,
    )


def _history(row: Sequence[Any]) -> HistoryRecord:
    return HistoryRecord(
        key=bytes(row[0]).decode(),
        version=int(row[1]),
        hash=row[2],
        content_type=row[3],
        data=bytes(row[4]),
        created_at=int(row[5]),
        updated_at=int(row[6]),
        updated_by=_load_updated_by(row[7]),
        deleted=bool(row[8]),
    )


class Change(NamedTuple):
    """What one mutation writes, as planned (``where``: scope, namespace and key bytes)."""

    keyspace: Keyspace
    where: tuple[str, bytes, bytes]
    #: A row was there (live or expired): it is updated or deleted, not inserted.
    existed: bool
    new: Entry | None
    #: ``versions.history_record``: the new entry's fields whenever ``new`` is not None,
    #: else the deletion marker (None: nothing was there to delete).
    record: HistoryRecord | None
    #: ``ctx.history_limit``: history records to keep (0: none).
    keep: int


class SqlBackend(Backend):
    """Everything of the contract that is plain SQL; subclasses own connections."""

    dialect: Dialect

    @abstractmethod
    def _read(self, work: Callable[[SqlConnection], T]) -> T:
        """Run ``work`` on a connection for reads (autocommit or a read-only
        transaction), its driver's errors translated to statebox's. A backend may run it
        again (a read that failed on a lost connection is safe to repeat)."""

    @abstractmethod
    def _write(self, work: Callable[[SqlConnection], T]) -> T:
        """Run ``work`` in one exclusive write transaction: commit on success, roll back
        on any error (driver errors translated to statebox's). A backend may run it again
        in a new transaction when the first one provably did not commit (PostgreSQL: two
        inserts of one new key, deadlocks, serialization failures)."""

    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
        sql = self.dialect.q(_SELECT_ENTRY)
        params = (keyspace.scope, keyspace.namespace.encode(), key.encode())
        row = self._read(lambda db: db.execute(sql, params).fetchone())
        if row is None:
            return None
        entry = _entry(key, row)
        return entry if entry.is_live(now) else None

    def scan(
        self,
        keyspace: Keyspace,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        include_values: bool,
        now: int,
    ) -> list[Entry]:
        sql, params = self.scan_query(
            keyspace, prefix, after=after, limit=limit, include_values=include_values, now=now
        )
        rows = self._read(lambda db: db.execute(sql, params).fetchall())
        return [
            _entry(bytes(row[0]).decode(), (*row[1:4], row[4] if include_values else b"", *row[5:]))
            for row in rows
        ]

    def scan_query(
        self,
        keyspace: Keyspace,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        include_values: bool,
        now: int,
    ) -> tuple[str, list[Any]]:
        """The statement :meth:`scan` runs: one primary-key range, so its cost follows
        the result (tests ``EXPLAIN`` it)."""
        low = prefix.encode()
        conditions = ["scope = ?", "namespace = ?", "(expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [keyspace.scope, keyspace.namespace.encode(), now]
        if after is not None and after.encode() >= low:
            conditions.append("key > ?")
            params.append(after.encode())
        else:
            conditions.append("key >= ?")
            params.append(low)
        high = prefix_upper_bound(low)
        if high is not None:
            conditions.append("key < ?")
            params.append(high)
        data = "data" if include_values else "NULL"
        sql = (
            f"SELECT key, version, hash, content_type, {data}, created_at, updated_at, "
            f"updated_by, expires_at FROM statebox_entries WHERE {' AND '.join(conditions)} "
            "ORDER BY key"
        )
        if limit > 0:
            sql += f" LIMIT {min(int(limit), _MAX_LIMIT)}"
        return self.dialect.q(sql), params

    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        def work(db: SqlConnection) -> list[Applied]:
            return [
                self._apply_one(db, keyspace, mutation, ctx, index)
                for index, mutation in enumerate(mutations)
            ]

        return self._write(work)

    def apply_batch(
        self, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        check_batches(batches)

        def work(db: SqlConnection) -> list[list[Applied]]:
            # One transaction; a conflict's index counts across the batches (flat).
            self._lock_keys(db, batches)
            index = 0
            out: list[list[Applied]] = []
            for keyspace, mutations in batches:
                out.append([])
                for mutation in mutations:
                    out[-1].append(self._apply_one(db, keyspace, mutation, ctx, index))
                    index += 1
            return out

        return self._write(work)

    def _lock_keys(
        self, db: SqlConnection, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]]
    ) -> None:
        """Lock the entries ``apply_batch`` will write before it writes any (nothing to
        do here: SQLite's write transaction holds the whole database)."""

    def _apply_one(
        self,
        db: SqlConnection,
        keyspace: Keyspace,
        mutation: Mutation,
        ctx: WriteContext,
        index: int,
    ) -> Applied:
        q = self.dialect.q
        where = (keyspace.scope, keyspace.namespace.encode(), mutation.key.encode())
        trim_upto: int | None = None
        history_id = 0  # PostgreSQL: an identity column numbers history
        if self.dialect.clustered:
            bounded = (*where, ctx.history_limit - 1)
            row = db.execute(_SELECT_ENTRY_AND_TRIM_BOUND, bounded).fetchone()
            trim_upto = row[8]
            # Per-key history ids; a second write to the key in the same batch reads
            # the record the first one added (same transaction).
            history_id = (row[9] or 0) + 1
            if row[0] is None:  # version is NOT NULL: no entry
                row = None
        else:
            row = db.execute(q(_SELECT_ENTRY + self.dialect.lock_row), where).fetchone()
        stored = _entry(mutation.key, row) if row is not None else None
        current = stored if stored is not None and stored.is_live(ctx.now) else None
        if mutation.fence is not None:
            check_fence(
                mutation.fence, self._read_lease(db, mutation.fence.lease, lock=True), index=index
            )
        new = plan(current, mutation, ctx, index=index)
        record = history_record(current, new, ctx)
        change = Change(keyspace, where, stored is not None, new, record, ctx.history_limit)
        self._store(db, change, history_id, trim_upto)
        return Applied(current, new)

    def _store(
        self, db: SqlConnection, change: Change, history_id: int, trim_upto: int | None
    ) -> None:
        """Write a planned change: the entry (or its removal), then its history record.

        This is the clustered (SQLite) writer: ``?`` markers, per-key history ids and the
        trim bound read with the entry. PostgreSQL overrides it to send the change as one
        statement (:mod:`._pg_write`).
        """
        where, new = change.where, change.new
        if new is None:
            if change.existed:
                db.execute(_DELETE_ENTRY, where)
        elif not change.existed:
            # BEGIN IMMEDIATE holds the write lock since the read: no one created the key.
            db.execute(_INSERT_ENTRY, (*where, *_entry_params(new)))
        else:
            db.execute(_UPDATE_ENTRY, (*_entry_params(new), *where))
        if change.record is not None:
            self._record_history(db, where, change.record, change.keep, history_id, trim_upto)

    def _record_history(
        self,
        db: SqlConnection,
        where: tuple[Any, ...],
        record: HistoryRecord,
        keep: int,
        history_id: int,
        trim_upto: int | None,
    ) -> None:
        if keep <= 0:
            db.execute(_CLEAR_HISTORY, where)
            return
        db.execute(_INSERT_HISTORY_WITH_ID, (history_id, *where, *_history_params(record)))
        if trim_upto is not None:  # read with the entry; None: nothing to trim
            db.execute(_TRIM_HISTORY_UPTO, (*where, trim_upto))

    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]:
        sql = f"SELECT {_HISTORY_COLUMNS} FROM statebox_history WHERE {_WHERE_KEY} ORDER BY id DESC"
        if limit > 0:
            sql += f" LIMIT {min(int(limit), _MAX_LIMIT)}"
        params = (keyspace.scope, keyspace.namespace.encode(), key.encode())
        rows = self._read(lambda db: db.execute(self.dialect.q(sql), params).fetchall())
        return [_history(row) for row in rows]

    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None:
        sql = (
            f"SELECT {_HISTORY_COLUMNS} FROM statebox_history WHERE {_WHERE_KEY} "
            "AND version = ? AND deleted = 0 ORDER BY id DESC LIMIT 1"
        )
        params = (keyspace.scope, keyspace.namespace.encode(), key.encode(), version)
        row = self._read(lambda db: db.execute(self.dialect.q(sql), params).fetchone())
        return None if row is None else _history(row)

    # -- import ---------------------------------------------------------------------------

    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool, now: int
    ) -> list[str]:
        from ._sql_import import import_keys

        return import_keys(self, keyspace, items, replace=replace, now=now)

    def _lock_for_import(self, db: SqlConnection) -> None:
        """Keep every other writer out of an import's transaction (nothing to do here:
        SQLite's write transaction holds the whole database)."""

    def _notify_import(self, db: SqlConnection, keyspace: Keyspace) -> None:
        """Make the import's commit move ``keyspace``'s change token (nothing to do
        here: every SQLite commit moves ``PRAGMA data_version``)."""

    # -- leases ---------------------------------------------------------------------------

    def _read_lease(self, db: SqlConnection, name: str, *, lock: bool = False) -> Lease | None:
        sql = "SELECT holder, token, expires_at FROM statebox_leases WHERE name = ?"
        row = db.execute(
            self.dialect.q(sql + (self.dialect.lock_row if lock else "")), (name,)
        ).fetchone()
        return None if row is None else Lease(name, row[0], int(row[1]), int(row[2]))

    def get_lease(self, name: str, now: int) -> Lease | None:
        return self._read(lambda db: self._read_lease(db, name))

    # -- leases taken, expiry, keyspaces --------------------------------------------------
    # Taking, renewing and releasing leases, and the statements over whole keyspaces,
    # live in ._sql_leases and ._sql_keyspaces, imported on first use: a command that
    # reads or writes one entry (the CLI's get and set) does not load them.

    def acquire_lease(self, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
        from ._sql_leases import acquire_lease

        return acquire_lease(self, name, holder, ttl_ns, now)

    def renew_lease(self, name: str, holder: str, token: int, ttl_ns: int, now: int) -> Lease:
        from ._sql_leases import renew_lease

        return renew_lease(self, name, holder, token, ttl_ns, now)

    def release_lease(self, name: str, holder: str, token: int, now: int) -> bool:
        from ._sql_leases import release_lease

        return release_lease(self, name, holder, token, now)

    def list_leases(self, now: int, after: str | None, limit: int) -> list[Lease]:
        from ._sql_leases import list_leases

        return list_leases(self, now, after, limit)

    def purge_expired(self, now: int, limit: int = 1000) -> int:
        from ._sql_keyspaces import purge_expired

        return self._write(lambda db: purge_expired(self.dialect, db, now, limit))

    def list_keyspaces(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]:
        from ._sql_keyspaces import list_keyspaces

        return list_keyspaces(self, scope, after=after, limit=limit, now=now)

    def keyspaces_query(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> tuple[str, list[Any]]:
        """The statement :meth:`list_keyspaces` runs: one walk of the primary key's
        ``(scope, namespace)`` prefix, grouped (tests ``EXPLAIN`` it)."""
        from ._sql_keyspaces import keyspaces_query

        return keyspaces_query(self.dialect, scope, after=after, limit=limit, now=now)

    def delete_keyspace(self, keyspace: Keyspace, ctx: WriteContext) -> int:
        from ._sql_keyspaces import delete_keyspace

        return delete_keyspace(self, keyspace, ctx)
