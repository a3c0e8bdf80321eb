"""The file backend under SIGKILL (issue 3): a real writer process killed at random moments.

After every kill, before anything recovers: every record file parses, every key holds the
version the writer last reported written or the next one (the kill may land between the
rename and the report). Then a new store opens (rolling forward a journal the writer left)
and the six keys of the transaction agree: all-or-nothing. No temp file is ever listed or
read as a record. The loop goes on until kills have landed inside a transaction's journal
at least a few times.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statebox import RunContext
from statebox.backends.file._codec import decode_record
from statebox.backends.file._journal import pending

from .conftest import make_store
from .file_crash_writer import TXN_KEYS

ROOT = Path(__file__).resolve().parent.parent
MIN_ROUNDS = 20
MAX_ROUNDS = 60
JOURNAL_KILLS = 3  # kills that must land while a transaction's journal was on disk
BUDGET = 45.0  # seconds
WRITER = RunContext(dag="crash")  # the writer's keyspace: dag/crash


def run_and_kill(url: str, seed: int, rng: random.Random) -> list[str]:
    """Start the writer, let it write for a random moment, SIGKILL it; its reports."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.file_crash_writer", url, str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
    time.sleep(rng.uniform(0.0, 0.12))
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    lines = out.split("\n")
    return lines[:-1]  # the last piece is empty or cut short by the kill


def on_disk_versions(root: Path) -> dict[str, int]:
    """Every record file parsed as it lies on disk: key -> version. A kill can leave a
    ``.tmp-*`` file behind (never renamed into place), and a Dagu lock (``.dagu_lock*/``
    with its owner file, broken by the next writer); nothing else may be there."""
    versions = {}
    for path in (root / "v1").rglob("*"):
        if path.parent.name.startswith(".dagu_lock"):
            assert path.name == "owner", path
        elif path.is_file() and not path.name.startswith(".tmp-"):
            assert path.name.endswith(".json"), path
            stored = decode_record(path.read_bytes(), str(path))
            versions[bytes.fromhex(path.name[: -len(".json")]).decode()] = stored.version
    return versions


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_a_record_or_a_transaction(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    url = f"file://{root}"
    rng = random.Random(int(os.environ.get("STATEBOX_CRASH_SEED", "20260101")))
    # key -> the version the writer last reported written (or, after a round, the version
    # found on disk: a write committed just before the kill was never reported)
    reported: dict[str, int] = {}
    txn_reported = 0
    journal_kills = rounds = 0
    start = time.monotonic()
    while rounds < MIN_ROUNDS or (journal_kills < JOURNAL_KILLS and rounds < MAX_ROUNDS):
        assert time.monotonic() - start < BUDGET, f"only {rounds} rounds in {BUDGET}s"
        rounds += 1
        for line in run_and_kill(url, rng.randrange(2**31), rng):
            kind, *rest = line.split()
            if kind == "cas":
                reported[rest[0]] = int(rest[1])
            else:
                assert kind == "txn", line
                txn_reported = int(rest[0])

        # As the kill left it, before any recovery:
        journal_kills += bool(pending(str(root / "statebox" / "journal")))
        versions = on_disk_versions(root)
        for key, version in reported.items():
            assert versions[key] in (version, version + 1), (key, versions[key], version)

        with make_store(url, context=WRITER) as store:  # opening rolls a journal forward
            assert not pending(str(root / "statebox" / "journal"))
            txn = [store.get(key) for key in TXN_KEYS]
            if txn_reported or txn[0].found:
                values = {(got.version, got.value["n"]) for got in txn}
                assert len(values) == 1, values  # all or nothing
                [(version, n)] = values
                assert version == n and n in (txn_reported, txn_reported + 1)
            listed = {e.key for e in store.list().entries}
            assert listed == set(on_disk_versions(root)), "a non-record was listed"
            for key, version in reported.items():
                got = store.get(key)
                assert got.value == {"n": got.version}
                assert got.version in (version, version + 1)
                assert (got.expires_at is not None) == key.startswith("ttl/")
                newest = store.history(key, limit=1).versions[0]
                assert (newest.version, newest.hash) == (got.version, got.hash)
                # A write the kill kept from being reported is the next writer's start.
                reported[key] = got.version
            if txn[0].found:
                txn_reported = txn[0].version
    assert journal_kills >= JOURNAL_KILLS, f"{journal_kills} kills in {rounds} rounds"
    assert txn_reported > 0 and reported
