"""Acquiring, renewing, releasing and listing leases on the SQL backends.

Apart from :mod:`.sql` so that a command that reads or writes one entry (the CLI's
``get`` and ``set``) does not load them: :class:`~.sql.SqlBackend` imports this module
the first time a lease is taken. The read of a lease stays in :mod:`.sql`, where a
fenced write checks it.
"""

from __future__ import annotations

from ..core.versions import plan_acquire, plan_release, plan_renew
from .base import Lease
from .sql import _MAX_LIMIT, SqlBackend, SqlConnection


def _store_lease(backend: SqlBackend, db: SqlConnection, lease: Lease, existed: bool) -> None:
    if existed:
        sql = "UPDATE statebox_leases SET holder = ?, token = ?, expires_at = ? WHERE name = ?"
        db.execute(
            backend.dialect.q(sql), (lease.holder, lease.token, lease.expires_at, lease.name)
        )
    else:
        sql = "INSERT INTO statebox_leases (holder, token, expires_at, name) VALUES (?, ?, ?, ?)"
        db.execute(
            backend.dialect.q(sql), (lease.holder, lease.token, lease.expires_at, lease.name)
        )


def acquire_lease(backend: SqlBackend, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
    def work(db: SqlConnection) -> Lease:
        latest = backend._read_lease(db, name, lock=True)
        lease = plan_acquire(latest, name, holder, ttl_ns, now)
        # A first acquisition INSERTs: two at once collide on the primary key, and
        # the loser's transaction is run again by _write where that can happen.
        _store_lease(backend, db, lease, latest is not None)
        return lease

    return backend._write(work)


def renew_lease(
    backend: SqlBackend, name: str, holder: str, token: int, ttl_ns: int, now: int
) -> Lease:
    def work(db: SqlConnection) -> Lease:
        latest = backend._read_lease(db, name, lock=True)
        lease = plan_renew(latest, name, holder, token, ttl_ns, now)
        _store_lease(backend, db, lease, True)
        return lease

    return backend._write(work)


def release_lease(backend: SqlBackend, name: str, holder: str, token: int, now: int) -> bool:
    def work(db: SqlConnection) -> bool:
        ended = plan_release(backend._read_lease(db, name, lock=True), name, holder, token, now)
        if ended is not None:
            _store_lease(backend, db, ended, True)
        return ended is not None

    return backend._write(work)


def list_leases(backend: SqlBackend, now: int, after: str | None, limit: int) -> list[Lease]:
    """The live leases after ``after`` by the bytes of their names, at most ``limit``."""
    name = f"name{backend.dialect.bytewise}"
    sql = "SELECT name, holder, token, expires_at FROM statebox_leases WHERE expires_at > ?"
    params: list[object] = [now]
    if after is not None:
        sql += f" AND {name} > ?"
        params.append(after)
    sql += f" ORDER BY {name}"
    if limit > 0:
        sql += f" LIMIT {min(int(limit), _MAX_LIMIT)}"
    query = backend.dialect.q(sql)
    rows = backend._read(lambda db: db.execute(query, params).fetchall())
    return [Lease(str(row[0]), str(row[1]), int(row[2]), int(row[3])) for row in rows]
