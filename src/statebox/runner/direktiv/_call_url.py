"""One ``url`` function call: an HTTP POST of the input, its reply read within bounds.

This module reports what happened (:class:`UrlResult`); :mod:`.functions` decides what
it means for the workflow (a result, or which error).

The request runs in a daemon thread while the calling thread watches the deadline and
the stop event, because a socket timeout bounds each read, not the call: a server that
sends its reply a byte a second would never trip it. On a timeout or a stop the socket
is shut down, which wakes the thread blocked on it. The thread makes the socket itself
and connects it without blocking, looking at the deadline and the stop every
:data:`_POLL` seconds, so a server that never accepts (its backlog full, a packet
filter dropping the handshake) cannot keep the thread past the call either. (Resolving
a host name is the one wait that cannot be cut short: the system resolver's own
timeouts bound it.) Redirects are not followed and no proxy is used: a function's URL
is called as written (as Direktiv calls its services).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = ["UrlResult", "post", "shown_url"]

_POLL: Final = 0.05

End = Literal["replied", "timeout", "stopped", "too_large", "failed"]


@dataclass(frozen=True, slots=True)
class UrlResult:
    """How the call ended: ``replied`` (``status``, ``headers``, ``body``), ``timeout``,
    ``stopped``, ``too_large`` (the reply's body passed the limit) or ``failed`` (no
    reply: ``problem`` says why)."""

    end: End
    status: int = 0
    headers: Mapping[str, str] | None = None
    body: bytes = b""
    problem: str = ""


def shown_url(url: str) -> str:
    """``url`` as messages show it: no user name, password or query (which may carry
    a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    stop: threading.Event,
    limit: int,
) -> UrlResult:
    """POST ``body`` to ``url``; the reply, or why there is none."""
    if stop.is_set():
        return UrlResult("stopped")
    try:
        conn, target = _connection(url, timeout)
    except ValueError as exc:
        return UrlResult("failed", problem=str(exc))
    deadline = time.monotonic() + timeout
    call = _Call(conn, target, body, headers, limit, deadline)
    thread = threading.Thread(target=call.run, name="statebox-function-url", daemon=True)
    thread.start()
    try:
        while not call.done.wait(max(0.0, min(_POLL, deadline - time.monotonic()))):
            if stop.is_set():
                return UrlResult("stopped")
            if time.monotonic() >= deadline:
                return UrlResult("timeout")
        assert call.result is not None
        if call.result.end == "failed" and time.monotonic() >= deadline:
            return UrlResult("timeout")  # its socket's own timeout, at the same deadline
        return call.result
    finally:
        call.abort()
        thread.join(1.0)


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown_url(url)!r} is not an http:// or https:// URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{shown_url(url)!r} has an invalid port") from exc
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The port is always given: http.client would read "::1" as host ":" port "1".
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, port or 443, timeout=timeout), target
    return http.client.HTTPConnection(parts.hostname, port or 80, timeout=timeout), target


class _Call:
    def __init__(
        self,
        conn: http.client.HTTPConnection,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        limit: int,
        deadline: float,
    ) -> None:
        self.conn, self.target, self.body, self.headers, self.limit = (
            conn,
            target,
            body,
            headers,
            limit,
        )
        self.deadline = deadline
        self.done = threading.Event()
        self.result: UrlResult | None = None
        # The socket, made here (not by http.client) so that abort() reaches it from
        # the start; kept because http.client drops its own reference when a reply
        # will close the connection, and it is needed to abort the read.
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._aborted = False

    def run(self) -> None:
        try:
            self.result = self._exchange()
        except (OSError, http.client.HTTPException) as exc:
            self.result = UrlResult("failed", problem=_problem(exc))
        finally:
            # This thread alone closes the socket: closing it under a thread still
            # waiting on it would free its descriptor for reuse while in use.
            with contextlib.suppress(OSError):
                self.conn.close()
            with self._lock:
                sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()
            self.done.set()

    def abort(self) -> None:
        """End the exchange: shut the socket down, so a thread blocked reading it wakes
        (closing it alone does not wake it); a connect in progress sees the flag within
        :data:`_POLL` seconds."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _exchange(self) -> UrlResult:
        self.conn.sock = self._connect()
        self.conn.request("POST", self.target, body=self.body, headers=dict(self.headers))
        response = self.conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return UrlResult("too_large", response.status, headers)
        data = response.read(self.limit + 1)
        if len(data) > self.limit:
            return UrlResult("too_large", response.status, headers)
        return UrlResult("replied", response.status, headers, data)

    def _connect(self) -> socket.socket:
        """A socket connected to the connection's host and port (each address in turn),
        wrapped in TLS for https, within the deadline; ``OSError("aborted")`` once
        :meth:`abort` was called."""
        host, port = self.conn.host, self.conn.port
        last: OSError = OSError(f"cannot resolve {host!r}")
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        ):
            with self._lock:
                if self._aborted:
                    raise OSError("aborted")
                sock = self._sock = socket.socket(family, kind, proto)
            try:
                self._connect_one(sock, address)
                break
            except TimeoutError:
                raise
            except OSError as exc:
                last = exc
                with self._lock:
                    self._sock = None
                sock.close()
        else:
            raise last
        sock.settimeout(max(0.001, self.deadline - time.monotonic()))
        if isinstance(self.conn, http.client.HTTPSConnection):
            context = ssl.create_default_context()
            wrapped = context.wrap_socket(sock, server_hostname=host)
            with self._lock:
                self._sock = wrapped
            return wrapped
        return sock

    def _connect_one(self, sock: socket.socket, address: tuple[object, ...]) -> None:
        sock.setblocking(False)
        failed = sock.connect_ex(address)
        if failed in (0, errno.EISCONN):
            return
        if failed not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            raise OSError(failed, os.strerror(failed))
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_WRITE)
            while True:
                with self._lock:
                    if self._aborted:
                        raise OSError("aborted")
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no connection in time")
                if selector.select(min(_POLL, left)):
                    break
        failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failed:
            raise OSError(failed, os.strerror(failed))


def _problem(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text
