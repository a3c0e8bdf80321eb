"""Group commit: many callers' SQLite writes in one transaction, each with its own outcome.

The server queues concurrent writes and runs them with ``SqliteBackend.write_together``
(one commit, one fsync); these tests hold that to what running the writes one after
another would have done, on real database files and through live servers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from statebox import BackendUnavailableError, ConflictError, RunContext, StateStore
from statebox.backends.sqlite import SqliteBackend
from statebox.server.writer import MAX_GROUP, GroupCommitWriter

from .server_util import running_server
from .sqlite_lock import hold_write_lock

CTX = RunContext(dag="group")
T = TypeVar("T")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def backend(db: Path) -> Iterator[SqliteBackend]:
    backend = SqliteBackend(f"sqlite:///{db}?timeout=10")
    yield backend
    backend.close()


def _committed(db: Path) -> dict[str, int]:
    """Key → version, read by a connection of its own: only what was committed."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT key, version FROM statebox_entries").fetchall()
    return {bytes(key).decode(): version for key, version in rows}


def test_writes_run_in_order_and_commit_together(backend: SqliteBackend, db: Path) -> None:
    store = StateStore(backend, context=CTX)
    outcomes = backend.write_together(
        [partial(store.set, "a", 1), partial(store.set, "a", 2), partial(store.set, "b", 3)]
    )
    assert [o.version for o in outcomes] == [1, 2, 1]  # type: ignore[union-attr]
    assert _committed(db) == {"a": 2, "b": 1}
    assert store.get("a").value == 2
    assert [r.version for r in store.history("a").versions] == [2, 1]


def test_a_read_in_a_group_sees_the_writes_before_it(backend: SqliteBackend) -> None:
    store = StateStore(backend, context=CTX)
    store.set("k", "old")
    outcomes = backend.write_together(
        [partial(store.set, "k", "new"), partial(store.diff, "k", "new", update=False)]
    )
    assert outcomes[0].version == 2  # type: ignore[union-attr]
    assert outcomes[1].changed is False  # type: ignore[union-attr]
    assert outcomes[1].previous_version == 2  # type: ignore[union-attr]


def test_two_guarded_writes_of_one_version_in_one_group_cannot_both_win(
    backend: SqliteBackend, db: Path
) -> None:
    store = StateStore(backend, context=CTX)
    store.set("k", "v1")
    write = partial(store.set, "k", expected_version=1)
    outcomes = backend.write_together([partial(write, "first"), partial(write, "second")])
    assert outcomes[0].version == 2  # type: ignore[union-attr]
    assert isinstance(outcomes[1], ConflictError)
    assert outcomes[1].current_version == 2
    assert store.get("k").value == "first"


def test_a_failing_call_is_undone_alone(backend: SqliteBackend, db: Path) -> None:
    store = StateStore(backend, context=CTX)
    store.set("guarded", 1)
    half_done = [
        {"op": "set", "key": "y", "value": 1},  # written first, then undone
        {"op": "set", "key": "guarded", "value": 2, "expected_version": 7},
    ]
    outcomes = backend.write_together(
        [
            partial(store.set, "x", 1),
            partial(store.transaction, half_done),
            partial(store.set, "z", 1),
        ]
    )
    assert isinstance(outcomes[1], ConflictError) and outcomes[1].index == 1
    assert _committed(db) == {"guarded": 1, "x": 1, "z": 1}


def test_a_failed_group_reports_nothing_it_did_not_save(backend: SqliteBackend, db: Path) -> None:
    """A full database (max_page_count): the write that does not fit fails; every call
    reported as written is in the file, and none reported as failed is."""
    store = StateStore(backend, context=CTX)
    for i in range(20):
        store.set(f"k{i}", "x" * 200)
    conn = backend._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    before = _committed(db)
    outcomes = backend.write_together(
        [partial(store.set, "k0", "y"), partial(store.set, "big", "z" * 200_000)]
    )
    assert isinstance(outcomes[1], BackendUnavailableError)
    assert "full" in outcomes[1].message
    after = _committed(db)
    assert "big" not in after
    if isinstance(outcomes[0], Exception):  # SQLite gave up the whole transaction
        assert after == before
    else:
        assert after["k0"] == outcomes[0].version == 2


def test_without_waiting_a_locked_database_runs_nothing(backend: SqliteBackend, db: Path) -> None:
    store = StateStore(backend, context=CTX)
    store.set("k", 1)
    ran: list[str] = []

    def write() -> object:
        ran.append("ran")
        return store.set("k", 2)

    holder = hold_write_lock(db, 1.0)
    try:
        assert backend.try_write_together([write]) is None
        assert ran == []
        outcomes = backend.write_together([write])  # waits for the other process
    finally:
        holder.wait()
    assert outcomes[0].version == 2  # type: ignore[union-attr]
    assert ran == ["ran"]


def test_compare_and_set_increments_through_a_server_end_exact(tmp_path: Path) -> None:
    """8 threads increment one counter with GET + PUT If-Match, retrying on 412: the
    server groups their writes, and still exactly one write wins each version."""
    threads, each = 8, 25
    with running_server(f"sqlite:///{tmp_path / 'server.db'}") as server:
        server.client.put("/v1/kv/global/race/counter", json=0).raise_for_status()
        lost: list[int] = []

        def increment() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for _ in range(each):
                    while True:
                        read = client.get("/v1/kv/global/race/counter")
                        value, etag = read.json()["value"], read.headers["etag"]
                        write = client.put(
                            "/v1/kv/global/race/counter",
                            json=value + 1,
                            headers={"If-Match": etag},
                        )
                        if write.status_code == 200:
                            break
                        assert write.status_code == 412, write.text
                        lost.append(1)

        workers = [threading.Thread(target=increment) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        final = server.client.get("/v1/kv/global/race/counter").json()
    assert final["value"] == threads * each
    assert final["version"] == threads * each + 1
    assert lost, "the writers never overlapped: this proved nothing"


def test_a_server_waits_for_another_writer_without_stopping(tmp_path: Path) -> None:
    """Another process holds the write lock: the server's write waits for it (and then
    lands), while reads go on being answered meanwhile."""
    db = tmp_path / "server.db"
    with running_server(f"sqlite:///{db}?timeout=10") as server:
        server.client.put("/v1/kv/global/ns/k", json=1).raise_for_status()
        holder = hold_write_lock(db, 1.0)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as writer:
                result: list[httpx.Response] = []
                thread = threading.Thread(
                    target=lambda: result.append(writer.put("/v1/kv/global/ns/k", json=2))
                )
                thread.start()
                time.sleep(0.1)  # the write has arrived and is waiting
                asked = time.monotonic()
                read = server.client.get("/v1/kv/global/ns/k")
                assert time.monotonic() - asked < 0.5  # not held up behind the write
                assert read.json()["value"] == 1
                assert thread.is_alive()
                thread.join()
        finally:
            holder.wait()
        assert result[0].status_code == 200, result[0].text
        assert result[0].json()["version"] == 2


def test_a_server_write_locked_out_past_the_timeout_is_503(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    with running_server(f"sqlite:///{db}?timeout=0.3") as server:
        server.client.put("/v1/kv/global/ns/k", json=1).raise_for_status()
        holder = hold_write_lock(db, 3.0)
        try:
            answer = server.client.put("/v1/kv/global/ns/k", json=2)
        finally:
            holder.kill()
            holder.wait()
        assert answer.status_code == 503
        # The client gets a request id; the details (they name the file) are logged.
        request_id = answer.json()["error"]["requestId"]
        assert server.client.get("/v1/kv/global/ns/k").json()["version"] == 1
        server.stop()
        assert f"request {request_id}: " in server.log_text()
        assert "stayed locked for 0.3s" in server.log_text()


class _CountingBackend(SqliteBackend):
    """A real SQLite backend that notes the size of each group it commits."""

    groups: list[int]

    def try_write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception] | None:
        self.groups.append(len(calls))
        return super().try_write_together(calls)


def test_the_writes_of_one_loop_turn_share_a_commit(tmp_path: Path) -> None:
    backend = _CountingBackend(f"sqlite:///{tmp_path / 'x.db'}")
    backend.groups = []
    store = StateStore(backend, context=CTX)
    writer = GroupCommitWriter(backend)

    async def scenario() -> list[Any]:
        writes = [writer.submit(partial(store.set, f"k{i}", i)) for i in range(MAX_GROUP + 4)]
        return await asyncio.gather(*writes)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.close()
    assert [r.version for r in results] == [1] * (MAX_GROUP + 4)
    assert backend.groups == [MAX_GROUP, 4]  # one commit per group, none over the cap
    assert len(_committed(tmp_path / "x.db")) == MAX_GROUP + 4
    backend.close()


def test_alone_writes_and_other_loops_go_through_the_writer_thread(tmp_path: Path) -> None:
    backend = SqliteBackend(f"sqlite:///{tmp_path / 'x.db'}")
    store = StateStore(backend, context=CTX)
    writer = GroupCommitWriter(backend)

    def where(key: str) -> str:
        store.set(key, 1)
        return threading.current_thread().name

    async def scenario(key: str, alone: bool) -> str:
        return await writer.submit(partial(where, key), alone=alone)

    try:
        assert asyncio.run(scenario("a", False)) == "MainThread"  # inline, on the loop
        assert asyncio.run(scenario("b", True)) == "statebox-writer"
        assert asyncio.run(scenario("c", False)) == "statebox-writer"  # not the first loop
    finally:
        writer.close()
    with pytest.raises(BackendUnavailableError, match="shutting down"):
        asyncio.run(scenario("d", True))
    assert sorted(_committed(tmp_path / "x.db")) == ["a", "b", "c"]
    backend.close()


def test_closing_refuses_writes_still_waiting_for_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    backend = SqliteBackend(f"sqlite:///{db}?timeout=10")
    store = StateStore(backend, context=CTX)
    store.set("k", 1)
    writer = GroupCommitWriter(backend)
    holder = hold_write_lock(db, 3.0)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(writer.submit(partial(store.set, "k", 2)))
        await asyncio.sleep(0.2)  # trying again and again against the other writer
        assert not waiting.done()
        writer.close()
        with pytest.raises(BackendUnavailableError, match="shutting down"):
            await waiting

    try:
        asyncio.run(scenario())
    finally:
        holder.kill()
        holder.wait()
    assert store.get("k").version == 1
    backend.close()


def test_a_commit_scheduled_before_close_does_nothing_after_it(tmp_path: Path) -> None:
    """The loop turn that would have committed comes after close(): it must not reach the
    closed backend (it opened a connection there, never closed, on the old file)."""
    backend = _CountingBackend(f"sqlite:///{tmp_path / 'x.db'}")
    backend.groups = []
    store = StateStore(backend, context=CTX)
    writer = GroupCommitWriter(backend)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(writer.submit(partial(store.set, "k", 1)))
        await asyncio.sleep(0)  # submitted: its commit is due two loop turns later
        writer.close()
        backend.close()
        with pytest.raises(BackendUnavailableError, match="shutting down"):
            await waiting
        for _ in range(3):  # past the turn the commit was scheduled for
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert backend.groups == []
    assert backend._all == []  # no connection opened after close
