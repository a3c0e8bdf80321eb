"""Keyspace listing and deletion, and the expiry purge, of the SQL backends.

These statements walk or clear many keys at once, where the rest of :mod:`.sql` reads
and writes one entry. They live apart so that a command that touches one entry (the
CLI's ``get`` and ``set``) does not load them: :class:`~.sql.SqlBackend` imports this
module the first time one of them runs.
"""

from __future__ import annotations

from typing import Any

from ..core.model import Keyspace
from .base import Delete, KeyspaceInfo, WriteContext
from .sql import _MAX_LIMIT, _WHERE_KEY, Dialect, SqlBackend, SqlConnection


def purge_expired(dialect: Dialect, db: SqlConnection, now: int, limit: int) -> int:
    rows = db.execute(
        dialect.q(
            "SELECT scope, namespace, key FROM statebox_entries "
            f"WHERE expires_at <= ? ORDER BY expires_at LIMIT {min(int(limit), _MAX_LIMIT)}"
        ),
        (now,),
    ).fetchall()
    for row in rows:
        db.execute(
            dialect.q(f"DELETE FROM statebox_entries WHERE {_WHERE_KEY} AND expires_at <= ?"),
            (row[0], row[1], row[2], now),
        )
    return len(rows)


def list_keyspaces(
    backend: SqlBackend, scope: str | None, *, after: Keyspace | None, limit: int, now: int
) -> list[KeyspaceInfo]:
    sql, params = backend.keyspaces_query(scope, after=after, limit=limit, now=now)
    rows = backend._read(lambda db: db.execute(sql, params).fetchall())
    return [KeyspaceInfo(row[0], bytes(row[1]).decode(), int(row[2]), int(row[3])) for row in rows]


def keyspaces_query(
    dialect: Dialect, scope: str | None, *, after: Keyspace | None, limit: int, now: int
) -> tuple[str, list[Any]]:
    """The statement :meth:`~.sql.SqlBackend.list_keyspaces` runs: one walk of the primary
    key's ``(scope, namespace)`` prefix, grouped (tests ``EXPLAIN`` it)."""
    conditions = ["(expires_at IS NULL OR expires_at > ?)"]
    params: list[Any] = [now]
    if scope is not None:
        conditions.append("scope = ?")
        params.append(scope)
    if after is not None:
        # A row value: both databases seek the primary key to it (an OR would not).
        conditions.append("(scope, namespace) > (?, ?)")
        params += [after.scope, after.namespace.encode()]
    sql = (
        "SELECT scope, namespace, COUNT(*), MAX(updated_at) FROM statebox_entries "
        f"WHERE {' AND '.join(conditions)} GROUP BY scope, namespace "
        "ORDER BY scope, namespace"
    )
    if limit > 0:
        sql += f" LIMIT {min(int(limit), _MAX_LIMIT)}"
    return dialect.q(sql), params


def delete_keyspace(backend: SqlBackend, keyspace: Keyspace, ctx: WriteContext) -> int:
    space = (keyspace.scope, keyspace.namespace.encode())
    live_keys = backend.dialect.q(
        "SELECT key FROM statebox_entries WHERE scope = ? AND namespace = ? "
        "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key"
    )
    rest = backend.dialect.q("DELETE FROM statebox_entries WHERE scope = ? AND namespace = ?")

    def work(db: SqlConnection) -> int:
        # One transaction: the keys read here are exactly the ones deleted. Each goes
        # through the apply path, so its history gets a deletion record.
        keys = [
            bytes(row[0]).decode() for row in db.execute(live_keys, (*space, ctx.now)).fetchall()
        ]
        deleted = sum(
            backend._apply_one(db, keyspace, Delete(key), ctx, index).previous is not None
            for index, key in enumerate(keys)
        )
        db.execute(rest, space)  # the expired entries left
        return deleted

    return backend._write(work)
