"""``postgresql://user@host:port/db?schema=NAME`` — the store many machines share.

The SQL is the shared layer's (:mod:`statebox.backends.sql`); this module owns the
connections and what can go wrong with them:

- A pool (``psycopg_pool``) of autocommit connections whose ``search_path`` is the URL's
  schema. Reads run as single statements; every write is one transaction in which the
  shared ``apply`` locks the current row (``SELECT … FOR UPDATE``), so check-and-write
  is atomic across connections and machines; what it then writes (entry, history, trim,
  NOTIFY) is one statement (:mod:`._pg_write`).
- A transaction that provably did not commit is run again, bounded: two writers
  inserting the same new key (or the first acquisition of a lease) collide on the
  primary key and the loser re-plans — it then sees the row, so a guard that no longer
  holds is a real :class:`~statebox.core.errors.ConflictError`; deadlocks and serialization
  failures are retried likewise.
- A lost connection is :class:`~statebox.core.errors.BackendUnavailableError`. A read is run
  once more on a new connection. A write is run once more only when the connection was
  lost before ``COMMIT`` was sent — PostgreSQL then rolled it back, so nothing can be
  applied twice; lost *during* ``COMMIT``, the outcome is unknown and the error says so.
- Watch is LISTEN/NOTIFY (:mod:`._pg_watch`), not a counter row every writer would
  queue on.

A backend opened before ``fork()`` opens new connections in the child, leaving the
parent's alone.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import ClassVar, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..core.errors import BackendUnavailableError, PermissionDeniedError, StateboxError
from ..core.model import Keyspace
from ._pg_schema import ensure_schema
from ._pg_url import PgOptions, parse_pg_url
from ._pg_watch import ChangeListener, bucket_of, channel_for
from ._pg_write import write
from .base import Capabilities, Mutation
from .sql import Change, Dialect, SqlBackend, SqlConnection

__all__ = ["POSTGRES", "PostgresBackend"]

T = TypeVar("T")
Connection = psycopg.Connection[tuple[object, ...]]

POSTGRES = Dialect(
    name="postgresql",
    param="%s",
    blob="BYTEA",  # compared with memcmp: byte order, as SPEC §4 wants
    bigint="BIGINT",
    history_id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    lock_row=" FOR UPDATE",
    bytewise=' COLLATE "C"',  # lease names by byte, whatever the database's collation
)

#: Attempts of one write transaction before giving up on transient failures.
MAX_ATTEMPTS = 30
#: libpq 14+ (psycopg's binary wheels bundle a recent one).
_PIPELINE_SUPPORTED = psycopg.Pipeline.is_supported()
#: Primary keys two transactions may both INSERT when a row is new.
_RACED_INSERTS = frozenset({"statebox_entries_pkey", "statebox_leases_pkey"})


#: Locks rows as the sort returns them (ORDER BY runs below FOR UPDATE): in key order.
_LOCK_KEYS = (
    "SELECT 1 FROM statebox_entries WHERE (scope, namespace, key) IN (SELECT * FROM "
    "unnest(%s::text[], %s::bytea[], %s::bytea[])) ORDER BY scope, namespace, key FOR UPDATE"
)


class _Retry(Exception):
    """The transaction did not commit and may simply be run again."""


class _Lost(Exception):
    """The connection died before anything could have committed."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresBackend(SqlBackend):
    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True,
        cross_machine=True,
        store_wide_changes=True,  # store_change_token: the total of the NOTIFY buckets
    )
    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self.url = url
        self.options: PgOptions = parse_pg_url(url)
        self.where = f"{self.options.display} (schema {self.options.schema})"
        #: Write transactions run again after a transient failure (benchmarks report it).
        self.retries = 0
        self._channel = channel_for(self.options.schema)
        self._use_pipeline = self.options.pipeline and _PIPELINE_SUPPORTED
        self._lock = threading.Lock()
        self._closed = False
        #: The server could not be reached on a new connection: until one succeeds,
        #: operations skip the pool (whose reconnection backs off up to minutes) and
        #: open their own, so they fail at once while it is down and work as soon as it
        #: is back; the first that works replaces the pool (``_end_outage``).
        self._outage = False
        try:
            with self._connect() as conn:
                ensure_schema(conn, self.options.schema, POSTGRES, self.where)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        self._pid = os.getpid()
        self._pool = self._new_pool()
        self._listener = ChangeListener(self._connect, self._channel, self.where)
        # What a forked child inherited: kept referenced, never used nor closed, since
        # closing (or collecting) them would end the parent's sessions.
        self._inherited: list[object] = []

    # -- connections -------------------------------------------------------------------

    def _configure(self, conn: Connection) -> None:
        # One round trip: no parameters, so both go as one simple query.
        conn.execute(
            sql.SQL("SET search_path TO {}; SET statement_timeout = {}").format(
                sql.Identifier(self.options.schema),
                sql.Literal(round(self.options.statement_timeout * 1000)),  # ms; 0: none
            )
        )

    def _connect(self) -> Connection:
        """A new connection outside the pool (the caller closes it)."""
        conn: Connection = psycopg.connect(self.options.conninfo, autocommit=True)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _new_pool(self) -> ConnectionPool[Connection]:
        return ConnectionPool(
            self.options.conninfo,
            kwargs={"autocommit": True},
            configure=self._configure,
            min_size=self.options.pool_min,
            max_size=self.options.pool_max,
            timeout=self.options.pool_timeout,
            num_workers=2,
            name=f"statebox:{self.options.schema}",
            open=True,
        )

    def _current_pool(self) -> ConnectionPool[Connection]:
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._inherited += [self._pool, self._listener]
                    self._pool = self._new_pool()
                    self._listener = ChangeListener(self._connect, self._channel, self.where)
                    self._pid = os.getpid()
        return self._pool

    # -- one attempt, and the retries around it ------------------------------------------

    def _attempt(self, work: Callable[[SqlConnection], T], *, write: bool, fresh: bool) -> T:
        conn: Connection | None = None
        committing = False
        # getconn/putconn rather than pool.connection(): the hot path of every operation,
        # and our connections are in autocommit, so its commit-on-exit has nothing to do.
        pool = None if fresh or self._outage else self._current_pool()
        try:
            if pool is not None:
                conn = pool.getconn()
            else:
                try:
                    conn = self._connect()
                except psycopg.OperationalError:
                    self._outage = True
                    raise
                if self._outage:
                    self._end_outage()
            if not write:
                return work(conn.cursor())
            # In pipeline mode (?pipeline=), statements whose results are not read (the
            # write, COMMIT) are sent without waiting; only reading a row waits: a set
            # takes two round trips instead of four.
            with self._pipeline(conn), conn.transaction():
                result = work(conn.cursor())
                committing = True  # what is still queued, COMMIT included, goes now
            return result
        except PoolTimeout as exc:
            # No pooled connection came: nothing was sent, so trying once on a new
            # connection is safe. It tells an outage (which the pool would take up to
            # minutes to notice has ended) from a pool that is merely busy.
            raise _Lost from exc
        except psycopg.Error as exc:
            if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected) or (
                isinstance(exc, errors.UniqueViolation)
                and exc.diag.constraint_name in _RACED_INSERTS
            ):
                raise _Retry from exc
            if conn is not None and conn.broken:
                if committing:
                    raise BackendUnavailableError(
                        f"lost the connection to PostgreSQL {self.where} while committing: "
                        "the write may or may not have been applied; read it back before "
                        "retrying"
                    ) from exc
                raise _Lost from exc
            raise self._translate(exc) from exc
        finally:
            if conn is not None:
                if pool is None:
                    conn.close()
                else:  # the pool rolls back what is left open, replaces a broken one
                    pool.putconn(conn)

    def _pipeline(self, conn: Connection) -> AbstractContextManager[object]:
        return conn.pipeline() if self._use_pipeline else nullcontext()

    def _read(self, work: Callable[[SqlConnection], T]) -> T:
        try:
            return self._attempt(work, write=False, fresh=False)
        except (_Retry, _Lost):
            pass
        # Safe to repeat once, on a connection opened now: after a restart or failover
        # every pooled connection may be dead, so check them for later callers too.
        self._check_pool()
        try:
            return self._attempt(work, write=False, fresh=True)
        except (_Retry, _Lost) as again:
            raise self._unavailable(again) from again.__cause__

    def _write(self, work: Callable[[SqlConnection], T]) -> T:
        lost = False
        for attempt in range(MAX_ATTEMPTS):
            try:
                return self._attempt(work, write=True, fresh=lost)
            except _Retry:
                self.retries += 1
                # Jittered, growing pauses, so colliding writers do not collide again.
                time.sleep(random.uniform(0, min(0.05, 0.0005 * 2**attempt)))
            except _Lost as exc:
                if lost:  # twice in a row: the server is really gone
                    raise self._unavailable(exc) from exc.__cause__
                lost = True  # not committed (no COMMIT was sent): run it again, once
                self._check_pool()
        raise BackendUnavailableError(
            f"PostgreSQL {self.where}: a write kept colliding with concurrent ones "
            f"(deadlocks or serialization failures) {MAX_ATTEMPTS} times in a row; retry later"
        )

    def _end_outage(self) -> None:
        """The server answers again: a new pool, full at once, instead of the old one,
        whose reconnection attempts may be backing off for minutes."""
        with self._lock:
            if not self._outage or self._closed:
                return
            self._outage = False
            old, self._pool = self._pool, self._new_pool()
        # Closing waits for its workers: not on the caller's time. Connections still
        # out of it are closed as they come back.
        threading.Thread(target=old.close, name="statebox-pool-close", daemon=True).start()

    def _check_pool(self) -> None:
        # What cannot be checked now, the pool replaces in its own time.
        with suppress(psycopg.Error):
            self._current_pool().check()

    # -- errors ----------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        cause = exc.__cause__ or exc
        return BackendUnavailableError(
            f"lost the connection to PostgreSQL {self.where}: {_first_line(cause)}"
        )

    def _translate(self, exc: psycopg.Error) -> StateboxError:
        reason = _first_line(exc)
        if isinstance(exc, PoolTimeout):
            return BackendUnavailableError(
                f"no connection to PostgreSQL {self.where} within "
                f"{self.options.pool_timeout:g}s: the server is unreachable, or all "
                f"{self.options.pool_max} pooled connections stayed busy (raise ?pool_max= "
                "or ?pool_timeout= in the store URL)"
            )
        if isinstance(exc, PoolClosed):
            return BackendUnavailableError(f"the PostgreSQL store {self.where} is closed")
        if isinstance(exc, errors.QueryCanceled):  # statement_timeout, or an operator
            return BackendUnavailableError(
                f"PostgreSQL {self.where}: {reason} (a row locked by another session, or an "
                f"overloaded server; the limit is ?statement_timeout="
                f"{self.options.statement_timeout:g}); nothing was written: retry"
            )
        if isinstance(exc, errors.InsufficientPrivilege):
            return PermissionDeniedError(
                f"PostgreSQL {self.where}: {reason}: grant this role USAGE (and CREATE, for "
                "the first use) on the schema, or choose another with ?schema="
            )
        if isinstance(exc, errors.UndefinedTable):
            return BackendUnavailableError(
                f"PostgreSQL {self.where}: {reason}: statebox's tables are gone (was the "
                "schema dropped?); reopen the store to create them again"
            )
        return BackendUnavailableError(f"PostgreSQL {self.where}: {reason}")

    def _lock_keys(
        self, db: SqlConnection, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]]
    ) -> None:
        """Lock the existing entries of a batch across keyspaces in one order, (scope,
        namespace, key), before any is read for writing: two such transactions naming
        the same keyspaces in opposite orders then queue rather than deadlock (each
        would otherwise lock its first keyspace's rows and wait for the other's)."""
        if len(batches) < 2:
            return
        keys = {
            (keyspace.scope, keyspace.namespace.encode(), mutation.key.encode())
            for keyspace, mutations in batches
            for mutation in mutations
        }
        if not keys:
            return
        scopes, namespaces, names = zip(*keys, strict=True)
        db.execute(_LOCK_KEYS, (list(scopes), list(namespaces), list(names)))

    def _lock_for_import(self, db: SqlConnection) -> None:
        # EXCLUSIVE: reads go on; every writer (whose first step locks an entry row FOR
        # UPDATE) waits for the import, and the import waits for writers already in
        # their transactions. A key with history only has no row a row lock could hold.
        db.execute("LOCK TABLE statebox_entries IN EXCLUSIVE MODE")

    def _notify_import(self, db: SqlConnection, keyspace: Keyspace) -> None:
        db.execute("SELECT pg_notify(%s, %s)", (self._channel, str(bucket_of(keyspace))))

    # -- watch -------------------------------------------------------------------------

    def _store(
        self, db: SqlConnection, change: Change, history_id: int, trim_upto: int | None
    ) -> None:
        # One statement, one round trip: the entry, its history and the NOTIFY (delivered
        # to every listener when, and only if, this transaction commits).
        statement = write(change, self._channel, str(bucket_of(change.keyspace)))
        if statement is not None:
            db.execute(*statement)

    def _current_listener(self) -> ChangeListener:
        self._current_pool()  # after a fork, this makes the child's own listener
        return self._listener

    def change_token(self, keyspace: Keyspace) -> int:
        return self._current_listener().token(bucket_of(keyspace))

    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int:
        return self._current_listener().wait(bucket_of(keyspace), token, timeout)

    def store_change_token(self) -> int | None:
        return self._current_listener().total()

    def wait_for_store_change(self, token: int, timeout: float) -> int:
        return self._current_listener().wait_total(token, timeout)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self._pid:
            return  # a forked child that never used us: the pool is the parent's
        self._listener.close()
        self._pool.close()
