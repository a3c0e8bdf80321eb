"""PostgreSQL writes an entry, its history record, the trim and the NOTIFY in one statement
(``statebox.backends._pg_write``): the result must be exactly what the reference memory
backend keeps, for any sequence of writes, deletions, expiries and history limits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statebox.backends._pg_write import write
from statebox.backends.base import Backend, Delete, Mutation, Put, WriteContext
from statebox.backends.memory import MemoryBackend
from statebox.backends.postgres import PostgresBackend
from statebox.backends.sql import Change
from statebox.core.errors import ConflictError
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.values import normalize

from .pg import fresh_schema_url

KEYSPACE = Keyspace("dag", "write")
KEYS = ("a", "b")

# One step: a batch of mutations (a set, a set expiring soon, a deletion) at time ``now``
# with a history limit (0 keeps none).
mutations = st.one_of(
    st.builds(lambda k, v: Put(k, normalize(v)), st.sampled_from(KEYS), st.integers(0, 3)),
    st.builds(
        lambda k, v: Put(k, normalize(v), expires_at=1), st.sampled_from(KEYS), st.integers(0, 3)
    ),
    # a lambda, not the class: builds() would also invent guards and fences for it
    st.builds(lambda k: Delete(k), st.sampled_from(KEYS)),
)
steps = st.lists(
    st.tuples(st.lists(mutations, min_size=1, max_size=3), st.integers(0, 3)),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def pg_backend(pg_server: str) -> Iterator[PostgresBackend]:
    with fresh_schema_url(pg_server) as url:
        backend = PostgresBackend(url)
        try:
            yield backend
        finally:
            backend.close()


def _apply(backend: Backend, keyspace: Keyspace, batch: list[Mutation], now: int, keep: int) -> str:
    ctx = WriteContext(now=now, updated_by=UpdatedBy(dag_name="t"), history_limit=keep)
    try:
        backend.apply(keyspace, batch, ctx)
    except ConflictError as exc:
        return f"conflict {exc}"
    return "ok"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
def test_writes_keep_what_the_memory_backend_keeps(
    pg_backend: PostgresBackend, steps: list[tuple[list[Mutation], int]]
) -> None:
    keyspace = Keyspace("dag", f"w{secrets.token_hex(6)}")  # a clean namespace per example
    memory = MemoryBackend()
    for now, (batch, keep) in enumerate(steps, start=1):
        done = _apply(pg_backend, keyspace, batch, now, keep)
        assert done == _apply(memory, keyspace, batch, now, keep)
        for key in KEYS:
            assert pg_backend.get(keyspace, key, now) == memory.get(keyspace, key, now)
            assert pg_backend.history(keyspace, key, 0) == memory.history(keyspace, key, 0)


def test_deleting_a_missing_key_sends_nothing() -> None:
    change = Change(KEYSPACE, ("dag", b"write", b"k"), False, None, None, 10)
    assert write(change, "statebox_x", "1") is None
