"""The file backend's ``apply_batch``: one transaction across keyspaces, in Dagu's layout.

Every keyspace's records are Dagu records where Dagu reads them (the reserved scope's under
``statebox/v1/``); all of them change under one set of locks (statebox's buckets and Dagu's
record locks) and one journal; a failed guard, fence or lock anywhere leaves every keyspace
untouched; a writer killed in the middle of the journal is rolled forward by whoever comes
next, in every keyspace.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from statebox import BackendUnavailableError, ConflictError, FencingError, InvalidRequestError
from statebox.backends.base import Delete, Fence, Put, WriteContext
from statebox.backends.file import FileBackend
from statebox.backends.file import backend as backend_module
from statebox.backends.file._codec import decode_record
from statebox.backends.file._journal import pending, write_journal
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.values import normalize

from .test_file_dagu_lock import dagu_lock, dagu_unlock, record_id

ROOT = Path(__file__).resolve().parent.parent
RUN = Keyspace("run", "feed-sync/run-1")
DAG = Keyspace("dag", "feed-sync")
GLOBAL = Keyspace("global", "_")
OWN = Keyspace("statebox", "runner")  # the reserved scope: never in Dagu's tree
SPACES = (RUN, DAG, GLOBAL, OWN)
NOW = 1_767_225_600 * 10**9  # 2026-01-01


def ctx(now: int = NOW) -> WriteContext:
    return WriteContext(now=now, updated_by=UpdatedBy(dag_name="feed-sync"), history_limit=10)


def put(key: str, value: object, **kwargs: object) -> Put:
    return Put(key, normalize(value), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "dag-state"


@pytest.fixture
def backend(root: Path) -> Iterator[FileBackend]:
    b = FileBackend(f"file://{root}?fsync=false&timeout=0.3")
    yield b
    b.close()


def record_file(root: Path, keyspace: Keyspace, key: str) -> Path:
    base = root / "statebox" if keyspace.scope == "statebox" else root
    return (
        base
        / "v1"
        / keyspace.scope
        / keyspace.namespace.encode().hex()
        / f"{key.encode().hex()}.json"
    )


def on_disk(root: Path, keyspace: Keyspace, key: str) -> tuple[int, object] | None:
    """(version, value) as the record file says, or None when it is missing."""
    path = record_file(root, keyspace, key)
    if not path.exists():
        return None
    stored = decode_record(path.read_bytes(), str(path))
    assert (stored.scope, stored.namespace, stored.key) == (*keyspace, key)
    return stored.version, json.loads(stored.data)


def journals(root: Path) -> list[str]:
    return pending(str(root / "statebox" / "journal"))


def test_one_batch_per_keyspace_writes_dagu_records_through_one_journal(
    backend: FileBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []

    def counting(*args: object, **kwargs: object) -> str:
        written.append(len(args[3]))  # type: ignore[arg-type]
        return write_journal(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backend_module, "write_journal", counting)
    results = backend.apply_batch(
        [(ks, [put("x", {"in": ks.scope}), put("y", 2)]) for ks in SPACES], ctx()
    )
    assert len(written) == 1  # one journal for all four keyspaces
    assert journals(root) == []
    assert [[(a.previous, a.current and a.current.version) for a in r] for r in results] == [
        [(None, 1), (None, 1)]
    ] * 4
    for ks in SPACES:
        assert on_disk(root, ks, "x") == (1, {"in": ks.scope})
        assert on_disk(root, ks, "y") == (1, 2)
        assert backend.get(ks, "x", NOW).version == 1  # type: ignore[union-attr]
    # Dagu reads v1/ only: the reserved scope's records are not there.
    assert sorted(p.name for p in (root / "v1").iterdir()) == ["dag", "global", "run"]


def test_a_single_record_across_batches_commits_by_its_rename(
    backend: FileBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("no journal is needed for one record file")

    monkeypatch.setattr(backend_module, "write_journal", refuse)
    results = backend.apply_batch([(RUN, []), (DAG, [put("k", 1)]), (GLOBAL, [])], ctx())
    assert [len(r) for r in results] == [0, 1, 0]
    assert on_disk(root, DAG, "k") == (1, 1)


def test_a_conflict_in_the_second_keyspace_writes_nothing_anywhere(
    backend: FileBackend, root: Path
) -> None:
    backend.apply_batch([(RUN, [put("a", 1)]), (DAG, [put("b", 1)])], ctx())
    with pytest.raises(ConflictError) as caught:
        backend.apply_batch(
            [
                (RUN, [put("a", 2, expected_version=1), put("new", 1)]),
                (DAG, [put("c", 1), put("b", 2, expected_version=7)]),
                (GLOBAL, [put("g", 1)]),
            ],
            ctx(NOW + 1),
        )
    assert caught.value.index == 3  # counted across the batches
    assert on_disk(root, RUN, "a") == (1, 1)
    assert on_disk(root, RUN, "new") is None
    assert on_disk(root, DAG, "c") is None
    assert on_disk(root, GLOBAL, "g") is None
    assert journals(root) == []


def test_a_stale_fence_in_the_last_keyspace_writes_nothing_anywhere(
    backend: FileBackend, root: Path
) -> None:
    first = backend.acquire_lease("l", "me", 10**12, NOW)
    backend.acquire_lease("l", "me", 10**12, NOW)  # first.token is no longer the latest
    with pytest.raises(FencingError):
        backend.apply_batch(
            [(RUN, [put("a", 1)]), (DAG, [put("b", 1, fence=Fence("l", first.token))])], ctx()
        )
    assert on_disk(root, RUN, "a") is None
    assert on_disk(root, DAG, "b") is None


def test_a_repeated_keyspace_is_refused_before_anything_is_written(
    backend: FileBackend, root: Path
) -> None:
    with pytest.raises(InvalidRequestError, match='scope "dag", namespace "feed-sync"'):
        backend.apply_batch([(DAG, [put("a", 1)]), (RUN, []), (DAG, [put("b", 1)])], ctx())
    assert not (root / "v1").exists()


def test_history_is_kept_per_keyspace(backend: FileBackend) -> None:
    backend.apply_batch([(RUN, [put("k", "r1")]), (DAG, [put("k", "d1")])], ctx())
    backend.apply_batch([(RUN, [put("k", "r2")]), (DAG, [Delete("k")])], ctx(NOW + 1))
    run, dag = backend.history(RUN, "k", 0), backend.history(DAG, "k", 0)
    assert [(h.version, h.deleted) for h in run] == [(2, False), (1, False)]
    assert [(h.version, h.deleted) for h in dag] == [(1, True), (1, False)]
    assert backend.get(DAG, "k", NOW + 1) is None


def test_a_watcher_sees_one_change_for_the_whole_batch(backend: FileBackend) -> None:
    token = backend.change_token(GLOBAL)
    backend.apply_batch([(RUN, [put("a", 1)]), (DAG, [put("b", 1)])], ctx())
    assert backend.wait_for_change(GLOBAL, token, 1.0) == token + 1  # one change, not two


def test_a_held_dagu_lock_in_one_keyspace_holds_back_the_whole_batch(
    backend: FileBackend, root: Path
) -> None:
    # Dagu's record locks of every keyspace are taken before any file changes.
    backend.apply_batch([(RUN, [put("a", 1)]), (GLOBAL, [put("g", 1)])], ctx())
    rid = record_id(GLOBAL.scope, GLOBAL.namespace, "g")
    token = dagu_lock(root, rid)
    try:
        with pytest.raises(BackendUnavailableError, match=r"\.dagu_record_locks/"):
            backend.apply_batch([(RUN, [put("a", 2)]), (GLOBAL, [put("g", 2)])], ctx(NOW + 1))
        assert on_disk(root, RUN, "a") == (1, 1)
    finally:
        dagu_unlock(root, rid, token)
    backend.apply_batch([(RUN, [put("a", 2)]), (GLOBAL, [put("g", 2)])], ctx(NOW + 1))
    assert (on_disk(root, RUN, "a"), on_disk(root, GLOBAL, "g")) == ((2, 2), (2, 2))


# --- a writer killed in the middle of the journal --------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from statebox.backends.base import Put, WriteContext
    from statebox.backends.file import FileBackend
    from statebox.backends.file import backend as module
    from statebox.core.model import Keyspace, UpdatedBy
    from statebox.core.values import normalize

    url, after = sys.argv[1], int(sys.argv[2])
    real = module.run_ops

    def dying(ops, durable, syncs=None):
        ops = list(ops)
        if syncs is None and len(ops) > 1:  # the journaled commit
            real(ops[:after], durable)
            os.kill(os.getpid(), signal.SIGKILL)
        real(ops, durable, syncs)

    module.run_ops = dying
    spaces = [Keyspace("run", "feed-sync/run-1"), Keyspace("dag", "feed-sync"),
              Keyspace("global", "_"), Keyspace("statebox", "runner")]
    ctx = WriteContext(now=2, updated_by=UpdatedBy(dag_name="feed-sync"))
    FileBackend(url).apply_batch(
        [(ks, [Put("x", normalize({"n": 2}), expected_version=1),
               Put("y", normalize({"n": 2}), expected_version=1)]) for ks in spaces],
        ctx,
    )
    """
)


def kill_mid_journal(url: str, after: int) -> None:
    """Run the batch of _KILLED_WRITER in a process killed after ``after`` of its ops."""
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, url, str(after)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr


@pytest.mark.parametrize("finisher", ["open", "read"])
@pytest.mark.parametrize("after", [0, 1, 4, 7, 12])
def test_a_batch_killed_mid_journal_rolls_forward_in_every_keyspace(
    root: Path, after: int, finisher: str
) -> None:
    url = f"file://{root}"
    early = FileBackend(url)  # a store open before the crash
    try:
        early.apply_batch([(ks, [put("x", {"n": 1}), put("y", {"n": 1})]) for ks in SPACES], ctx(1))
        kill_mid_journal(url, after)
        # As the kill left it: the journal is there, the records part old, part new
        # (8 record writes, then 8 history appends).
        assert len(journals(root)) == 1
        found = [on_disk(root, ks, k) for ks in SPACES for k in ("x", "y")]
        assert found.count((2, {"n": 2})) == min(after, 8)
        assert found.count((1, {"n": 1})) == 8 - min(after, 8)
        if finisher == "read":
            # Its next read of a key the journal covers (here in the last keyspace)
            # finishes the journal first.
            got = early.get(OWN, "y", 3)
            assert got is not None and got.version == 2
            assert journals(root) == []
    finally:
        early.close()
    late = FileBackend(url)  # opening rolls forward whatever is left
    try:
        assert journals(root) == []
        for ks in SPACES:
            for key in ("x", "y"):
                assert on_disk(root, ks, key) == (2, {"n": 2})
                assert [h.version for h in late.history(ks, key, 0)] == [2, 1]
    finally:
        late.close()


# --- SIGKILL at random moments (as tests/test_file_crash.py does for one keyspace) -------


@pytest.mark.slow
def test_sigkill_at_random_moments_never_splits_a_batch_across_keyspaces(root: Path) -> None:
    from .file_crash_across_writer import KEYS
    from .file_crash_across_writer import SPACES as CRASH_SPACES

    url = f"file://{root}"
    rng = random.Random(int(os.environ.get("STATEBOX_CRASH_SEED", "20260115")))
    reported = journal_kills = rounds = 0
    start = time.monotonic()
    while rounds < 15 or (journal_kills < 3 and rounds < 50):
        assert time.monotonic() - start < 45, f"only {rounds} rounds"
        rounds += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.file_crash_across_writer", url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.1))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        for line in out.split("\n")[:-1]:  # the last piece is empty or cut short
            kind, written = line.split()
            assert kind == "txn"
            reported = int(written)
        # As the kill left it, before any recovery: every record parses.
        journal_kills += bool(journals(root))
        for ks in CRASH_SPACES:
            for key in KEYS:
                found = on_disk(root, ks, key)
                if found is None:
                    assert reported == 0
                else:
                    assert found[0] in (reported, reported + 1)
        recovered = FileBackend(url)  # opening rolls a journal forward
        try:
            assert journals(root) == []
            now = time.time_ns()
            got = [recovered.get(ks, key, now) for ks in CRASH_SPACES for key in KEYS]
            states = {(e.version, json.loads(e.data)["n"]) if e else (0, 0) for e in got}
            assert len(states) == 1, states  # all or nothing, in every keyspace
            [(version, n)] = states
            assert version == n and n in (reported, reported + 1)
            reported = n
        finally:
            recovered.close()
    assert journal_kills >= 3, f"{journal_kills} kills in {rounds} rounds"
    assert reported > 0
