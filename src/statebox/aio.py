"""The async twin of :class:`~statebox.store.StateStore`.

Same methods, same parameters (names, kinds, defaults, annotations — a test compares
them, and a misspelt keyword fails type checking), same results. The engine is one:
every call runs the sync operation in a worker thread, so the async face can never
drift from the sync one (and blocking storage I/O never blocks the event loop).

``watch`` and ``watch_iter`` run the sync watch loop itself in a thread, one step per
batch; each wait inside it lasts one slice at most, so a cancelled task frees its thread
within a slice instead of holding it until the next change (:mod:`statebox._aio_watch`).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

from ._aio_watch import Following
from .core.clock import Clock
from .core.leases import Fencing
from .core.model import Keyspace, RunContext, Scope
from .core.records import KeyImport
from .core.results import (
    DeleteResult,
    DiffResult,
    GetResult,
    HistoryResult,
    KeyspaceDeleteResult,
    KeyspacesResult,
    LeaseResult,
    ListResult,
    SetResult,
    TransactionResult,
    WatchEvent,
    WatchResult,
)
from .core.values import NormalizedValue
from .store import (
    DEFAULT_HISTORY_LIMIT,
    MISSING,
    StateStore,
    _check_timeout,
    open_store,
)
from .transactions import DeleteOp, SetOp
from .watch import Watcher

__all__ = ["AsyncStateStore", "AsyncStoreOpener", "open_async_store"]


class AsyncStateStore:
    """``await store.get(...)`` — the same operations as :class:`StateStore`.

    ``keyspace``, ``normalize`` and ``with_context`` do no I/O and stay plain methods;
    every other operation is a coroutine (``watch_iter`` an async generator).
    """

    def __init__(self, sync: StateStore) -> None:
        self.sync = sync

    @property
    def context(self) -> RunContext:
        return self.sync.context

    # -- lifecycle and helpers (no I/O) --------------------------------------------------

    def with_context(self, context: RunContext) -> AsyncStateStore:
        return AsyncStateStore(self.sync.with_context(context))

    def keyspace(self, scope: str | Scope | None = None, namespace: str | None = None) -> Keyspace:
        return self.sync.keyspace(scope, namespace)

    def normalize(self, value: Any) -> NormalizedValue:
        return self.sync.normalize(value)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncStateStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the five operations -------------------------------------------------------------

    async def get(
        self,
        key: str,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        default: Any = MISSING,
        required: bool = False,
        version: int | None = None,
    ) -> GetResult:
        return await asyncio.to_thread(
            self.sync.get,
            key,
            scope=scope,
            namespace=namespace,
            default=default,
            required=required,
            version=version,
        )

    async def set(
        self,
        key: str,
        value: Any,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        expected_version: int | None = None,
        create_only: bool = False,
        ttl: float | None = None,
        fencing: Fencing | None = None,
    ) -> SetResult:
        return await asyncio.to_thread(
            self.sync.set,
            key,
            value,
            scope=scope,
            namespace=namespace,
            expected_version=expected_version,
            create_only=create_only,
            ttl=ttl,
            fencing=fencing,
        )

    async def diff(
        self,
        key: str,
        value: Any,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        update: bool = True,
        expected_version: int | None = None,
    ) -> DiffResult:
        return await asyncio.to_thread(
            self.sync.diff,
            key,
            value,
            scope=scope,
            namespace=namespace,
            update=update,
            expected_version=expected_version,
        )

    async def delete(
        self,
        key: str,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        expected_version: int | None = None,
        fencing: Fencing | None = None,
    ) -> DeleteResult:
        return await asyncio.to_thread(
            self.sync.delete,
            key,
            scope=scope,
            namespace=namespace,
            expected_version=expected_version,
            fencing=fencing,
        )

    async def list(
        self,
        prefix: str | None = None,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        limit: int = 0,
        include_values: bool = False,
        after: str | None = None,
    ) -> ListResult:
        return await asyncio.to_thread(
            self.sync.list,
            prefix,
            scope=scope,
            namespace=namespace,
            limit=limit,
            include_values=include_values,
            after=after,
        )

    # -- SPEC §5 -------------------------------------------------------------------------

    async def history(
        self,
        key: str,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        limit: int = 0,
        include_values: bool = False,
    ) -> HistoryResult:
        return await asyncio.to_thread(
            self.sync.history,
            key,
            scope=scope,
            namespace=namespace,
            limit=limit,
            include_values=include_values,
        )

    async def update(
        self,
        key: str,
        *,
        jq: str | None = None,
        merge: Any = MISSING,
        patch: Any = MISSING,
        default: Any = MISSING,
        ttl: float | None = None,
        expected_version: int | None = None,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> SetResult:
        return await asyncio.to_thread(
            self.sync.update,
            key,
            jq=jq,
            merge=merge,
            patch=patch,
            default=default,
            ttl=ttl,
            expected_version=expected_version,
            fencing=fencing,
            scope=scope,
            namespace=namespace,
        )

    async def rollback(
        self,
        key: str,
        to_version: int,
        *,
        expected_version: int | None = None,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> SetResult:
        return await asyncio.to_thread(
            self.sync.rollback,
            key,
            to_version,
            expected_version=expected_version,
            fencing=fencing,
            scope=scope,
            namespace=namespace,
        )

    async def transaction(
        self,
        operations: Iterable[SetOp | DeleteOp | Mapping[str, Any]],
        *,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> TransactionResult:
        # Read a caller's iterator here, on the loop, not in the worker thread.
        return await asyncio.to_thread(
            self.sync.transaction,
            [*operations],
            fencing=fencing,
            scope=scope,
            namespace=namespace,
        )

    async def transaction_across(
        self,
        parts: Iterable[
            tuple[
                str | Scope | None,
                str | None,
                Iterable[SetOp | DeleteOp | Mapping[str, Any]],
            ]
        ],
        *,
        fencing: Fencing | None = None,
    ) -> builtins.list[TransactionResult]:  # `list` is a method of this class
        # Read a caller's iterators here, on the loop, not in the worker thread.
        read = [(scope, namespace, [*operations]) for scope, namespace, operations in parts]
        return await asyncio.to_thread(self.sync.transaction_across, read, fencing=fencing)

    async def acquire_lease(
        self, name: str, ttl: float, *, holder: str | None = None
    ) -> LeaseResult:
        return await asyncio.to_thread(self.sync.acquire_lease, name, ttl, holder=holder)

    async def renew_lease(
        self,
        lease: LeaseResult | str,
        ttl: float | None = None,
        *,
        token: int | None = None,
        holder: str | None = None,
    ) -> LeaseResult:
        return await asyncio.to_thread(
            self.sync.renew_lease, lease, ttl, token=token, holder=holder
        )

    async def release_lease(
        self, lease: LeaseResult | str, *, token: int | None = None, holder: str | None = None
    ) -> LeaseResult:
        return await asyncio.to_thread(self.sync.release_lease, lease, token=token, holder=holder)

    async def get_lease(self, name: str) -> LeaseResult | None:
        return await asyncio.to_thread(self.sync.get_lease, name)

    async def list_leases(
        self, *, after: str | None = None, limit: int = 0
    ) -> builtins.list[LeaseResult]:  # `list` is a method of this class
        return await asyncio.to_thread(self.sync.list_leases, after=after, limit=limit)

    async def watcher(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        after_version: int | None = None,
        include_values: bool = False,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> Watcher:
        """The sync :class:`~statebox.watch.Watcher` (its baseline taken now); poll it with
        ``await asyncio.to_thread(watcher.poll, timeout)``, or use :meth:`watch_iter`."""
        return await asyncio.to_thread(
            self.sync.watcher,
            key,
            prefix=prefix,
            after_version=after_version,
            include_values=include_values,
            scope=scope,
            namespace=namespace,
        )

    async def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        after_version: int | None = None,
        timeout: float | None = 30.0,
        include_values: bool = False,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> WatchResult:
        """As :meth:`StateStore.watch`; cancelling the task frees its thread."""
        if timeout is not None:
            _check_timeout(timeout)
        watcher = await self.watcher(
            key,
            prefix=prefix,
            after_version=after_version,
            include_values=include_values,
            scope=scope,
            namespace=namespace,
        )
        following = Following(watcher, timeout)
        try:
            events = await following.next_batch() or []
        finally:
            following.stop()
        return WatchResult(watcher.keyspace, watcher.key, watcher.prefix, events)

    async def watch_iter(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        after_version: int | None = None,
        timeout: float | None = None,
        include_values: bool = False,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """As :meth:`StateStore.watch_iter`, an async generator. Its baseline is taken at
        the first step (an async generator runs nothing when called)."""
        if timeout is not None:
            _check_timeout(timeout)
        watcher = await self.watcher(
            key,
            prefix=prefix,
            after_version=after_version,
            include_values=include_values,
            scope=scope,
            namespace=namespace,
        )
        following = Following(watcher, timeout)
        try:
            while (batch := await following.next_batch()) is not None:
                for event in batch:
                    yield event
        finally:
            following.stop()

    async def purge_expired(self, limit: int = 1000) -> int:
        return await asyncio.to_thread(self.sync.purge_expired, limit)

    async def keyspaces(
        self, scope: str | Scope | None = None, *, after: str | None = None, limit: int = 0
    ) -> KeyspacesResult:
        return await asyncio.to_thread(self.sync.keyspaces, scope, after=after, limit=limit)

    async def delete_keyspace(
        self, scope: str | Scope | None = None, namespace: str | None = None
    ) -> KeyspaceDeleteResult:
        return await asyncio.to_thread(self.sync.delete_keyspace, scope, namespace)

    async def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool = False
    ) -> builtins.list[str]:
        return await asyncio.to_thread(self.sync.import_keys, keyspace, items, replace=replace)

    async def declare_secret_keyspace(
        self, scope: str | Scope | None = None, namespace: str | None = None
    ) -> Keyspace:
        return await asyncio.to_thread(self.sync.declare_secret_keyspace, scope, namespace)


class AsyncStoreOpener:
    """What :func:`open_async_store` returns: ``await`` it for the store (close it
    yourself), or ``async with`` it to have the store closed at the end."""

    def __init__(self, open_sync: Callable[[], StateStore]) -> None:
        self._open_sync = open_sync
        self._entered: AsyncStateStore | None = None

    async def _open(self) -> AsyncStateStore:
        return AsyncStateStore(await asyncio.to_thread(self._open_sync))

    def __await__(self) -> Generator[Any, None, AsyncStateStore]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncStateStore:
        if self._entered is not None:
            raise RuntimeError("this open_async_store() is already entered")
        self._entered = await self._open()
        return self._entered

    async def __aexit__(self, *exc: object) -> None:
        store, self._entered = self._entered, None
        if store is not None:
            await store.close()


def open_async_store(
    url: str | None = None,
    *,
    context: RunContext | None = None,
    clock: Clock | None = None,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> AsyncStoreOpener:
    """Open a store for async use (same resolution as :func:`statebox.open_store`)::

        async with statebox.open_async_store(url) as store: ...
        store = await statebox.open_async_store(url)  # then await store.close()

    The store opens (in a worker thread) when awaited or entered, not at this call.
    """
    return AsyncStoreOpener(
        functools.partial(
            open_store,
            url,
            context=context,
            clock=clock,
            history_limit=history_limit,
            environ=environ,
            **options,
        )
    )
