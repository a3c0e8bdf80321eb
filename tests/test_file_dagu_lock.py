"""Dagu and statebox writing one state directory lose nothing (issue #12, part 7).

The second writer here speaks Dagu's protocol, written from Dagu's description
(internal/cmn/dirlock, internal/persis/file/collection.go, internal/persis/store): an
unlocked read of the record, then, under the record-bucket lock
``<dir>/.dagu_record_locks/<sha256(record id)[0] %02x>/.dagu_lock`` (a directory made with
mkdir, an ``owner`` token inside, stale after 30 s, retried every 50 ms, released by a
rename then removal), a compare of the file's bytes with what it read and an atomic
replace (``<name>.tmp.<digits>``, rename, mtime = updated_at). Run as a script it is that
worker process.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

LOCKS = ".dagu_record_locks"
LOCK = ".dagu_lock"
STALE_AFTER = 30.0


# --- Dagu's side (also run as a separate process) ------------------------------------------


def record_id(scope: str, namespace: str, key: str) -> str:
    return f"v1/{scope}/{namespace.encode().hex()}/{key.encode().hex()}"


def lock_dir(root: Path, rid: str) -> Path:
    return root / LOCKS / f"{hashlib.sha256(rid.encode()).digest()[0]:02x}" / LOCK


def take_dirlock(path: Path, who: str = "dagu-test") -> str:
    """Take a Dagu directory lock at ``path`` (waiting, breaking a stale one), as both of
    Dagu's lock forms do; returns the owner token."""
    token = f"{who}-{os.getpid()}-{secrets.token_hex(16)}"
    while True:
        try:
            if time.time() - path.stat().st_mtime > STALE_AFTER:
                release_dirlock(path)
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(0o700)
        except FileExistsError:
            time.sleep(0.05)
            continue
        (path / "owner").write_text(token)
        return token


def release_dirlock(path: Path, token: str | None = None) -> None:
    """Release the lock at ``path`` Dagu's way (rename, then remove); with ``token``, only
    if it is still the owner's."""
    if token is not None and (path / "owner").read_text() != token:
        return
    released = path.with_name(f"{LOCK}.releasing.{os.getpid()}.{secrets.token_hex(8)}")
    try:
        path.rename(released)
    except FileNotFoundError:
        return
    shutil.rmtree(released, ignore_errors=True)


def dagu_lock(root: Path, rid: str) -> str:
    """Take Dagu's record lock (the bucket form, v2.14+)."""
    return take_dirlock(lock_dir(root, rid))


def dagu_unlock(root: Path, rid: str, token: str) -> None:
    release_dirlock(lock_dir(root, rid), token)


def go_time(ns: int) -> str:
    stamp = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 10**9:09d}".rstrip("0")
    return stamp + (f".{frac}" if frac else "") + "Z"


def dagu_increments(root: Path, scope: str, namespace: str, key: str, count: int) -> int:
    """``count`` guarded increments of ``{"n": ...}`` as Dagu's Put does them."""
    rid = record_id(scope, namespace, key)
    path = root / f"{rid}.json"
    conflicts = 0
    done = 0
    # From "ready" on, wait for the other writer's first write: the two then overlap
    # however slowly either process starts.
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while json.loads(path.read_bytes())["version"] < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    while done < count:
        seen = path.read_bytes()  # unlocked read, as Dagu's store does
        old = json.loads(seen)
        value = json.dumps({"n": old["value"]["n"] + 1}, separators=(",", ":")).encode()
        now = time.time_ns()
        record = (
            f'{{"scope":"{scope}","namespace":"{namespace}","key":"{key}","value":'
            + value.decode()
            + f',"version":{old["version"] + 1},"hash":"{hashlib.sha256(value).hexdigest()}",'
            f'"created_at":"{old["created_at"]}","updated_at":"{go_time(now)}"}}'
        ).encode()
        token = dagu_lock(root, rid)
        try:
            swapped = path.read_bytes() == seen  # compare-and-swap of the file's bytes
            if swapped:
                tmp = path.with_name(f"{path.name}.tmp.{random.randrange(10**9)}")
                tmp.write_bytes(record)
                os.utime(tmp, ns=(now, now))
                tmp.replace(path)
        finally:
            dagu_unlock(root, rid, token)
        if swapped:
            done += 1
        else:
            conflicts += 1
            time.sleep(random.random() * 0.005)  # Dagu retries with jitter
    return conflicts


if __name__ == "__main__":
    root_arg, scope_arg, ns_arg, key_arg, count_arg = sys.argv[1:6]
    print(dagu_increments(Path(root_arg), scope_arg, ns_arg, key_arg, int(count_arg)))
    sys.exit(0)


# --- the tests ------------------------------------------------------------------------------

import pytest  # noqa: E402

from statebox import BackendUnavailableError, ManualClock  # noqa: E402

from .conftest import make_store  # noqa: E402

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent


@pytest.mark.slow
def test_dagu_and_statebox_racing_on_one_key_end_exact(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    url = f"file://{root}?fsync=false"
    with make_store(url) as s:
        s.set("counter", {"n": 0}, scope="global")
    dagu = subprocess.Popen(
        [sys.executable, str(HERE), str(root), "global", "_", "counter", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dagu.stdout is not None and dagu.stdout.readline() == "ready\n"
    ours = subprocess.Popen(
        [sys.executable, "-m", "tests.workers", "cas", url, "counter", "300"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    outputs = [proc.communicate(timeout=300) for proc in (dagu, ours)]
    assert dagu.returncode == 0 and ours.returncode == 0, outputs
    with make_store(url) as s:
        got = s.get("counter", scope="global")
    assert got.value == {"n": 600}
    assert got.version == 601
    # the race was real: each side saw the other's writes
    assert int(outputs[0][0].split()[-1]) + int(outputs[1][0].split()[-1]) > 0


def test_a_held_dagu_lock_makes_statebox_wait(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=10", clock=ManualClock()) as s:
        s.set("k", 1, scope="global")
        rid = record_id("global", "_", "k")
        token = dagu_lock(root, rid)
        result: list[int] = []
        waiter = threading.Thread(
            target=lambda: result.append(s.set("k", 2, scope="global").version)
        )
        waiter.start()
        time.sleep(0.4)
        assert result == []  # waits for Dagu
        assert json.loads((root / f"{rid}.json").read_bytes())["version"] == 1
        dagu_unlock(root, rid, token)
        waiter.join(10)
        assert result == [2]
        assert not lock_dir(root, rid).exists()  # statebox released its own lock


def test_a_held_dagu_lock_is_reported_after_the_timeout(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=0.3") as s:
        s.set("k", 1, scope="global")
        rid = record_id("global", "_", "k")
        dagu_lock(root, rid)
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=r"\.dagu_record_locks/[0-9a-f]{2}/"):
            s.set("k", 2, scope="global")
        assert 0.25 < time.monotonic() - start < 5
        assert s.get("k", scope="global").value == 1  # nothing written


def test_a_stale_dagu_lock_is_broken(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=5") as s:
        s.set("k", 1, scope="global")
        rid = record_id("global", "_", "k")
        dagu_lock(root, rid)
        stale = lock_dir(root, rid)
        old = time.time() - 60  # its holder died a minute ago
        os.utime(stale, (old, old))
        start = time.monotonic()
        assert s.set("k", 2, scope="global").version == 2
        assert time.monotonic() - start < 2
        assert not stale.exists()  # broken, as Dagu breaks it
        assert list(stale.parent.iterdir()) == []  # and nothing left behind


def test_a_delete_takes_its_dagu_lock(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=0.3") as s:
        keys = [f"k{i}" for i in range(8)]
        for key in keys:
            s.set(key, 0, scope="global")
        rid = record_id("global", "_", keys[5])
        token = dagu_lock(root, rid)
        with pytest.raises(BackendUnavailableError):
            s.delete(keys[5], scope="global")
        dagu_unlock(root, rid, token)
        assert s.delete(keys[5], scope="global")


def test_a_lock_left_by_a_dead_process_of_this_host_is_broken_at_once(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=5") as s:
        s.set("k", 1, scope="global")
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # its pid now names no process
        rid = record_id("global", "_", "k")
        left = lock_dir(root, rid)
        left.mkdir(parents=True)
        (left / "owner").write_text(f"{socket.gethostname()}-{dead.pid}-{'ab' * 16}")
        start = time.monotonic()
        assert s.set("k", 2, scope="global").version == 2
        assert time.monotonic() - start < 2  # not the 30 s that makes a lock stale
        assert not left.exists()
