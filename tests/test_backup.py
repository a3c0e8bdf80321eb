"""``statebox backup PATH`` while 4 processes write (issue 19, "How it is shown"): the
backup opens, passes SQLite's integrity check, every entry parses, and it is one
consistent moment of the store — each key's version is its newest history record's,
and each writer's keys form an unbroken prefix of its sequence (no later write without
the earlier ones)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statebox import open_store

from .test_cli import environment_without_context
from .transfer_support import run_cli

pytestmark = pytest.mark.slow

WRITERS = 4
# Each writer sets seq/N = {"writer": w, "n": N, "pad": …} for N = 0, 1, 2 … (one write
# per transaction, each a new key): a consistent copy holds, per writer, keys 0..M only.
WRITER = """
import sys, time
from statebox import open_store
url, w, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import os
with open_store(url) as store:
    n = 0
    while not os.path.exists(stop):
        store.set(f"seq/{n:07}", {"writer": w, "n": n, "pad": "x" * 200},
                  scope="custom", namespace=f"writer-{w}")
        n += 1
    print(n)
"""


def test_backup_while_four_processes_write(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = environment_without_context(tmp_path_factory)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:  # enough pages that the copy takes many steps
        for part in range(20):
            store.transaction(
                [{"op": "set", "key": f"k{i:05}", "value": {"pad": "y" * 400}}
                 for i in range(part * 1000, part * 1000 + 1000)],
                scope="custom", namespace="bulk",
            )  # fmt: skip
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(w), str(stop)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        time.sleep(1.0)  # all four writing
        backup = tmp_path / "backup.db"
        done = run_cli("backup", str(backup), "--store", url, env=env, timeout=120)
    finally:
        stop.touch()
        counts = [int(w.communicate(timeout=60)[0]) for w in writers]
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["integrity"] == "ok" and summary["path"] == str(backup)
    assert all(c > 0 for c in counts), counts  # they did write, during and after

    conn = sqlite3.connect(backup)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    with open_store(f"sqlite:///{backup}") as copy:
        backend = copy.backend
        total = 0
        for info in backend.list_keyspaces(None, after=None, limit=0, now=time.time_ns()):
            entries = backend.scan(
                info.keyspace, "", after=None, limit=0, include_values=True, now=time.time_ns()
            )
            for entry in entries:
                json.loads(entry.data)  # every entry parses
                newest = backend.history(info.keyspace, entry.key, 1)
                assert newest and newest[0].version == entry.version, entry.key
            if info.namespace.startswith("writer-"):
                numbers = [json.loads(e.data)["n"] for e in entries]
                assert numbers == list(range(len(numbers))), info.namespace  # no gap
            total += len(entries)
        assert total == summary["entries"] > 20_000  # the bulk and some of each writer
