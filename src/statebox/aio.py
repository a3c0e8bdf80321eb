"""The async twin of :class:`~statebox.store.StateStore`.

Same methods, same arguments, same results. The engine is one: every call runs the sync
operation in a worker thread, so the async face can never drift from the sync one (and
blocking storage I/O never blocks the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from .clock import Clock
from .model import RunContext
from .results import (
    DeleteResult,
    DiffResult,
    GetResult,
    HistoryResult,
    LeaseResult,
    ListResult,
    SetResult,
    TransactionResult,
    WatchEvent,
    WatchResult,
)
from .store import DEFAULT_HISTORY_LIMIT, StateStore, open_store
from .watch import Watcher

#: ``watch_iter`` waits in slices this long, so a cancelled task frees its thread soon.
_WATCH_SLICE: Final = 1.0

__all__ = ["AsyncStateStore", "open_async_store"]


class AsyncStateStore:
    """``await store.get(...)`` — the same operations as :class:`StateStore`."""

    def __init__(self, sync: StateStore) -> None:
        self.sync = sync

    @property
    def context(self) -> RunContext:
        return self.sync.context

    def with_context(self, context: RunContext) -> AsyncStateStore:
        return AsyncStateStore(self.sync.with_context(context))

    async def get(self, key: str, **options: Any) -> GetResult:
        return await asyncio.to_thread(self.sync.get, key, **options)

    async def set(self, key: str, value: Any, **options: Any) -> SetResult:
        return await asyncio.to_thread(self.sync.set, key, value, **options)

    async def diff(self, key: str, value: Any, **options: Any) -> DiffResult:
        return await asyncio.to_thread(self.sync.diff, key, value, **options)

    async def delete(self, key: str, **options: Any) -> DeleteResult:
        return await asyncio.to_thread(self.sync.delete, key, **options)

    async def list(self, prefix: str | None = None, **options: Any) -> ListResult:
        return await asyncio.to_thread(self.sync.list, prefix, **options)

    async def history(self, key: str, **options: Any) -> HistoryResult:
        return await asyncio.to_thread(self.sync.history, key, **options)

    # -- SPEC §5 ------------------------------------------------------------------------

    async def update(self, key: str, **options: Any) -> SetResult:
        return await asyncio.to_thread(self.sync.update, key, **options)

    async def rollback(self, key: str, to_version: int, **options: Any) -> SetResult:
        return await asyncio.to_thread(self.sync.rollback, key, to_version, **options)

    async def transaction(self, operations: Any, **options: Any) -> TransactionResult:
        return await asyncio.to_thread(self.sync.transaction, list(operations), **options)

    async def acquire_lease(self, name: str, ttl: float, **options: Any) -> LeaseResult:
        return await asyncio.to_thread(self.sync.acquire_lease, name, ttl, **options)

    async def renew_lease(
        self, lease: LeaseResult | str, ttl: float | None = None, **options: Any
    ) -> LeaseResult:
        return await asyncio.to_thread(self.sync.renew_lease, lease, ttl, **options)

    async def release_lease(self, lease: LeaseResult | str, **options: Any) -> LeaseResult:
        return await asyncio.to_thread(self.sync.release_lease, lease, **options)

    async def get_lease(self, name: str) -> LeaseResult | None:
        return await asyncio.to_thread(self.sync.get_lease, name)

    async def watcher(self, key: str | None = None, **options: Any) -> Watcher:
        """The sync :class:`~statebox.watch.Watcher` (its baseline taken now); poll it with
        ``await asyncio.to_thread(watcher.poll, timeout)``, or use :meth:`watch_iter`."""
        return await asyncio.to_thread(self.sync.watcher, key, **options)

    async def watch(self, key: str | None = None, **options: Any) -> WatchResult:
        return await asyncio.to_thread(self.sync.watch, key, **options)

    async def watch_iter(
        self, key: str | None = None, *, timeout: float | None = None, **options: Any
    ) -> AsyncIterator[WatchEvent]:
        """Every change until ``timeout`` seconds pass (None: forever); an async generator."""
        watcher = await self.watcher(key, **options)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = _WATCH_SLICE if deadline is None else deadline - loop.time()
            if remaining <= 0:
                return
            for event in await asyncio.to_thread(watcher.poll, min(remaining, _WATCH_SLICE)):
                yield event

    async def purge_expired(self, limit: int = 1000) -> int:
        return await asyncio.to_thread(self.sync.purge_expired, limit)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncStateStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def open_async_store(
    url: str | None = None,
    *,
    context: RunContext | None = None,
    clock: Clock | None = None,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> AsyncStateStore:
    """Open a store for async use (same resolution as :func:`statebox.open_store`)."""
    sync = await asyncio.to_thread(
        open_store,
        url,
        context=context,
        clock=clock,
        history_limit=history_limit,
        environ=environ,
        **options,
    )
    return AsyncStateStore(sync)
