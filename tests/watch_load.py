"""Many watching clients against one real server, over raw loopback sockets.

Shared by tests/test_watch_scaling.py (a few hundred clients) and bench/bench_watch.py
(the full 1,000 long polls plus 1,000 event streams of issue #12). Every client is an
asyncio connection of this process speaking plain HTTP/1.1, so one process can hold
thousands of them cheaply; the server is a real ``python -m statebox.server`` whose
threads and memory are read from ``/proc/PID/status``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LoadFigures",
    "cancel_streams",
    "proc_status",
    "run_load",
]

#: Clients opened at once: bursts past the listen backlog would cost SYN retries.
BATCH = 100


def proc_status(pid: int) -> tuple[int, int]:
    """The process's thread count and resident memory in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])


def _head(method: str, path: str, token: str | None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if method in ("PUT", "POST"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response with a Content-Length body: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await _connect(port)
    try:
        writer.write(_head(method, path, None, body))
        return await _response(reader)
    finally:
        writer.close()


class Stream:
    """An open event stream: ``GET /v1/events/...``, its head read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str, token: str | None = None) -> Stream:
        reader, writer = await _connect(port)
        writer.write(_head("GET", path, token))
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            writer.close()
            raise RuntimeError(f"event stream refused: {head[:200]!r}")
        await reader.readuntil(b": watching")
        return cls(reader, writer)

    async def next_event(self) -> float:
        """Wait for the next event; when it came (monotonic seconds)."""
        await self.reader.readuntil(b"event: ")
        return time.monotonic()

    def close(self) -> None:
        self.writer.close()


async def cancel_streams(port: int, path: str, cycles: int, at_once: int = 50) -> None:
    """Open an event stream, wait until it watches, close it: ``cycles`` times."""

    async def one() -> None:
        (await Stream.open(port, path)).close()

    for start in range(0, cycles, at_once):
        await asyncio.gather(*(one() for _ in range(min(at_once, cycles - start))))


@dataclass
class LoadFigures:
    long_polls: int
    streams: int
    threads_before: int = 0
    rss_kib_before: int = 0
    threads_waiting: int = 0  # while every client waits
    rss_kib_waiting: int = 0
    threads_after: int = 0  # once every client is gone
    get_ms: list[float] = field(default_factory=list)  # another client's gets
    other_long_poll_s: float = float("nan")  # another tenant's long poll, write to answer
    fanout_s: list[float] = field(default_factory=list)  # one write to each stream's event
    streams_missed: int = 0  # streams with no event by the end of the wait
    long_polls_answered_s: float = float("nan")  # one write to the last long poll answer
    long_polls_missed: int = 0

    def p(self, samples: list[float], pct: float) -> float:
        ordered = sorted(samples)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]

    def within(self, seconds: float) -> int:
        return sum(1 for delay in self.fanout_s if delay <= seconds)

    def summary(self) -> str:
        return (
            f"{self.long_polls} long polls + {self.streams} event streams: "
            f"server threads {self.threads_before} idle -> {self.threads_waiting} waiting "
            f"-> {self.threads_after} after; RSS {self.rss_kib_before / 1024:.0f} -> "
            f"{self.rss_kib_waiting / 1024:.0f} MiB; another client's get p50 "
            f"{self.p(self.get_ms, 50):.1f} ms p99 {self.p(self.get_ms, 99):.1f} ms "
            f"max {max(self.get_ms, default=float('nan')):.1f} ms; another tenant's long "
            f"poll answered {self.other_long_poll_s * 1000:.0f} ms after its write; one "
            f"write reached {self.within(1.0)}/{self.streams} streams within 1 s (max "
            f"{max(self.fanout_s, default=float('nan')) * 1000:.0f} ms, "
            f"{self.streams_missed} missed); the long polls all answered "
            f"{self.long_polls_answered_s * 1000:.0f} ms after their write "
            f"({self.long_polls_missed} missed)"
        )


async def _gets(port: int, count: int) -> list[float]:
    reader, writer = await _connect(port)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(_head("GET", "/v1/kv/custom/probe/k", None))
            status, _ = await _response(reader)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
    finally:
        writer.close()
    return samples


async def run_load(
    port: int,
    pid: int,
    *,
    long_polls: int,
    streams: int,
    gets: int = 300,
    wait: float = 15.0,
    tokens: tuple[str | None, ...] = (None,),
) -> LoadFigures:
    """Open ``long_polls`` long polls (on one key nobody writes until the end) and
    ``streams`` event streams (on one key), then measure what issue #12 asks: the
    server's threads and memory, another client's gets while all of them wait, another
    tenant's long poll, how fast one write reaches every stream, and every long poll.
    Clients take turns over ``tokens`` (to stay under a per-token watch limit)."""
    figures = LoadFigures(long_polls, streams)
    figures.threads_before, figures.rss_kib_before = proc_status(pid)
    assert (await request(port, "PUT", "/v1/kv/custom/probe/k", b"1"))[0] == 200

    polls: list[asyncio.Task[tuple[int, bytes]]] = []
    poll_writers: list[asyncio.StreamWriter] = []

    async def long_poll(token: str | None) -> tuple[int, bytes]:
        reader, writer = await _connect(port)
        poll_writers.append(writer)
        writer.write(_head("GET", "/v1/watch/custom/lp?key=idle&timeout=120", token))
        return await _response(reader)

    for i in range(long_polls):
        polls.append(asyncio.create_task(long_poll(tokens[i % len(tokens)])))
        if i % BATCH == BATCH - 1:
            await asyncio.sleep(0.05)
    opened: list[Stream] = []
    for start in range(0, streams, BATCH):
        opened += await asyncio.gather(
            *(
                Stream.open(port, "/v1/events/custom/sse?key=hot", tokens[i % len(tokens)])
                for i in range(start, min(streams, start + BATCH))
            )
        )
    await asyncio.sleep(1.0)  # the long polls reach their wait
    try:
        figures.threads_waiting, figures.rss_kib_waiting = proc_status(pid)
        figures.get_ms = await _gets(port, gets)

        other = asyncio.create_task(request(port, "GET", "/v1/watch/custom/other?key=k&timeout=60"))
        await asyncio.sleep(0.3)
        written = time.monotonic()
        assert (await request(port, "PUT", "/v1/kv/custom/other/k", b"1"))[0] == 200
        try:
            await asyncio.wait_for(other, wait)
            figures.other_long_poll_s = time.monotonic() - written
        except TimeoutError:
            figures.other_long_poll_s = float("inf")

        events = [asyncio.create_task(stream.next_event()) for stream in opened]
        written = time.monotonic()
        assert (await request(port, "PUT", "/v1/kv/custom/sse/hot", b"1"))[0] == 200
        done, pending = await asyncio.wait(events, timeout=wait) if events else (set(), set())
        figures.fanout_s = [task.result() - written for task in done]
        figures.streams_missed = len(pending)
        for task in pending:
            task.cancel()

        written = time.monotonic()
        assert (await request(port, "PUT", "/v1/kv/custom/lp/idle", b"1"))[0] == 200
        done_polls, pending_polls = (
            await asyncio.wait(polls, timeout=wait) if polls else (set(), set())
        )
        figures.long_polls_answered_s = (
            time.monotonic() - written if not pending_polls else float("inf")
        )
        figures.long_polls_missed = len(pending_polls) + sum(
            1 for task in done_polls if task.exception() is not None or task.result()[0] != 200
        )
        for poll in pending_polls:
            poll.cancel()
    finally:
        for stream in opened:
            stream.close()
        for writer in poll_writers:
            writer.close()
    await asyncio.sleep(1.0)
    figures.threads_after, _ = proc_status(pid)
    return figures
