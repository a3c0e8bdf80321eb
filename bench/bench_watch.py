"""Issue #12, "one client cannot starve the others": many watchers on one server.

Runs a real server over a SQLite file and, from this process, 1,000 long polls plus
1,000 event streams (asyncio raw sockets, tests/watch_load.py), then reports the
server's threads and memory while they wait, another client's ``get`` latency, another
tenant's long poll, how fast one write reaches every stream, and how the long polls end.
Then 15,000 open-and-close cycles of an event stream, and the threads left after.

    python -m bench.bench_watch                      # this tree
    python -m bench.bench_watch --server-path DIR    # another tree's src/ (before)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.server_util import running_server
from tests.watch_load import cancel_streams, proc_status, request, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long-polls", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=15_000)
    parser.add_argument("--server-path", help="PYTHONPATH of the server (an older src/)")
    args = parser.parse_args()
    env = {"PYTHONPATH": args.server_path} if args.server_path else {}
    # The old server has no --max-watches-per-token; this one needs room for 2,000.
    extra = [] if args.server_path else ["--max-watches-per-token", "4096"]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'state.db'}?synchronous=NORMAL"
        with running_server(url, env=env, args=extra) as server:
            port = int(server.url.rsplit(":", 1)[1])
            figures = asyncio.run(
                run_load(
                    port,
                    server.proc.pid,
                    long_polls=args.long_polls,
                    streams=args.streams,
                    wait=15.0,
                )
            )
            print(figures.summary(), flush=True)
            if args.cycles:
                before, _ = proc_status(server.proc.pid)
                started = time.monotonic()
                asyncio.run(cancel_streams(port, "/v1/events/custom/c?key=k", args.cycles))
                after, rss = proc_status(server.proc.pid)
                status = asyncio.run(_write(port))
                print(
                    f"{args.cycles} event streams opened and closed in "
                    f"{time.monotonic() - started:.1f} s: server threads {before} -> {after}, "
                    f"RSS {rss / 1024:.0f} MiB; a write after them answered {status}",
                    flush=True,
                )


async def _write(port: int) -> int:
    status, _ = await request(port, "PUT", "/v1/kv/custom/c/after", b"1")
    return status


if __name__ == "__main__":
    main()
