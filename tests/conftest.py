from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import ManualClock, RunContext, StateStore, open_store

from .backends import BACKENDS
from .pg import pg_server  # noqa: F401  (the session's PostgreSQL, for BACKENDS["postgres"])
from .server_util import LOGS

CONTEXT = RunContext(dag="feed-sync", root_dag="nightly", run_id="run-1", step="load")


@pytest.fixture(scope="session", autouse=True)
def _server_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The servers' logs go under pytest's basetemp, not loose in the temp dir (before any
    server starts: autouse session fixtures are set up first). scripts/test fails a run
    that leaves anything else in the temp dir."""
    LOGS.directory = tmp_path_factory.mktemp("server-logs")


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
