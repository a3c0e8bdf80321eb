"""Real races through real servers (SPEC §3, §8): 8 processes x 100 ``update`` increments
through the remote store end at exactly 800 — through one server, through two servers
sharing one SQLite file, and through two servers sharing one PostgreSQL database.

The workers are ``python -m tests.workers update URL KEY N`` (each starts, connects,
says ``ready``, and all begin together on ``go``); each process talks to the server its
URL names, and every increment is ``store.update(jq=".n += 1")`` with the store's own
retries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from statebox import RunContext, open_store

from .pg import fresh_schema_url
from .server_util import running_server
from .workers import race_processes

PROCESSES = 8
UPDATES = 100
KEY = "race/counter"


def race(urls: list[str]) -> int:
    """One worker per URL, all at once; the retries they needed."""
    return race_processes(urls, KEY, UPDATES, timeout=240)


def assert_exact(store_url: str) -> None:
    with open_store(store_url, context=RunContext(dag="check")) as store:
        got = store.get(KEY, scope="global")
    total = PROCESSES * UPDATES
    assert (got.value, got.version) == ({"n": total}, total)


@pytest.mark.slow
def test_eight_processes_through_one_server(tmp_path: Path) -> None:
    # synchronous=NORMAL: what is tested is atomicity, not durability; fsyncs only slow it
    store = f"sqlite:///{tmp_path / 'one.db'}?synchronous=NORMAL"
    with running_server(store) as server:
        retries = race([server.url] * PROCESSES)
    assert retries > 0  # they really collided
    assert_exact(store)


@pytest.mark.slow
def test_eight_processes_through_two_servers_sharing_one_sqlite_file(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'shared.db'}?synchronous=NORMAL"
    with running_server(store) as a, running_server(store) as b:
        retries = race([a.url, b.url] * (PROCESSES // 2))
    assert retries > 0
    assert_exact(store)


@pytest.mark.slow
def test_eight_processes_through_two_servers_sharing_one_postgresql_database(
    pg_server: str,
) -> None:
    with fresh_schema_url(pg_server) as store:
        with running_server(store) as a, running_server(store) as b:
            retries = race([a.url, b.url] * (PROCESSES // 2))
        assert retries > 0
        assert_exact(store)
