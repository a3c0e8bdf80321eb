"""One waiter per server, not one thread per waiting client (SPEC §8).

Every long poll, event stream and ``/v1/changes`` wait of a server waits here, as an
asyncio future on the event loop. One background thread per *channel* notices changes
in the backend and wakes every future of its channel at once; each woken request then
looks at its own keys again (its own cheap re-check) and, if nothing of its own
changed, waits again. A client that leaves drops its future: nothing else to release.

A channel is the whole store when the backend has one change token for every keyspace
(memory, SQLite, file, and PostgreSQL's count of all its notifications:
:meth:`~statebox.backends.base.Backend.store_change_token`), so those servers run one
thread however many clients wait; it is one keyspace otherwise (a server over a remote
``http://`` store), one thread per keyspace being watched. A channel's thread parks when
nobody waits and ends after :data:`IDLE_EXIT` seconds of that.

No change is ever missed, without comparing tokens per waiter: a request takes a
:class:`Mark` (the channel's *generation*, a count of wake-ups) *before* it looks at its
keys; :meth:`ChangeHub.wait` returns at once if the generation moved since. The thread
detects a commit only after it happened, so a commit after the look's token read is
either already counted in the generation or still to come, and wakes the request. A
thread that (re)starts waiting first wakes everyone once: changes before its first
token read are covered that way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Final

from ..backends.base import Backend
from ..core.errors import StateboxError
from ..core.model import Keyspace

__all__ = ["ChangeHub", "Mark"]

log = logging.getLogger("statebox.server")

#: The longest the thread blocks in the backend before it checks whether anyone still
#: waits (and whether the server stops).
SLICE: Final = 1.0
#: Seconds a channel's thread stays parked with nobody waiting before it ends.
IDLE_EXIT: Final = 30.0
#: Seconds between attempts while the backend cannot be asked for its change token.
RETRY_DELAY: Final = 1.0


@dataclass(eq=False)
class _Channel:
    """The waiters of one channel (loop side) and the thread that wakes them."""

    key: Keyspace | None  # None: the whole store
    loop: asyncio.AbstractEventLoop  # where the waiters' futures live
    generation: int = 0
    alive: bool = True
    waiters: set[asyncio.Future[None]] = field(default_factory=set)
    wanted: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a channel stood when a request began to look at its keys."""

    channel: _Channel
    generation: int


class ChangeHub:
    """The change notifications of one backend, for every waiting request of a server."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._store_wide = backend.capabilities.store_wide_changes
        # Guards ``_channels`` and each channel's ``alive``/``waiters`` against the
        # channel threads (held for microseconds, never across a wait).
        self._lock = threading.Lock()
        self._channels: dict[Keyspace | None, _Channel] = {}
        self._stopping = threading.Event()
        self.threads_started = 0  # for tests and metrics: how many channel threads ran

    def mark(self, keyspace: Keyspace) -> Mark:
        """Call before looking at ``keyspace``'s entries; pass the mark to :meth:`wait`."""
        key = None if self._store_wide else keyspace
        loop = asyncio.get_running_loop()
        with self._lock:
            channel = self._channels.get(key)
            if channel is None or not channel.alive or channel.loop is not loop:
                channel = self._channels[key] = _Channel(key, loop)
                self._start(channel)
            return Mark(channel, channel.generation)

    async def wait(self, mark: Mark, timeout: float) -> None:
        """Return when the channel may have changed since ``mark`` (at once if it did
        already), or after ``timeout`` seconds. Cancellation releases everything."""
        channel = mark.channel
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if not channel.alive or channel.generation != mark.generation:
                return
            channel.waiters.add(future)
        channel.wanted.set()
        try:
            await asyncio.wait_for(future, max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            with self._lock:
                channel.waiters.discard(future)

    def waiting(self) -> int:
        """Requests waiting now, in every channel."""
        with self._lock:
            return sum(len(channel.waiters) for channel in self._channels.values())

    def close(self) -> None:
        """Stop every channel's thread (each ends within :data:`SLICE` seconds)."""
        self._stopping.set()
        with self._lock:
            channels = list(self._channels.values())
        for channel in channels:
            channel.wanted.set()

    # -- the channel threads ----------------------------------------------------------

    def _start(self, channel: _Channel) -> None:
        thread = threading.Thread(
            target=self._run, args=(channel,), name="statebox-changes", daemon=True
        )
        thread.start()
        self.threads_started += 1

    def _token(self, channel: _Channel) -> int:
        if channel.key is None:
            token = self._backend.store_change_token()
            assert token is not None  # _store_wide says the backend has one
            return token
        return self._backend.change_token(channel.key)

    def _wait_for_change(self, channel: _Channel, token: int, timeout: float) -> int:
        if channel.key is None:
            return self._backend.wait_for_store_change(token, timeout)
        return self._backend.wait_for_change(channel.key, token, timeout)

    def _run(self, channel: _Channel) -> None:
        # None: must (re)read the baseline, then wake everyone. Kept while parked: the
        # first wait after it returns at once if the store changed meanwhile.
        token: int | None = None
        failing = False
        while not self._stopping.is_set():
            if not channel.waiters:  # nobody waits: park (a set's size is safe to read)
                channel.wanted.clear()
                if not channel.waiters and not channel.wanted.wait(IDLE_EXIT):
                    with self._lock:
                        if not channel.waiters and not channel.wanted.is_set():
                            channel.alive = False  # the next mark() starts a new thread
                            return
                continue
            try:
                if token is None:
                    token = self._token(channel)
                    self._wake(channel)
                    continue
                seen = self._wait_for_change(channel, token, SLICE)
            except StateboxError as exc:
                if not failing:
                    log.warning("statebox: watching for changes failed: %s", exc.message)
                failing, token = True, None
                self._stopping.wait(RETRY_DELAY)
                self._wake(channel)  # the waiters look themselves, and report the error
                continue
            failing = False
            if seen != token:
                token = seen
                self._wake(channel)
        with self._lock:
            channel.alive = False

    def _wake(self, channel: _Channel) -> None:
        try:
            channel.loop.call_soon_threadsafe(self._on_change, channel)
        except RuntimeError:  # the loop is closed: the server is gone
            self._stopping.set()

    def _on_change(self, channel: _Channel) -> None:
        """On the loop: one wake-up of every waiter of the channel."""
        with self._lock:
            channel.generation += 1
            waiters, channel.waiters = channel.waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)
