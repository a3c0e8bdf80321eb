"""No lost updates: 20 concurrent ``save_state`` calls, each setting its own field of one
object, all survive — in threads (each running its own event loop) and in processes (new
interpreters, and children forked after the parent used the store), on SQLite, on
PostgreSQL and through a statebox server; for workflow state and for (encrypted)
credentials.

The SDK 2.x read the object, set the field and wrote it back unguarded: eight tasks lost
34 of 40 updates.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import pytest

from statebox.compat.atlan import StateStore, StateType

from .pg import fresh_schema_url
from .server_util import running_server
from .test_atlan_api import new_secret_key

pytestmark = pytest.mark.slow

WRITERS = 20
OBJECT_ID = "workflow-123"
STORES = ["sqlite", "postgres", "server"]
KINDS = [StateType.WORKFLOWS, StateType.CREDENTIALS]


@pytest.fixture(params=STORES)
def atlan_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``STATEBOX_STORE`` on a fresh store of each kind (set in os.environ, so threads,
    child processes and the server see it), with the app name and a secret key."""
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", "appName")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        monkeypatch.setenv("STATEBOX_STORE", url)
        yield url
        StateStore.close()
    elif request.param == "postgres":
        with fresh_schema_url(request.getfixturevalue("pg_server")) as url:
            monkeypatch.setenv("STATEBOX_STORE", url)
            yield url
            StateStore.close()
    else:
        with running_server(f"sqlite:///{tmp_path / 'served.db'}") as server:
            monkeypatch.setenv("STATEBOX_STORE", server.url)
            yield server.url
            StateStore.close()


def field_value(i: int) -> dict[str, Any]:
    return {"writer": i, "note": f"field {i} / 20 ~ of one object"}


def expected_object() -> dict[str, Any]:
    return {f"field/{i}": field_value(i) for i in range(WRITERS)}


def save_field(i: int, kind: str) -> None:
    """One writer: its own event loop, one save_state of its own field (the field name
    holds "/", which must stay one field)."""
    asyncio.run(StateStore.save_state(f"field/{i}", field_value(i), OBJECT_ID, StateType(kind)))


def process_writer(i: int, kind: str, barrier: ProcessBarrier) -> None:
    barrier.wait(timeout=120)
    save_field(i, kind)


def read_object(kind: StateType) -> dict[str, Any] | None:
    result: dict[str, Any] | None = asyncio.run(StateStore.get_state(OBJECT_ID, kind))
    return result


def start_object(kind: StateType) -> None:
    asyncio.run(StateStore.save_state_object(OBJECT_ID, {"started": True}, kind))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_threads_each_with_its_own_loop_lose_nothing(atlan_store: str, kind: StateType) -> None:
    start_object(kind)
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            save_field(i, kind.value)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    assert read_object(kind) == {"started": True, **expected_object()}


# A writer in a new interpreter: waits for the "go" file, so all 20 start together.
WRITER = """
import asyncio, json, os, sys, time
from statebox.compat.atlan import StateStore, StateType
i, kind, value, go = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.002)
asyncio.run(StateStore.save_state(f"field/{i}", value, "workflow-123", StateType(kind)))
"""


def run_interpreters(kind: StateType, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(i), kind.value, json.dumps(field_value(i)), go],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS)
    ]
    go.touch()
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=240)
        if p.returncode != 0:
            failures.append(err)
    assert not failures, failures[0]


def run_forked(kind: StateType) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS)
    procs = [
        ctx.Process(target=process_writer, args=(i, kind.value, barrier)) for i in range(WRITERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * WRITERS


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_processes_lose_nothing(atlan_store: str, kind: StateType, tmp_path: Path) -> None:
    start_object(kind)
    run_interpreters(kind, tmp_path)
    assert read_object(kind) == {"started": True, **expected_object()}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_processes_forked_after_the_parent_used_the_store_lose_nothing(
    atlan_store: str, kind: StateType
) -> None:
    # The parent opened its store (its connections, its worker threads) before the
    # fork: each child must open its own, never use the parent's.
    start_object(kind)
    assert read_object(kind) == {"started": True}
    run_forked(kind)
    assert read_object(kind) == {"started": True, **expected_object()}
    # And the parent's own store still works after its children used theirs.
    asyncio.run(StateStore.save_state("done", True, OBJECT_ID, kind))
    assert read_object(kind) == {"started": True, "done": True, **expected_object()}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_tasks_of_one_loop_lose_nothing(atlan_store: str, kind: StateType) -> None:
    async def main() -> dict[str, Any] | None:
        await asyncio.gather(
            *(
                StateStore.save_state(f"field/{i}", field_value(i), OBJECT_ID, kind)
                for i in range(WRITERS)
            )
        )
        return await StateStore.get_state(OBJECT_ID, kind)

    assert asyncio.run(main()) == expected_object()


def test_concurrent_merges_keep_every_field(atlan_store: str) -> None:
    """save_state_object merges atomically too: 20 merges of two fields each."""

    async def merge(i: int) -> None:
        await StateStore.save_state_object(
            OBJECT_ID, {f"a{i}": i, f"b{i}": -i}, StateType.WORKFLOWS
        )

    async def main() -> dict[str, Any] | None:
        await asyncio.gather(*(merge(i) for i in range(WRITERS)))
        return await StateStore.get_state(OBJECT_ID, StateType.WORKFLOWS)

    expected = {f"a{i}": i for i in range(WRITERS)} | {f"b{i}": -i for i in range(WRITERS)}
    assert asyncio.run(main()) == expected
