"""The backends every conformance test runs against.

Each entry makes a fresh, empty store URL for one test and cleans up after it. A new
backend joins the conformance suite by adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from .pg import postgres_url
from .server_util import http_sqlite_url, http_url


@contextmanager
def memory_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield "memory://"


@contextmanager
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'state.db'}"


@contextmanager
def file_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"file://{tmp_path / 'file-store'}"


UrlFactory = Callable[[Path, pytest.FixtureRequest], AbstractContextManager[str]]

#: name -> factory of a fresh store URL. Order is the order tests run in.
BACKENDS: dict[str, UrlFactory] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
    "file": file_url,
    "postgres": postgres_url,  # needs the session fixture pg_server (tests/pg.py)
    "http": http_url,  # a live statebox server in a subprocess (tests/server_util.py)
    "http-sqlite": http_sqlite_url,  # the same over SQLite: the group-commit write path
}
