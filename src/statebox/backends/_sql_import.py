"""``import_keys`` of the SQL backends (SQLite and PostgreSQL): whole keys, verbatim, in
one write transaction.

Per key it reads the entry row (expired or not) and the ``(version, hash, deleted)`` of
the kept history, decides with :func:`._imports.outcome`, and for created or replaced
drops the row and the history and inserts the item's entry and records, oldest first:
history is read newest first by id, so the ids must grow with age. SQLite numbers them
per key (1, 2, …, as the clustered writer does), PostgreSQL's identity column does.

The transaction makes the batch atomic. On SQLite the write transaction holds the whole
database. On PostgreSQL (row locks only) the backend first locks the entries table
against every other writer (``PostgresBackend._lock_for_import``): a key being imported
may have no row to lock — a deleted key carries history only — and a concurrent create
of it would otherwise interleave with the import. Reads go on; writers wait for the
batch. The backend's ``_notify_import`` then wakes watchers (PostgreSQL's NOTIFY; on
SQLite any commit moves ``PRAGMA data_version``).

Imported on the first import: a command that reads or writes one entry never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.model import Keyspace
from ..core.records import KeyImport
from ._imports import check_imports, outcome, written
from .sql import (
    _CLEAR_HISTORY,
    _DELETE_ENTRY,
    _HISTORY_COLUMNS,
    _INSERT_ENTRY,
    _INSERT_HISTORY_WITH_ID,
    _SELECT_ENTRY,
    _WHERE_KEY,
    SqlBackend,
    SqlConnection,
    _entry,
    _entry_params,
    _history_params,
)

__all__ = ["import_keys"]

_SIGNATURE = (
    f"SELECT version, hash, deleted FROM statebox_history WHERE {_WHERE_KEY} ORDER BY id DESC"
)
# PostgreSQL's history ids come from its identity column (SQLite's are given: sql.py's
# _INSERT_HISTORY_WITH_ID).
_INSERT_HISTORY = (
    f"INSERT INTO statebox_history (scope, namespace, {_HISTORY_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def import_keys(
    backend: SqlBackend,
    keyspace: Keyspace,
    items: Sequence[KeyImport],
    *,
    replace: bool,
    now: int,
) -> list[str]:
    check_imports(items)
    q = backend.dialect.q
    clustered = backend.dialect.clustered
    select_entry, signature = q(_SELECT_ENTRY), q(_SIGNATURE)
    delete_entry, clear_history = q(_DELETE_ENTRY), q(_CLEAR_HISTORY)
    insert_entry = q(_INSERT_ENTRY)
    insert_history = q(_INSERT_HISTORY_WITH_ID if clustered else _INSERT_HISTORY)

    def work(db: SqlConnection) -> list[str]:
        backend._lock_for_import(db)
        outcomes: list[str] = []
        for item in items:
            where = (keyspace.scope, keyspace.namespace.encode(), item.key.encode())
            row = db.execute(select_entry, where).fetchone()
            stored = None if row is None else _entry(item.key, row)
            kept = [
                (int(r[0]), str(r[1]), bool(r[2])) for r in db.execute(signature, where).fetchall()
            ]
            result = outcome(stored, kept, item, now, replace=replace)
            outcomes.append(result)
            if not written(result):
                continue
            if stored is not None:
                db.execute(delete_entry, where)
            if kept:
                db.execute(clear_history, where)
            if item.current is not None:
                db.execute(insert_entry, (*where, *_entry_params(item.current)))
            for number, record in enumerate(reversed(item.history), 1):
                columns: tuple[Any, ...] = (*where, *_history_params(record))
                db.execute(insert_history, (number, *columns) if clustered else columns)
        if any(written(result) for result in outcomes):
            backend._notify_import(db, keyspace)
        return outcomes

    return backend._write(work)
