"""Issue #12, "one client cannot starve the others": many watchers on one server.

Runs a real server over a SQLite file and, from this process, 1,000 long polls plus
1,000 event streams (asyncio raw sockets, tests/watch_load.py), then reports the
server's threads and memory while they wait, another client's ``get`` latency, another
tenant's long poll, how fast one write reaches every stream, and how the long polls end.
Then 15,000 open-and-close cycles of an event stream, and the threads left after.
Targets from the issue: another client's get p99 under 100 ms, a write reaching every
stream within 1 s, threads and RSS bounded (read here as: at most 8 threads more than
idle, under 100 MiB more than idle, and no thread left behind by the dropped streams).

With ``STATEBOX_BENCH_BASE=DIR`` (another tree's ``src/``) the same runs on a server
started with ``PYTHONPATH=DIR``: the baseline column (the code before issue #12 held a
thread per waiting watch and answered few of them; its figures say how).

    .venv/bin/python -m bench.run watch
    .venv/bin/python -m bench.bench_watch --long-polls 300 --streams 300 --cycles 1000
    .venv/bin/python -m bench.bench_watch --server-path DIR    # only another tree's src/
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.server_util import running_server
from tests.watch_load import LoadFigures, cancel_streams, proc_status, request, run_load

from .common import Row, Section

LONG_POLLS = 1000
STREAMS = 1000
CYCLES = 15_000
#: How long the load waits for an answer, an event, a long poll to end.
WAIT = 15.0
#: The whole load on one server (a server that answers nothing must not hang the bench).
LOAD_TIMEOUT = 180.0
#: The code before issue #12 leaves a thread behind per dropped stream for a while: its
#: run stops at this many cycles (thousands of threads would burden the machine).
BASE_CYCLES = 1000
BASE_ENV = "STATEBOX_BENCH_BASE"


@dataclass
class Measured:
    load: LoadFigures
    cycles: int
    cycle_seconds: float = math.nan
    threads_before_cycles: int = 0
    threads_after_cycles: int = 0
    rss_kib_after_cycles: int = 0
    write_after_cycles: int = 0  # the status of a write after the cycles


def measure(
    workdir: Path, server_path: str | None, long_polls: int, streams: int, cycles: int
) -> Measured:
    env = {"PYTHONPATH": server_path} if server_path else None
    # The code before issue #12 has no --max-watches-per-token; this one needs room.
    extra = [] if server_path else ["--max-watches-per-token", str(long_polls + streams + 64)]
    db = workdir / f"watch-{'base' if server_path else 'new'}.db"
    with running_server(f"sqlite:///{db}?synchronous=NORMAL", env=env, args=extra) as server:
        port = int(server.url.rsplit(":", 1)[1])
        load = asyncio.run(
            asyncio.wait_for(
                run_load(port, server.proc.pid, long_polls=long_polls, streams=streams, wait=WAIT),
                LOAD_TIMEOUT,
            )
        )
        measured = Measured(load, cycles)
        if cycles:
            measured.threads_before_cycles, _ = proc_status(server.proc.pid)
            started = time.monotonic()
            asyncio.run(cancel_streams(port, "/v1/events/custom/c?key=k", cycles))
            measured.cycle_seconds = time.monotonic() - started
            measured.threads_after_cycles, measured.rss_kib_after_cycles = proc_status(
                server.proc.pid
            )
            measured.write_after_cycles = asyncio.run(_write(port))
        return measured


async def _write(port: int) -> int:
    status, _ = await request(port, "PUT", "/v1/kv/custom/c/after", b"1")
    return status


def _rows(new: Measured, old: Measured | None) -> list[Row]:
    def pair(pick: Callable[[Measured], float]) -> tuple[float, float | None]:
        return float(pick(new)), None if old is None else float(pick(old))

    load = new.load
    more_threads = pair(lambda m: m.load.threads_waiting - m.load.threads_before)
    more_rss = pair(lambda m: (m.load.rss_kib_waiting - m.load.rss_kib_before) / 1024)
    get_p99 = pair(lambda m: m.load.p(m.load.get_ms, 99))
    reached = pair(lambda m: m.load.within(1.0))
    fanout_max = pair(lambda m: max(m.load.fanout_s, default=math.inf) * 1000)
    rows = [
        Row("server threads while all wait, over idle", "threads", *more_threads,
            "<= 8", more_threads[0] <= 8),
        Row("server RSS while all wait, over idle", "MiB", *more_rss, "< 100", more_rss[0] < 100),
        Row("  RSS while all wait", "MiB", *pair(lambda m: m.load.rss_kib_waiting / 1024)),
        Row("another client's get p50", "ms", *pair(lambda m: m.load.p(m.load.get_ms, 50))),
        Row("another client's get p99", "ms", *get_p99, "< 100", get_p99[0] < 100),
        Row("another tenant's long poll, write to answer", "ms",
            *pair(lambda m: m.load.other_long_poll_s * 1000)),
        Row("streams one write reached within 1 s", "streams", *reached,
            f"{load.streams:,}", reached[0] == load.streams),
        Row("  slowest stream, write to event", "ms", *fanout_max, "< 1,000",
            fanout_max[0] < 1000),
        Row("long polls answered after their write", "count",
            *pair(lambda m: m.load.long_polls - m.load.long_polls_missed),
            f"{load.long_polls:,}", load.long_polls_missed == 0),
        Row("  last long poll, write to answer", "ms",
            *pair(lambda m: m.load.long_polls_answered_s * 1000)),
        Row("server threads once all left, over idle", "threads",
            *pair(lambda m: m.load.threads_after - m.load.threads_before)),
    ]  # fmt: skip
    if new.cycles:
        left = pair(lambda m: m.threads_after_cycles - m.threads_before_cycles)
        rows += [
            Row("streams opened and dropped", "count", *pair(lambda m: m.cycles)),
            Row("  in", "s", *pair(lambda m: m.cycle_seconds)),
            Row("  threads left behind", "threads", *left, "0", left[0] <= 0),
            Row("  RSS after them", "MiB", *pair(lambda m: m.rss_kib_after_cycles / 1024)),
            Row("  a write after them: status", "status", *pair(lambda m: m.write_after_cycles),
                "200", new.write_after_cycles == 200),
        ]  # fmt: skip
    return rows


def run(workdir: Path, long_polls: int = LONG_POLLS, streams: int = STREAMS,
        cycles: int = CYCLES) -> list[Section]:  # fmt: skip
    new = measure(workdir, None, long_polls, streams, cycles)
    base = os.environ.get(BASE_ENV)
    old = None
    if base:
        try:
            old = measure(workdir, base, long_polls, streams, min(cycles, BASE_CYCLES))
        except (TimeoutError, RuntimeError, OSError, AssertionError) as exc:
            base = f"{base} (its run failed: {type(exc).__name__}: {str(exc)[:120]})"
    title = (
        f"watches: {long_polls:,} long polls + {streams:,} event streams on one server "
        f"over SQLite, then {cycles:,} streams opened and dropped"
    )
    return [Section(title, base or "targets only", _rows(new, old))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long-polls", type=int, default=LONG_POLLS)
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--server-path", help="PYTHONPATH of the server (an older src/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(Path(tmp), args.server_path, args.long_polls, args.streams, args.cycles)
    print(measured.load.summary())
    if args.cycles:
        print(
            f"{args.cycles} event streams opened and closed in {measured.cycle_seconds:.1f} s: "
            f"server threads {measured.threads_before_cycles} -> "
            f"{measured.threads_after_cycles}, RSS {measured.rss_kib_after_cycles / 1024:.0f} "
            f"MiB; a write after them answered {measured.write_after_cycles}"
        )


if __name__ == "__main__":
    main()
