"""The async face is typed (issue #13, item 5): every AsyncStateStore method has the
parameters of its StateStore twin, a misspelt keyword fails type checking,
``open_async_store()`` is both awaitable and an async context manager, and the async
watches run the sync watch loop, so a cancelled one frees its thread."""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import inspect
import typing
from pathlib import Path
from typing import Any

import mypy.api
import pytest

import statebox
import statebox._aio_watch
import statebox.aio
from statebox import AsyncStateStore, InvalidValueError, RunContext, StateStore
from statebox.core import results_beyond
from statebox.core.records import KeyImport
from statebox.transactions import DeleteOp, SetOp
from statebox.watch import Watcher

# The engine imports these for annotations only (CLI start-up, which loads no typing
# either): resolve them by hand.
_HIDDEN_NAMES = {
    "Any": Any,
    "SetOp": SetOp,
    "DeleteOp": DeleteOp,
    "Watcher": Watcher,
    "KeyImport": KeyImport,
    **{name: getattr(results_beyond, name) for name in results_beyond.__all__},
}
# Methods that do no I/O stay plain methods on the async face.
_PLAIN = {"keyspace", "normalize", "with_context"}


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _hints(function: Any) -> dict[str, Any]:
    return typing.get_type_hints(function, localns=_HIDDEN_NAMES)


def _returns_the_twin(sync_return: Any, async_return: Any) -> bool:
    """The async method returns what the sync one does, awaited: an AsyncStateStore for
    a StateStore, an async iterator of the same items for an iterator."""
    if sync_return is StateStore:
        return async_return is AsyncStateStore
    if typing.get_origin(sync_return) is collections.abc.Iterator:
        return bool(
            typing.get_origin(async_return) is collections.abc.AsyncIterator
            and typing.get_args(async_return) == typing.get_args(sync_return)
        )
    return bool(async_return == sync_return)


def test_every_sync_method_has_an_async_twin_with_its_parameters() -> None:
    sync_methods = _public_methods(StateStore)
    async_methods = _public_methods(AsyncStateStore)
    assert len(sync_methods) > 15  # the comparison below is not vacuous
    assert sync_methods.keys() <= async_methods.keys(), sync_methods.keys() - async_methods
    for name, sync_method in sync_methods.items():
        async_method = async_methods[name]
        if name in _PLAIN:
            assert not inspect.iscoroutinefunction(async_method), name
        elif name == "watch_iter":
            assert inspect.isasyncgenfunction(async_method), name
        else:
            assert inspect.iscoroutinefunction(async_method), name
        sync_params = inspect.signature(sync_method).parameters
        async_params = inspect.signature(async_method).parameters
        assert [(p.name, p.kind, p.default) for p in sync_params.values()] == [
            (p.name, p.kind, p.default) for p in async_params.values()
        ], name
        sync_hints, async_hints = _hints(sync_method), _hints(async_method)
        assert _returns_the_twin(sync_hints.pop("return"), async_hints.pop("return")), name
        assert sync_hints == async_hints, name


def test_open_async_store_has_the_parameters_of_open_store() -> None:
    sync_params = inspect.signature(statebox.open_store).parameters
    async_params = inspect.signature(statebox.open_async_store).parameters
    assert list(sync_params.items()) == list(async_params.items())
    assert (
        typing.get_type_hints(statebox.open_async_store)["return"] is statebox.aio.AsyncStoreOpener
    )


_CHECKED_SNIPPET = """
import statebox

async def main() -> None:
    async with statebox.open_async_store("memory://") as store:
        await store.get("k", default=1)
        await store.set("k", 2, expected_version=1, ttl=5.0)
        await store.update("k", jq=". + 1", namespace="n")
        async for event in store.watch_iter(prefix="", timeout=0.1):
            print(event.version + 1)
    other = await statebox.open_async_store("memory://")
    await other.close()
"""

_MISSPELT_SNIPPET = """
import statebox

async def main(store: statebox.AsyncStateStore) -> None:
    await store.get("k", defualt=1)
"""


def test_a_misspelt_keyword_fails_type_checking(tmp_path: Path) -> None:
    (tmp_path / "checked.py").write_text(_CHECKED_SNIPPET)
    (tmp_path / "misspelt.py").write_text(_MISSPELT_SNIPPET)
    stdout, stderr, status = mypy.api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),  # its own: never races a developer's `mypy` run
            str(tmp_path / "checked.py"),
            str(tmp_path / "misspelt.py"),
        ]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, (stdout, stderr)
    assert len(errors) == 1, stdout
    assert "misspelt.py:5: error:" in errors[0], stdout
    assert 'Unexpected keyword argument "defualt" for "get" of "AsyncStateStore"' in errors[0]


def test_open_async_store_is_an_async_context_manager_and_awaitable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[StateStore] = []
    real_close = StateStore.close

    def recording_close(self: StateStore) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(StateStore, "close", recording_close)
    url = f"sqlite:///{tmp_path}/a.db"
    context = RunContext(dag="feed")

    async def scenario() -> None:
        async with statebox.open_async_store(url, context=context) as store:
            assert isinstance(store, AsyncStateStore)
            await store.set("cursor", {"id": 1})
            assert closed == []
        assert closed == [store.sync]
        # the form of earlier releases: await, then close (or `async with` the store)
        again = await statebox.open_async_store(url, context=context)
        assert (await again.get("cursor")).value == {"id": 1}
        await again.close()
        assert closed == [store.sync, again.sync]
        opener = statebox.open_async_store(url, context=context)
        async with opener:
            with pytest.raises(RuntimeError, match="already entered"):
                await opener.__aenter__()

    asyncio.run(scenario())


def test_watch_iter_reports_what_the_sync_one_reports() -> None:
    store = statebox.open_store("memory://", context=RunContext(dag="feed"))
    store.set("a", 1)
    store.set("b", 1)
    store.set("b", 2)
    astore = AsyncStateStore(store)

    async def async_events() -> list[statebox.WatchEvent]:
        iterator = astore.watch_iter(prefix="", after_version=0, timeout=0.2)
        return [event async for event in iterator]

    sync_events = list(store.watch_iter(prefix="", after_version=0, timeout=0.2))
    assert [(e.key, e.event, e.version) for e in sync_events] == [
        ("a", "created", 1),
        ("b", "created", 2),
    ]
    assert asyncio.run(async_events()) == sync_events
    with pytest.raises(InvalidValueError, match="invalid timeout"):
        list(store.watch_iter("a", timeout=-1))

    async def negative_timeout() -> None:
        async for _ in astore.watch_iter("a", timeout=-1):
            pass

    with pytest.raises(InvalidValueError, match="invalid timeout"):
        asyncio.run(negative_timeout())


def test_a_cancelled_watch_frees_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statebox._aio_watch, "WATCH_SLICE", 0.05)
    store = statebox.open_store("memory://", context=RunContext(dag="feed"))
    astore = AsyncStateStore(store)

    async def drain() -> None:
        async for _ in astore.watch_iter("w"):
            pass

    async def scenario() -> None:
        # One worker thread: a watch still holding it would starve the call below.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=1)
        )
        try:
            for waiting in (astore.watch("w", timeout=None), drain()):
                task = asyncio.create_task(waiting)
                await asyncio.sleep(0.2)  # the watch is now waiting in the thread
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 2) == "free"
        finally:
            store.set("w", 1)  # wakes a watch that was not freed, so the loop can end

    asyncio.run(scenario())


def test_a_watch_still_reports_changes_across_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statebox._aio_watch, "WATCH_SLICE", 0.02)
    store = statebox.open_store("memory://", context=RunContext(dag="feed"))
    astore = AsyncStateStore(store)

    async def scenario() -> tuple[list[int], list[int]]:
        async def write_later() -> None:
            await asyncio.sleep(0.15)  # several slices pass first
            await astore.set("w", 1)
            await asyncio.sleep(0.15)
            await astore.set("w", 2)

        writer = asyncio.create_task(write_later())
        first = await astore.watch("w", timeout=5)
        rest = [event.version async for event in astore.watch_iter("w", timeout=0.5)]
        await writer
        return [event.version for event in first.events], rest

    assert asyncio.run(scenario()) == ([1], [2])
