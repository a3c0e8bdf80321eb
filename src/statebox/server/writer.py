"""Group commit: the server's writes, committed together, one fsync for many.

For a backend with ``Capabilities.group_commit`` (SQLite: one writer at a time, and a
durable commit costs an fsync). The writes that requests queue during one turn of the
event loop run in one transaction (:meth:`~statebox.backends.base.GroupCommit.
try_write_together`; on SQLite a savepoint each, one commit, one fsync), on
the loop itself — a hand-off to a thread and back costs more CPU than the write — and
each caller gets its own outcome; no answer is sent before its write is durable. That
is what etcd does with its log, and what makes many writers cheaper than one.

While another connection holds the write lock (another process, or this writer's
thread) the loop tries again a little later instead of waiting, so reads go on being
answered. A call marked ``alone`` (an ``update``, whose transform may run for a while, or
a big transaction: :func:`is_big_batch`) runs on the writer thread in a transaction of
its own, so no group ever waits on it; so do writes from a second event loop, should an
application serve from two.

The fsync stays in the commit, on the loop: docs/http.md ("Performance") lists the
alternatives that were measured and why each was left out.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, Final, NamedTuple, TypeVar

from ..backends.base import GroupCommit
from ..core.errors import BackendUnavailableError

__all__ = ["BIG_BATCH_BYTES", "BIG_BATCH_OPS", "GroupCommitWriter", "is_big_batch"]

T = TypeVar("T")
MAX_GROUP: Final = 256  # writes per transaction: bounds how long one commit can take
# A request whose batch has more operations or bytes than these is big: its values are
# parsed, normalized and committed on a thread (``alone``), never on the event loop,
# where one 128-operation transaction of 1 MiB values would stop every other request.
# Below them the work takes well under a millisecond and the thread hop would cost more.
BIG_BATCH_OPS: Final = 16
BIG_BATCH_BYTES: Final = 64 * 1024
# While another connection writes, the loop tries again after 50 µs, then twice as long
# each time up to 1 ms: SQLite's own busy handler sleeps 1, 2, 5, 10… ms.
_FIRST_BACKOFF: Final = 0.00005
_LAST_BACKOFF: Final = 0.001


def is_big_batch(ops: int, body_bytes: int) -> bool:
    """Whether a request's batch must run off the event loop (see BIG_BATCH_OPS)."""
    return ops > BIG_BATCH_OPS or body_bytes > BIG_BATCH_BYTES


class _Job(NamedTuple):
    work: Callable[[], Any]
    alone: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupCommitWriter:
    def __init__(self, backend: GroupCommit) -> None:
        self._backend = backend
        self._queue: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        # The writes waiting for _commit_inline on the event loop (the first one seen).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inline: list[_Job] = []
        self._retry: asyncio.TimerHandle | None = None
        self._locked_since: float | None = None
        self._backoff = _FIRST_BACKOFF
        self._thread = threading.Thread(target=self._run, name="statebox-writer", daemon=True)
        self._thread.start()

    async def submit(self, work: Callable[[], T], *, alone: bool = False) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(work, alone, future, loop)
        if self._loop is None:
            self._loop = loop
        if alone or loop is not self._loop:
            self._enqueue([job])
        else:
            if not self._inline and self._retry is None:
                # Not on the next turn of the loop but the one after: the requests read
                # from the network meanwhile reach their writes first and join this
                # group (measured with 8 writers: 3.8 writes a group instead of 3.0, and
                # 16 % more writes per second).
                loop.call_soon(loop.call_soon, self._commit_inline)
            self._inline.append(job)
        # A caller that goes away cancels only its wait: the write, once queued, is done.
        return await future

    def _commit_inline(self) -> None:
        """The writes queued on the loop, committed here without a thread hand-off. While
        another connection holds the write lock (another process, or this writer's
        thread), try again a little later: the loop is never blocked waiting for it."""
        assert self._loop is not None
        self._retry = None
        if not self._inline:
            # close() refused the writes since this was scheduled: nothing to commit, and
            # the closed backend must not open a connection again for an empty group.
            return
        jobs = self._inline[:MAX_GROUP]
        outcomes: list[Any] | None
        try:
            outcomes = self._backend.try_write_together([job.work for job in jobs])
        except Exception as exc:  # the database could not even be opened: tell them all
            outcomes = [exc] * len(jobs)
        if outcomes is None:
            now = self._loop.time()
            if self._locked_since is None:
                self._locked_since, self._backoff = now, _FIRST_BACKOFF
            elif now - self._locked_since >= self._backend.timeout:
                self._locked_since = None
                failure = self._backend.locked_error()
                jobs, self._inline = self._inline, []
                _deliver([(job, failure) for job in jobs])
                return
            self._retry = self._loop.call_later(self._backoff, self._commit_inline)
            self._backoff = min(self._backoff * 2, _LAST_BACKOFF)
            return
        self._locked_since = None
        del self._inline[: len(jobs)]
        _deliver(list(zip(jobs, outcomes, strict=True)))
        if self._inline:
            self._loop.call_soon(self._commit_inline)

    def _enqueue(self, jobs: list[_Job]) -> None:
        with self._ready:
            if not self._closed:
                self._queue.extend(jobs)
                self._ready.notify()
                return
        refused = BackendUnavailableError("the server is shutting down: write refused")
        _deliver([(job, refused) for job in jobs])

    def close(self) -> None:
        """Finish what the thread has queued, then stop it; refuse writes still waiting
        for a locked database (called on the event loop, when the server stops)."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        waiting, self._inline = self._inline, []
        refused = BackendUnavailableError("the server is shutting down: write refused")
        _deliver([(job, refused) for job in waiting])

    def _take(self) -> list[_Job] | None:
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            first = self._queue.popleft()
            jobs = [first]
            if not first.alone:
                queue = self._queue
                while queue and not queue[0].alone and len(jobs) < MAX_GROUP:
                    jobs.append(queue.popleft())
            return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            outcomes: Sequence[object]
            if len(jobs) == 1 and jobs[0].alone:
                outcomes = [_outcome(jobs[0].work)]
            else:
                outcomes = self._backend.write_together([job.work for job in jobs])
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, object]]] = {}
            for job, outcome in zip(jobs, outcomes, strict=True):
                by_loop.setdefault(job.loop, []).append((job, outcome))
            for loop, done in by_loop.items():
                with suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                    loop.call_soon_threadsafe(_deliver, done)


def _outcome(work: Callable[[], object]) -> object:
    try:
        return work()
    except Exception as exc:
        return exc


def _deliver(done: list[tuple[_Job, object]]) -> None:
    for job, outcome in done:
        if job.future.cancelled():
            continue
        if isinstance(outcome, Exception):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)
