"""PostgreSQL under real concurrency and real failures: 8 processes racing on one counter,
sessions killed in the middle of a write transaction, a connection lost while committing.

The workers are this module run as a script: ``python -m tests.test_postgres_races
MODE URL COUNT`` prints the number of conflicts (CAS) or retries (update) it went through.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from psycopg import sql

from statebox import BackendUnavailableError, ConflictError, RunContext, StateStore, open_store

from .conftest import make_store
from .pg import add_query, admin_connection, fresh_schema_url

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 8
INCREMENTS = 100


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with fresh_schema_url(pg_server, application_name=f"sbt_{secrets.token_hex(4)}") as url:
        yield url


@pytest.fixture(params=["off", "on"], ids=["plain", "pipeline"])
def modes_url(request: pytest.FixtureRequest, pg_url: str) -> str:
    """Both ways a write reaches the server: statement by statement, and pipelined (where
    errors surface later, at the next sync)."""
    return add_query(pg_url, pipeline=request.param)


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


# -- the workers ----------------------------------------------------------------------------


def cas_increments(store: StateStore, count: int) -> int:
    """Read, compare-and-set, and on a conflict back off a little (as a client should:
    it spreads the 8 writers out, or they would mostly collide) and retry."""
    conflicts = 0
    done = 0
    streak = 0
    while done < count:
        current = store.get("counter", scope="global")
        n = current.value["n"] if current.found else 0
        try:
            store.set("counter", {"n": n + 1}, scope="global", expected_version=current.version)
        except ConflictError:
            conflicts += 1
            streak += 1
            time.sleep(random.uniform(0, 0.001 * min(streak, 10)))
            continue
        done += 1
        streak = 0
    return conflicts


def update_increments(store: StateStore, count: int) -> int:
    retries = 0
    for _ in range(count):
        result = store.update("counter", jq=".n += 1", default={"n": 0}, scope="global")
        retries += result.retries
    return retries


def worker(mode: str, url: str, count: int) -> int:
    # Generous update attempts: 8 writers on one row is the worst case by design.
    with open_store(url, context=RunContext(dag="race"), update_attempts=1000) as store:
        return cas_increments(store, count) if mode == "cas" else update_increments(store, count)


def run_workers(url: str, mode: str) -> int:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_postgres_races", mode, url, str(INCREMENTS)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    total = 0
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        total += int(out)
    return total


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cas", "update"])
def test_eight_processes_racing_increments_end_exact(pg_url: str, mode: str) -> None:
    contention = run_workers(pg_url, mode)
    with make_store(pg_url) as store:
        got = store.get("counter", scope="global")
        assert got.value == {"n": PROCESSES * INCREMENTS}
        assert got.version == PROCESSES * INCREMENTS
        # history kept the newest versions, consistent with the entry
        assert [h.version for h in store.history("counter", scope="global").versions] == list(
            range(PROCESSES * INCREMENTS, PROCESSES * INCREMENTS - 10, -1)
        )
    assert contention > 0  # the writers really overlapped, else this proved nothing


# -- killed sessions -------------------------------------------------------------------------


def _session_pids(url: str, where: str) -> list[int]:
    with admin_connection(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            f"AND pid <> pg_backend_pid() AND {where}",
            [_query(url)["application_name"]],
        ).fetchall()
    return [int(row[0]) for row in rows]


def _wait_for_blocked_writer(url: str) -> int:
    """The pid of this test's session waiting on a row lock (the write in flight)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = _session_pids(url, "wait_event_type = 'Lock'")
        if pids:
            return pids[0]
        time.sleep(0.01)
    raise AssertionError("the write never blocked on the row lock")


def _kill(url: str, pid: int) -> None:
    with admin_connection(url) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def _consistent(store: StateStore, version: int, value: object) -> None:
    """The entry is at ``version`` holding ``value``, and history agrees, no more."""
    got = store.get("k", scope="global")
    assert (got.version, got.value) == (version, value)
    history = store.history("k", scope="global", include_values=True).versions
    assert [h.version for h in history] == list(range(version, 0, -1))
    assert history[0].hash == got.hash


def test_a_session_killed_mid_transaction_loses_nothing_acknowledged(modes_url: str) -> None:
    pg_url = modes_url
    schema = _query(pg_url)["schema"]
    with make_store(pg_url) as store:
        for n in range(1, 4):
            store.set("k", n, scope="global")
        with admin_connection(pg_url) as locker:
            # Hold the entry's row lock, so the next write stops inside its transaction.
            locker.execute("BEGIN")
            locker.execute(
                sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(
                    sql.Identifier(schema, "statebox_entries")
                )
            )
            outcome: list[object] = []
            writer = threading.Thread(
                target=lambda: outcome.append(_attempt(lambda: store.set("k", 4, scope="global")))
            )
            writer.start()
            # Killed once: it never sent COMMIT, so PostgreSQL rolled it back and it is
            # run again on a new connection (where it waits for the lock again).
            _kill(pg_url, _wait_for_blocked_writer(pg_url))
            _wait_for_blocked_writer(pg_url)
            locker.execute("COMMIT")
            writer.join(30)
        (result,) = outcome
        assert not isinstance(result, BaseException), result
        assert result.version == 4  # type: ignore[attr-defined]
        _consistent(store, 4, 4)


def test_a_write_killed_twice_fails_unavailable_and_leaves_the_previous_version(
    modes_url: str,
) -> None:
    pg_url = modes_url
    schema = _query(pg_url)["schema"]
    with make_store(pg_url) as store:
        for n in range(1, 4):
            store.set("k", n, scope="global")
        with admin_connection(pg_url) as locker:
            locker.execute("BEGIN")
            locker.execute(
                sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(
                    sql.Identifier(schema, "statebox_entries")
                )
            )
            outcome: list[object] = []
            writer = threading.Thread(
                target=lambda: outcome.append(_attempt(lambda: store.set("k", 4, scope="global")))
            )
            writer.start()
            _kill(pg_url, _wait_for_blocked_writer(pg_url))
            _kill(pg_url, _wait_for_blocked_writer(pg_url))  # the rerun dies too: give up
            writer.join(30)
            locker.execute("COMMIT")
        (result,) = outcome
        assert isinstance(result, BackendUnavailableError), result
        assert "lost the connection" in str(result)
        _consistent(store, 3, 3)
        assert store.set("k", 5, scope="global").version == 4  # and the store works on


def test_a_connection_lost_while_committing_is_reported_never_retried(modes_url: str) -> None:
    """The one ambiguous case: COMMIT was sent and no answer came. Running the write
    again could apply it twice, so the backend says it does not know instead."""
    pg_url = modes_url
    schema = _query(pg_url)["schema"]
    with make_store(pg_url) as store:
        store.set("k", 1, scope="global")
        with admin_connection(pg_url) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            # A deferred trigger runs inside COMMIT; the first time, it ends its session.
            # Sequences ignore rollbacks, so it also counts every attempt to commit.
            conn.execute("CREATE SEQUENCE commit_attempts")
            conn.execute(
                "CREATE FUNCTION die_in_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF nextval('commit_attempts') = 1 THEN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); "
                "END IF; RETURN NULL; END $$"
            )
            conn.execute(
                "CREATE CONSTRAINT TRIGGER die_in_commit AFTER UPDATE ON statebox_entries "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_in_commit()"
            )
            with pytest.raises(BackendUnavailableError, match="may or may not have been applied"):
                store.set("k", 2, scope="global")
            attempts = conn.execute("SELECT last_value FROM commit_attempts").fetchone()
            assert attempts == (1,)  # not run again
        # (here the commit did fail, so nothing changed)
        _consistent(store, 1, 1)


def _attempt(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except Exception as exc:
        return exc


def test_a_store_opened_before_fork_works_in_both_processes(pg_url: str) -> None:
    with make_store(pg_url) as store:
        store.set("k", "parent", scope="global")
        token = store.backend.change_token(store.keyspace("global"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:  # the child: new connections of its own; exit without cleanup
            code = 1
            try:
                store.set("k", "child", scope="global", expected_version=1)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # the parent's pooled connections and listener were left alone
        assert store.get("k", scope="global").value == "child"
        assert store.set("k", "parent again", scope="global").version == 3
        assert store.backend.wait_for_change(store.keyspace("global"), token, 10) != token


if __name__ == "__main__":
    print(worker(sys.argv[1], sys.argv[2], int(sys.argv[3])))
