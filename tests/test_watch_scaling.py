"""One client cannot starve the others (issue #12 §3, SPEC §8): watches hold no thread.

Real servers over SQLite files, real sockets: hundreds of long polls and event streams
at once (tests/watch_load.py), streams opened and dropped by the thousand, and the
per-token limit on open watches. The full 1,000 + 1,000 figures are bench/bench_watch.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server_util import ServerProcess, running_server
from .watch_load import Stream, cancel_streams, proc_status, request, run_load

ALICE = "alice-secret-0123456789abcdef"
BOB = "bob-secret-0123456789abcdefgh"

TOKENS_YAML = f"""
tokens:
  - name: alice
    secret: {ALICE}
    grants:
      - {{access: write}}
  - name: bob
    secret: {BOB}
    grants:
      - {{access: write}}
"""


#: Generous bounds for a loaded 2-core CI machine; the code before issue #12 never
#: answered most of these at all (a thread per waiting watch, the pool exhausted). The
#: issue's own figures (get p99 under 100 ms, every stream reached within 1 s) are
#: measured by ``python -m bench.run watch`` (bench/bench_watch.py), not asserted here.
ANSWERED_WITHIN_S = 10.0
GET_P99_MS = 1000.0
#: The change hub's own timeout in its tests: far past ANSWERED_WITHIN_S, so a waiter
#: that returns in time was woken, not timed out.
HUB_WAIT_S = 60.0


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(f"sqlite:///{tmp_path / 'state.db'}?synchronous=NORMAL") as srv:
        yield srv


@pytest.mark.slow
def test_many_waiting_watchers_starve_nobody(server: ServerProcess) -> None:
    figures = asyncio.run(
        run_load(
            _port(server), server.proc.pid, long_polls=300, streams=300, wait=ANSWERED_WITHIN_S
        )
    )
    print(figures.summary())
    # No thread per waiting client: a handful, however many wait.
    assert figures.threads_waiting <= figures.threads_before + 8, figures.summary()
    assert figures.threads_after <= figures.threads_before + 8, figures.summary()
    # Another client is served at once, and another tenant's long poll is answered.
    assert figures.p(figures.get_ms, 99) < GET_P99_MS, figures.summary()
    assert figures.other_long_poll_s < ANSWERED_WITHIN_S, figures.summary()
    # One write reaches every stream; every long poll is answered.
    assert figures.within(ANSWERED_WITHIN_S) == 300, figures.summary()
    assert figures.streams_missed == 0, figures.summary()
    assert figures.long_polls_missed == 0, figures.summary()
    assert figures.long_polls_answered_s < ANSWERED_WITHIN_S, figures.summary()
    assert server.alive


def test_dropped_event_streams_leave_no_thread_behind(server: ServerProcess) -> None:
    port = _port(server)
    threads_before, _ = proc_status(server.proc.pid)
    asyncio.run(cancel_streams(port, "/v1/events/custom/c?key=k", cycles=600))
    threads_after, _ = proc_status(server.proc.pid)
    assert threads_after <= threads_before + 4, (threads_before, threads_after)
    status, _ = asyncio.run(request(port, "PUT", "/v1/kv/custom/c/k", b"1"))
    assert status == 200


def test_a_long_poll_whose_client_left_is_released_at_once(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    args = ["--max-watches-per-token", "1"]
    with running_server(f"sqlite:///{db}", args=args) as server:
        port = _port(server)
        with socket.create_connection(("127.0.0.1", port)) as left:
            left.sendall(
                b"GET /v1/watch/custom/n?key=k&timeout=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            time.sleep(0.3)  # the long poll waits, holding the one slot
            busy = httpx.get(f"{server.url}/v1/watch/custom/n", params={"key": "k", "timeout": "0"})
            assert busy.status_code == 429
        # Its client is gone: the slot is free well before the poll's 60 s.
        deadline = time.monotonic() + ANSWERED_WITHIN_S
        while True:
            answer = httpx.get(
                f"{server.url}/v1/watch/custom/n", params={"key": "k", "timeout": "0"}
            )
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer.status_code == 200, answer.text


def test_open_watches_are_limited_per_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(TOKENS_YAML)
    db = tmp_path / "state.db"
    args = ["--max-watches-per-token", "3"]
    with running_server(f"sqlite:///{db}", tokens=tokens, args=args) as server:
        port = _port(server)

        async def scenario() -> None:
            path = "/v1/events/custom/n?key=k"
            mine = [await Stream.open(port, path, ALICE) for _ in range(2)]
            poll = asyncio.create_task(
                asyncio.to_thread(
                    httpx.get,
                    f"{server.url}/v1/watch/custom/n",
                    params={"key": "k", "timeout": "30"},
                    headers={"authorization": f"Bearer {ALICE}"},
                    timeout=60,
                )
            )
            await asyncio.sleep(0.3)  # two streams and a long poll: alice's three
            refused = await asyncio.to_thread(
                httpx.get,
                f"{server.url}/v1/events/custom/n",
                params={"key": "k"},
                headers={"authorization": f"Bearer {ALICE}"},
            )
            assert refused.status_code == 429
            error = refused.json()["error"]
            assert error["kind"] == "too_many_requests"
            assert "--max-watches-per-token" in error["message"] and "3" in error["message"]
            # Another token is not affected by alice's watches.
            others = [await Stream.open(port, path, BOB) for _ in range(3)]
            # A stream that ends gives its slot back at once.
            mine.pop().close()
            await asyncio.sleep(0.2)
            mine.append(await Stream.open(port, path, ALICE))
            written = await asyncio.to_thread(
                httpx.put,
                f"{server.url}/v1/kv/custom/n/k",
                content=b"1",
                headers={"authorization": f"Bearer {BOB}", "content-type": "application/json"},
            )
            assert written.status_code == 200
            assert (await poll).json()["events"][0]["version"] == 1
            for stream in mine + others:
                await asyncio.wait_for(stream.next_event(), ANSWERED_WITHIN_S)
                stream.close()

        asyncio.run(scenario())


def test_a_server_over_a_remote_store_wakes_its_watchers() -> None:
    # A server whose store is another server (http://): one waiter per watched
    # namespace there, as the remote store's change tokens are per namespace.
    with running_server("memory://") as origin, running_server(origin.url) as front:
        port = _port(front)

        async def scenario() -> None:
            streams = [await Stream.open(port, "/v1/events/custom/a?key=k") for _ in range(20)]
            quiet = await Stream.open(port, "/v1/events/custom/b?key=k")
            status, _ = await request(_port(origin), "PUT", "/v1/kv/custom/a/k", b"1")
            assert status == 200
            await asyncio.wait_for(
                asyncio.gather(*(s.next_event() for s in streams)), ANSWERED_WITHIN_S
            )
            with pytest.raises(TimeoutError):  # another namespace's write is not its event
                await asyncio.wait_for(quiet.next_event(), 0.5)
            for stream in [*streams, quiet]:
                stream.close()

        asyncio.run(scenario())


def test_the_change_hub_wakes_every_waiter_with_one_thread() -> None:
    from statebox.backends.base import Put, WriteContext
    from statebox.backends.memory import MemoryBackend
    from statebox.core.model import Keyspace, UpdatedBy
    from statebox.core.values import normalize
    from statebox.server.changes_hub import ChangeHub

    backend = MemoryBackend("memory://")
    hub = ChangeHub(backend)
    spaces = [Keyspace("custom", f"n{i}") for i in range(50)]

    def write(space: Keyspace) -> None:
        context = WriteContext(now=1, updated_by=UpdatedBy(), history_limit=0)
        backend.apply(space, [Put("k", normalize(1), None, False, None, None)], context)

    async def scenario() -> None:
        # The thread starts with the first mark, and wakes its waiters once when ready
        # (changes before it took its first token are covered that way).
        await asyncio.wait_for(hub.wait(hub.mark(spaces[0]), HUB_WAIT_S), ANSWERED_WITHIN_S)
        marks = [hub.mark(space) for space in spaces]
        waits = [asyncio.create_task(hub.wait(mark, HUB_WAIT_S)) for mark in marks]
        await asyncio.sleep(0.2)
        assert hub.waiting() == 50
        await asyncio.to_thread(write, spaces[0])
        # all woken by the one write, each to look again
        await asyncio.wait_for(asyncio.gather(*waits), ANSWERED_WITHIN_S)
        # A change between the mark and the wait is not missed: the wait returns at once.
        mark = hub.mark(spaces[1])
        await asyncio.to_thread(write, spaces[1])
        await asyncio.sleep(0.2)
        await asyncio.wait_for(hub.wait(mark, HUB_WAIT_S), ANSWERED_WITHIN_S)
        # A waiter that is cancelled leaves nothing behind.
        waiter = asyncio.create_task(hub.wait(hub.mark(spaces[2]), 10))
        await asyncio.sleep(0.05)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert hub.waiting() == 0
        assert hub.threads_started == 1  # one thread for the whole store
        hub.close()

    asyncio.run(scenario())
