"""The PostgreSQL backend beyond the conformance suite: schema, index use, watch,
concurrency inside one process, error translation. A real server (see ``tests/pg.py``).
"""

from __future__ import annotations

import multiprocessing
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest
from psycopg import sql

from statebox import (
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    PermissionDeniedError,
    StateStore,
)
from statebox.backends._pg_watch import bucket_of
from statebox.backends.base import Delete, Put, WriteContext
from statebox.backends.postgres import PostgresBackend
from statebox.backends.sql import SCHEMA_VERSION
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.values import normalize

from .conftest import make_store
from .pg import add_query, admin_connection, fresh_schema_url

ROOT = Path(__file__).resolve().parent.parent
GLOBAL = Keyspace("global", "_")


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh schema, and an application_name that finds this test's connections."""
    with fresh_schema_url(pg_server, application_name=f"sbt_{secrets.token_hex(4)}") as url:
        yield url


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def backend_of(store: StateStore) -> PostgresBackend:
    backend = getattr(store.backend, "inner", store.backend)  # under the sealing layer
    assert isinstance(backend, PostgresBackend)
    return backend


def ctx(now: int = 1, keep: int = 10) -> WriteContext:
    return WriteContext(now=now, updated_by=UpdatedBy(dag_name="t"), history_limit=keep)


def put(key: str, value: Any, **kwargs: Any) -> Put:
    return Put(key, normalize(value), **kwargs)


# -- schema: created on first use, versioned, isolated -------------------------------------


def test_schema_is_created_on_first_use_and_versioned(pg_url: str) -> None:
    schema = _query(pg_url)["schema"]
    with make_store(pg_url) as store:
        store.set("k", 1)
    with admin_connection(pg_url) as conn:
        version = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE name = 'schema_version'").format(
                sql.Identifier(schema, "statebox_meta")
            )
        ).fetchone()
        assert version == (str(SCHEMA_VERSION),)
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [schema],
            )
        }
        assert {"statebox_entries", "statebox_history", "statebox_leases"} <= tables
        # watch is LISTEN/NOTIFY here: no counter row every writer would queue on
        assert "statebox_changes" not in tables


def test_a_newer_schema_version_is_refused(pg_url: str) -> None:
    schema = _query(pg_url)["schema"]
    make_store(pg_url).close()
    with admin_connection(pg_url) as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET value = '99' WHERE name = 'schema_version'").format(
                sql.Identifier(schema, "statebox_meta")
            )
        )
    with pytest.raises(ConfigurationError, match=r"schema version 99.*upgrade statebox"):
        make_store(pg_url)


def _open_at_once(url: str, barrier: Any) -> None:
    barrier.wait()
    with make_store(url) as store:
        store.set("opened", 1, scope="global")


def test_processes_starting_at_once_do_not_race_the_migration(pg_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(6)
    procs = [spawn.Process(target=_open_at_once, args=(pg_url, barrier)) for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * 6
    with make_store(pg_url) as store:
        assert store.get("opened", scope="global").version == 6


def test_schemas_keep_deployments_apart(pg_server: str) -> None:
    with (
        fresh_schema_url(pg_server) as url_a,
        fresh_schema_url(pg_server) as url_b,
        make_store(url_a) as a,
        make_store(url_b) as b,
    ):
        a.set("cursor", "a")
        assert not b.get("cursor").found
        b.set("cursor", "b")
        b.set("cursor", "b2")
        assert (a.get("cursor").value, a.get("cursor").version) == ("a", 1)
        assert [e.key for e in b.list().entries] == ["cursor"]
        # a write to b wakes no watcher of a (one NOTIFY channel per schema)
        ks = a.keyspace()
        token = a.backend.change_token(ks)
        b.set("cursor", "b3")
        assert a.backend.wait_for_change(ks, token, 0.3) == token


def test_both_url_schemes_open_the_same_store(pg_url: str) -> None:
    with make_store(pg_url) as store:
        store.set("k", "v")
    with make_store(pg_url.replace("postgresql://", "postgres://", 1)) as store:
        assert store.get("k").value == "v"


# -- listing uses the primary key -----------------------------------------------------------


def _explain(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> str:
    return "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))


def _explain_generic(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> str:
    """The plan a prepared statement gets once PostgreSQL switches to a generic plan."""
    numbered = query
    for n in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${n}", 1)
    conn.execute(f"PREPARE scan_plan AS {numbered}")
    try:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        args = sql.SQL(", ").join(sql.Literal(p) for p in params)
        rows = conn.execute(sql.SQL("EXPLAIN EXECUTE scan_plan({})").format(args))
        return "\n".join(row[0] for row in rows)
    finally:
        conn.execute("DEALLOCATE scan_plan")
        conn.execute("RESET plan_cache_mode")


def test_listing_by_prefix_and_after_uses_the_primary_key(pg_url: str) -> None:
    schema = _query(pg_url)["schema"]
    store = make_store(pg_url)
    backend = backend_of(store)
    with admin_connection(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        # 3 namespaces x 20,000 keys, written server-side (fast), then analyzed.
        for namespace in ("_", "a", "zz"):
            conn.execute(
                "INSERT INTO statebox_entries (scope, namespace, key, version, hash, "
                "content_type, data, created_at, updated_at, updated_by, expires_at) "
                "SELECT 'global', convert_to(%s, 'UTF8'), "
                "convert_to('k/' || lpad(i::text, 6, '0'), 'UTF8'), 1, 'h', "
                "'application/json', '\\x31'::bytea, 0, 0, '{}', NULL "
                "FROM generate_series(1, 20000) AS i",
                [namespace],
            )
        conn.execute("ANALYZE statebox_entries")
        cases = [
            ("k/0001", None, 100),  # a prefix
            ("k/", "k/010000", 100),  # a page after a key
            ("", "k/019990", 0),  # no prefix, no limit, after
            ("k/00012", None, 0),  # a prefix, no limit
        ]
        for prefix, after, limit in cases:
            query, params = backend.scan_query(
                GLOBAL, prefix, after=after, limit=limit, include_values=True, now=5
            )
            # The plan PostgreSQL makes for these values: a walk of the primary key in
            # order, reading only the rows returned.
            plan = _explain(conn, query, params)
            assert "Index Scan using statebox_entries_pkey" in plan, plan
            assert "Seq Scan" not in plan and "Sort" not in plan, plan
            # A prepared statement may get a plan made without the values: it still
            # reads the range through the primary key; paged (with a limit), in order.
            generic = _explain_generic(conn, query, params)
            assert "statebox_entries_pkey" in generic and "Seq Scan" not in generic, generic
            if limit:
                assert "Index Scan using statebox_entries_pkey" in generic, generic
                assert "Sort" not in generic, generic
    # and the listing itself returns what those plans promise
    listed = store.list("k/0001", scope="global", limit=100)
    assert len(listed.entries) == 100
    assert listed.entries[0].key == "k/000100" and listed.entries[-1].key == "k/000199"
    page = store.list("k/", scope="global", after="k/019995")
    assert [e.key for e in page.entries] == [f"k/0199{n}" for n in range(96, 100)] + ["k/020000"]
    store.close()


# -- watch: LISTEN/NOTIFY ------------------------------------------------------------------

WRITE_ONCE = """
import sys
from statebox import RunContext, open_store
with open_store(sys.argv[1], context=RunContext(dag="writer")) as store:
    store.set("watched", {"from": "another process"}, scope="global")
"""


def test_a_write_from_another_process_wakes_a_waiter(pg_url: str) -> None:
    with make_store(pg_url) as store:
        backend = store.backend
        token = backend.change_token(GLOBAL)
        woke: list[tuple[int, float]] = []

        def wait() -> None:
            woke.append((backend.wait_for_change(GLOBAL, token, 60), time.monotonic()))

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        assert not woke  # nothing written yet: still waiting
        subprocess.run([sys.executable, "-c", WRITE_ONCE, pg_url], cwd=ROOT, check=True, timeout=60)
        written = time.monotonic()
        waiter.join(60)
        assert woke, "the waiter was not woken"
        new_token, at = woke[0]
        assert new_token != token
        assert at - written < 5  # woken by the notification, not by the 60 s timeout
        assert store.get("watched", scope="global").value == {"from": "another process"}


def test_a_rolled_back_write_wakes_nobody_and_other_keyspaces_barely(pg_url: str) -> None:
    with make_store(pg_url) as store:
        backend = store.backend
        other = next(
            Keyspace("custom", f"ns{i}")
            for i in range(10_000)
            if bucket_of(Keyspace("custom", f"ns{i}")) != bucket_of(GLOBAL)
        )
        token = backend.change_token(GLOBAL)
        store.set("x", 1, scope="custom", namespace=other.namespace)
        with pytest.raises(ConflictError):  # rolled back: no NOTIFY is delivered
            store.set("x", 2, scope="global", expected_version=5)
        assert backend.wait_for_change(GLOBAL, token, 0.3) == token
        store.set("x", 3, scope="global")
        assert backend.wait_for_change(GLOBAL, token, 10) != token


def _terminate(url: str, where: str) -> int:
    """Kill this test's server sessions matching ``where``; how many were killed."""
    app = _query(url)["application_name"]
    with admin_connection(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name = %s AND pid <> pg_backend_pid() AND {where}",
            [app],
        ).fetchall()
    return len(rows)


def test_the_listener_reconnects_and_wakes_waiters_to_re_read(pg_url: str) -> None:
    with make_store(pg_url) as store:
        backend = store.backend
        token = backend.change_token(GLOBAL)
        assert _terminate(pg_url, "query LIKE 'LISTEN%%'") == 1
        # Notifications may have been lost meanwhile: every waiter is told to look again.
        token = backend.wait_for_change(GLOBAL, token, 10)
        deadline = time.monotonic() + 10
        while _listeners(pg_url) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        store.set("after", 1, scope="global")
        assert backend.wait_for_change(GLOBAL, token, 10) != token


def _listeners(url: str) -> int:
    app = _query(url)["application_name"]
    with admin_connection(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND query LIKE 'LISTEN%%'",
            [app],
        ).fetchone()
    return int(row[0]) if row else 0


# -- concurrency inside one process: retried inserts, deadlocks ------------------------------


def _race(threads: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    return results


@pytest.mark.parametrize("pipeline", ["off", "on"])
def test_racing_creators_of_one_new_key_conflict_cleanly(pg_url: str, pipeline: str) -> None:
    backend = PostgresBackend(add_query(pg_url, pool_min="8", pool_max="8", pipeline=pipeline))
    try:
        for attempt in range(20):
            key = f"new-{attempt}"
            results = _race(
                8, lambda i, k=key: backend.apply(GLOBAL, [put(k, i, create_only=True)], ctx())
            )
            won = [r for r in results if isinstance(r, list)]
            lost = [r for r in results if not isinstance(r, list)]
            assert len(won) == 1 and won[0][0].current.version == 1
            # the losers are conflicts, never a leaked unique violation
            assert all(type(r) is ConflictError for r in lost), lost
            entry = backend.get(GLOBAL, key, 2)
            assert entry is not None and entry.version == 1
            assert [h.version for h in backend.history(GLOBAL, key, 0)] == [1]
            if backend.retries:
                break
        assert backend.retries > 0, "the inserts never collided: the test proved nothing"
        # without guards, every racing creator writes: versions 1..8, none lost
        results = _race(8, lambda i: backend.apply(GLOBAL, [put("free", i)], ctx()))
        assert sorted(r[0].current.version for r in results) == list(range(1, 9))
    finally:
        backend.close()


def test_first_acquisitions_of_a_lease_race_to_exactly_one_holder(pg_url: str) -> None:
    backend = PostgresBackend(add_query(pg_url, pool_min="8", pool_max="8"))
    try:
        for attempt in range(10):
            name = f"lease-{attempt}"
            results = _race(8, lambda i, n=name: backend.acquire_lease(n, f"h{i}", 10**12, 1))
            holders = [r for r in results if not isinstance(r, Exception)]
            assert len(holders) == 1 and holders[0].token == 1
            assert all(type(r) is ConflictError for r in results if isinstance(r, Exception))
            assert backend.get_lease(name, 2) == holders[0]
            if backend.retries:
                break
        assert backend.retries > 0, "the inserts never collided: the test proved nothing"
    finally:
        backend.close()


@pytest.mark.parametrize("pipeline", ["off", "on"])
def test_deadlocked_batches_are_retried_inside_the_backend(pg_url: str, pipeline: str) -> None:
    # deadlock_timeout is how long PostgreSQL waits before looking for a cycle.
    url = add_query(pg_url, options="-c deadlock_timeout=20ms", pool_max="4", pipeline=pipeline)
    backend = PostgresBackend(url)
    try:
        backend.apply(GLOBAL, [put("a", 0), put("b", 0)], ctx())

        def swap(i: int) -> None:  # even threads lock a then b, odd ones b then a
            keys = ["a", "b"] if i % 2 == 0 else ["b", "a"]
            backend.apply(GLOBAL, [put(k, i) for k in keys], ctx())

        rounds = 0
        while backend.retries == 0 and rounds < 10:
            rounds += 1
            results = _race(4, lambda i: [swap(i) for _ in range(10)])
            assert not [r for r in results if isinstance(r, Exception)], results
        assert backend.retries > 0, "no deadlock happened: the test proved nothing"
        written = 1 + 40 * rounds
        for key in ("a", "b"):
            entry = backend.get(GLOBAL, key, 2)
            assert entry is not None and entry.version == written
    finally:
        backend.close()


# -- lost connections and other failures ------------------------------------------------------


def test_reads_and_writes_survive_pooled_connections_killed_while_idle(pg_url: str) -> None:
    with make_store(add_query(pg_url, pool_min="2")) as store:
        store.set("k", 1)
        assert _terminate(pg_url, "state = 'idle' AND query NOT LIKE 'LISTEN%%'") >= 1
        # a read is run again once, on a new connection
        assert store.get("k").value == 1
        assert _terminate(pg_url, "state = 'idle' AND query NOT LIKE 'LISTEN%%'") >= 1
        # a write whose connection was dead before COMMIT is sent did not commit: rerun
        assert store.set("k", 2).version == 2
        assert [h.version for h in store.history("k").versions] == [2, 1]


def test_an_unreachable_server_is_backend_unavailable() -> None:
    with socket_closed_port() as port:
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}"):
            make_store(f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2")
        assert time.monotonic() - start < 10


@contextmanager
def socket_closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_role_without_privileges_gets_permission_denied(pg_url: str) -> None:
    role = f"sbt_ro_{secrets.token_hex(4)}"
    with admin_connection(pg_url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        make_store(pg_url).close()  # create the schema as the owner
        as_role = pg_url.replace("postgres@", f"{role}@", 1)
        with (
            pytest.raises(PermissionDeniedError, match="grant this role USAGE"),
            make_store(as_role) as store,
        ):
            store.get("k")
    finally:
        with admin_connection(pg_url) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_owning_its_schema_needs_no_create_on_the_database(pg_url: str) -> None:
    role, schema = f"sbt_own_{secrets.token_hex(4)}", _query(pg_url)["schema"]
    with admin_connection(pg_url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        # (PostgreSQL grants PUBLIC no CREATE on a database; a new role has none)
        can_create = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", [role]
        ).fetchone()
        assert can_create == (False,)
    try:
        with make_store(pg_url.replace("postgres@", f"{role}@", 1)) as store:
            assert store.set("k", 1).version == 1
    finally:
        with admin_connection(pg_url) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_closed_store_says_so(pg_url: str) -> None:
    store = make_store(pg_url)
    store.close()
    store.close()  # idempotent
    with pytest.raises(BackendUnavailableError, match="closed"):
        store.get("k")


@pytest.mark.parametrize("pipeline", ["off", "on"])
def test_transactions_history_and_purge_on_postgres(pg_url: str, pipeline: str) -> None:
    backend = PostgresBackend(add_query(pg_url, pipeline=pipeline))
    try:
        backend.apply(GLOBAL, [put("a", 1), put("b", 1)], ctx())
        with pytest.raises(ConflictError) as failed:
            backend.apply(
                GLOBAL, [put("a", 2), Delete("b"), put("c", 1, expected_version=3)], ctx()
            )
        assert failed.value.index == 2
        assert [
            (e.key, e.version)
            for e in backend.scan(GLOBAL, "", after=None, limit=0, include_values=False, now=2)
        ] == [("a", 1), ("b", 1)]
        backend.apply(GLOBAL, [put("t1", 1, expires_at=10), put("t2", 1, expires_at=20)], ctx())
        assert backend.get(GLOBAL, "t1", 10) is None  # expired: missing at once
        assert backend.purge_expired(now=15) == 1
        assert backend.purge_expired(now=15) == 0
        assert backend.get(GLOBAL, "t2", 15) is not None
        assert [h.version for h in backend.history(GLOBAL, "t1", 0)] == [1]  # history kept
        # history keeps exactly the newest N records, deletions included, in one batch too
        backend.apply(GLOBAL, [put("h", i) for i in range(5)], ctx(keep=3))
        assert [h.version for h in backend.history(GLOBAL, "h", 0)] == [5, 4, 3]
        backend.apply(GLOBAL, [Delete("h"), put("h", "again")], ctx(keep=3))
        assert [(h.version, h.deleted) for h in backend.history(GLOBAL, "h", 0)] == [
            (1, False),
            (5, True),
            (5, False),
        ]
        backend.apply(GLOBAL, [put("h", "one")], ctx(keep=1))
        assert [h.version for h in backend.history(GLOBAL, "h", 0)] == [2]
        backend.apply(GLOBAL, [put("h", "none")], ctx(keep=0))
        assert backend.history(GLOBAL, "h", 0) == []
    finally:
        backend.close()
