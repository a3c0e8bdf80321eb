"""statebox's PostgreSQL backend beside raw psycopg (same table shape, one commit per write).

Workloads (issue 6): 3,000 sequential sets; 5,000 gets; listing 100 of 100,000 keys;
8 processes x 100 contended ``update`` increments of one key (ops/s and retries).

The server is ``$STATEBOX_TEST_PG_DSN``, else ``postgresql://postgres@127.0.0.1:5432/test``.
statebox and the baseline each get their own new schema, dropped at the end.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from statebox import RunContext, StateStore, open_store
from statebox.backends._pg_write import statement
from statebox.backends.postgres import POSTGRES, PostgresBackend
from statebox.core.values import normalize

from .common import Row, Section, ops_per_second, percentile

DSN = os.environ.get("STATEBOX_TEST_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
SETS = 3_000
GETS = 5_000
ROUNDS = 5
BIG = 100_000
LISTINGS = 200
PROCESSES = 8
UPDATES_EACH = 100
CTX = RunContext(dag="bench", run_id="1", step="s")
VALUE = {"last_id": 123456, "etag": "abc", "items": [1, 2, 3]}
VALUE_BYTES = normalize(VALUE).data

# --- raw psycopg baseline: the same tables, one transaction (one commit) per write --------

RAW_UPSERT = (
    "INSERT INTO statebox_entries (scope, namespace, key, version, hash, content_type, data, "
    "created_at, updated_at, updated_by, expires_at) VALUES ('dag', %s, %s, 1, %s, "
    "'application/json', %s, %s, %s, '{}', NULL) ON CONFLICT (scope, namespace, key) DO UPDATE "
    "SET version = statebox_entries.version + 1, hash = excluded.hash, data = excluded.data, "
    "updated_at = excluded.updated_at"
)
RAW_GET = (
    "SELECT version, hash, content_type, data, created_at, updated_at, updated_by, expires_at "
    "FROM statebox_entries WHERE scope = 'dag' AND namespace = %s AND key = %s"
)
RAW_LOCKED_GET = (
    "SELECT version, data FROM statebox_entries "
    "WHERE scope = 'dag' AND namespace = %s AND key = %s FOR UPDATE"
)
RAW_LOCKED_ENTRY = (
    "SELECT version, hash, content_type, data, created_at, updated_at, updated_by, expires_at "
    "FROM statebox_entries WHERE scope = %s AND namespace = %s AND key = %s FOR UPDATE"
)
SET_NEW_KEY = statement("insert", "entry")
RAW_LIST = (
    "SELECT key, version, hash, created_at, updated_at FROM statebox_entries WHERE "
    "scope = 'dag' AND namespace = %s AND key > %s AND key < %s ORDER BY key LIMIT 100"
)


def raw_connect(schema: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(DSN, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def raw_set(conn: psycopg.Connection[Any], key: str) -> None:
    now = time.time_ns()
    with conn.transaction():
        conn.execute(RAW_UPSERT, (b"bench", key.encode(), "h", VALUE_BYTES, now, now))


def raw_statebox_set(conn: psycopg.Connection[Any], key: str) -> None:
    """What a statebox set of a new key sends (no pipeline): BEGIN, the locking read, the
    one statement writing entry, history (with its trim) and NOTIFY, COMMIT."""
    now = time.time_ns()
    where = ("dag", b"bench", key.encode())
    params = dict(zip(("scope", "namespace", "key"), where, strict=True))
    params.update(
        version=1,
        hash="h",
        content_type="application/json",
        data=VALUE_BYTES,
        created_at=now,
        updated_at=now,
        updated_by="{}",
        expires_at=None,
        older=9,
        channel="statebox_bench",
        bucket="1",
    )
    with conn.transaction():
        conn.execute(RAW_LOCKED_ENTRY, where).fetchone()
        conn.execute(SET_NEW_KEY, params)


def rate(count: int, op: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(count):
        op(i)
    return ops_per_second(count, time.perf_counter() - start)


def raw_update_worker(schema: str, barrier: Any, results: Any) -> None:
    """The pessimistic baseline: lock the row, increment, commit; nothing to retry."""
    conn = raw_connect(schema)
    barrier.wait()
    start = time.time()
    for _ in range(UPDATES_EACH):
        with conn.transaction():
            row = conn.execute(RAW_LOCKED_GET, (b"bench", b"counter")).fetchone()
            n = int(bytes(row[1])) if row else 0
            now = time.time_ns()
            conn.execute(RAW_UPSERT, (b"bench", b"counter", "h", str(n + 1).encode(), now, now))
    results.put((start, time.time(), 0, 0))
    conn.close()


def sb_update_worker(url: str, barrier: Any, results: Any) -> None:
    with open_store(url, context=CTX, update_attempts=1000) as store:
        barrier.wait()
        start = time.time()
        conflicts = 0
        for _ in range(UPDATES_EACH):
            conflicts += store.update("counter", jq=". + 1", default=0).retries
        backend = store.backend
        transient = backend.retries if isinstance(backend, PostgresBackend) else 0
        results.put((start, time.time(), conflicts, transient))


def run_contended(target: Any, arg: str) -> tuple[float, int, int]:
    """Seconds from the first worker's start to the last one's end; retries."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(arg, barrier, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    done: list[tuple[float, float, int, int]] = []
    while len(done) < len(procs):
        try:
            done.append(results.get(timeout=1))
        except queue.Empty:
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not failed, f"a worker failed (exit codes {failed})"
    for p in procs:
        p.join()
    seconds = max(d[1] for d in done) - min(d[0] for d in done)
    return seconds, sum(d[2] for d in done), sum(d[3] for d in done)


FILL = (
    "INSERT INTO {} (scope, namespace, key, version, hash, content_type, data, created_at, "
    "updated_at, updated_by, expires_at) SELECT 'dag', %s, "
    "convert_to('k/' || lpad(i::text, 7, '0'), 'UTF8'), 1, %s, 'application/json', %s, %s, "
    "%s, '{{}}', NULL FROM generate_series(0, %s) AS i"
)


def fill(schema: str, count: int) -> None:
    """``count`` keys ``k/0000000``… in one statement on the server: the listing is what is
    measured here, not 100,000 round trips of loading."""
    value, now = normalize(VALUE), time.time_ns()
    table = sql.Identifier(schema, "statebox_entries")
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL(FILL).format(table),
            (b"bench", value.hash, value.data, now, now, count - 1),
        )
        conn.execute(sql.SQL("ANALYZE {}").format(table))


def _drop(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run(workdir: Path) -> list[Section]:
    suffix = secrets.token_hex(4)
    sb_schema, raw_schema = f"bench_sb_{suffix}", f"bench_raw_{suffix}"
    sb_url = f"{DSN}{'&' if '?' in DSN else '?'}schema={sb_schema}"
    try:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(raw_schema)))
        raw = raw_connect(raw_schema)
        for statement in POSTGRES.schema():
            raw.execute(statement)
        with open_store(f"{sb_url}&pool_min=1&pool_max=4", context=CTX) as store:
            rows = _measure(store, raw, sb_url, raw_schema)
        raw.close()
    finally:
        _drop(sb_schema)
        _drop(raw_schema)
    return [Section(f"PostgreSQL backend ({DSN.rpartition('@')[2]})", "raw psycopg", rows)]


def _measure(
    store: StateStore, raw: psycopg.Connection[Any], sb_url: str, raw_schema: str
) -> list[Row]:
    rows: list[Row] = []
    # warm up both (connections, prepared statements)
    for i in range(50):
        store.set(f"warm/{i}", VALUE)
        raw_set(raw, f"warm/{i}")

    # Sequential sets of distinct keys, one commit each, then gets of them. The two sides
    # take turns in rounds and each reports its median round, so a shared machine's noise
    # hits both alike. A third side runs statebox's own statements through raw psycopg:
    # what the semantics (row lock, history, trim, NOTIFY) cost, apart from Python.
    per_round = SETS // ROUNDS
    sb_sets, raw_sets, same_sql_sets = [], [], []
    for r in range(ROUNDS):
        sb_sets.append(rate(per_round, lambda i, r=r: store.set(f"set/{r}/{i}", VALUE)))
        raw_sets.append(rate(per_round, lambda i, r=r: raw_set(raw, f"set/{r}/{i}")))
        same_sql_sets.append(rate(per_round, lambda i, r=r: raw_statebox_set(raw, f"same/{r}/{i}")))
    sb, base = statistics.median(sb_sets), statistics.median(raw_sets)
    rows.append(
        Row(f"{SETS:,} sequential sets", "ops/s", sb, base, ">= 50% of raw", sb >= 0.5 * base)
    )
    same_sql = statistics.median(same_sql_sets)
    rows.append(Row("  raw psycopg running statebox's statements", "ops/s", same_sql, base))

    keys = [f"set/{r}/{i}" for r in range(ROUNDS) for i in range(per_round)]
    sb_gets, raw_gets = [], []
    for _ in range(ROUNDS):
        sb_gets.append(rate(GETS // ROUNDS, lambda i: store.get(keys[i % len(keys)])))
        raw_gets.append(
            rate(
                GETS // ROUNDS,
                lambda i: raw.execute(RAW_GET, (b"bench", keys[i % len(keys)].encode())).fetchone(),
            )
        )
    sb, base = statistics.median(sb_gets), statistics.median(raw_gets)
    rows.append(Row(f"{GETS:,} gets", "ops/s", sb, base, ">= 50% of raw", sb >= 0.5 * base))

    # listing a page of 100 out of 100,000 keys
    fill(store_schema(store), BIG)
    fill(raw_schema, BIG)
    samples, raw_samples = [], []
    for i in range(LISTINGS):
        after = f"k/{(i * 431) % (BIG - 200):07d}"
        start = time.perf_counter()
        page = store.list("k/", limit=100, after=after)
        samples.append((time.perf_counter() - start) * 1000)
        assert len(page.entries) == 100
        start = time.perf_counter()
        raw.execute(RAW_LIST, (b"bench", after.encode(), b"k0")).fetchall()
        raw_samples.append((time.perf_counter() - start) * 1000)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    rows.append(
        Row(
            f"list 100 of {BIG:,} keys, p50",
            "ms",
            p50,
            percentile(raw_samples, 50),
            "< 5 ms",
            p50 < 5,
        )
    )
    rows.append(
        Row(
            f"list 100 of {BIG:,} keys, p99",
            "ms",
            p99,
            percentile(raw_samples, 99),
        )
    )

    # contended updates: 8 processes incrementing one key
    total = PROCESSES * UPDATES_EACH
    seconds, conflicts, transient = run_contended(sb_update_worker, sb_url)
    assert store.get("counter").value == total
    # the row exists first: a lock can only be taken on a row that is there
    raw.execute(RAW_UPSERT, (b"bench", b"counter", "h", b"0", 0, 0))
    raw_seconds, _, _ = run_contended(raw_update_worker, raw_schema)
    row = raw.execute(RAW_GET, (b"bench", b"counter")).fetchone()
    assert row is not None and int(bytes(row[3])) == total
    rows.append(
        Row(
            f"{PROCESSES}-process contended updates ({PROCESSES}x{UPDATES_EACH}, jq)",
            "ops/s",
            ops_per_second(total, seconds),
            ops_per_second(total, raw_seconds),
            f"exact total ({total})",
            True,
        )
    )
    rows.append(
        Row(
            "  conflict retries per update (in update)",
            "retries",
            conflicts / total,
        )
    )
    rows.append(Row("  transactions rerun by the backend", "count", float(transient)))
    return rows


def store_schema(store: StateStore) -> str:
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    return backend.options.schema
