"""PostgreSQL under real faults (issue #12 §8): its backend terminated mid-transaction, a
statement waiting past statement_timeout on a row another session holds, the server
stopped and started again. Each is reported as BackendUnavailableError (HTTP 503), loses
no acknowledged write, and the same store (or server) works again once the fault ends."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from statebox.core.errors import BackendUnavailableError

from .conftest import make_store
from .faults import Ledger, pg_ctl, terminate_waiting
from .pg import ThrowawayCluster, _unavailable, add_query, admin_connection, find_pg_bindir
from .server_util import running_server

pytestmark = pytest.mark.slow  # real PostgreSQL servers, stopped and started


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh schema on the session's server, with an application_name of its own so
    the test terminates only its own backends."""
    from .pg import postgres_url

    with postgres_url(tmp_path, request) as url:
        yield add_query(url, application_name=f"statebox-fault-{secrets.token_hex(4)}")


def _app(url: str) -> str:
    return url.rsplit("application_name=", 1)[1].split("&", 1)[0]


def _row_locked(url: str, key: str) -> Any:
    """A session holding the row of ``key`` (scope dag, the test context's namespace)
    locked FOR UPDATE, in an open transaction; rollback() releases it."""
    import psycopg

    schema = url.split("schema=", 1)[1].split("&", 1)[0]
    admin_url = url.split("?", 1)[0]
    locker = psycopg.connect(admin_url)
    locker.execute(
        f'SELECT 1 FROM "{schema}".statebox_entries WHERE key = %s FOR UPDATE', (key,)
    ).fetchall()
    return locker


def _in_thread(action: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = action()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_backend_terminated_mid_transaction_is_retried_or_reported(pg_url: str) -> None:
    ledger = Ledger()
    with make_store(pg_url) as store, admin_connection(pg_url) as admin:
        for key in ("a", "b"):
            ledger.record(key, store.set(key, 1).version, 1)
        # Once: the transaction provably did not commit, so it is run again on a new
        # connection and succeeds; the caller sees no error.
        locker = _row_locked(pg_url, "a")
        thread, outcome = _in_thread(lambda: store.set("a", 2))
        terminate_waiting(admin, _app(pg_url))
        locker.rollback()
        thread.join(30)
        assert "error" not in outcome, outcome
        ledger.record("a", outcome["result"].version, 2)
        # Every time: BackendUnavailableError, and nothing applied.
        locker.execute(  # the same session locks b now
            f'SELECT 1 FROM "{pg_url.split("schema=")[1].split("&")[0]}".statebox_entries '
            "WHERE key = 'b' FOR UPDATE"
        ).fetchall()
        thread, outcome = _in_thread(lambda: store.set("b", 3))
        first = terminate_waiting(admin, _app(pg_url))
        terminate_waiting(admin, _app(pg_url), exclude=first)  # the write's second try
        thread.join(30)
        locker.rollback()
        locker.close()
        assert isinstance(outcome.get("error"), BackendUnavailableError), outcome
        assert "lost the connection" in str(outcome["error"])
        ledger.check_store(store)  # b is still 1: the refused write was not applied
        ledger.record("b", store.set("b", 4).version, 4)  # and the store recovered
        ledger.check_store(store)


def test_statement_timeout_on_a_locked_row_is_unavailable(pg_url: str) -> None:
    ledger = Ledger()
    url = add_query(pg_url, statement_timeout="0.5")
    with make_store(url) as store:
        ledger.record("k", store.set("k", 1).version, 1)
        locker = _row_locked(url, "k")
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="statement timeout"):
                store.set("k", 2)
            assert time.monotonic() - started < 5
            ledger.check_store(store)  # reads do not wait for row locks
        finally:
            locker.rollback()
            locker.close()
        ledger.record("k", store.set("k", 3).version, 3)
        ledger.check_store(store)


def test_default_statement_timeout_bounds_every_statement(pg_url: str) -> None:
    with make_store(pg_url) as store:
        backend: Any = store.backend
        assert backend.options.statement_timeout == 30
        assert backend._read(lambda db: db.execute("SHOW statement_timeout").fetchone()) == ("30s",)


# -- the server stopped, then started again: a private cluster ---------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayCluster]:
    """A PostgreSQL of the test's own, which it may stop (never the session's)."""
    bindir = find_pg_bindir()
    if bindir is None:
        _unavailable("no initdb/pg_ctl to start a PostgreSQL that can be stopped")
    assert bindir is not None
    private = ThrowawayCluster(bindir)
    try:
        private.start()
        yield private
    finally:
        private.stop()


def test_server_unreachable_then_back_same_store(cluster: ThrowawayCluster) -> None:
    url = add_query(cluster.dsn, schema="outage", pool_timeout="5", connect_timeout="2")
    ledger = Ledger()
    with make_store(url) as store:
        for i in range(5):
            ledger.record(f"k{i}", store.set(f"k{i}", i).version, i)
        pg_ctl(cluster, "stop")
        try:
            for attempt in range(3):
                started = time.monotonic()
                with pytest.raises(BackendUnavailableError):
                    store.set("k0", f"refused {attempt}")
                with pytest.raises(BackendUnavailableError):
                    store.get("k1")
                # At once, not after pool_timeout (before: 5 s a write).
                assert time.monotonic() - started < 2.5
        finally:
            pg_ctl(cluster, "start")
        # Back: the same store works at once (before: the pool's reconnection backed off
        # and a read waited pool_timeout, then failed).
        started = time.monotonic()
        ledger.check_store(store)
        ledger.record("k0", store.set("k0", "after").version, "after")
        assert time.monotonic() - started < 2.5
        ledger.check_store(store)


def test_http_server_over_postgres_is_503_while_down_then_200(cluster: ThrowawayCluster) -> None:
    url = add_query(cluster.dsn, schema="served", pool_timeout="5", connect_timeout="2")
    with running_server(url) as server:
        http = server.client
        put = http.put("/v1/kv/global/_/k", json=1)
        assert put.status_code == 200, put.text
        pg_ctl(cluster, "stop")
        try:
            for _ in range(2):
                started = time.monotonic()
                refused = http.put("/v1/kv/global/_/k", json=2)
                assert time.monotonic() - started < 2.5  # before: pool_timeout, 5 s
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["kind"] == "backend_unavailable"
                assert http.get("/v1/kv/global/_/k").status_code == 503
            assert f":{cluster.port}" not in refused.text and "postgres@" not in refused.text
        finally:
            pg_ctl(cluster, "start")
        assert http.get("/v1/kv/global/_/k").json()["value"] == 1  # nothing lost
        again = http.put("/v1/kv/global/_/k", json=3)
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 2
