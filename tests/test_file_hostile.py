"""The file store stays in its directory and trusts nothing it finds there (issue #12, §6),
and matches Dagu where the two share a directory (§7: trimming, mtime, emptied dirs).

Each test plants what a hostile neighbour with write access to the state directory could
(symlinks, FIFOs, copied or oversized records, stale temp files) and checks that nothing
outside the directory is touched and nothing wrong is served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from statebox import CorruptEntryError, ManualClock, StateboxError, ValueTooLargeError

from .conftest import make_store

NS = "A"
SCOPE = "custom"


def hexs(text: str) -> str:
    return text.encode().hex()


def ns_dir(root: Path, namespace: str = NS) -> Path:
    return root / "v1" / SCOPE / hexs(namespace)


def record(root: Path, key: str, namespace: str = NS) -> Path:
    return ns_dir(root, namespace) / f"{hexs(key)}.json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "dag-state"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


def open_at(root: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return make_store(f"file://{root}?timeout=2", **kwargs)


# --- writes never follow a symlink ------------------------------------------------------


def test_a_symlinked_namespace_directory_is_refused(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("seed", 1, namespace="other", scope=SCOPE)
        ns_dir(root).parent.mkdir(parents=True, exist_ok=True)
        ns_dir(root).symlink_to(outside, target_is_directory=True)
        with pytest.raises(CorruptEntryError, match=hexs(NS)):
            s.set("k", {"secret": 1}, namespace=NS, scope=SCOPE)
    assert list(outside.iterdir()) == []


def test_a_symlinked_statebox_directory_is_refused(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
    history = root / "statebox" / "history"
    history.rename(root / "moved")
    history.symlink_to(outside, target_is_directory=True)
    with open_at(root) as s, pytest.raises(CorruptEntryError, match="history"):
        s.set("k", 2, namespace=NS, scope=SCOPE)
    assert list(outside.iterdir()) == []


def test_a_symlinked_history_log_is_refused_and_its_target_kept(root: Path, outside: Path) -> None:
    precious = outside / "precious.txt"
    precious.write_text("do not touch")  # no complete line: nothing to parse first
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
        log = root / "statebox" / "history" / SCOPE / hexs(NS) / f"{hexs('k')}.log"
        log.unlink()
        log.symlink_to(precious)
        with pytest.raises(CorruptEntryError, match=r"\.log"):
            s.set("k", 2, namespace=NS, scope=SCOPE)
    assert precious.read_text() == "do not touch"


def test_a_symlinked_change_counter_is_refused_and_its_target_kept(
    root: Path, outside: Path
) -> None:
    precious = outside / "precious.bin"
    precious.write_bytes(b"x" * 64)
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
    (root / "statebox" / "changes").unlink()
    (root / "statebox" / "changes").symlink_to(precious)
    with pytest.raises(CorruptEntryError, match="changes"), open_at(root) as s:
        s.set("k", 2, namespace=NS, scope=SCOPE)
    assert precious.read_bytes() == b"x" * 64


def test_a_dangling_lock_symlink_creates_nothing_outside(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("seed", 1, namespace=NS, scope=SCOPE)
        locks = root / "statebox" / "locks"
        for bucket in range(256):
            lock = locks / f"{bucket:02x}.lock"
            lock.unlink(missing_ok=True)
            lock.symlink_to(outside / f"planted-{bucket:02x}")
        with pytest.raises(CorruptEntryError, match=r"locks/[0-9a-f]{2}\.lock"):
            s.set("k", 2, namespace=NS, scope=SCOPE)
    assert list(outside.iterdir()) == []


def test_a_symlinked_dagu_lock_directory_creates_nothing_outside(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("seed", 1, namespace=NS, scope=SCOPE)
        shutil.rmtree(root / ".dagu_record_locks", ignore_errors=True)
        (root / ".dagu_record_locks").symlink_to(outside, target_is_directory=True)
        with pytest.raises(CorruptEntryError, match="dagu_record_locks"):
            s.set("k", 2, namespace=NS, scope=SCOPE)
    assert list(outside.iterdir()) == []


# --- reads serve only what the file name says ---------------------------------------------


def test_a_record_linked_from_another_namespace_is_not_served(root: Path) -> None:
    with open_at(root) as s:
        s.set("secret", {"of": "B"}, namespace="B", scope=SCOPE)
        s.set("other", 1, namespace=NS, scope=SCOPE)
        record(root, "leak").symlink_to(record(root, "secret", "B"))
        with pytest.raises(CorruptEntryError, match=hexs("leak")):
            s.get("leak", namespace=NS, scope=SCOPE)
        with pytest.raises(CorruptEntryError):
            s.list(namespace=NS, scope=SCOPE)


def test_a_record_copied_from_another_namespace_is_not_served(root: Path) -> None:
    with open_at(root) as s:
        s.set("secret", {"of": "B"}, namespace="B", scope=SCOPE)
        s.set("other", 1, namespace=NS, scope=SCOPE)
        record(root, "leak").write_bytes(record(root, "secret", "B").read_bytes())
        with pytest.raises(CorruptEntryError, match='namespace="B"'):
            s.get("leak", namespace=NS, scope=SCOPE)
        with pytest.raises(CorruptEntryError, match='namespace="B"'):
            s.set("leak", 2, namespace=NS, scope=SCOPE)  # never overwritten either
        assert json.loads(record(root, "leak").read_bytes())["namespace"] == "B"


def test_a_value_that_does_not_match_its_hash_is_not_served(root: Path) -> None:
    with open_at(root) as s:
        s.set("k", {"amount": 1}, namespace=NS, scope=SCOPE)
        path = record(root, "k")
        path.write_bytes(path.read_bytes().replace(b'{"amount":1}', b'{"amount": 1000000}'))
        with pytest.raises(CorruptEntryError, match="hash"):
            s.get("k", namespace=NS, scope=SCOPE)


def test_an_oversized_record_is_refused_unread(root: Path) -> None:
    value = json.dumps({"blob": "x" * (5 << 20)}, separators=(",", ":")).encode()
    with open_at(root) as s:
        s.set("small", 1, namespace=NS, scope=SCOPE)
    body = (
        f'{{"scope":"{SCOPE}","namespace":"{NS}","key":"big","value":'.encode()
        + value
        + f',"version":1,"hash":"{hashlib.sha256(value).hexdigest()}",'
        '"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}'.encode()
    )
    record(root, "big").write_bytes(body)
    with open_at(root) as s, pytest.raises(CorruptEntryError, match=r"bytes, more than"):
        s.get("big", namespace=NS, scope=SCOPE)


def test_a_write_the_store_could_not_read_back_is_refused(root: Path) -> None:
    with open_at(root, json_limit=8 << 20) as s:
        with pytest.raises(ValueTooLargeError, match="file store") as refused:
            s.set("k", "x" * (3 << 20), namespace=NS, scope=SCOPE)
        # the key and its keyspace (a transaction across keyspaces may hold the key twice)
        assert f'key "k" (scope "{SCOPE}", namespace "{NS}")' in refused.value.message
        assert not s.get("k", namespace=NS, scope=SCOPE).found


def _unblock(fifo: Path) -> None:
    # Lets a reader stuck on the FIFO (the old behaviour) go, so the test can report.
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


@pytest.mark.parametrize("call", ["get", "list"])
def test_a_fifo_planted_as_a_record_is_refused_without_blocking(root: Path, call: str) -> None:
    with open_at(root) as s:
        s.set("a", 1, namespace=NS, scope=SCOPE)
        fifo = record(root, "b")
        os.mkfifo(fifo)
        outcome: list[BaseException | object] = []

        def run() -> None:
            try:
                if call == "get":
                    outcome.append(s.get("b", namespace=NS, scope=SCOPE))
                else:
                    outcome.append(s.list(namespace=NS, scope=SCOPE))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(5)
        blocked = worker.is_alive()
        if blocked:
            _unblock(fifo)
            worker.join(5)
        assert not blocked, f"{call} blocked on a FIFO"
        [result] = outcome
        assert isinstance(result, CorruptEntryError)
        assert "not a regular file" in str(result)


# --- stale temp files are swept when the store opens ------------------------------------


def test_stale_temp_files_of_both_writers_are_swept_on_open(root: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
    (root / "statebox" / "swept").unlink(missing_ok=True)  # as if the last sweep were old
    hist = root / "statebox" / "history" / SCOPE / hexs(NS)
    old = time.time() - 3600
    stale = [
        ns_dir(root) / ".tmp-0123456789abcdef",  # statebox's
        ns_dir(root) / f"{hexs('k')}.json.tmp.123456789",  # Dagu's os.CreateTemp
        hist / ".tmp-fedcba9876543210",
    ]
    fresh = ns_dir(root) / ".tmp-00000000000000aa"  # a live writer's, perhaps
    for path in [*stale, fresh]:
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    keep = ns_dir(root) / "notes.tmp"  # not a temp name either writer uses
    keep.write_text("mine")
    os.utime(keep, (old, old))
    with open_at(root) as s:
        assert s.get("k", namespace=NS, scope=SCOPE).value == 1
    assert [p for p in stale if p.exists()] == []
    assert fresh.exists() and keep.exists()


# --- Dagu's conventions ---------------------------------------------------------------------


def test_trimming_is_unicode_white_space_as_go_trims(root: Path) -> None:
    with open_at(root) as s:
        s.set("\u00a0k\u3000\x85", 1, namespace=" A\u2029", scope=SCOPE)
        s.set("k\x1c", 2, namespace=NS, scope=SCOPE)  # U+001C is no White_Space: kept
        assert s.get("k", namespace=NS, scope=SCOPE).value == 1
        assert s.get("k\x1c", namespace=NS, scope=SCOPE).value == 2
    assert record(root, "k").exists() and record(root, "k\x1c").exists()


def test_a_records_mtime_is_its_updated_at(root: Path) -> None:
    clock = ManualClock(1_700_000_000_123_456_789)
    with open_at(root, clock=clock) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
        assert record(root, "k").stat().st_mtime_ns == 1_700_000_000_123_456_789
        clock.advance(5)
        s.set("k", 2, namespace=NS, scope=SCOPE)
        entry = s.get("k", namespace=NS, scope=SCOPE)
        assert entry.updated_at == 1_700_000_005_123_456_789
        assert record(root, "k").stat().st_mtime_ns == entry.updated_at


def test_a_delete_removes_the_directories_it_empties_as_dagu_does(root: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
        s.set("j", 1, namespace="B", scope=SCOPE)
        assert s.delete("k", namespace=NS, scope=SCOPE)
        assert not ns_dir(root).exists()
        assert (root / "v1" / SCOPE).exists()  # B still lives there
        assert s.delete("j", namespace="B", scope=SCOPE)
        assert not (root / "v1").exists()
        s.set("k", 2, namespace=NS, scope=SCOPE)  # and a write makes them again
        assert s.get("k", namespace=NS, scope=SCOPE).value == 2


PRUNER = """
import os, sys, time
paths = sys.argv[1:]
end = time.monotonic() + 60
print("go", flush=True)
removed = 0
while time.monotonic() < end:
    for p in paths:
        try:
            os.rmdir(p)
            removed += 1
        except OSError:
            pass
    time.sleep(0.002)  # as often as deletes could run, not a spin
"""


@pytest.mark.slow
def test_a_write_survives_its_directory_vanishing_again_and_again(root: Path) -> None:
    # Dagu removes directories a delete empties, at any moment: a writer recreates them.
    with open_at(root) as s:
        s.set("seed", 1, namespace="B", scope=SCOPE)
        pruner = subprocess.Popen(
            [sys.executable, "-c", PRUNER, str(ns_dir(root)), str(root / "v1" / SCOPE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert pruner.stdout is not None and pruner.stdout.readline().strip() == "go"
            for n in range(100):
                s.set("k", n, namespace=NS, scope=SCOPE)
                s.delete("k", namespace=NS, scope=SCOPE)
        except StateboxError as exc:
            pytest.fail(f"a write failed when its directory vanished: {exc}")
        finally:
            pruner.kill()
            pruner.wait()


# --- reads never go through a symlinked directory either ----------------------------------


def _move_out_and_link(directory: Path, outside: Path) -> None:
    """Swap ``directory`` for a symlink to a copy of it outside the store: every record
    there still names the key its file name says (only the way there changed)."""
    moved = outside / directory.name
    directory.rename(moved)
    directory.symlink_to(moved, target_is_directory=True)


@pytest.fixture(params=["openat2", "proc", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way a path is opened without links: openat2, else a /proc check, else a walk."""
    from statebox.backends.file import _dirs

    if request.param != "openat2":
        monkeypatch.setattr(_dirs, "_openat2_usable", False)
    if request.param == "walk":
        monkeypatch.setattr(_dirs, "_HAS_PROC_FD", False)
    return str(request.param)


@pytest.mark.parametrize("level", ["namespace", "scope"])
def test_reads_through_a_symlinked_directory_are_refused(
    root: Path, outside: Path, level: str, resolver: str
) -> None:
    with open_at(root, clock=ManualClock()) as s:
        assert s.get("k", namespace=NS, scope=SCOPE).found is False
        s.set("k", {"planted": True}, namespace=NS, scope=SCOPE)
        assert s.get("k", namespace=NS, scope=SCOPE).value == {"planted": True}
        s.set("k", {"planted": True}, namespace=NS, scope=SCOPE)
        s.set("k", {"planted": True}, namespace=NS, scope=SCOPE)
        s.set("seed", 1, namespace="B", scope="dag")  # keeps v1/ alive
        linked = ns_dir(root) if level == "namespace" else ns_dir(root).parent
        _move_out_and_link(linked, outside)
        for read in (
            lambda: s.get("k", namespace=NS, scope=SCOPE),
            lambda: s.list(namespace=NS, scope=SCOPE),
            lambda: s.list("k", namespace=NS, scope=SCOPE, include_values=True),
            lambda: s.history("k", namespace=NS, scope=SCOPE),
        ):
            with pytest.raises(CorruptEntryError, match=str(linked)):
                read()
        assert linked.is_symlink()  # left as found


def test_a_symlinked_history_directory_is_refused_on_read(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
        s.set("k", 2, namespace=NS, scope=SCOPE)
        history = root / "statebox" / "history" / SCOPE / hexs(NS)
        _move_out_and_link(history, outside)
        with pytest.raises(CorruptEntryError, match=str(history)):
            s.history("k", namespace=NS, scope=SCOPE)


def test_a_symlinked_journal_directory_is_refused(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
        journal = root / "statebox" / "journal"
        _move_out_and_link(journal, outside)
        with pytest.raises(CorruptEntryError, match=str(journal)):
            s.get("k", namespace=NS, scope=SCOPE)


def test_a_planted_journal_cannot_write_outside_the_store(root: Path, outside: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
    target = outside / "owned.json"
    relative = os.path.relpath(target, root)
    journal = root / "statebox" / "journal" / f"{'0' * 63}1-{'ab' * 6}.txn"
    ops = [{"op": "write", "path": relative, "data": "pwned"}]
    journal.write_text(json.dumps({"ops": ops}))
    with pytest.raises(CorruptEntryError, match="journal"), open_at(root):
        pass  # opening rolls journals forward: this one is refused, not run
    assert not target.exists()


# --- purge skips what it did not write -------------------------------------------------------


def test_purge_skips_planted_files_and_touches_nothing(root: Path, outside: Path) -> None:
    clock = ManualClock()
    with open_at(root, clock=clock) as s:
        # Two keys written at one moment: X's meta file (TTL 10 s) also describes A's.
        s.set("victim", 1, namespace=NS, scope=SCOPE)
        s.set("victim", 1, namespace="X", scope=SCOPE, ttl=10)
        s.set("secret", {"of": "B"}, namespace="B", scope=SCOPE)
        s.set("foreign", 1, namespace=NS, scope=SCOPE, ttl=10)
        meta = root / "statebox" / "meta" / SCOPE
        # 1. a symlinked meta directory claiming that A's victim expires
        planted_ns = outside / "meta-ns"
        planted_ns.mkdir()
        shutil.copy(meta / hexs("X") / f"{hexs('victim')}.meta", planted_ns)
        shutil.move(meta / hexs(NS) / f"{hexs('foreign')}.meta", outside / "foreign.meta")
        (meta / hexs(NS)).rmdir()
        (meta / hexs(NS)).symlink_to(planted_ns, target_is_directory=True)
        # 2. a FIFO and a symlink planted as meta files
        (meta / hexs("X")).joinpath(f"{hexs('fifo')}.meta").parent.mkdir(exist_ok=True)
        os.mkfifo(meta / hexs("X") / f"{hexs('fifo')}.meta")
        (meta / hexs("X") / f"{hexs('link')}.meta").symlink_to(outside / "foreign.meta")
        # 3. a foreign record (copied from namespace B) whose own meta file says expired
        fake = meta / hexs("F")
        fake.mkdir()
        shutil.copy(outside / "foreign.meta", fake / f"{hexs('foreign')}.meta")
        record(root, "foreign", "F").parent.mkdir(parents=True)
        record(root, "foreign", "F").write_bytes(record(root, "secret", "B").read_bytes())
        victim = record(root, "victim").read_bytes()
        before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
        clock.advance(60)
        outcome: list[object] = []
        worker = threading.Thread(target=lambda: outcome.append(s.purge_expired()), daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():
            _unblock(meta / hexs("X") / f"{hexs('fifo')}.meta")
        assert outcome == [1]  # X's victim only, and without blocking or failing
        assert record(root, "victim").read_bytes() == victim  # untouched
        with pytest.raises(CorruptEntryError, match=hexs(NS)):  # a read reports the link
            s.get("victim", namespace=NS, scope=SCOPE)
        assert not s.get("victim", namespace="X", scope=SCOPE).found
        assert record(root, "foreign", "F").read_bytes() == record(root, "secret", "B").read_bytes()
        assert (meta / hexs(NS)).is_symlink()
        assert (meta / hexs("X") / f"{hexs('link')}.meta").is_symlink()
        assert (meta / hexs("X") / f"{hexs('fifo')}.meta").exists()
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before


# --- lock directories a killed writer left are swept when the store opens ------------------


def test_leftover_lock_directories_are_swept_on_open(root: Path) -> None:
    with open_at(root) as s:
        s.set("k", 1, namespace=NS, scope=SCOPE)
    (root / "statebox" / "swept").unlink(missing_ok=True)  # as if the last sweep were old
    bucket = root / ".dagu_record_locks" / "5a"
    key_dir = ns_dir(root) / hexs("k")  # the per-key form's directory
    old = time.time() - 3600
    stale = [
        bucket / ".dagu_lock.releasing.4242.0123456789abcdef",  # killed while releasing
        bucket / ".dagu_lock.statebox-4242-0123456789abcdef",  # killed while preparing
        key_dir / ".dagu_lock.releasing.4243.0123456789abcdef",
        key_dir / ".dagu_lock.statebox-4243-0123456789abcdef",
    ]
    fresh = bucket / ".dagu_lock.releasing.4244.00000000000000aa"  # being released now
    held = key_dir / ".dagu_lock"  # a lock: broken only by its own rules, never swept
    for path in [*stale, fresh, held]:
        path.mkdir(parents=True)
        (path / "owner").write_text("host-4242-ab")
    for path in [*stale, held]:
        os.utime(path, (old, old))
    with open_at(root, clock=ManualClock()) as s:
        assert s.get("k", namespace=NS, scope=SCOPE).value == 1
    assert [p for p in stale if p.exists()] == []
    assert fresh.is_dir() and (held / "owner").exists()
