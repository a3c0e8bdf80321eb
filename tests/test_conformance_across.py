"""The conformance suite for a transaction across keyspaces (``Backend.apply_batch`` and
``StateStore.transaction_across``), on every backend in tests/backends.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statebox import (
    AsyncStateStore,
    ConflictError,
    DeleteOp,
    FencingError,
    InvalidReferenceError,
    InvalidRequestError,
    InvalidValueError,
    Keyspace,
    ManualClock,
    SetOp,
    StateStore,
)
from statebox.backends.base import Delete, Mutation, Put

from .backends import conformance_backend_url  # noqa: F401  (backend_url, sealed variants too)
from .server_util import later

RUN = Keyspace("run", "run-1")
DAG = Keyspace("dag", "feed-sync")
GLOBAL = Keyspace("global", "_")


def put(store: StateStore, key: str, value: Any, **kw: Any) -> Put:
    return Put(key, store.normalize(value), **kw)


def value(store: StateStore, ks: Keyspace, key: str) -> Any:
    got = store.get(key, scope=ks.scope, namespace=ks.namespace)
    return got.value if got.found else None


# --- the engine: transaction_across ---------------------------------------------------


def test_transaction_across_writes_every_keyspace(store: StateStore) -> None:
    store.set("g", "old", scope="global")
    results = store.transaction_across(
        [
            ("run", None, [SetOp("r", 1)]),
            ("dag", None, [{"op": "set", "key": "d", "value": 2}, SetOp("d", 3)]),
            ("global", None, [SetOp("g", "new", expected_version=1), DeleteOp("gone")]),
        ]
    )
    assert [r.keyspace for r in results] == [RUN, DAG, GLOBAL]
    assert [[getattr(x, "version", None) for x in r.results] for r in results] == [
        [1],
        [1, 2],
        [2, None],
    ]
    assert results[1].as_data()["namespace"] == "feed-sync"
    assert (value(store, RUN, "r"), value(store, DAG, "d"), value(store, GLOBAL, "g")) == (
        1,
        3,
        "new",
    )
    # history is kept per keyspace, as a single-keyspace transaction keeps it
    assert [v.version for v in store.history("d").versions] == [2, 1]
    assert [v.version for v in store.history("g", scope="global").versions] == [2, 1]
    assert [v.version for v in store.history("r", scope="run").versions] == [1]


def test_a_conflict_in_the_second_keyspace_writes_nothing_anywhere(store: StateStore) -> None:
    store.set("a", "before", scope="run")
    store.set("b", 1)
    store.set("b", 2)  # b is at version 2
    with pytest.raises(ConflictError) as info:
        store.transaction_across(
            [
                ("run", None, [SetOp("a", "after"), SetOp("new", True)]),
                ("dag", None, [SetOp("x", 1), SetOp("b", 100, expected_version=1)]),
                ("global", None, [SetOp("g", 1)]),
            ]
        )
    assert info.value.index == 3  # counted across the parts, in order
    assert info.value.current_version == 2
    assert info.value.message.startswith(
        'transaction operation 3 (set "b") in scope "dag", namespace "feed-sync" failed, '
        "nothing was written: "
    )
    assert value(store, RUN, "a") == "before"
    assert value(store, RUN, "new") is None
    assert value(store, DAG, "x") is None
    assert (value(store, DAG, "b"), store.get("b").version) == (2, 2)
    assert value(store, GLOBAL, "g") is None
    assert [v.version for v in store.history("a", scope="run").versions] == [1]


def test_a_stale_fence_in_any_part_writes_nothing(store: StateStore, clock: ManualClock) -> None:
    old = store.acquire_lease("job", 10, holder="one")
    clock.advance(11)
    new = store.acquire_lease("job", 10, holder="two")
    with pytest.raises(FencingError) as info:
        store.transaction_across(
            [("run", None, [SetOp("a", 1)]), ("global", None, [SetOp("b", 1, fencing=old)])]
        )
    assert info.value.index == 1 and 'in scope "global"' in info.value.message
    with pytest.raises(FencingError):  # `fencing` applies to every part's operations
        store.transaction_across(
            [("run", None, [SetOp("a", 1)]), ("global", None, [SetOp("b", 1)])], fencing=old
        )
    assert value(store, RUN, "a") is None and value(store, GLOBAL, "b") is None
    results = store.transaction_across(
        [("run", None, [SetOp("a", 1)]), ("global", None, [SetOp("b", 1)])], fencing=new
    )
    assert [r.results[0].version for r in results] == [1, 1]  # type: ignore[union-attr]


def test_a_keyspace_named_twice_is_refused(store: StateStore) -> None:
    with pytest.raises(InvalidRequestError, match='scope "dag", namespace "feed-sync"'):
        store.transaction_across(  # the same keyspace, once by default and once by name
            [("dag", None, [SetOp("a", 1)]), ("dag", "feed-sync", [SetOp("b", 1)])]
        )
    assert value(store, DAG, "a") is None and value(store, DAG, "b") is None


def test_an_invalid_operation_is_named_with_its_keyspace(store: StateStore) -> None:
    with pytest.raises(InvalidValueError, match=r'operation 1 .*in scope "global"'):
        store.transaction_across(
            [("run", None, [SetOp("a", 1)]), ("global", None, [{"op": "set", "key": "k"}])]
        )
    with pytest.raises(InvalidReferenceError, match=r'operation 0 .*in scope "run"'):
        store.transaction_across([("run", None, [SetOp("../x", 1)])])
    assert value(store, RUN, "a") is None


def test_empty_parts_do_nothing(store: StateStore) -> None:
    assert store.transaction_across([]) == []
    results = store.transaction_across([("run", None, []), ("global", None, [SetOp("g", 1)])])
    assert [len(r.results) for r in results] == [0, 1]
    assert results[0].keyspace == RUN and value(store, GLOBAL, "g") == 1


def test_watch_sees_a_transaction_across_keyspaces(store: StateStore) -> None:
    store.set("k", 1, scope="global")
    writer = later(
        0.1,
        lambda: store.transaction_across(
            [("run", None, [SetOp("r", 1)]), ("global", None, [SetOp("k", 2)])]
        ),
    )
    result = store.watch("k", scope="global", timeout=10)
    writer.join()
    (event,) = result.events
    assert (event.event, event.previous_version, event.version) == ("updated", 1, 2)
    assert value(store, RUN, "r") == 1


def test_the_async_store_mirrors_transaction_across(backend_url: str, clock: ManualClock) -> None:
    from .conftest import make_store

    async def main() -> list[Any]:
        async with AsyncStateStore(make_store(backend_url, clock=clock)) as s:
            ops = iter([SetOp("a", 1)])  # an iterator: read on the loop
            results = await s.transaction_across([("run", None, ops), ("dag", None, [])])
            return [r.keyspace for r in results]

    assert asyncio.run(main()) == [RUN, DAG]


# --- the contract: Backend.apply_batch ------------------------------------------------


def test_apply_batch_applies_every_batch(store: StateStore) -> None:
    ctx = store._write_context()
    batches: list[tuple[Keyspace, list[Mutation]]] = [
        (RUN, [put(store, "a", 1), put(store, "a", 2)]),
        (GLOBAL, []),
        (DAG, [put(store, "b", 1), Delete("missing")]),
    ]
    applied = store.backend.apply_batch(batches, ctx)
    assert [
        [(a.previous is not None, a.current and a.current.version) for a in b] for b in applied
    ] == [
        [(False, 1), (True, 2)],
        [],
        [(False, 1), (False, None)],
    ]
    assert [r.version for r in store.backend.history(RUN, "a", 0)] == [2, 1]
    assert [r.version for r in store.backend.history(DAG, "b", 0)] == [1]
    assert store.backend.history(GLOBAL, "a", 0) == []


def test_apply_batch_conflict_index_is_flat_and_nothing_is_applied(store: StateStore) -> None:
    store.set("b", 1, scope="global")
    ctx = store._write_context()
    with pytest.raises(ConflictError) as info:
        store.backend.apply_batch(
            [
                (RUN, [put(store, "a", 1), put(store, "c", 1)]),
                (GLOBAL, [put(store, "x", 1), put(store, "b", 2, create_only=True)]),
            ],
            ctx,
        )
    assert info.value.index == 3 and info.value.current_version == 1
    assert store.backend.get(RUN, "a", ctx.now) is None
    assert store.backend.get(GLOBAL, "x", ctx.now) is None
    got = store.backend.get(GLOBAL, "b", ctx.now)
    assert got is not None and got.version == 1


def test_apply_batch_refuses_a_repeated_keyspace(store: StateStore) -> None:
    ctx = store._write_context()
    with pytest.raises(InvalidRequestError):
        store.backend.apply_batch([(RUN, [put(store, "a", 1)]), (RUN, [put(store, "b", 1)])], ctx)
    with pytest.raises(InvalidRequestError):
        store.backend.apply_batch([(RUN, []), (RUN, [put(store, "b", 1)])], ctx)
    assert store.backend.get(RUN, "a", ctx.now) is None
    assert store.backend.get(RUN, "b", ctx.now) is None


def test_apply_batch_keeps_history_limit_per_key(store: StateStore) -> None:
    if store.backend.capabilities.own_history_limit:
        pytest.skip("the remote store keeps history to its server's limit")
    small = StateStore(store.backend, context=store.context, clock=store.clock, history_limit=2)
    for i in range(4):
        small.transaction_across(
            [("run", None, [SetOp("k", i)]), ("global", None, [SetOp("k", -i), SetOp("j", i)])]
        )
    assert [v.version for v in small.history("k", scope="run").versions] == [4, 3]
    assert [v.version for v in small.history("k", scope="global").versions] == [4, 3]
    assert small.get("k", scope="global").value == -3
