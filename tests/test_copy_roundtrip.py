"""Issue 19, "How it is shown": a store of 10,000 keys with history copied SQLite →
PostgreSQL → file store → SQLite; every entry, version and hash survives each hop. And
a ``statebox copy`` killed (SIGKILL) half-way, once its progress bar shows keys done,
finishes when run again with the same result.

The source has, over 10 keyspaces of 1,000 keys: 3 versions of each key, every 10th
value binary, exact JSON numbers, every 25th key deleted and written again (a deletion
in its history), every 50th deleted for good (history only: not copied, see
docs/move-and-backup.md), and one keyspace secret (sealed under a key set for the test).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from statebox import StateStore, open_store
from statebox.core.model import Keyspace
from statebox.core.records import Delete, Put
from statebox.core.values import Blob, RawJSON
from statebox.transfer import copy_store

from .backends import new_secret_key
from .pg import fresh_schema_url
from .test_cli import environment_without_context
from .transfer_support import TerminalRun, run_cli, state_of

pytestmark = pytest.mark.slow

KEYSPACES = 10
KEYS = 1000
SECRET = Keyspace("custom", "ns-9")


def _value(i: int, round_: int) -> object:
    if i % 10 == 0:
        return Blob(bytes([i % 256, round_]) * 8, "application/octet-stream")
    return RawJSON(f'{{"i": {i}, "round": {round_}, "price": {round_}.10, "big": 1{i:030}}}')


def _build(store: StateStore) -> None:
    """The source: written through the backend in batches (one transaction per round
    and keyspace), as many writers would have over time."""
    store.declare_secret_keyspace(SECRET.scope, SECRET.namespace)
    backend = store.backend
    for ns in range(KEYSPACES):
        ks = Keyspace("custom", f"ns-{ns}")
        keys = [f"key/{i:05}" for i in range(KEYS)]
        for round_ in range(3):
            puts = [Put(k, store.normalize(_value(i, round_))) for i, k in enumerate(keys)]
            backend.apply(ks, puts, store._write_context())
        gone = [Delete(k) for i, k in enumerate(keys) if i % 25 == 0]
        backend.apply(ks, gone, store._write_context())
        back = [Put(k, store.normalize(_value(i, 9))) for i, k in enumerate(keys) if i % 50 == 25]
        backend.apply(ks, back, store._write_context())


@pytest.fixture
def secret_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    key = new_secret_key()
    monkeypatch.setenv("STATEBOX_SECRET_KEY", key)
    monkeypatch.delenv("STATEBOX_SECRET_NAMESPACES", raising=False)
    return {**environment_without_context(tmp_path_factory), "STATEBOX_SECRET_KEY": key}


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with fresh_schema_url(pg_server) as url:
        yield url


def test_ten_thousand_keys_survive_sqlite_postgres_file_sqlite(
    tmp_path: Path, pg_url: str, secret_env: dict[str, str]
) -> None:
    urls = [f"sqlite:///{tmp_path / 'a.db'}", pg_url, f"file://{tmp_path / 'files'}?fsync=false",
            f"sqlite:///{tmp_path / 'z.db'}"]  # fmt: skip
    with open_store(urls[0]) as source:
        _build(source)
        expected = state_of(source)
    live = KEYSPACES * KEYS - KEYSPACES * KEYS // 50
    assert len(expected) == live
    assert sum(len(v[-1]) for v in expected.values()) > 3 * live  # histories, deletions too
    for hop, (a, b) in enumerate(itertools.pairwise(urls)):
        started = time.monotonic()
        with open_store(a) as src, open_store(b) as dst:
            report = copy_store(src, dst)
            assert report.load.created == live and not report.load.conflicts, hop
            assert report.verification.ok, report.verification.difference
            assert report.verification.entries == live
            assert state_of(dst) == expected, f"hop {hop}: {a.split(':')[0]} → {b.split(':')[0]}"
            assert dst.secret_policy.is_secret(SECRET)
        print(f"hop {hop}: {live} keys in {time.monotonic() - started:.1f} s")


def test_an_interrupted_copy_resumed_finishes_with_the_same_result(
    tmp_path: Path, pg_url: str, secret_env: dict[str, str]
) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    with open_store(source) as store:
        _build(store)
        expected = state_of(store)
    run = TerminalRun("copy", "--from", source, "--to", pg_url, env=secret_env)

    def some_done(text: str) -> bool:
        return any(int(n.replace(",", "")) >= 1000 for n in re.findall(r"([\d,]+)/9,?800", text))

    shown = run.read_until(some_done)
    assert some_done(shown), shown
    os.kill(run.proc.pid, signal.SIGKILL)
    code, out, _ = run.finish()
    assert code == -signal.SIGKILL and out == b""

    done = run_cli("copy", "--from", source, "--to", pg_url, env=secret_env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["same"] >= 800 and summary["created"] >= 1  # the part done, the rest
    assert summary["same"] + summary["created"] == len(expected)
    assert summary["verification"]["ok"] is True
    with open_store(pg_url) as dst:
        assert state_of(dst) == expected
    again = json.loads(run_cli("copy", "--from", source, "--to", pg_url, env=secret_env).stdout)
    assert again["same"] == len(expected)
