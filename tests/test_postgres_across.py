"""PostgreSQL's ``apply_batch`` locks the rows of a transaction across keyspaces in one
order, so two of them naming the same keyspaces in opposite orders queue instead of
deadlocking (which PostgreSQL would detect only after ``deadlock_timeout``, a second)."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from statebox import Keyspace, RunContext, StateStore, open_store
from statebox.backends.base import Put

from .pg import fresh_schema_url

A = Keyspace("custom", "across-a")
B = Keyspace("custom", "across-b")


@pytest.fixture
def store(pg_server: str) -> Iterator[StateStore]:
    with (
        fresh_schema_url(pg_server, application_name=f"sbt_{secrets.token_hex(4)}") as url,
        open_store(url, context=RunContext(dag="across")) as opened,
    ):
        yield opened


def test_opposite_keyspace_orders_queue_rather_than_deadlock(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ks in (A, B):
        store.set("k", 0, scope=ks.scope, namespace=ks.namespace)
    backend: Any = store.backend
    # Each transaction pauses after its first write until the other has made its first
    # too (or a while has passed): locking row by row in batch order, each then holds
    # one row and waits for the other's, a deadlock; locking both rows first, in key
    # order, the second waits for the first to commit before it writes anything.
    both_started = threading.Barrier(2, timeout=1.0)
    apply_one = backend._apply_one

    def paused(db: Any, keyspace: Keyspace, mutation: Any, ctx: Any, index: int) -> Any:
        applied = apply_one(db, keyspace, mutation, ctx, index)
        if index == 0:
            with contextlib.suppress(threading.BrokenBarrierError):
                both_started.wait()
        return applied

    monkeypatch.setattr(backend, "_apply_one", paused)
    failures: list[BaseException] = []

    def write(first: Keyspace, second: Keyspace, value: int) -> None:
        try:
            put = Put("k", store.normalize(value), None)
            store.backend.apply_batch([(first, [put]), (second, [put])], store._write_context())
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=write, args=(A, B, 1)),
        threading.Thread(target=write, args=(B, A, 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert backend.retries == 0  # no deadlock was detected and retried
    values = {store.get("k", scope=ks.scope, namespace=ks.namespace).value for ks in (A, B)}
    assert len(values) == 1  # one transaction wrote both keyspaces last
