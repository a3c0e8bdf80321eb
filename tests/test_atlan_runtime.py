"""Event loops, threads, fork and close: one store per process and store URL.

Apps await the StateStore from one long-lived loop, from a new loop per ``asyncio.run``,
from a loop per thread. Whatever the loops, a process keeps one store per resolved store
URL and a bounded pool of threads calling it, so it keeps a bounded number of
connections; a forked child opens its own; ``StateStore.close()`` closes them.
"""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from statebox import open_store
from statebox.compat.atlan import StateStore, StateType, _runtime

from .test_atlan_api import new_secret_key

LINUX_FDS = Path("/proc/self/fd")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "state.db"
    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{path}")
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", "appName")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    yield path
    StateStore.close()


def open_files(path: Path) -> int:
    """How many descriptors of this process are open on ``path`` (one per connection)."""
    count = 0
    for fd in LINUX_FDS.iterdir():
        try:
            if os.readlink(fd) == str(path):
                count += 1
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return count


@pytest.mark.skipif(not LINUX_FDS.is_dir(), reason="counts descriptors in /proc/self/fd")
def test_a_new_loop_per_call_does_not_open_a_connection_per_call(db: Path) -> None:
    """statebox.aio would run each call on its loop's default executor: with a loop per
    asyncio.run, a new thread each time, and the SQLite backend keeps a connection per
    thread. The compat layer's pool keeps them bounded."""
    calls = 3 * _runtime.MAX_THREADS

    def call(i: int) -> None:
        asyncio.run(StateStore.save_state(f"f{i}", i, "wf", StateType.WORKFLOWS))

    for i in range(calls):
        thread = threading.Thread(target=call, args=(i,))
        thread.start()
        thread.join()
    assert asyncio.run(StateStore.get_state("wf", StateType.WORKFLOWS)) == {
        f"f{i}": i for i in range(calls)
    }
    assert 0 < open_files(db) <= _runtime.MAX_THREADS + 1
    StateStore.close()
    assert open_files(db) == 0  # close() closed every connection


def test_one_store_per_store_url_in_a_process(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(StateStore.save_state("a", 1, "wf", StateType.WORKFLOWS))
    first = _runtime.store_for(f"sqlite:///{db}")
    asyncio.run(StateStore.save_state("b", 2, "wf", StateType.WORKFLOWS))
    assert _runtime.store_for(f"sqlite:///{db}") is first

    # Another STATEBOX_STORE: the next call uses that store, at once.
    other = db.parent / "other.db"
    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{other}")
    assert asyncio.run(StateStore.get_state("wf", StateType.WORKFLOWS)) is None
    asyncio.run(StateStore.save_state("c", 3, "wf", StateType.WORKFLOWS))
    with open_store(f"sqlite:///{other}") as engine:
        assert engine.get("wf", scope="custom", namespace="atlan-appName-workflows").value == {
            "c": 3
        }
    with open_store(f"sqlite:///{db}") as engine:
        assert engine.get("wf", scope="custom", namespace="atlan-appName-workflows").value == {
            "a": 1,
            "b": 2,
        }


def test_close_then_the_next_call_opens_again(db: Path) -> None:
    asyncio.run(StateStore.save_state("a", 1, "wf", StateType.WORKFLOWS))
    first = _runtime.store_for(f"sqlite:///{db}")
    StateStore.close()
    StateStore.close()  # twice is fine
    assert asyncio.run(StateStore.get_state("wf", StateType.WORKFLOWS)) == {"a": 1}
    assert _runtime.store_for(f"sqlite:///{db}") is not first


def test_many_loops_in_threads_at_once(db: Path) -> None:
    """Threads that each run their own loop for a while, calling the store again and
    again from it, all at once."""
    errors: list[BaseException] = []

    async def worker(t: int) -> None:
        for n in range(10):
            await StateStore.save_state(f"t{t}", n, "wf", StateType.WORKFLOWS)
            state = await StateStore.get_state("wf", StateType.WORKFLOWS)
            assert state is not None and state[f"t{t}"] == n

    def thread(t: int) -> None:
        try:
            asyncio.run(worker(t))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert asyncio.run(StateStore.get_state("wf", StateType.WORKFLOWS)) == {
        f"t{t}": 9 for t in range(8)
    }


def forked_child(url: str, done: multiprocessing.SimpleQueue[tuple[bool, bool, object]]) -> None:
    # The fork hook has set aside what the parent opened: the parent's store of url.
    inherited = _runtime._inherited[-1].stores.get(url) if _runtime._inherited else None
    asyncio.run(StateStore.save_state("child", os.getpid(), "wf", StateType.WORKFLOWS))
    own = _runtime.store_for(url)
    done.put((inherited is not None, own is not inherited, _runtime._here().pid == os.getpid()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_opens_its_own_store(db: Path) -> None:
    url = f"sqlite:///{db}"
    asyncio.run(StateStore.save_state("parent", 1, "wf", StateType.WORKFLOWS))
    ctx = multiprocessing.get_context("fork")
    done: multiprocessing.SimpleQueue[tuple[bool, bool, object]] = ctx.SimpleQueue()
    child = ctx.Process(target=forked_child, args=(url, done))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    had_parents, own_store, own_state = done.get()
    assert had_parents and own_store and own_state
    state = asyncio.run(StateStore.get_state("wf", StateType.WORKFLOWS))
    assert state is not None and state["parent"] == 1 and state["child"] == child.pid


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_calls_see_the_callers_context_variables(db: Path) -> None:
    # As asyncio.to_thread does: a tracing or logging context set by the caller holds
    # in the worker thread the call runs on.
    async def main() -> str:
        REQUEST_ID.set("req-7")
        return await _runtime.call(lambda store: REQUEST_ID.get())

    assert asyncio.run(main()) == "req-7"
