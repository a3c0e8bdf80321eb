"""A PostgreSQL write in one statement: the entry, its history record, the trim, the NOTIFY.

The shared layer locks and reads the row and plans the change in Python
(:func:`statebox.core.versions.plan`); what it then writes takes SQLite four statements. On
PostgreSQL each statement is a round trip, so the writes go as data-modifying ``WITH``
clauses of one statement whose ``SELECT`` sends the notification:

.. code-block:: sql

    WITH w0 AS (UPDATE statebox_entries SET … WHERE …),
         w1 AS (DELETE FROM statebox_history WHERE … AND id <= (… OFFSET keep - 1)),
         w2 AS (INSERT INTO statebox_history … VALUES (…))
    SELECT pg_notify(channel, bucket)

This is exactly what the separate statements did. Every clause runs once, to completion,
on the statement's one snapshot: the trim does not see the record being inserted, so it
keeps the ``keep - 1`` newest older ones. A failing clause (two writers inserting one new
key) fails the statement and so the transaction, which the backend runs again. The
notification is delivered only if the transaction commits, and PostgreSQL folds the
identical ones of a multi-key transaction into one.

Named parameters: scope, namespace and key are sent once however often they appear, and
a history record that is the new entry (every write but a deletion) reuses the entry's
parameters rather than sending its value twice.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from .sql import _ENTRY_COLUMNS, Change, _entry_params, _history_params

__all__ = ["write"]

EntryWrite = Literal["insert", "update", "delete"]
#: ``"entry"``: the record is the new entry (same parameters); ``"own"``: a deletion marker.
HistoryWrite = Literal["entry", "own", "clear", "none"]

_ENTRY_FIELDS = _ENTRY_COLUMNS.split(", ")
_RECORD_FIELDS = [*_ENTRY_FIELDS[:-1], "deleted"]  # expires_at is not kept in history
_RECORD_PARAMS = [f"record_{name}" for name in _RECORD_FIELDS]
_KEY = "scope = %(scope)s AND namespace = %(namespace)s AND key = %(key)s"
_KEY_VALUES = "%(scope)s, %(namespace)s, %(key)s"


def _values(names: list[str], prefix: str = "") -> str:
    return ", ".join(f"%({prefix}{name})s" for name in names)


@functools.cache  # at most 3 x 4 shapes; psycopg then prepares each one on the server
def statement(entry: EntryWrite, history: HistoryWrite) -> str:
    clauses: list[str] = []
    if entry == "insert":
        clauses.append(
            f"INSERT INTO statebox_entries (scope, namespace, key, {_ENTRY_COLUMNS}) "
            f"VALUES ({_KEY_VALUES}, {_values(_ENTRY_FIELDS)})"
        )
    elif entry == "update":
        assignments = ", ".join(f"{name} = %({name})s" for name in _ENTRY_FIELDS)
        clauses.append(f"UPDATE statebox_entries SET {assignments} WHERE {_KEY}")
    else:
        clauses.append(f"DELETE FROM statebox_entries WHERE {_KEY}")
    if history == "clear":
        clauses.append(f"DELETE FROM statebox_history WHERE {_KEY}")
    elif history != "none":
        clauses.append(
            f"DELETE FROM statebox_history WHERE {_KEY} AND id <= (SELECT id FROM "
            f"statebox_history WHERE {_KEY} ORDER BY id DESC LIMIT 1 OFFSET %(older)s)"
        )
        values = (
            f"{_values(_ENTRY_FIELDS[:-1])}, 0"
            if history == "entry"
            else _values(_RECORD_FIELDS, "record_")
        )
        clauses.append(
            f"INSERT INTO statebox_history (scope, namespace, key, {', '.join(_RECORD_FIELDS)}) "
            f"VALUES ({_KEY_VALUES}, {values})"
        )
    ctes = ", ".join(f"w{i} AS ({clause})" for i, clause in enumerate(clauses))
    return f"WITH {ctes} SELECT pg_notify(%(channel)s, %(bucket)s)"


def write(change: Change, channel: str, bucket: str) -> tuple[str, dict[str, Any]] | None:
    """The statement writing ``change`` and its parameters; ``None`` when there is nothing
    to write (deleting a key that is not there)."""
    new, record = change.new, change.record
    scope, namespace, key = change.where
    params: dict[str, Any] = {
        "scope": scope,
        "namespace": namespace,
        "key": key,
        "channel": channel,
        "bucket": bucket,
    }
    entry: EntryWrite
    if new is None:
        if not change.existed:
            return None
        entry = "delete"
    else:
        entry = "update" if change.existed else "insert"
        params.update(zip(_ENTRY_FIELDS, _entry_params(new), strict=True))
    history: HistoryWrite
    if record is None:
        history = "none"
    elif change.keep <= 0:
        history = "clear"
    else:
        params["older"] = change.keep - 1
        if new is not None:  # the record is the new entry (Change.record)
            history = "entry"
        else:
            history = "own"
            params.update(zip(_RECORD_PARAMS, _history_params(record), strict=True))
    return statement(entry, history), params
