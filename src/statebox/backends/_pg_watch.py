"""Watch on PostgreSQL: LISTEN/NOTIFY, counted by one listener thread per backend.

Every write transaction calls ``pg_notify(channel, bucket)`` (delivered only if it
commits). The keyspace is hashed to one of :data:`BUCKETS` buckets rather than sent
whole: a notification payload is limited to 8000 bytes, and a bounded array of counters
keeps a long-running server's memory flat. Two keyspaces sharing a bucket only cause a
spurious wake-up, which the contract allows.

The listener connection is opened lazily, on the first ``change_token`` — before it
returns, so no commit after that can be missed. If the connection drops, notifications
sent meanwhile are lost; so after reconnecting the listener bumps an epoch that is part
of every token, and every waiter wakes up to re-read what it watches.
"""

from __future__ import annotations

import functools
import hashlib
import os
import select
import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

from ..core.errors import BackendUnavailableError
from ..core.model import Keyspace

__all__ = ["BUCKETS", "ChangeListener", "bucket_of", "channel_for"]

BUCKETS = 1024
_RECONNECT_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)  # seconds, the last one repeated

Connect = Callable[[], psycopg.Connection[tuple[object, ...]]]


@functools.lru_cache(maxsize=4096)  # asked on every write: one SHA-256 per keyspace
def bucket_of(keyspace: Keyspace) -> int:
    raw = f"{keyspace.scope}\0{keyspace.namespace}".encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:4], "big") % BUCKETS


def channel_for(schema: str) -> str:
    """The channel of one schema (NOTIFY is per database; schemas must not cross-talk)."""
    return f"statebox_{schema}"[:63]


class ChangeListener:
    """Counts the notifications of one channel; waiters block on a condition variable."""

    def __init__(self, connect: Connect, channel: str, where: str) -> None:
        self._connect = connect
        self._channel = channel
        self._where = where
        self._changed = threading.Condition()
        self._counts = [0] * BUCKETS
        self._total = 0  # notifications of every bucket (``total``)
        self._epoch = 0
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._stopping = threading.Event()

    def token(self, bucket: int) -> int:
        self._start()
        with self._changed:
            return self._epoch + self._counts[bucket]

    def wait(self, bucket: int, token: int, timeout: float) -> int:
        self._start()
        with self._changed:
            self._changed.wait_for(
                lambda: self._epoch + self._counts[bucket] != token, timeout=max(timeout, 0.0)
            )
            return self._epoch + self._counts[bucket]

    def total(self) -> int:
        """A token for every bucket at once: it moves on any notification."""
        self._start()
        with self._changed:
            return self._epoch + self._total

    def wait_total(self, token: int, timeout: float) -> int:
        self._start()
        with self._changed:
            self._changed.wait_for(
                lambda: self._epoch + self._total != token, timeout=max(timeout, 0.0)
            )
            return self._epoch + self._total

    # -- the listener thread -----------------------------------------------------------

    def _listen(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = self._connect()
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _start(self) -> None:
        with self._changed:
            if self._thread is not None:
                return
            try:
                conn = self._listen()
            except psycopg.Error as exc:
                raise BackendUnavailableError(
                    f"cannot listen for changes on PostgreSQL {self._where}: {exc}"
                ) from exc
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(
                target=self._run, args=(conn,), name="statebox-pg-listener", daemon=True
            )
            self._thread.start()

    def _run(self, conn: psycopg.Connection[tuple[object, ...]] | None) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                if conn is None:
                    conn = self._listen()
                    failures = 0
                    with self._changed:  # notifications may have been missed: wake all
                        self._epoch += 1
                        self._changed.notify_all()
                ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [])
                if self._wake_r in ready:
                    break
                payloads = [n.payload for n in conn.notifies(timeout=0)]
            except (psycopg.Error, OSError):
                if conn is not None:
                    conn.close()
                    conn = None
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                self._stopping.wait(delay)
                continue
            if payloads:
                with self._changed:
                    self._total += len(payloads)
                    for payload in payloads:
                        if payload.isdigit():
                            self._counts[int(payload) % BUCKETS] += 1
                        else:  # not ours (someone else's NOTIFY): wake everyone, harmless
                            self._epoch += 1
                    self._changed.notify_all()
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._changed:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
