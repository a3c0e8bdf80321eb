"""How the remote store (:mod:`statebox.backends.http`) talks to its servers: keep-alive
connections, one request at a time, the retry rule (a read once more, a write never) and
what an answer that is an error or not JSON means.

The stdlib's ``http.client``, not a full-featured client: a few times cheaper per
request, which matters when every store operation is a request.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import select
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..core.errors import BackendUnavailableError, StateboxError
from ..core.exactjson import ENVELOPE, check_depth, loads_exact
from ..wire.codec import error_from_body

__all__ = ["IDLE_LIMIT", "READ_TIMEOUT", "Transport"]

#: Seconds to wait for an answer (a write may wait on a busy database server-side).
READ_TIMEOUT = 60.0
#: An idle connection older than this is not reused (the server keeps them 75 s).
IDLE_LIMIT = 20.0


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's trust store, loaded once per process (it takes milliseconds)."""
    return ssl.create_default_context()


class _Connections:
    """Keep-alive connections, one per thread and coordinator (``http.client``: a few
    times cheaper per request than a full-featured client, which matters when every
    store operation is a request).

    An idle connection the server may have closed is never reused: one idle for longer
    than ``IDLE_LIMIT`` (well below the server's keep-alive of 75 s) or whose socket has
    become readable (the server's FIN) is replaced before sending — so a write is never
    lost to a connection that was already dead.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _mine(self) -> dict[str, tuple[http.client.HTTPConnection, float]]:
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours
            self._local, self._all, self._pid = threading.local(), [], os.getpid()
        mine: dict[str, tuple[http.client.HTTPConnection, float]] | None = getattr(
            self._local, "connections", None
        )
        if mine is None:
            mine = self._local.connections = {}
        return mine

    def take(self, coordinator: str) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to ``coordinator``, and whether it is already connected."""
        conn, idle_since = self._mine().pop(coordinator, (None, 0.0))
        if conn is not None:
            if conn.sock is not None and time.monotonic() - idle_since < IDLE_LIMIT:
                readable, _, _ = select.select([conn.sock], [], [], 0)
                if not readable:
                    return conn, True
            self.discard(conn)
        parts = urlsplit(coordinator)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.netloc, timeout=self.timeout, context=_tls_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        with self._lock:
            self._all.append(conn)
        return conn, False

    def give_back(self, coordinator: str, conn: http.client.HTTPConnection) -> None:
        self._mine()[coordinator] = (conn, time.monotonic())

    def discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock, contextlib.suppress(ValueError):
            self._all.remove(conn)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()
        self._local = threading.local()


class Transport:
    """Requests to a store's coordinators, with its bearer token."""

    def __init__(self, coordinators: Sequence[str], token: str) -> None:
        self._prefixes = {c: urlsplit(c).path.rstrip("/") for c in coordinators}
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._connections = _Connections(READ_TIMEOUT)

    def close(self) -> None:
        self._connections.close()

    def send(
        self,
        coordinator: str,
        method: str,
        path: str,
        *,
        write: bool,
        params: Mapping[str, str | int] | None = None,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        target = self._prefixes[coordinator] + path
        if params:
            target += "?" + urlencode(params)
        sent_headers = {**self._auth, **(headers or {})}
        if body is not None:
            sent_headers["Content-Type"] = "application/json"
        payload = body.encode() if body is not None else None
        attempts = 1 if write else 2
        for attempt in range(attempts):
            conn, connected = self._connections.take(coordinator)
            sent = False
            try:
                conn.timeout = timeout if timeout is not None else READ_TIMEOUT
                if not connected:
                    conn.connect()
                elif conn.sock is not None:
                    conn.sock.settimeout(conn.timeout)
                sent = True
                conn.request(method, target, body=payload, headers=sent_headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._connections.discard(conn)
                if attempt + 1 < attempts:
                    continue
                raise self._unreachable(coordinator, exc, write, sent) from exc
            if response.will_close:
                self._connections.discard(conn)
            else:
                self._connections.give_back(coordinator, conn)
            return response.status, data
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _unreachable(coordinator: str, exc: Exception, write: bool, sent: bool) -> StateboxError:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if not write:
            return BackendUnavailableError(
                f"statebox server {coordinator} is unreachable ({what}); tried twice; "
                "check that it runs and that the store URL is right"
            )
        if not sent:
            outcome = "the write was not sent"
        else:
            outcome = "the write may or may not have been applied: read before retrying"
        return BackendUnavailableError(
            f"statebox server {coordinator} failed during a write ({what}); {outcome}. "
            "It is not retried on another coordinator, which would break the one-owner rule"
        )

    @staticmethod
    def answer(status: int, data: bytes, coordinator: str, *, exact: bool = False) -> Any:
        """An answer's JSON (``exact``: numbers as written, for answers that carry
        values), or the error it stands for."""
        if status >= 400:
            raise error_from_body(status, data, coordinator)
        try:
            if exact:
                return loads_exact(data)  # checks the depth itself
            check_depth(
                data, "response", envelope=ENVELOPE
            )  # a NestingTooDeepError is a ValueError
            return json.loads(data)
        except ValueError as exc:
            raise BackendUnavailableError(
                f"statebox server {coordinator} sent a response that is not JSON: {exc}"
            ) from exc
