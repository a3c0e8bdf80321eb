"""uvicorn's HTTP protocol, with each response sent in one write, and with limits on
connections, request heads and request bodies (:class:`LimitedHttpToolsProtocol`).

uvicorn writes a response's head and its body with two ``transport.write`` calls, and
uvloop sends each at once: two system calls and two TCP segments for every answer, the
client woken twice. On loopback that was a third of the server's CPU time per request.
Here the writes a response makes within one turn of the event loop are joined and sent
together at the end of that turn — the same bytes, one send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from typing import Any, ClassVar, Final, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..core.errors import (
    BackendUnavailableError,
    HeadersTooLargeError,
    RequestTimeoutError,
    StateboxError,
)
from ..wire.codec import error_body
from .options import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
)

__all__ = [
    "CoalescingHttpToolsProtocol",
    "LimitedHttpToolsProtocol",
    "fit_to_file_limit",
    "limited_protocol",
]

log = logging.getLogger("statebox.server")


class _CoalescingTransport:
    """Holds what is written until the loop's next turn, then writes it at once."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: bytearray | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = bytearray(data)
            self._loop.call_soon(self.flush)
        else:
            self._pending += data

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending)

    def close(self) -> None:
        self.flush()  # what was written goes out before the connection closes
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Flow control keeps the real transport; the request cycles write through this.
        self.transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]


#: Seconds between two messages about refused connections.
REFUSAL_LOG_EVERY: Final = 10.0


class _RefusalLog:
    """Logs refused connections once per burst (at most every :data:`REFUSAL_LOG_EVERY`
    seconds), with how many were refused since the last message."""

    def __init__(self) -> None:
        self.refused = 0
        self.logged_at = -REFUSAL_LOG_EVERY

    def note(self, open_connections: int, limit: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= REFUSAL_LOG_EVERY:
            log.warning(
                "statebox: refusing new connections with 503: %d open, the limit "
                "(--max-connections) is %d; %d refused since the last message",
                open_connections,
                limit,
                self.refused,
            )
            self.logged_at, self.refused = now, 0


class _Writable(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def _answer_and_close(transport: _Writable, exc: StateboxError) -> None:
    """Send ``exc`` as the one response of the connection, then close it."""
    body = error_body(exc).encode()
    head = (
        STATUS_LINE[exc.http_status]
        + b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
    )
    transport.write(head + body)
    transport.close()


class LimitedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """The protocol with the connection limits of SPEC §8 (one client cannot starve the
    others). httptools itself limits neither the time nor the size of a request head:

    - ``header_timeout``: a request's line and headers must arrive within this many
      seconds of the connection (or of the request's first byte, on a kept-alive
      connection), else 408 and close — a slowloris client holds nothing for long.
    - ``body_timeout``: a request's whole body must arrive within this many seconds of
      the end of its head, else 408 (or, if the response has begun, just the close): a
      client that trickles its body a byte at a time holds nothing for long either. Time
      the server itself is not reading (uvicorn pauses reading while the application has
      not taken what came) does not count against the client.
    - ``max_header_bytes``: a request line and headers over this many bytes are refused
      with 431 and the connection closed, before more of them is buffered.
    - ``max_connections``: a connection over this many open ones is answered 503 and
      closed at once (logged once per burst), so the server never runs out of file
      descriptors and the connections it has keep working.

    The limits are class attributes: :func:`limited_protocol` makes a subclass per server.
    """

    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT
    body_timeout: ClassVar[float] = DEFAULT_BODY_TIMEOUT
    max_header_bytes: ClassVar[int] = DEFAULT_MAX_HEADER_BYTES
    max_connections: ClassVar[int] = DEFAULT_MAX_CONNECTIONS
    refusals: ClassVar[_RefusalLog]

    _refused = False
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    # Bytes of the request head received so far; None while no head is being read
    # (its headers are complete, and the next request has not begun).
    _head_bytes: int | None = None
    _heads_done = 0  # request heads completed on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        open_now = len(self.connections)
        if open_now >= self.max_connections:
            self._refused = True
            self.refusals.note(open_now, self.max_connections)
            _answer_and_close(
                transport,
                BackendUnavailableError(
                    f"the server has {open_now} connections open, its limit "
                    "(--max-connections): try again shortly"
                ),
            )
            return
        super().connection_made(transport)
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return  # never counted, nothing started
        self._stop_header_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            room = self.max_header_bytes - self._head_bytes
            if len(data) > room:
                # Feed what may still be head; if the head ends inside it, the rest is
                # the body (or the next request) and is fed on its own.
                self._head_bytes += room
                heads_done = self._heads_done
                super().data_received(data[:room])
                if self.parser is None or self.transport.is_closing():
                    return
                if self._heads_done == heads_done:  # still in the same head: too large
                    self._refuse_head(
                        HeadersTooLargeError(
                            "request line and headers too large: the server takes at most "
                            f"{self.max_header_bytes} bytes (its --max-header-bytes)"
                        )
                    )
                    return
                self.data_received(data[room:])
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._start_header_timer()

    def on_message_complete(self) -> None:
        self._stop_body_timer()
        super().on_message_complete()
        self._head_bytes = 0  # what comes next is the next request's head

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._heads_done += 1
        self._stop_header_timer()
        super().on_headers_complete()
        # Started for every request (a request without a body completes at once, in
        # this same parse, and stops it): cheaper than reading the framing headers.
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_too_slow)

    # -- the head's timer --------------------------------------------------------------

    def _begin_head(self) -> None:
        self._head_bytes = 0
        self._start_header_timer()

    def _start_header_timer(self) -> None:
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _head_too_slow(self) -> None:
        self._header_timer = None
        if self._head_bytes is None or self.transport.is_closing():
            return
        self._refuse_head(
            RequestTimeoutError(
                "request line and headers not received in time: the server waits "
                f"{self.header_timeout:g} s for them (its --header-timeout)"
            )
        )

    # -- the body's timer --------------------------------------------------------------

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server is not reading: the client is not late
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_too_slow)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            _answer_and_close(
                self.transport,
                RequestTimeoutError(
                    "request body not received in time: the server waits "
                    f"{self.body_timeout:g} s for a whole body (its --body-timeout)"
                ),
            )
        else:
            self.transport.close()  # a response is under way: no second one in its bytes
        if cycle is not None and not cycle.response_complete:
            # The application's next receive() says the client is gone, and what it
            # sends is dropped, as if the client had hung up.
            cycle.disconnected = True
            cycle.message_event.set()

    def _refuse_head(self, exc: StateboxError) -> None:
        self._stop_header_timer()
        self._head_bytes = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way: no second one in its bytes
            return
        _answer_and_close(self.transport, exc)


def limited_protocol(
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class (for ``uvicorn.Config(http=...)``) with these limits."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_header_bytes": max_header_bytes,
            "max_connections": max_connections,
            "refusals": _RefusalLog(),
        },
    )


#: File descriptors kept for everything but client connections: the listening socket,
#: the store's files and connections (SQLite holds three per thread), logs.
FD_RESERVE: Final = 256


def fit_to_file_limit(max_connections: int) -> int:
    """``max_connections``, lowered if the process's file-descriptor limit cannot hold
    that many connections besides :data:`FD_RESERVE` (after raising the soft limit to
    the hard one): a full server then refuses connections cleanly, never failing every
    client with "too many open files". A lowering is logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = max_connections + FD_RESERVE
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, max(wanted, soft))
        if target > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
    room = soft - FD_RESERVE if soft >= 2 * FD_RESERVE else soft // 2
    if max_connections > room:
        log.warning(
            "statebox: the file limit (ulimit -n) is %d: serving at most %d connections "
            "at once instead of %d (--max-connections); raise the limit for more",
            soft,
            room,
            max_connections,
        )
        return room
    return max_connections
