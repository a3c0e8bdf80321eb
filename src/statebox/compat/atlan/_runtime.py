"""The stores the Atlan face opened, and the threads that call them: one set per process.

An Atlan app calls ``await StateStore.…`` from whatever event loop it runs: one loop
for the life of a worker, a new one per ``asyncio.run`` (scripts, tests), one per
thread. :mod:`statebox.aio` would run each call on the running loop's default executor,
so a new loop would mean new threads — and the SQLite and HTTP backends keep a
connection per thread, so each of those threads would open one more connection and keep
it until the store closes. Here every call runs on one thread pool per process, over
one store per resolved store URL, whatever loop awaits it: a process keeps a bounded
number of connections however many loops come and go.

The store is thread-safe (:class:`statebox.StateStore`), so one serves every thread.
After ``fork()`` the child must not use what the parent opened (a SQLite or PostgreSQL
connection, a socket, a pool whose threads did not survive the fork): everything is
kept per process id, and a child starts afresh. What the parent opened is left alone
in the child (closing it there could close the parent's connections).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ...config import resolve_store_url
from ...store import StateStore as EngineStore
from ...store import open_store

__all__ = ["call", "close_all", "store_for"]

T = TypeVar("T")

#: Calls that may run at once in one process (each holds a thread while it waits on
#: storage); more wait their turn in the pool's queue.
MAX_THREADS = 32


class _Process:
    """What one process opened: its pool and its stores, by resolved store URL."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.pool: ThreadPoolExecutor | None = None
        self.stores: dict[str, EngineStore] = {}


_current = _Process()
# What forked children left behind, never used nor closed (see the module docstring).
_inherited: list[_Process] = []


def _here() -> _Process:
    """This process's state: a forked child replaces the one it inherited (the fork
    hook does it at once; the process id check covers a fork that ran no hooks)."""
    global _current
    if _current.pid != os.getpid():
        _inherited.append(_current)
        _current = _Process()
    return _current


if hasattr(os, "register_at_fork"):  # POSIX: a lock held at the fork is not held here
    os.register_at_fork(after_in_child=_here)


def _pool(process: _Process) -> ThreadPoolExecutor:
    with process.lock:
        if process.pool is None:
            process.pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="statebox-atlan")
        return process.pool


def store_for(url: str) -> EngineStore:
    """The store of ``url`` in this process, opened on first use (call it on a worker
    thread: opening does I/O)."""
    process = _here()
    store = process.stores.get(url)
    if store is None:
        with process.lock:
            store = process.stores.get(url)
            if store is None:
                store = process.stores[url] = open_store(url)
    return store


async def call(operation: Callable[[EngineStore], T]) -> T:
    """``operation(store)`` on this process's pool, over the store ``STATEBOX_STORE``
    names now (the URL is resolved here, on the caller's thread), in a copy of the
    caller's context variables (as ``asyncio.to_thread`` runs it)."""
    url = resolve_store_url()
    pool = _pool(_here())
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(pool, context.run, lambda: operation(store_for(url)))


def close_all() -> None:
    """Close every store this process opened and stop its threads; the next call opens
    afresh (reading ``STATEBOX_STORE`` again). Calls still running finish first."""
    global _current
    process = _here()
    with process.lock:
        _current = _Process()
    if process.pool is not None:
        process.pool.shutdown(wait=True)
    errors: list[BaseException] = []
    for store in process.stores.values():
        try:
            store.close()
        except Exception as exc:  # close every store, then report the first failure
            errors.append(exc)
    if errors:
        raise errors[0]
