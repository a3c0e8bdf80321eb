"""SPEC §5 under load, on SQLite (WAL, synchronous=FULL): contended ``update`` and watch
latency (issue 5).

- ``update(jq='.n += 1')`` from 4 processes on one key, against sequential uncontended
  sets of the same value from one process, measured in the same run. Target: contended
  updates reach at least 50 % of the uncontended sets' rate. The internal retries the
  updates needed are reported too.
- Watch latency: one process writes ``{"i", "t"}`` (``t`` = CLOCK_MONOTONIC, which all
  processes share on Linux) every 10 to 30 ms; another follows the key with ``watch_iter``
  and records how long after the write began it saw the event. Target: p50 < 50 ms.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from queue import Queue

from statebox import RunContext, open_store

from .common import Row, Section, ops_per_second, percentile

PROCESSES = 4
UPDATES_EACH = 250
SETS = PROCESSES * UPDATES_EACH
WATCH_WRITES = 200
CTX = RunContext(dag="bench", run_id="1", step="s")
KEY = "counter"
WATCH_KEY = "watched"


def _warm_up(url: str) -> None:
    """Connect and start the jq worker, so the timed part measures steady state."""
    with open_store(url, context=CTX) as store:
        store.update("warm-up", jq=".", scope="run")


def _update_worker(url: str, count: int, go: Barrier, out: Queue[tuple[int, float]]) -> None:
    with open_store(url, context=CTX) as store:
        store.update("warm-up", jq=".", scope="run")
        go.wait()
        retries = 0
        for _ in range(count):
            retries += store.update(KEY, jq=".n += 1", default={"n": 0}, scope="global").retries
        out.put((retries, time.monotonic()))


def _set_worker(url: str, count: int, go: Barrier, out: Queue[tuple[int, float]]) -> None:
    with open_store(url, context=CTX) as store:
        store.update("warm-up", jq=".", scope="run")
        go.wait()
        for n in range(count):
            store.set("plain", {"n": n}, scope="global")
        out.put((0, time.monotonic()))


def _race(target: object, url: str, processes: int, each: int) -> tuple[float, int]:
    """(seconds from the common start to the last finish, total retries)."""
    ctx = mp.get_context("spawn")
    go = ctx.Barrier(processes + 1)
    out: Queue[tuple[int, float]] = ctx.Queue()  # type: ignore[assignment]
    procs = [
        ctx.Process(target=target, args=(url, each, go, out))  # type: ignore[arg-type]
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    go.wait()
    started = time.monotonic()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"bench worker failed with exit code {proc.exitcode}")
    return max(finished for _, finished in results) - started, sum(r for r, _ in results)


def _watch_worker(url: str, count: int, ready: Event, out: Queue[list[float]]) -> None:
    latencies: list[float] = []
    with open_store(url, context=CTX) as store:
        events = store.watch_iter(WATCH_KEY, scope="global", include_values=True, timeout=120)
        ready.set()
        for event in events:
            seen = time.monotonic_ns()
            value = event.value
            latencies.append((seen - value["t"]) / 1e6)
            if value["i"] == count - 1:
                break
    out.put(latencies)


def _watch_latencies(url: str) -> list[float]:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    out: Queue[list[float]] = ctx.Queue()  # type: ignore[assignment]
    watcher = ctx.Process(target=_watch_worker, args=(url, WATCH_WRITES, ready, out))
    watcher.start()
    if not ready.wait(60):
        raise RuntimeError("the watcher process did not start")
    with open_store(url, context=CTX) as store:
        for i in range(WATCH_WRITES):
            store.set(WATCH_KEY, {"i": i, "t": time.monotonic_ns()}, scope="global")
            time.sleep(random.uniform(0.01, 0.03))
    latencies = out.get(timeout=120)
    watcher.join()
    return latencies


def run(workdir: Path) -> list[Section]:
    url = f"sqlite:///{workdir / 'beyond.db'}"
    _warm_up(url)
    sets_s, _ = _race(_set_worker, url, 1, SETS)
    single_s, single_retries = _race(_update_worker, url, 1, SETS)
    contended_s, retries = _race(_update_worker, url, PROCESSES, UPDATES_EACH)
    with open_store(url, context=CTX) as store:
        final = store.get(KEY, scope="global").value["n"]
        if final != SETS + PROCESSES * UPDATES_EACH:
            raise RuntimeError(f"lost updates: counter is {final}")
    sets_rate = ops_per_second(SETS, sets_s)
    contended_rate = ops_per_second(PROCESSES * UPDATES_EACH, contended_s)
    latencies = _watch_latencies(url)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return [
        Section(
            "update under contention (SQLite, WAL, synchronous=FULL)",
            f"uncontended sets, 1 process, {SETS} sequential",
            [
                Row(
                    "update jq '.n += 1', 1 process",
                    "ops/s",
                    ops_per_second(SETS, single_s),
                    sets_rate,
                ),
                Row(
                    f"update jq '.n += 1', {PROCESSES} processes, one key",
                    "ops/s",
                    contended_rate,
                    sets_rate,
                    target=">= 0.50x",
                    met=contended_rate >= 0.5 * sets_rate,
                ),
                Row(
                    f"internal retries per update ({PROCESSES} processes)",
                    "retries/op",
                    retries / (PROCESSES * UPDATES_EACH),
                ),
                Row("internal retries per update (1 process)", "retries/op", single_retries / SETS),
            ],
        ),
        Section(
            "watch latency, write in one process -> event in another (SQLite)",
            "-",
            [
                Row(f"p50 of {len(latencies)} events", "ms", p50, target="< 50 ms", met=p50 < 50),
                Row(f"p99 of {len(latencies)} events", "ms", p99),
            ],
        ),
    ]
