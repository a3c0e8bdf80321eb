"""A bounded soak: mixed reads, writes and watches against one real server on SQLite.

Several client processes, each with a writer, a reader, a long poller and an event-stream
reader that closes its stream early (a cancelled stream), hammer one server for
``STATEBOX_SOAK_SECONDS`` (10 s in the default suite; CI's ``scripts/soak`` step runs
60 s). Every second the server's RSS, thread count and open file descriptors are read
from ``/proc/PID/status`` and ``/proc/PID/fd``. The soak passes when no answer was a 5xx
or a broken connection, every kind of request was made, and after a warm-up the RSS grew
by less than ``RSS_GROWTH_MB`` and the threads and descriptors stayed under fixed bounds
(leaks grow with the number of requests, so the bounds hold for any duration).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from statebox.backends import _fswait

from .server_util import running_server

SECONDS = float(os.environ.get("STATEBOX_SOAK_SECONDS", "10"))
CLIENTS = int(os.environ.get("STATEBOX_SOAK_CLIENTS", "3"))
WARM_UP = min(5.0, SECONDS / 3)
#: Growth allowed after the warm-up (SQLite's page cache and allocator arenas settle).
RSS_GROWTH_MB = 40
MAX_THREADS = 64
MAX_FDS = 256
NAMESPACE = "/v1/kv/dag/soak"
KEYS = [f"k{i}" for i in range(40)]  # a bounded key set: the database stays small


# --- the clients (run in their own processes) -------------------------------------------


def _writer(client: httpx.Client, rng: random.Random, tally: Counter[str]) -> None:
    key = rng.choice(KEYS)
    pick = rng.randrange(5)
    if pick == 0:
        answer = client.put(f"{NAMESPACE}/{key}", json={"n": rng.randrange(1000), "pad": "x" * 200})
    elif pick == 1:
        body = {"jq": ".n += 1", "default": {"n": 0}}
        answer = client.post(f"/v1/update/dag/soak/{key}", json=body)
    elif pick == 2:
        ops = [{"op": "set", "key": k, "value": {"n": 1}} for k in rng.sample(KEYS, 3)]
        ops.append({"op": "delete", "key": rng.choice(KEYS)})
        answer = client.post("/v1/txn/dag/soak", json={"ops": ops})
    elif pick == 3:
        answer = client.delete(f"{NAMESPACE}/{key}")
    else:  # a guarded write: 412 when another writer got there first
        read = client.get(f"{NAMESPACE}/{key}")
        tally[f"write {read.status_code}"] += 1
        etag = read.headers.get("etag", '"0"')
        headers = {"If-Match": etag} if etag != '"0"' else {"If-None-Match": "*"}
        answer = client.put(f"{NAMESPACE}/{key}", json={"n": 0}, headers=headers)
    tally[f"write {answer.status_code}"] += 1


def _reader(client: httpx.Client, rng: random.Random, tally: Counter[str]) -> None:
    key = rng.choice(KEYS)
    path = rng.choice(
        [
            f"{NAMESPACE}/{key}",
            f"{NAMESPACE}?limit=20&include_values=true",
            f"/v1/history/dag/soak/{key}?include_values=true",
            "/v1/entries/dag/soak?limit=10",
            "/healthz",
            "/metrics",
        ]
    )
    tally[f"read {client.get(path).status_code}"] += 1


def _long_poll(client: httpx.Client, rng: random.Random, tally: Counter[str]) -> None:
    key = rng.choice(KEYS)
    known = client.get(f"{NAMESPACE}/{key}")
    version = known.json().get("version", 0) if known.status_code == 200 else 0
    params = {"key": key, "after_version": version, "timeout": 1}
    tally[f"watch {client.get('/v1/watch/dag/soak', params=params).status_code}"] += 1


def _event_stream(client: httpx.Client, rng: random.Random, tally: Counter[str]) -> None:
    # Leaves after a few events or a second, mid-stream: the server must let it go at once.
    params = {"prefix": "k"}  # no timeout: only the client's leaving ends the stream
    quiet = httpx.Timeout(15, read=1)  # a second without a line: leave
    events = 0
    try:
        with client.stream("GET", "/v1/events/dag/soak", params=params, timeout=quiet) as stream:
            tally[f"events {stream.status_code}"] += 1
            started = time.monotonic()
            for line in stream.iter_lines():
                events += line.startswith("event:")
                if events >= rng.randint(1, 5) or time.monotonic() - started > 1:
                    break
    except httpx.ReadTimeout:
        tally["events quiet"] += 1
    tally["events received"] += events


ROLES: dict[str, Callable[[httpx.Client, random.Random, Counter[str]], None]] = {
    "writer": _writer,
    "reader": _reader,
    "long poll": _long_poll,
    "event stream": _event_stream,
}


def _run_role(url: str, role: str, seed: int, deadline: float, out: dict[str, object]) -> None:
    rng, tally = random.Random(seed), Counter[str]()
    errors: list[str] = []
    with httpx.Client(base_url=url, timeout=15) as client:
        while time.monotonic() < deadline:
            try:
                ROLES[role](client, rng, tally)
            except httpx.HTTPError as exc:  # a reset or timed-out connection is a failure
                errors.append(f"{role}: {type(exc).__name__}: {exc}")
                if len(errors) > 20:
                    break
    out[role] = {"tally": dict(tally), "errors": errors}


def _client_process(url: str, index: int, seconds: float, result_path: str) -> None:
    deadline = time.monotonic() + seconds
    out: dict[str, object] = {}
    threads = [
        threading.Thread(target=_run_role, args=(url, role, index * 10 + n, deadline, out))
        for n, role in enumerate(ROLES)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(result_path).write_text(json.dumps(out))


# --- the measurements --------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    rss_mb: float
    threads: int
    fds: int
    healthz_ms: float


def _sample(pid: int, started: float, client: httpx.Client) -> Sample:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    began = time.perf_counter()
    assert client.get("/healthz").status_code == 200
    return Sample(
        at=time.monotonic() - started,
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
        threads=int(fields["Threads"]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        healthz_ms=(time.perf_counter() - began) * 1000,
    )


def _table(samples: list[Sample]) -> str:
    """About a dozen rows, the last one taken after the clients left."""
    step = max(1, len(samples) // 12)
    shown = [*samples[:-1:step], samples[-1]]
    rows = ["   t s   RSS MB  threads  fds  healthz ms"]
    rows += [
        f"{s.at:6.1f}  {s.rss_mb:7.1f}  {s.threads:7d}  {s.fds:3d}  {s.healthz_ms:10.1f}"
        for s in shown
    ]
    return "\n".join(rows)


@pytest.mark.slow
def test_soak_mixed_reads_writes_and_watches_stays_bounded(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'soak.db'}"
    # A long --max-wait: a watch that outlived its client would be seen holding on.
    with running_server(store, args=["--max-wait", "30"]) as server:
        spawn = multiprocessing.get_context("spawn")
        results = [tmp_path / f"client-{i}.json" for i in range(CLIENTS)]
        clients = [
            spawn.Process(target=_client_process, args=(server.url, i, SECONDS, str(path)))
            for i, path in enumerate(results)
        ]
        started = time.monotonic()
        for process in clients:
            process.start()
        samples: list[Sample] = []
        with httpx.Client(base_url=server.url, timeout=15) as probe:
            while any(process.is_alive() for process in clients):
                samples.append(_sample(server.proc.pid, started, probe))
                time.sleep(1)
            for process in clients:
                process.join(timeout=30)
            # Once the clients are gone, what they held must be given back.
            time.sleep(1)
            settled = _sample(server.proc.pid, started, probe)
        log = server.log_text()
        assert server.alive, log[-3000:]

    tallies: Counter[str] = Counter()
    errors: list[str] = []
    for path in results:
        for role in json.loads(path.read_text()).values():
            tallies.update(role["tally"])
            errors += role["errors"]
    table = _table([*samples, settled])
    print(f"\nsoak: {SECONDS:g} s, {CLIENTS} client processes\n{table}")
    print("answers:", dict(sorted(tallies.items())))
    report = f"{table}\n{dict(sorted(tallies.items()))}\n{errors[:10]}\n{log[-3000:]}"

    assert not errors, report
    assert not [status for status in tallies if status.split()[-1].startswith("5")], report
    assert "Traceback" not in log, report
    for kind in ("write 200", "read 200", "watch 200", "events 200"):
        assert tallies[kind] > 0, f"no {kind!r} at all: {report}"
    assert tallies["events received"] > 0, report
    total = sum(n for status, n in tallies.items() if status.split()[-1].isdigit())
    assert total >= 20 * SECONDS, f"only {total} requests: {report}"

    warm = [s for s in samples if s.at >= WARM_UP] or samples[-1:]
    growth = max(s.rss_mb for s in [*warm, settled]) - warm[0].rss_mb
    assert growth < RSS_GROWTH_MB, f"RSS grew {growth:.1f} MB after warm-up\n{report}"
    assert max(s.threads for s in [*samples, settled]) <= MAX_THREADS, report
    assert max(s.fds for s in [*samples, settled]) <= MAX_FDS, report
    # Nothing the clients opened is still held once they are gone — but the few inotify
    # instances the watchers' waits keep for the next waits (a bounded pool: closing one
    # costs the kernel ~10 ms, see statebox.backends._fswait).
    assert settled.fds <= samples[0].fds + 8 + _fswait.KEEP_IDLE, report
