"""statebox's file backend beside raw file I/O, on SQLite's workload (issue 3).

Workloads: 5,000 sequential durable sets; 5,000 gets; 4-process CAS increments on one
key; listing 100 keys of 100,000; get latency p50/p99 at 1,000 and at 100,000 keys.

The raw baseline does the least a durable file store can: a write is a temp file in the
same directory, fsync, rename, fsync of the directory; a read is one ``open``+``read``; a
CAS holds an ``flock`` around read + durable write; a listing is ``os.listdir`` + filter
+ sort + reading the 100 files. statebox does that and more per write: the record's
current version is read and checked, a history line is appended (and fsynced), and the
watch counter is bumped.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from statebox import RunContext, StateStore, open_store
from statebox.backends.base import Put, WriteContext
from statebox.core.values import normalize

from .common import (
    Row,
    Section,
    interleaved,
    latencies_ms,
    ops_per_second,
    percentile,
    run_processes,
    sb_cas_worker,
)

SETS = 5_000
GETS = 5_000
CAS_PROCESSES = 4
CAS_EACH = 250
CAS_ROUNDS = 2
BLOCK = 250  # operations per turn when statebox and the baseline alternate
BIG = 100_000
SMALL = 1_000
LATENCY_SAMPLES = 2_000
CTX = RunContext(dag="bench", run_id="1", step="s")
VALUE = {"last_id": 123456, "etag": "abc", "items": [1, 2, 3]}
VALUE_BYTES = normalize(VALUE).data


# --- the raw baseline ----------------------------------------------------------------------


def raw_write(directory: str, name: str, data: bytes) -> None:
    tmp = os.path.join(directory, ".tmp-" + name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, os.path.join(directory, name))
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)


def raw_read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def raw_cas_worker(directory: str, count: int) -> None:
    lock = os.open(os.path.join(directory, "counter.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    path = os.path.join(directory, "counter.json")
    for _ in range(count):
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            n = int(raw_read(path)) if os.path.exists(path) else 0
            raw_write(directory, "counter.json", str(n + 1).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def raw_list(directory: str, after: str, limit: int) -> list[bytes]:
    names = sorted(n for n in os.listdir(directory) if n.endswith(".json") and n > after)
    return [raw_read(os.path.join(directory, n)) for n in names[:limit]]


# --- statebox -------------------------------------------------------------------------------


def fill(root: Path, count: int, prefix: str = "k/") -> None:
    """Set up (not measured): ``count`` keys written in batches, without fsync or history."""
    with open_store(f"file://{root}?fsync=false", context=CTX) as store:
        ks = store.keyspace()
        value = normalize(VALUE)
        for start in range(0, count, 5_000):
            puts = [Put(f"{prefix}{i:07d}", value) for i in range(start, min(count, start + 5_000))]
            store.backend.apply(ks, puts, WriteContext(time.time_ns(), CTX.updated_by(), 0))


def fill_raw(directory: str, count: int, prefix: str = "k/") -> None:
    for i in range(count):
        with open(os.path.join(directory, f"{prefix}{i:07d}".encode().hex() + ".json"), "wb") as f:
            f.write(VALUE_BYTES)


def run(workdir: Path) -> list[Section]:
    rows: list[Row] = []
    sb_root = workdir / "statebox"
    store: StateStore = open_store(f"file://{sb_root}", context=CTX)
    raw_dir = str(workdir / "raw")
    os.makedirs(raw_dir)

    def raw_path(key: str) -> str:
        return os.path.join(raw_dir, key.encode().hex() + ".json")

    # statebox and the baseline alternate in blocks, so both meet the same disk: on a
    # shared machine its speed changes by the second.
    def sb_sets(indexes: range) -> None:
        for i in indexes:
            store.set(f"set/{i}", VALUE)

    def raw_sets(indexes: range) -> None:
        for i in indexes:
            raw_write(raw_dir, os.path.basename(raw_path(f"set/{i}")), VALUE_BYTES)

    sb, base = interleaved(SETS, sb_sets, raw_sets, BLOCK)
    rows.append(Row(f"{SETS:,} sequential durable sets", "ops/s", sb, base))

    def sb_gets(indexes: range) -> None:
        for i in indexes:
            store.get(f"set/{i}")

    def raw_gets(indexes: range) -> None:
        for i in indexes:
            raw_read(raw_path(f"set/{i}"))

    sb, base = interleaved(GETS, sb_gets, raw_gets, BLOCK)
    rows.append(Row(f"{GETS:,} gets", "ops/s", sb, base))

    sb_seconds = base_seconds = 0.0
    for _ in range(CAS_ROUNDS):
        sb_seconds += run_processes(CAS_PROCESSES, CAS_EACH, sb_cas_worker, f"file://{sb_root}")
        base_seconds += run_processes(CAS_PROCESSES, CAS_EACH, raw_cas_worker, raw_dir)
    total = CAS_ROUNDS * CAS_PROCESSES * CAS_EACH
    final = store.get("counter").value
    assert final == total, final
    assert int(raw_read(os.path.join(raw_dir, "counter.json"))) == total
    rows.append(
        Row(
            f"{CAS_PROCESSES}-process CAS increments ({CAS_ROUNDS}x {CAS_PROCESSES}x{CAS_EACH})",
            "ops/s",
            ops_per_second(total, sb_seconds),
            ops_per_second(total, base_seconds),
            f"exact total ({final})",
            True,
        )
    )

    small_root = workdir / "small"
    fill(small_root, SMALL)
    small = open_store(f"file://{small_root}", context=CTX)
    small_raw = str(workdir / "small-raw")
    os.makedirs(small_raw)
    fill_raw(small_raw, SMALL)
    keys_small = [f"k/{(i * 7919) % SMALL:07d}" for i in range(LATENCY_SAMPLES)]
    lat_small = latencies_ms(small.get, keys_small)
    raw_small = latencies_ms(
        lambda k: raw_read(os.path.join(small_raw, k.encode().hex() + ".json")), keys_small
    )

    fill(sb_root, BIG)
    fill_raw(raw_dir, BIG)
    list_samples, raw_list_samples = [], []
    for i in range(50):
        after = f"k/{(i * 431) % (BIG - 200):07d}"
        start = time.perf_counter()
        page = store.list("k/", limit=100, after=after)
        list_samples.append((time.perf_counter() - start) * 1000)
        assert len(page.entries) == 100
        start = time.perf_counter()
        raw_list(raw_dir, after.encode().hex(), 100)
        raw_list_samples.append((time.perf_counter() - start) * 1000)
    rows.append(
        Row(
            f"list 100 of {BIG:,} keys, p50",
            "ms",
            percentile(list_samples, 50),
            percentile(raw_list_samples, 50),
            "O(namespace) listing",
        )
    )
    keys_big = [f"k/{(i * 7919) % BIG:07d}" for i in range(LATENCY_SAMPLES)]
    lat_big = latencies_ms(store.get, keys_big)
    raw_big = latencies_ms(
        lambda k: raw_read(os.path.join(raw_dir, k.encode().hex() + ".json")), keys_big
    )
    small_p50, raw_small_p50 = percentile(lat_small, 50), percentile(raw_small, 50)
    rows.append(Row(f"get p50 at {SMALL:,} keys", "ms", small_p50, raw_small_p50))
    rows.append(
        Row(
            f"get p99 at {SMALL:,} keys", "ms", percentile(lat_small, 99), percentile(raw_small, 99)
        )
    )
    # No target: a lookup in a directory of 100,000 files costs the filesystem itself
    # more than one in a directory of 1,000 (compare the baseline's two p50s).
    rows.append(
        Row(f"get p50 at {BIG:,} keys", "ms", percentile(lat_big, 50), percentile(raw_big, 50))
    )
    rows.append(
        Row(f"get p99 at {BIG:,} keys", "ms", percentile(lat_big, 99), percentile(raw_big, 99))
    )
    store.close()
    small.close()
    return [
        Section(
            "file backend (durable: fsync + rename + fsync dir, history on)",
            "raw files (temp, fsync, rename, fsync dir; open+read)",
            rows,
        )
    ]
