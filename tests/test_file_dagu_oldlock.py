"""Dagu v2.7.5 to v2.13 and statebox writing one state directory lose nothing (issue #12, §7).

Those Dagu versions lock a record ``R`` (``v1/<scope>/<hex ns>/<hex key>``) with the
per-key form of their directory lock: ``<dir>/R/.dagu_lock`` (``mkdir -p <dir>/R``, then
``mkdir`` of the lock, an ``owner`` token inside, stale after 30 s, retried every 50 ms,
released by a rename then removal), which leaves an empty ``<hex key>/`` directory beside
the record. Under that lock their put reads the record and writes the next version (no
compare of bytes). The worker below speaks that protocol, written from Dagu's description
(internal/cmn/dirlock, internal/persis/file/collection.go ``lockDir``); run with
``python -m tests.test_file_dagu_oldlock`` it is that separate process.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from statebox import BackendUnavailableError, Blob, CorruptEntryError, ManualClock

from .conftest import make_store
from .test_file_dagu_lock import go_time, record_id, release_dirlock, take_dirlock

LOCK = ".dagu_lock"
STALE_AFTER = 30.0
REPO = Path(__file__).resolve().parent.parent


# --- old Dagu's side (also run as a separate process) --------------------------------------


def key_lock(root: Path, rid: str) -> Path:
    return root / rid / LOCK


def old_dagu_lock(root: Path, rid: str) -> str:
    """Take old Dagu's per-key lock (waiting, breaking a stale one); the owner token."""
    return take_dirlock(key_lock(root, rid), "old-dagu-test")


def old_dagu_unlock(root: Path, rid: str, token: str) -> None:
    release_dirlock(key_lock(root, rid), token)


def old_dagu_increments(root: Path, scope: str, namespace: str, key: str, count: int) -> None:
    """``count`` increments of ``{"n": ...}``, each a read and a write under the lock,
    from the moment the other writer has written once (so the two really overlap)."""
    rid = record_id(scope, namespace, key)
    path = root / f"{rid}.json"
    deadline = time.monotonic() + 60
    print("ready", flush=True)  # the test starts the other writer only now
    while json.loads(path.read_bytes())["version"] < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    for _ in range(count):
        token = old_dagu_lock(root, rid)
        try:
            old = json.loads(path.read_bytes())
            value = json.dumps({"n": old["value"]["n"] + 1}, separators=(",", ":"))
            now = time.time_ns()
            data = (
                f'{{"scope":"{scope}","namespace":"{namespace}","key":"{key}","value":{value},'
                f'"version":{old["version"] + 1},'
                f'"hash":"{hashlib.sha256(value.encode()).hexdigest()}",'
                f'"created_at":"{old["created_at"]}","updated_at":"{go_time(now)}"}}'
            ).encode()
            tmp = path.with_name(f"{path.name}.tmp.{random.randrange(10**9)}")
            tmp.write_bytes(data)
            os.utime(tmp, ns=(now, now))
            tmp.replace(path)
        finally:
            old_dagu_unlock(root, rid, token)


if __name__ == "__main__":
    root_arg, scope_arg, ns_arg, key_arg, count_arg = sys.argv[1:6]
    old_dagu_increments(Path(root_arg), scope_arg, ns_arg, key_arg, int(count_arg))
    sys.exit(0)


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.slow
def test_old_dagu_and_statebox_racing_on_one_key_end_exact(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    url = f"file://{root}?fsync=false"
    with make_store(url) as s:
        s.set("counter", {"n": 0}, scope="global")
    old_dagu = [sys.executable, "-m", "tests.test_file_dagu_oldlock", str(root)]
    dagu = subprocess.Popen(
        [*old_dagu, "global", "_", "counter", "200"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Old Dagu polls for statebox's first write from "ready" on, so the two overlap
    # however slowly either process starts.
    assert dagu.stdout is not None and dagu.stdout.readline() == "ready\n"
    procs = [
        dagu,
        subprocess.Popen(
            [sys.executable, "-m", "tests.workers", "cas", url, "counter", "200"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    with make_store(url) as s:
        got = s.get("counter", scope="global")
    assert got.value == {"n": 400}
    assert got.version == 401
    # the race was real: statebox saw Dagu's writes
    assert int(outputs[1][0].split()[-1]) > 0, outputs
    # the key's directory stays, empty, as old Dagu leaves it
    assert list((root / record_id("global", "_", "counter")).iterdir()) == []


def test_a_held_old_dagu_lock_makes_statebox_wait(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=10", clock=ManualClock()) as s:
        s.set("k", 1, scope="global")
        rid = record_id("global", "_", "k")
        token = old_dagu_lock(root, rid)
        result: list[int] = []
        waiter = threading.Thread(
            target=lambda: result.append(s.set("k", 2, scope="global").version)
        )
        waiter.start()
        time.sleep(0.4)
        assert result == []  # waits for old Dagu
        assert json.loads((root / f"{rid}.json").read_bytes())["version"] == 1
        old_dagu_unlock(root, rid, token)
        waiter.join(10)
        assert result == [2]
        assert list((root / rid).iterdir()) == []  # statebox released its lock


def test_a_held_old_dagu_lock_blocks_a_delete_until_the_timeout(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=0.3") as s:
        s.set("k", 1, scope="global")
        rid = record_id("global", "_", "k")
        token = old_dagu_lock(root, rid)
        with pytest.raises(BackendUnavailableError, match=rf"{rid}/\.dagu_lock"):
            s.delete("k", scope="global")
        assert s.get("k", scope="global").value == 1  # nothing removed
        old_dagu_unlock(root, rid, token)
        assert s.delete("k", scope="global")


def test_a_stale_old_dagu_lock_is_broken(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=5") as s:
        s.set("k", 1, scope="global")
        rid = record_id("global", "_", "k")
        old_dagu_lock(root, rid)
        stale = key_lock(root, rid)
        old = time.time() - 60  # its holder died a minute ago
        os.utime(stale, (old, old))
        start = time.monotonic()
        assert s.set("k", 2, scope="global").version == 2
        assert time.monotonic() - start < 2
        assert list((root / rid).iterdir()) == []  # broken as Dagu breaks it, nothing left


def test_key_directories_are_ignored_by_listing_and_removed_by_a_delete(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}") as s:
        for key in ("a", "b", "c"):
            s.set(key, key, namespace="N", scope="custom")
        # old Dagu's leftovers: an empty key directory with no record, one held lock
        (root / record_id("custom", "N", "ghost")).mkdir()
        old_dagu_lock(root, record_id("custom", "N", "c"))
        assert [e.key for e in s.list(namespace="N", scope="custom").entries] == ["a", "b", "c"]
        ns_dir = root / "v1" / "custom" / b"N".hex()
        assert (ns_dir / b"a".hex()).is_dir()  # a write leaves it, as old Dagu does
        assert s.delete("a", namespace="N", scope="custom")
        assert not (ns_dir / b"a".hex()).exists()  # the delete removes it
        assert (ns_dir / b"b".hex()).is_dir()
    (root / "statebox" / "swept").unlink()  # as if the last sweep were long ago
    with make_store(f"file://{root}") as s:  # a new open (and its sweep) leaves them alone
        assert [e.key for e in s.list(namespace="N", scope="custom").entries] == ["b", "c"]
    assert (root / record_id("custom", "N", "ghost")).is_dir()
    assert key_lock(root, record_id("custom", "N", "c")).is_dir()


def test_a_delete_of_the_last_key_removes_every_directory_it_empties(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}") as s:
        s.set("k", 1, namespace="N", scope="custom")
        s.set("bin", Blob(b"\x00\x01", "x/y"), namespace="N", scope="custom")
        assert s.delete("k", namespace="N", scope="custom")
        assert not (root / "v1").exists()  # key dir, namespace, scope and v1 are gone
        assert s.get("bin", namespace="N", scope="custom").found


def test_a_symlink_planted_as_a_key_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "dag-state"
    outside = tmp_path / "outside"
    outside.mkdir()
    with make_store(f"file://{root}?timeout=2") as s:
        s.set("seed", 1, scope="global")
        rid = record_id("global", "_", "k")
        (root / rid).symlink_to(outside, target_is_directory=True)
        with pytest.raises(CorruptEntryError, match=rid):
            s.set("k", 1, scope="global")
        assert not s.get("k", scope="global").found
    assert list(outside.iterdir()) == []
    assert (root / rid).is_symlink()  # left untouched


def test_a_key_lock_left_by_a_dead_process_of_this_host_is_broken_at_once(
    tmp_path: Path,
) -> None:
    root = tmp_path / "dag-state"
    with make_store(f"file://{root}?timeout=5") as s:
        s.set("k", 1, scope="global")
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # its pid now names no process
        left = key_lock(root, record_id("global", "_", "k"))
        left.mkdir()
        (left / "owner").write_text(f"{socket.gethostname()}-{dead.pid}-{'ab' * 16}")
        start = time.monotonic()
        assert s.set("k", 2, scope="global").version == 2
        assert time.monotonic() - start < 2  # not the 30 s that makes a lock stale
        assert not left.exists()
