"""The file backend beyond the conformance suite: Dagu's layout byte for byte, locking,
durability, name limits, listing, history logs and journals (issue 3, SPEC §6).

Everything runs on real files in a temporary directory, with real subprocesses for the
cross-process cases. The conformance suite runs on this backend too (tests/backends.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statebox import (
    BackendUnavailableError,
    Blob,
    ConfigurationError,
    CorruptEntryError,
    InvalidReferenceError,
    ManualClock,
    RawJSON,
    RunContext,
    StateboxError,
    StateStore,
    open_store,
)
from statebox.backends.base import Entry, Put, WriteContext
from statebox.backends.file import FileBackend, parse_file_url
from statebox.backends.file._codec import encode_record
from statebox.backends.file._journal import Op, pending, write_journal
from statebox.backends.file._reads import names_in_range
from statebox.core.clock import format_timestamp
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.values import normalize

from .conftest import CONTEXT, make_store

ROOT = Path(__file__).resolve().parent.parent
START = "2026-01-01T00:00:00Z"  # ManualClock's start


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hexs(text: str) -> str:
    return text.encode().hex()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "dag-state"


@pytest.fixture
def store(root: Path, clock: ManualClock) -> Iterator[StateStore]:
    with make_store(f"file://{root}", clock=clock) as s:
        yield s


def record_path(root: Path, scope: str, namespace: str, key: str) -> Path:
    return root / "v1" / scope / hexs(namespace) / f"{hexs(key)}.json"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


# --- Dagu's layout ---------------------------------------------------------------------


def test_names_are_hex_and_round_trip(store: StateStore, root: Path) -> None:
    store.set("Cursor/CON:<latest>", {"n": 1}, scope="custom", namespace="Daily:Agent")
    path = record_path(root, "custom", "Daily:Agent", "Cursor/CON:<latest>")
    assert path.is_file()
    relative = str(path.relative_to(root))
    assert not set(":<>") & set(relative)
    assert relative == (
        "v1/custom/4461696c793a4167656e74/"
        "437572736f722f434f4e3a3c6c61746573743e.json"  # one flat file: no directory for '/'
    )
    got = store.get("Cursor/CON:<latest>", scope="custom", namespace="Daily:Agent")
    assert (got.found, got.value) == (True, {"n": 1})
    listed = store.list(scope="custom", namespace="Daily:Agent")
    assert [e.key for e in listed.entries] == ["Cursor/CON:<latest>"]


def test_hierarchy_and_case_never_collide(store: StateStore, root: Path) -> None:
    for key, value in [("a", 1), ("a/b", 2), ("A", 3), ("a/B", 4)]:
        store.set(key, value, scope="global")
    assert [store.get(k, scope="global").value for k in ("a", "a/b", "A", "a/B")] == [1, 2, 3, 4]
    # (beside each record: the empty directory of Dagu's per-key lock, as old Dagu leaves)
    names = sorted(p.name for p in (root / "v1" / "global" / hexs("_")).iterdir() if p.is_file())
    assert names == sorted(f"{hexs(k)}.json" for k in ("a", "a/b", "A", "a/B"))
    assert [e.key for e in store.list(scope="global").entries] == ["A", "a", "a/B", "a/b"]


def test_record_bytes_are_what_dagu_writes(
    store: StateStore, root: Path, clock: ManualClock
) -> None:
    store.set("cursors/feed", {"last_id": 123, "note": "<a&b>"})
    value = b'{"last_id":123,"note":"\\u003ca\\u0026b\\u003e"}'
    expected = (
        b'{"scope":"dag","namespace":"feed-sync","key":"cursors/feed","value":'
        + value
        + b',"version":1,"hash":"'
        + sha(value).encode()
        + b'","created_at":"'
        + START.encode()
        + b'","updated_at":"'
        + START.encode()
        + b'","updated_by":{"dag_name":"feed-sync","dag_run_id":"run-1","step_name":"load"}}'
    )
    path = record_path(root, "dag", "feed-sync", "cursors/feed")
    assert path.read_bytes() == expected
    clock.advance(1.25)
    store.set("cursors/feed", {"last_id": 124})
    record = json.loads(path.read_bytes(), object_pairs_hook=list)
    assert [name for name, _ in record] == [
        "scope", "namespace", "key", "value", "version", "hash",
        "created_at", "updated_at", "updated_by",
    ]  # fmt: skip
    fields = dict(record)
    assert (fields["version"], fields["created_at"]) == (2, START)
    assert fields["updated_at"] == "2026-01-01T00:00:01.25Z"


def test_strings_in_records_are_escaped_as_go_does(store: StateStore, root: Path) -> None:
    store.set("line\u2028sep", 1, scope="custom", namespace='é<&>"')
    raw = record_path(root, "custom", 'é<&>"', "line\u2028sep").read_bytes()
    assert b'"namespace":"\xc3\xa9\\u003c\\u0026\\u003e\\""' in raw
    assert b'"key":"line\\u2028sep"' in raw


def test_empty_updated_by_is_omitted_like_dagu(root: Path, clock: ManualClock) -> None:
    with open_store(f"file://{root}", context=RunContext(dag="feed-sync"), clock=clock) as s:
        s.set("k", 1)  # a dag name only
        raw = record_path(root, "dag", "feed-sync", "k").read_bytes()
        assert raw.endswith(b',"updated_by":{"dag_name":"feed-sync"}}')
        s.backend.apply(
            Keyspace("dag", "feed-sync"),
            [Put("k2", normalize(2))],
            WriteContext(clock.now_ns(), UpdatedBy()),
        )
        assert b"updated_by" not in record_path(root, "dag", "feed-sync", "k2").read_bytes()


def dagu_record(version: int, value: bytes, updated_at: str) -> str:
    return (
        '{"scope":"custom","namespace":"Daily:Agent","key":"Cursor/CON:<latest>","value":'
        + value.decode()
        + f',"version":{version},"hash":"{sha(value)}",'
        '"created_at":"2026-05-25T10:00:00Z",'
        f'"updated_at":"{updated_at}",'
        '"updated_by":{"dag_name":"daily-agent","dag_run_id":"0191","attempt_id":"att-1",'
        '"step_name":"save"}}'
    )


@pytest.mark.parametrize("envelope", [False, True], ids=["flat", "dagu-envelope"])
def test_a_record_dagu_wrote_reads_back(
    store: StateStore, root: Path, clock: ManualClock, envelope: bool
) -> None:
    value = b'{"last_id":42,"tag":"\\u003cok\\u003e"}'
    record = dagu_record(7, value, "2026-05-25T11:00:00.123456789Z")
    if envelope:  # how Dagu's newer file collection wraps the same record
        record_id = f"v1/custom/{hexs('Daily:Agent')}/{hexs('Cursor/CON:<latest>')}"
        record = (
            f'{{"id":"{record_id}","encoding":"json","data":{record},'
            '"created_at":"2026-05-25T10:00:00Z","updated_at":"2026-05-25T11:00:00Z"}'
        )
    path = record_path(root, "custom", "Daily:Agent", "Cursor/CON:<latest>")
    path.parent.mkdir(parents=True)
    path.write_text(record)
    ref = {"scope": "custom", "namespace": "Daily:Agent"}
    got = store.get("Cursor/CON:<latest>", **ref)
    assert (got.version, got.hash, got.value) == (7, sha(value), {"last_id": 42, "tag": "<ok>"})
    assert got.stored is not None and got.stored.data == value
    assert format_timestamp(got.updated_at) == "2026-05-25T11:00:00.123456789Z"
    assert got.updated_by == UpdatedBy("daily-agent", "0191", "save", attempt_id="att-1")
    [listed] = store.list(**ref).entries
    assert (listed.key, listed.version, listed.hash) == ("Cursor/CON:<latest>", 7, sha(value))
    written = store.set("Cursor/CON:<latest>", {"last_id": 43}, expected_version=7, **ref)
    assert written.version == 8
    fields = json.loads(path.read_bytes())  # rewritten as a flat record, which Dagu reads
    assert (fields["version"], fields["created_at"]) == (8, "2026-05-25T10:00:00Z")


def test_values_json_loads_refuses_still_read_back(store: StateStore) -> None:
    huge = "9" * 5000  # an integer literal longer than int() accepts
    store.set("big", RawJSON(f'{{"n":{huge},"f":1.2300}}'))
    got = store.get("big")
    assert got.stored is not None and got.stored.data == f'{{"f":1.2300,"n":{huge}}}'.encode()
    [listed] = store.list(include_values=True).entries
    assert listed.stored == got.stored


def test_extras_stay_out_of_the_dagu_tree(store: StateStore, root: Path) -> None:
    store.set("ttl", 1, ttl=60)
    store.set("blob", Blob(b"\x00\x01", "application/octet-stream"))
    store.set("plain", 1)
    store.history("plain")
    ledger = store.with_context(CONTEXT.merged(principal="alice"))
    ledger.set("signed", 1)
    store.acquire_lease("nightly", 30)
    record_files = files_under(root / "v1")
    assert [p.name for p in record_files] == sorted(
        f"{hexs(k)}.json" for k in ("ttl", "plain", "signed")
    )
    for path in record_files:  # nothing beyond Dagu's fields
        fields = json.loads(path.read_bytes())
        assert set(fields) <= {
            "scope", "namespace", "key", "value", "version", "hash",
            "created_at", "updated_at", "updated_by",
        }  # fmt: skip
        assert set(fields.get("updated_by", {})) <= {
            "dag_name", "dag_run_id", "attempt_id", "step_name",
        }  # fmt: skip
    # statebox's own files are never *.json, so a Dagu walker of the directory skips them
    assert not [p for p in files_under(root / "statebox") if p.suffix == ".json"]
    got = store.get("ttl")
    assert got.expires_at is not None
    assert store.get("signed").updated_by.principal == "alice"


def test_the_reserved_scope_lives_under_statebox_not_in_dagus_tree(
    store: StateStore, root: Path, clock: ManualClock
) -> None:
    store.set("cursor", 1)  # a Dagu record, for contrast
    store.set("0197-run", {"status": "running"}, scope="statebox", namespace="runs")
    store.set("0197-run", {"status": "succeeded"}, scope="statebox", namespace="runs")
    store.transaction(  # several records: through a journal
        [{"op": "set", "key": "a/stdout", "value": "x"}, {"op": "set", "key": "b", "value": 2}],
        scope="statebox",
        namespace="logs",
    )
    ours = root / "statebox" / "v1" / "statebox" / hexs("runs") / f"{hexs('0197-run')}.json"
    assert json.loads(ours.read_bytes())["value"] == {"status": "succeeded"}
    assert (root / "statebox" / "v1" / "statebox" / hexs("logs") / f"{hexs('b')}.json").exists()
    # Dagu's tree holds Dagu's record only; no Dagu lock was taken for ours
    assert [p.relative_to(root) for p in files_under(root / "v1")] == [
        record_path(root, "dag", "feed-sync", "cursor").relative_to(root)
    ]
    assert not (root / "v1" / "statebox").exists()
    assert not [p for p in (root / "statebox").rglob("*") if ".dagu_lock" in p.name]
    assert not list((root / "statebox" / "v1").rglob(hexs("0197-run")))  # no lock directory
    assert pending(str(root / "statebox" / "journal")) == []
    # and every operation finds it there
    assert store.get("0197-run", scope="statebox", namespace="runs").version == 2
    assert [v.version for v in store.history("0197-run", scope="statebox", namespace="runs")
            .versions] == [2, 1]  # fmt: skip
    assert [(k.scope, k.namespace) for k in store.keyspaces().keyspaces] == [
        ("dag", "feed-sync"),
        ("statebox", "logs"),
        ("statebox", "runs"),
    ]
    # a file in Dagu's tree under the scope's name is not the reserved scope's
    planted = record_path(root, "statebox", "runs", "0197-run")
    planted.parent.mkdir(parents=True)
    planted.write_bytes(ours.read_bytes())
    assert [e.key for e in store.list(scope="statebox", namespace="runs").entries] == ["0197-run"]
    planted.unlink()
    assert store.delete_keyspace(scope="statebox", namespace="logs").deleted == 2
    assert store.delete("0197-run", scope="statebox", namespace="runs").deleted
    assert not ours.exists()
    assert [(k.scope, k.namespace) for k in store.keyspaces().keyspaces] == [("dag", "feed-sync")]
    # with a TTL (a meta file) it expires and is purged like any entry
    store.set("t", 1, scope="statebox", namespace="runs", ttl=5)
    clock.advance(6)
    assert store.backend.purge_expired(clock.now_ns()) == 1
    assert not list((root / "statebox" / "v1").rglob("*.json"))


# --- binary entries ----------------------------------------------------------------------


def test_binary_entries_live_beside_the_dagu_tree(store: StateStore, root: Path) -> None:
    store.set("k", {"json": True})
    store.set("k", Blob(b"\xff\x00bytes", "application/x-tar"))
    assert not record_path(root, "dag", "feed-sync", "k").exists()
    got = store.get("k")
    assert (got.version, got.stored) == (2, type(got.stored)(b"\xff\x00bytes", "application/x-tar"))
    store.set("k", [1])
    assert record_path(root, "dag", "feed-sync", "k").exists()
    assert not list((root / "statebox" / "blobs").rglob("*.blob"))
    store.set("z", Blob(b"z", "text/plain"))
    assert [e.key for e in store.list().entries] == ["k", "z"]
    assert [h.version for h in store.history("k").versions] == [3, 2, 1]


# --- name limits ---------------------------------------------------------------------


def test_names_over_the_filesystem_limit_are_invalid_references(
    store: StateStore, root: Path
) -> None:
    limit = os.pathconf(root, "PC_NAME_MAX")
    longest = "k" * ((limit - len(".json")) // 2)
    store.set(longest, 1)
    assert store.get(longest).value == 1
    for key in (longest + "k", "é" * (len(longest) // 2 + 1)):
        with pytest.raises(InvalidReferenceError, match=f"at most {len(longest)} bytes"):
            store.set(key, 1)
        with pytest.raises(InvalidReferenceError, match=f"at most {len(longest)} bytes"):
            store.get(key)
    namespace = "n" * (limit // 2 + 1)
    with pytest.raises(InvalidReferenceError, match="invalid namespace"):
        store.set("k", 1, scope="custom", namespace=namespace)
    with pytest.raises(InvalidReferenceError, match="invalid namespace"):
        store.list(scope="custom", namespace=namespace)
    assert not (root / "v1" / "custom").exists()  # refused before touching the disk


# --- durability and damage ---------------------------------------------------------


def test_an_unparseable_record_is_reported_and_never_overwritten(
    store: StateStore, root: Path
) -> None:
    store.set("bad", 1)
    path = record_path(root, "dag", "feed-sync", "bad")
    path.write_bytes(b'{"version": 1, "hash"')
    with pytest.raises(CorruptEntryError, match=str(path)):
        store.get("bad")
    with pytest.raises(CorruptEntryError, match=str(path)):
        store.set("bad", 2)
    with pytest.raises(CorruptEntryError):
        store.delete("bad")
    with pytest.raises(CorruptEntryError):
        store.list()
    assert path.read_bytes() == b'{"version": 1, "hash"'


@pytest.mark.parametrize(
    "stamp", ["2026-02-31T00:00:00Z", "2025-02-29T12:00:00.5Z", "2026-04-31T00:00:00Z"]
)
def test_a_record_with_an_impossible_date_is_corrupt(
    store: StateStore, root: Path, stamp: str
) -> None:
    # Not read as the next month's first days (calendar.timegm's arithmetic would).
    store.set("k", 1)
    path = record_path(root, "dag", "feed-sync", "k")
    path.write_bytes(path.read_bytes().replace(START.encode(), stamp.encode()))
    with pytest.raises(CorruptEntryError, match="out of range"):
        store.get("k")


def test_temp_files_are_never_read_as_records(store: StateStore, root: Path) -> None:
    store.set("k", 1)
    directory = record_path(root, "dag", "feed-sync", "k").parent
    (directory / ".tmp-0123456789abcdef").write_bytes(b"half a rec")
    (directory / f".tmp-{hexs('x')}.json").write_bytes(b"garbage")
    assert [e.key for e in store.list().entries] == ["k"]
    assert store.get("k").value == 1
    store.set("k", 2)
    temps = sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))
    assert temps == sorted([".tmp-0123456789abcdef", f".tmp-{hexs('x')}.json"])


def test_listing_reads_only_the_records_it_returns(store: StateStore, root: Path) -> None:
    for key in ("a", "b", "c", "d", "other"):
        store.set(key, key)
    for key in ("d", "other"):
        record_path(root, "dag", "feed-sync", key).write_bytes(b"not json")
    assert [e.key for e in store.list(limit=3).entries] == ["a", "b", "c"]
    assert [e.key for e in store.list("a").entries] == ["a"]
    assert [e.key for e in store.list(after="a", limit=2).entries] == ["b", "c"]
    with pytest.raises(CorruptEntryError):
        store.list(limit=4)


# --- locks ---------------------------------------------------------------------------


HOLD_LOCKS = """
import fcntl, os, sys
fds = []
for name in sorted(os.listdir(sys.argv[1])):
    fd = os.open(os.path.join(sys.argv[1], name), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    fds.append(fd)
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_held_lock_is_waited_for_then_reported(root: Path) -> None:
    url = f"file://{root}?timeout=0.3"
    with make_store(url) as s:
        s.set("k", 1)
        locks = root / "statebox" / "locks"
        for bucket in range(256):  # every bucket exists, so the holder below takes all
            (locks / f"{bucket:02x}.lock").touch()
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCKS, str(locks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            start = time.monotonic()
            with pytest.raises(BackendUnavailableError, match=r"locks/[0-9a-f]{2}\.lock.*0\.3s"):
                s.set("k", 2)
            assert 0.25 < time.monotonic() - start < 5
            assert s.get("k").value == 1  # reads never wait for writers
            # released while a writer waits: the writer proceeds
            with make_store(f"file://{root}?timeout=10") as patient:
                result: list[int] = []
                waiter = threading.Thread(target=lambda: result.append(patient.set("k", 3).version))
                waiter.start()
                time.sleep(0.2)
                assert result == []
                holder.communicate("")
                waiter.join(10)
                assert result == [2]
        finally:
            holder.kill()
            holder.wait()


def test_two_processes_of_cas_increments_end_at_exactly_200(root: Path) -> None:
    url = f"file://{root}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.workers", "cas", url, "counter", "100"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with make_store(url) as s:
        got = s.get("counter", scope="global")
        assert (got.value, got.version) == ({"n": 200}, 200)


# --- history logs --------------------------------------------------------------------


def test_history_log_is_trimmed_and_survives_a_torn_line(root: Path, clock: ManualClock) -> None:
    with make_store(f"file://{root}", clock=clock, history_limit=3) as s:
        for n in range(1, 41):
            s.set("k", n)
        log = root / "statebox" / "history" / "dag" / hexs("feed-sync") / f"{hexs('k')}.log"
        assert len(log.read_bytes().splitlines()) <= 2 * 3 + 8
        assert [h.version for h in s.history("k").versions] == [40, 39, 38]
        with log.open("ab") as f:
            f.write(b'{"n":99,"k":3,"v":41,"h')  # a crash in the middle of an append
        assert [h.version for h in s.history("k").versions] == [40, 39, 38]
        s.set("k", 41)
        assert [h.version for h in s.history("k").versions] == [41, 40, 39]
        assert log.read_bytes().endswith(b"\n")


def test_history_repairs_a_line_lost_in_a_crash(
    store: StateStore, root: Path, clock: ManualClock
) -> None:
    store.set("k", 1)
    ks = store.keyspace()
    # A writer died between renaming version 2 into place and appending its history line:
    got = store.backend.get(ks, "k", clock.now_ns())
    assert got is not None
    clock.advance(1)
    v2 = normalize(2)
    lost = Entry("k", 2, v2.hash, v2.data, v2.content_type, got.created_at, clock.now_ns())
    record_path(root, "dag", "feed-sync", "k").write_bytes(encode_record(ks, "k", lost))
    history = store.history("k", include_values=True).versions
    assert [(h.version, h.stored and h.stored.parse()) for h in history] == [
        (2, 2),
        (1, 1),
    ]
    store.set("k", 3)
    assert [h.version for h in store.history("k").versions] == [3, 2, 1]


# --- journals ------------------------------------------------------------------------


def orphan_journal(root: Path, clock: ManualClock, apply_first: bool) -> None:
    """The state a writer leaves when it dies after writing its journal."""
    ks = Keyspace("dag", "feed-sync")
    backend = FileBackend(f"file://{root}")
    try:
        ops = []
        buckets = set()
        for key in ("t1", "t2"):
            value = normalize({"txn": 1})
            now = clock.now_ns()
            entry = Entry(key, 1, value.hash, value.data, value.content_type, now, now)
            paths = backend._layout.key_paths(ks, key)
            buckets.add(paths.bucket)
            ops.append(Op("write", paths.record, encode_record(ks, key, entry)))
        write_journal(backend._layout.journal_dir, str(root), buckets, ops, True)
        if apply_first:
            Path(ops[0].path).parent.mkdir(parents=True, exist_ok=True)
            Path(ops[0].path).write_bytes(ops[0].data)
    finally:
        backend.close()


@pytest.mark.parametrize("apply_first", [False, True], ids=["none-applied", "half-applied"])
def test_an_orphaned_journal_is_rolled_forward_on_open(
    root: Path, clock: ManualClock, apply_first: bool
) -> None:
    orphan_journal(root, clock, apply_first)
    assert len(pending(str(root / "statebox" / "journal"))) == 1
    with make_store(f"file://{root}", clock=clock) as s:
        assert pending(str(root / "statebox" / "journal")) == []
        assert [s.get(k).value for k in ("t1", "t2")] == [{"txn": 1}, {"txn": 1}]


def test_an_open_store_rolls_forward_before_reading_or_writing(
    root: Path, clock: ManualClock
) -> None:
    with make_store(f"file://{root}", clock=clock) as s:
        orphan_journal(root, clock, apply_first=True)
        assert [e.key for e in s.list().entries] == ["t1", "t2"]  # both, never one
        assert s.set("t2", 2, expected_version=1).version == 2
        assert pending(str(root / "statebox" / "journal")) == []


def test_a_journal_torn_before_its_rename_or_a_foreign_file_is_ignored(root: Path) -> None:
    journal = root / "statebox" / "journal"
    journal.mkdir(parents=True)
    (journal / ".tmp-0123").write_bytes(b'{"ops":[{"op":"wri')
    (journal / "notes.txn").write_bytes(b"not a journal statebox would name so")
    with make_store(f"file://{root}") as s:
        assert s.list().entries == []
        s.set("k", 1)


def test_a_transaction_over_several_records_commits_through_a_journal(
    store: StateStore, root: Path
) -> None:
    store.transaction(
        [{"op": "set", "key": "a", "value": 1}, {"op": "set", "key": "b", "value": 2}]
    )
    assert [store.get(k).value for k in ("a", "b")] == [1, 2]
    assert pending(str(root / "statebox" / "journal")) == []


# --- watch, TTL ----------------------------------------------------------------------


def test_a_write_from_another_process_wakes_a_watcher(store: StateStore, root: Path) -> None:
    ks = store.keyspace()
    token = store.backend.change_token(ks)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from statebox import open_store, RunContext; time.sleep(0.3); "
            "open_store(sys.argv[1], context=RunContext(dag='feed-sync')).set('k', 1)",
            f"file://{root}",
        ],
        cwd=ROOT,
    )
    start = time.monotonic()
    seen = store.backend.wait_for_change(ks, token, timeout=20)
    assert seen != token
    assert time.monotonic() - start < 15
    writer.wait(20)
    assert store.backend.wait_for_change(ks, seen, timeout=0.05) == seen  # times out


def test_purge_removes_expired_records_and_keeps_history(
    store: StateStore, root: Path, clock: ManualClock
) -> None:
    store.set("short", 1, ttl=10)
    store.set("long", 1, ttl=1000)
    store.set("forever", 1)
    clock.advance(11)
    assert not store.get("short").found
    assert store.backend.purge_expired(clock.now_ns()) == 1
    assert not record_path(root, "dag", "feed-sync", "short").exists()
    assert [h.version for h in store.history("short").versions] == [1]
    assert [e.key for e in store.list().entries] == ["forever", "long"]
    store.set("long", 2)  # no TTL any more: its meta file goes
    assert not list((root / "statebox" / "meta").rglob("*.meta"))


# --- the URL ---------------------------------------------------------------------------


def test_url_forms(tmp_path: Path) -> None:
    env = {"DAGU_DAG_STATE_DIR": str(tmp_path / "dagu")}
    assert parse_file_url("file://", env).root == str(tmp_path / "dagu")
    assert parse_file_url(f"file://localhost{tmp_path}", env).root == str(tmp_path)
    options = parse_file_url(f"file://{tmp_path}?timeout=2.5&fsync=false", env)
    assert (options.timeout, options.fsync) == (2.5, False)
    with pytest.raises(ConfigurationError, match="DAGU_DAG_STATE_DIR"):
        parse_file_url("file://", {})
    with pytest.raises(ConfigurationError, match="relative"):
        parse_file_url("file://", {"DAGU_DAG_STATE_DIR": "dagu/state"})
    with pytest.raises(ConfigurationError, match=r"relative.*file:///absolute/dir"):
        parse_file_url("file:state/dir", env)
    with pytest.raises(ConfigurationError, match=r"host name.*three slashes"):
        parse_file_url("file://state/dir", env)
    with pytest.raises(ConfigurationError, match='unknown option "mode"'):
        parse_file_url(f"file://{tmp_path}?mode=x", env)
    with pytest.raises(ConfigurationError, match="timeout"):
        parse_file_url(f"file://{tmp_path}?timeout=soon", env)


def test_dagu_state_dir_is_used_for_a_bare_file_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGU_DAG_STATE_DIR", str(tmp_path / "dagu"))
    with open_store("file://", context=CONTEXT) as s:
        s.set("k", 1)
    assert record_path(tmp_path / "dagu", "dag", "feed-sync", "k").is_file()


# --- the same answers as the reference backend -------------------------------------------

KEYS = st.sampled_from(["a", "a/b", "b", "ab", "é"])
VALUES = st.one_of(
    st.integers(-3, 3),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2),
    st.builds(Blob, st.binary(max_size=4), st.just("application/octet-stream")),
)
GUARDS = st.sampled_from(
    [{}, {"expected_version": 0}, {"expected_version": 1}, {"create_only": True}]
)
SET = st.tuples(st.just("set"), KEYS, VALUES, GUARDS, st.sampled_from([None, 5]))
DELETE = st.tuples(st.just("delete"), KEYS, st.sampled_from([{}, {"expected_version": 1}]))
TXN = st.tuples(st.just("txn"), st.lists(st.one_of(SET, DELETE), min_size=1, max_size=3))
STEP = st.one_of(SET, DELETE, TXN, st.tuples(st.just("advance"), st.sampled_from([1, 6])))


def run_step(store: StateStore, step: tuple) -> object:  # type: ignore[type-arg]
    """One step's outcome: its result envelope, or the kind of error it raised."""
    try:
        kind = step[0]
        if kind == "set":
            return store.set(step[1], step[2], ttl=step[4], **step[3]).to_dict()
        if kind == "delete":
            return store.delete(step[1], **step[2]).to_dict()
        if kind == "txn":
            ops = [
                {"op": "set", "key": s[1], "value": s[2], "ttl": s[4], **s[3]}
                if s[0] == "set"
                else {"op": "delete", "key": s[1], **s[2]}
                for s in step[1]
            ]
            return store.transaction(ops).to_dict()
        assert isinstance(store.clock, ManualClock)
        store.clock.advance(step[1])
        return store.backend.purge_expired(store.clock.now_ns())
    except StateboxError as exc:
        return type(exc).__name__


def observe(store: StateStore) -> object:
    listing = store.list(include_values=True).to_dict()
    history = {
        key: [item.to_dict() for item in store.history(key, include_values=True).versions]
        for key in ("a", "a/b", "b", "ab", "é")
    }
    return listing, history


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=14), st.sampled_from([0, 2, 10]))
def test_same_answers_as_the_memory_backend(steps: list[tuple], limit: int) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as directory:
        url = f"file://{directory}/s?fsync=false"
        stores = [
            open_store(u, context=CONTEXT, clock=ManualClock(), history_limit=limit)
            for u in ("memory://", url)
        ]
        try:
            for step in steps:
                reference, file_store = (run_step(s, step) for s in stores)
                assert file_store == reference, step
                assert observe(stores[1]) == observe(stores[0]), step
            # and a second process's view of the same files agrees
            with open_store(url, context=CONTEXT, clock=stores[1].clock) as again:
                assert observe(again) == observe(stores[0])
        finally:
            for s in stores:
                s.close()


# --- docs/file-backend.md tells the truth ------------------------------------------------


def test_the_docs_example_runs_and_its_record_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = (ROOT / "docs" / "file-backend.md").read_text()
    blocks = re.findall(r"```(python|json)\n(.*?)```", doc, re.S)
    [python] = [code for lang, code in blocks if lang == "python"]
    [record] = [code.strip() for lang, code in blocks if lang == "json"]
    monkeypatch.setenv("STATEBOX_DAG", "feed-sync")
    exec(python.replace("/var/lib/dagu/dag-state", str(tmp_path / "a")), {})
    assert record_path(tmp_path / "a", "dag", "feed-sync", "cursors/feed").is_file()
    with make_store(f"file://{tmp_path / 'b'}", clock=ManualClock()) as s:
        digest = s.set("cursors/feed", {"last_id": 123}).hash
    written = record_path(tmp_path / "b", "dag", "feed-sync", "cursors/feed").read_text()
    assert written == record.replace('"hash":"…"', f'"hash":"{digest}"')


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(
        st.text("ab/é", min_size=1, max_size=4),
        st.sampled_from([(".json",), (".blob",), (".json", ".blob")]),
        max_size=120,
    ),
    st.text("ab/", max_size=2),
    st.one_of(st.none(), st.text("ab/", max_size=3)),
    st.sampled_from([0, 1, 2, 3]),
)
def test_names_in_range_is_a_sorted_filtered_listing(
    files: dict[str, tuple[str, ...]], prefix: str, after: str | None, first: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        dirs = (os.path.join(directory, "v1"), os.path.join(directory, "blobs"))
        for d in dirs:
            os.mkdir(d)
            Path(d, ".tmp-0a0b").touch()  # never listed
        for key, suffixes in files.items():  # a key with both files is listed once
            for suffix in suffixes:
                Path(dirs[suffix == ".blob"], key.encode().hex() + suffix).touch()
        floor = after.encode().hex() if after is not None else ""
        got = list(names_in_range(dirs, prefix.encode().hex(), floor, first))
        expected = sorted(
            k.encode().hex()
            for k in files
            if k.encode().startswith(prefix.encode())
            and (after is None or k.encode() > after.encode())
        )
        assert got == expected
