"""statebox's SQLite backend beside raw ``sqlite3`` (same pragmas, same table shape).

Workloads (issue 2): 5,000 sequential durable sets and 5,000 gets (each interleaved with
the baseline in blocks); 4-process CAS increments on one key; listing 100 keys of
100,000; get latency p50/p99 at 1,000 and at 100,000 keys.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from statebox import RunContext, StateStore, open_store
from statebox.backends.base import Put, WriteContext
from statebox.backends.sqlite import SQLITE
from statebox.core.model import Keyspace
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
BIG = 100_000
SMALL = 1_000
LATENCY_SAMPLES = 2_000
#: Sets and gets alternate between statebox and raw sqlite3 in blocks of this many (the
#: first side alternating too), so both meet the same load of a shared, noisy machine.
BLOCK = 250
CTX = RunContext(dag="bench", run_id="1", step="s")
VALUE = {"last_id": 123456, "etag": "abc", "items": [1, 2, 3]}
VALUE_BYTES = normalize(VALUE).data


# --- raw sqlite3 baseline: the same schema, pragmas and one commit per write ----------


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 30000")
    for statement in SQLITE.schema():
        conn.execute(statement)
    return conn


RAW_UPSERT = (
    "INSERT INTO statebox_entries (scope, namespace, key, version, hash, content_type, data, "
    "created_at, updated_at, updated_by, expires_at) VALUES ('dag', ?, ?, 1, ?, "
    "'application/json', ?, ?, ?, '{}', NULL) ON CONFLICT (scope, namespace, key) DO UPDATE "
    "SET version = version + 1, hash = excluded.hash, data = excluded.data, "
    "updated_at = excluded.updated_at"
)
RAW_GET = (
    "SELECT version, hash, content_type, data, created_at, updated_at, updated_by, expires_at "
    "FROM statebox_entries WHERE scope = 'dag' AND namespace = ? AND key = ?"
)


def raw_set(conn: sqlite3.Connection, key: str) -> None:
    now = time.time_ns()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(RAW_UPSERT, (b"bench", key.encode(), "h", VALUE_BYTES, now, now))
    conn.execute("COMMIT")


def raw_cas_worker(path: str, count: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous = FULL")
    for _ in range(count):
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(RAW_GET, (b"bench", b"counter")).fetchone()
        n = row[0] if row else 0
        now = time.time_ns()
        conn.execute(RAW_UPSERT, (b"bench", b"counter", "h", str(n + 1).encode(), now, now))
        conn.execute("COMMIT")


def fill(store: StateStore, count: int, prefix: str = "k/") -> None:
    ks = store.keyspace()
    value = normalize(VALUE)
    for start in range(0, count, 5_000):
        puts = [Put(f"{prefix}{i:07d}", value) for i in range(start, min(count, start + 5_000))]
        store.backend.apply(ks, puts, WriteContext(time.time_ns(), CTX.updated_by(), 10))


def fill_raw(conn: sqlite3.Connection, count: int, prefix: str = "k/") -> None:
    now = time.time_ns()
    conn.execute("BEGIN")
    conn.executemany(
        RAW_UPSERT,
        ((b"bench", f"{prefix}{i:07d}".encode(), "h", VALUE_BYTES, now, now) for i in range(count)),
    )
    conn.execute("COMMIT")


def run(workdir: Path) -> list[Section]:
    rows: list[Row] = []
    sb_url = f"sqlite:///{workdir / 'statebox.db'}"
    raw_path = workdir / "raw.db"
    store = open_store(sb_url, context=CTX)
    raw = raw_connect(raw_path)
    ks = Keyspace("dag", "bench")

    # sequential durable sets (distinct keys, one commit each)
    def sb_sets(keys: range) -> None:
        for i in keys:
            store.set(f"set/{i}", VALUE)

    def raw_sets(keys: range) -> None:
        for i in keys:
            raw_set(raw, f"set/{i}")

    sb, base = interleaved(SETS, sb_sets, raw_sets, BLOCK)
    rows.append(
        Row(
            f"{SETS:,} sequential durable sets",
            "ops/s",
            sb,
            base,
            ">= 50% of raw",
            sb >= 0.5 * base,
        )
    )

    # gets of existing keys
    def sb_gets(keys: range) -> None:
        for i in keys:
            store.get(f"set/{i}")

    def raw_gets(keys: range) -> None:
        for i in keys:
            raw.execute(RAW_GET, (b"bench", f"set/{i}".encode())).fetchone()

    sb, base = interleaved(GETS, sb_gets, raw_gets, BLOCK)
    rows.append(Row(f"{GETS:,} gets", "ops/s", sb, base, ">= 50% of raw", sb >= 0.5 * base))

    # 4-process CAS increments on one key
    sb_seconds = run_processes(CAS_PROCESSES, CAS_EACH, sb_cas_worker, sb_url)
    base_seconds = run_processes(CAS_PROCESSES, CAS_EACH, raw_cas_worker, str(raw_path))
    final = store.get("counter").value
    assert final == CAS_PROCESSES * CAS_EACH, final
    rows.append(
        Row(
            f"{CAS_PROCESSES}-process CAS increments ({CAS_PROCESSES}x{CAS_EACH})",
            "ops/s",
            ops_per_second(CAS_PROCESSES * CAS_EACH, sb_seconds),
            ops_per_second(CAS_PROCESSES * CAS_EACH, base_seconds),
            f"exact total ({final})",
            True,
        )
    )

    # latency at 1,000 keys, measured below beside the one at 100,000
    small_store = open_store(f"sqlite:///{workdir / 'small.db'}", context=CTX)
    fill(small_store, SMALL)
    keys_small = [f"k/{(i * 7919) % SMALL:07d}" for i in range(LATENCY_SAMPLES)]

    # 100,000 keys: listing and latency
    fill(store, BIG)
    fill_raw(raw, BIG)
    list_samples, raw_list_samples = [], []
    for i in range(200):
        prefix_after = f"k/{(i * 431) % (BIG - 200):07d}"
        start = time.perf_counter()
        page = store.list("k/", limit=100, after=prefix_after)
        list_samples.append((time.perf_counter() - start) * 1000)
        assert len(page.entries) == 100
        start = time.perf_counter()
        raw.execute(
            "SELECT key, version, hash, created_at, updated_at FROM statebox_entries WHERE "
            "scope = 'dag' AND namespace = ? AND key > ? AND key < ? ORDER BY key LIMIT 100",
            (b"bench", prefix_after.encode(), b"k0"),
        ).fetchall()
        raw_list_samples.append((time.perf_counter() - start) * 1000)
    p50 = percentile(list_samples, 50)
    rows.append(
        Row(
            f"list 100 of {BIG:,} keys, p50",
            "ms",
            p50,
            percentile(raw_list_samples, 50),
            "< 2 ms",
            p50 < 2,
        )
    )
    keys_big = [f"k/{(i * 7919) % BIG:07d}" for i in range(LATENCY_SAMPLES)]
    # The three latency series in alternating blocks, like the throughput rows: the p50s
    # they compare must meet the same load.
    lat_small: list[float] = []
    lat_big: list[float] = []
    raw_big: list[float] = []
    for low in range(0, LATENCY_SAMPLES, BLOCK):
        lat_small += latencies_ms(small_store.get, keys_small[low : low + BLOCK])
        lat_big += latencies_ms(store.get, keys_big[low : low + BLOCK])
        raw_big += latencies_ms(
            lambda k: raw.execute(RAW_GET, (b"bench", k.encode())).fetchone(),
            keys_big[low : low + BLOCK],
        )
    p50_small, p50_big = percentile(lat_small, 50), percentile(lat_big, 50)
    rows.append(Row(f"get p50 at {SMALL:,} keys", "ms", p50_small, None))
    rows.append(Row(f"get p99 at {SMALL:,} keys", "ms", percentile(lat_small, 99), None))
    rows.append(
        Row(
            f"get p50 at {BIG:,} keys",
            "ms",
            p50_big,
            percentile(raw_big, 50),
            "<= 1.5x p50 at 1,000",
            p50_big <= 1.5 * p50_small,
        )
    )
    rows.append(
        Row(f"get p99 at {BIG:,} keys", "ms", percentile(lat_big, 99), percentile(raw_big, 99))
    )
    store.close()
    small_store.close()
    raw.close()
    del ks
    return [Section("SQLite backend (durable: WAL, synchronous=FULL)", "raw sqlite3", rows)]
