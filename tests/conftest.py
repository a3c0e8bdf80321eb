from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import ManualClock, RunContext, StateStore, open_store

from .backends import BACKENDS
from .pg import pg_server  # noqa: F401  (the session's PostgreSQL, for BACKENDS["postgres"])

CONTEXT = RunContext(dag="feed-sync", root_dag="nightly", run_id="run-1", step="load")


@pytest.fixture(params=list(BACKENDS))
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL, once per backend."""
    factory = BACKENDS[request.param]
    with factory(tmp_path, request) as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(backend_url: str, clock: ManualClock) -> Iterator[StateStore]:
    """A store on each backend, with a fixed run context and a manual clock."""
    with open_store(backend_url, context=CONTEXT, clock=clock) as s:
        yield s


def make_store(url: str, **kwargs: Any) -> StateStore:
    kwargs.setdefault("context", CONTEXT)
    return open_store(url, **kwargs)
