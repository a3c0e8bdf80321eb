"""The async twin of :class:`~statebox.store.StateStore`.

Same methods, same arguments, same results. The engine is one: every call runs the sync
operation in a worker thread, so the async face can never drift from the sync one (and
blocking storage I/O never blocks the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .clock import Clock
from .model import RunContext
from .results import DeleteResult, DiffResult, GetResult, HistoryResult, ListResult, SetResult
from .store import DEFAULT_HISTORY_LIMIT, StateStore, open_store

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
    **limits: int,
) -> AsyncStateStore:
    """Open a store for async use (same resolution as :func:`statebox.open_store`)."""
    sync = await asyncio.to_thread(
        open_store,
        url,
        context=context,
        clock=clock,
        history_limit=history_limit,
        environ=environ,
        **limits,
    )
    return AsyncStateStore(sync)
