"""Key rotation (issue 16): ``statebox secrets rotate`` while others write, killed mid-way,
and with the keys in ``STATEBOX_SECRET_KEY``.

Real processes on real stores: four writers (tests/sealed_writer.py) increment their own
counters and a shared one in a secret keyspace while the rotation runs in its own
process, on SQLite and on PostgreSQL; afterwards the counters are exact, every live
entry is sealed under the new key (its key id read raw, under the sealing layer) and the
versions sealed under the old key still open. A rotation over 3000 entries is killed
with SIGKILL once some are re-sealed and some not: every entry still opens, and running
it again finishes. With the keys in the environment, ``"NEW,OLD"`` and ``--no-new-key``
re-seal everything under NEW.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import StateStore
from statebox.backends.sealing.backend import SealedBackend
from statebox.backends.sealing.cipher import SEALED_CONTENT_TYPE
from statebox.backends.sealing.keyring import key_id
from statebox.core.errors import SecretKeyError
from statebox.core.model import Keyspace
from statebox.transactions import SetOp

from .backends import BACKENDS, new_secret_key
from .conftest import make_store

ROOT = Path(__file__).resolve().parent.parent
VAULT = Keyspace("custom", "vault")
NS: dict[str, Any] = {"scope": "custom", "namespace": "vault"}
SECRET = "hunter2-s3cr3t-Pa55"
WRITERS = 4


@pytest.fixture
def key_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """custom/vault is secret; its keys live in a key file (made on the first seal)."""
    path = tmp_path / "keys" / "secret.key"
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "custom/vault")
    monkeypatch.delenv("STATEBOX_SECRET_KEY", raising=False)
    monkeypatch.setenv("STATEBOX_SECRET_KEY_FILE", str(path))
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with BACKENDS[request.param](tmp_path, request) as url:
        yield url


def file_key_ids(path: Path) -> list[str]:
    """The ids of the keys in the key file, first (the sealing one) first."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [key_id(base64.urlsafe_b64decode(line)) for line in lines]


def raw_key_ids(store: StateStore) -> Counter[str]:
    """How many live entries of custom/vault are sealed under each key id, read under the
    sealing layer (as stored)."""
    assert isinstance(store.backend, SealedBackend)
    raw = store.backend.inner.scan(
        VAULT, "", after=None, limit=0, include_values=True, now=time.time_ns()
    )
    assert all(e.content_type == SEALED_CONTENT_TYPE and e.data[:4] == b"SBX1" for e in raw)
    return Counter(e.data[4:12].hex() for e in raw)


def fill(store: StateStore, count: int) -> dict[str, Any]:
    """``count`` secret entries ``item/NNNN``, written in transactions of 500."""
    values = {f"item/{i:04d}": {"i": i, "n": 0, "password": f"{SECRET}-{i}"} for i in range(count)}
    items = list(values.items())
    for start in range(0, count, 500):
        store.transaction([SetOp(k, v) for k, v in items[start : start + 500]], **NS)
    return values


def rotate_command(url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "statebox.cli", "secrets", "rotate", "--store", url, *extra]


def run_rotate(url: str, *extra: str) -> dict[str, Any]:
    """``statebox secrets rotate`` in its own process; its JSON report."""
    done = subprocess.run(
        rotate_command(url, *extra), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["operation"] == "rotate"
    return report


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# --- rotation while four processes write -----------------------------------------------


class Writers:
    """The writer processes of tests/sealed_writer.py, started and let go together."""

    def __init__(self, url: str, count: int, items: int) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.sealed_writer", url, str(i), str(items)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(count)
        ]

    def _send(self, line: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                proc.kill()
                raise AssertionError(f"a writer was not ready ({line!r}): {proc.communicate()[1]}")
        self._send("go")

    def stop(self) -> list[dict[str, Any]]:
        """Stop them; each one's report (rounds, retries, increments per item)."""
        self._send("stop")
        done = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            done.append(json.loads(out))
        return done

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_rotation_while_four_processes_write_loses_nothing(store_url: str, key_file: Path) -> None:
    with make_store(store_url) as store:
        values = fill(store, 500)
        (old_id,) = file_key_ids(key_file)  # made by the first seal

        def shared() -> int:
            got = store.get("shared", **NS)
            return int(got.value["n"]) if got.found else 0

        writers = Writers(store_url, WRITERS, len(values))
        try:
            writers.go()
            wait_until(lambda: shared() >= 20, 30, "the writers to start writing")
            before = shared()
            report = run_rotate(store_url)
            during = shared() - before
            after_rotation = shared()
            # ... and they go on, now under the new key
            wait_until(lambda: shared() >= after_rotation + 20, 30, "writes after the rotation")
            done = writers.stop()
        finally:
            writers.kill()
        assert during > 0  # the writers really wrote while the rotation ran

        # Nothing lost: every counter holds exactly the increments the writers made,
        # the items too, which the rotation was re-sealing as the writers updated them.
        for i, report_i in enumerate(done):
            assert store.get(f"own-{i}", **NS).value == {"n": report_i["rounds"]}
        assert shared() == sum(report_i["rounds"] for report_i in done)
        touched: Counter[str] = Counter()
        for report_i in done:
            touched.update(report_i["items"])
        for key, increments in touched.items():
            values[key] = {**values[key], "n": increments}
        listed = store.list("item/", include_values=True, **NS).entries
        assert {e.key: e.value for e in listed} == values

        # Every live entry is sealed under the new key, which is first in the key file.
        new_id = report["keyId"]
        assert file_key_ids(key_file) == [new_id, old_id]
        assert report["previousKeyIds"] == [old_id]
        # Some items were rewritten by the writers under the new key before the rotation
        # reached them (it then had nothing to do there, or its guarded write lost the
        # race, looked again and found them re-sealed): the interleaving under which a
        # rotation writing its stale copy unguarded loses their increments (checked above).
        assert 0 < report["resealed"] < len(values)
        assert raw_key_ids(store) == Counter({new_id: len(values) + WRITERS + 1})

        # The versions sealed under the old key still open.
        assert isinstance(store.backend, SealedBackend)
        quiet = next(key for key in sorted(values) if key not in touched)  # rotated only
        first = store.backend.inner.get_version(VAULT, quiet, 1)
        assert first is not None and first.data[4:12].hex() == old_id
        assert store.get(quiet, version=1, **NS).value == values[quiet]
        assert [v.version for v in store.history(quiet, **NS).versions] == [2, 1]
        for item in store.history("shared", **NS).versions:
            assert store.get("shared", version=item.version, **NS).value is not None


# --- a rotation killed mid-way -----------------------------------------------------------


def sealed_counts(db: Path) -> Counter[str]:
    """Key id -> live entries sealed under it, read from the SQLite file directly."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute(
            "SELECT hex(substr(data, 5, 8)), count(*) FROM statebox_entries "
            "WHERE content_type = ? GROUP BY 1",
            (SEALED_CONTENT_TYPE,),
        ).fetchall()
    conn.close()
    return Counter({kid.lower(): n for kid, n in rows})


@pytest.mark.slow
def test_a_rotation_killed_midway_leaves_everything_readable_and_a_rerun_finishes(
    tmp_path: Path, key_file: Path
) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite:///{db}"
    total = 3000
    with make_store(url) as store:
        values = fill(store, total)
    (old_id,) = file_key_ids(key_file)
    assert sealed_counts(db) == Counter({old_id: total})

    proc = subprocess.Popen(
        rotate_command(url), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: sealed_counts(db)[old_id] <= total - 50, 30, "re-sealing to begin")
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err

    # Killed mid-way: some entries under the new key, some still under the old one.
    ids = file_key_ids(key_file)
    assert len(ids) == 2 and ids[1] == old_id
    new_id = ids[0]
    counts = sealed_counts(db)
    assert set(counts) == {new_id, old_id}, counts
    assert 0 < counts[new_id] < total and counts[new_id] + counts[old_id] == total

    # Every entry still opens: the old key stays in the file.
    with make_store(url) as store:
        listed = store.list("item/", include_values=True, **NS).entries
        assert {e.key: e.value for e in listed} == values

    # Running it again (under the key the killed run made) finishes the job.
    report = run_rotate(url, "--no-new-key")
    assert report["keyId"] == new_id
    assert report["resealed"] == counts[old_id]
    assert sealed_counts(db) == Counter({new_id: total})
    with make_store(url) as store:
        listed = store.list("item/", include_values=True, **NS).entries
        assert {e.key: e.value for e in listed} == values
        # a version sealed under the old key, and not re-sealed since, still opens
        assert store.get("item/2999", version=1, **NS).value == values["item/2999"]


# --- keys in STATEBOX_SECRET_KEY: "NEW,OLD" and --no-new-key ---------------------------


def test_env_keys_new_comma_old_reseal_everything_under_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = new_secret_key(), new_secret_key()
    old_id, new_id = (key_id(base64.urlsafe_b64decode(k)) for k in (old, new))
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "custom/vault")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", old)
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with make_store(url) as store:
        values = fill(store, 50)
        first = values["item/0000"]
        values["item/0000"] = {"i": 0, "password": SECRET}
        store.set("item/0000", values["item/0000"], **NS)  # a second version

    # A new key cannot be written into the environment: the command says what to do.
    refused = subprocess.run(
        rotate_command(url), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "STATEBOX_SECRET_KEY" in refused.stderr and "--no-new-key" in refused.stderr
    assert not (tmp_path / "home" / "secret.key").exists()

    monkeypatch.setenv("STATEBOX_SECRET_KEY", f"{new},{old}")
    report = run_rotate(url, "--no-new-key")
    assert (report["keyId"], report["previousKeyIds"], report["resealed"]) == (
        new_id,
        [old_id],
        50,
    )
    with make_store(url) as store:
        assert raw_key_ids(store) == Counter({new_id: 50})
        assert store.get("item/0000", version=1, **NS).value == first

    # NEW alone opens every live entry; what only OLD sealed (history) needs OLD.
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new)
    with make_store(url) as store:
        listed = store.list("item/", include_values=True, **NS).entries
        assert {e.key: e.value for e in listed} == values
        with pytest.raises(SecretKeyError, match=old_id):
            store.get("item/0000", version=1, **NS)
