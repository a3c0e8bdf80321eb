"""Watch over HTTP (SPEC §5): a long poll, and a stream of server-sent events.

``GET /v1/watch/{scope}/{namespace}?key=K`` (or ``prefix=P``) answers the engine's
``watch`` envelope as soon as something changes past the known state, or when
``timeout`` passes (``"timedOut": true``). ``GET /v1/events/...`` keeps the connection
open and sends every change as an SSE event (``event: created|updated|deleted``, the
event's envelope as ``data``), with a comment line every 15 s so proxies keep it open.

No thread waits for a client (SPEC §8): each watch waits on the event loop for the
server's one change waiter (``ServerState.watch``, ``changes_hub.py``) and looks at its
own keys again when woken. A client that leaves — a closed event stream, or a long poll
whose connection closes — ends its watch at once. Each principal (each token; the
anonymous caller is one) has at most ``max_watches_per_token`` watches open; one more is
refused with 429.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from functools import partial
from typing import Final, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..core.errors import InvalidRequestError
from ..core.results import WatchEvent, WatchResult, dumps_envelope
from ..watch import Watcher
from ..wire.codec import parse_seconds
from .auth import Access
from .call import Call, RouteSpec
from .state import json_response

__all__ = ["ROUTES"]

T = TypeVar("T")

#: The longest an event stream stays silent: then it sends a keep-alive comment.
SLICE: Final = 15.0


def _timeout(call: Call, default: float | None) -> float | None:
    raw = call.q_str("timeout")
    if raw is None:
        return default
    seconds = parse_seconds(raw, "timeout") / 1e9
    if seconds < 0:
        raise InvalidRequestError("invalid timeout: must be 0 or more seconds")
    return seconds


async def _watcher(call: Call) -> Watcher:
    ks = call.keyspace(Access.READ)
    store = call.reader()
    return await call.state.read(
        partial(
            store.watcher,
            call.q_str("key"),
            prefix=call.q_str("prefix"),
            after_version=call.q_int("after_version", minimum=0),
            include_values=call.q_bool("include_values"),
            scope=ks.scope,
            namespace=ks.namespace,
        )
    )


async def _next_events(call: Call, watcher: Watcher, timeout: float) -> list[WatchEvent]:
    """The watcher's next events, waiting up to ``timeout`` seconds for the first."""
    return await call.state.watch(watcher.keyspace, watcher.changes, bool, timeout)


async def until_disconnected(request: Request, work: Callable[[], Awaitable[T]]) -> T | None:
    """``work()``, or ``None`` as soon as the client closes its connection (a plain
    response, unlike a stream, is not told that the client left)."""
    result: T | None = None
    async with anyio.create_task_group() as tasks:

        async def watch_client() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            tasks.cancel_scope.cancel()

        tasks.start_soon(watch_client)
        result = await work()
        tasks.cancel_scope.cancel()
    return result


async def long_poll(call: Call) -> Response:
    timeout = min(_timeout(call, 30.0) or 0.0, call.state.config.max_wait)
    with call.state.watch_slot(call.principal):
        watcher = await _watcher(call)
        events = await until_disconnected(
            call.request, partial(_next_events, call, watcher, timeout)
        )
    if events is None:  # the client left: nobody reads this
        return Response(status_code=204)
    result = WatchResult(watcher.keyspace, watcher.key, watcher.prefix, events)
    return json_response(result.to_json())


class _WatchStream(StreamingResponse):
    """An event stream that gives its watch slot back when it ends, however it ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def event_stream(call: Call) -> Response:
    timeout = _timeout(call, None)
    slot = ExitStack()  # given back by the response when the stream ends
    slot.enter_context(call.state.watch_slot(call.principal))
    try:
        watcher = await _watcher(call)
    except BaseException:
        slot.close()
        raise
    deadline = None if timeout is None else time.monotonic() + timeout

    async def stream() -> AsyncIterator[bytes]:
        yield b": watching\n\n"
        while True:
            remaining = SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                yield b"event: end\ndata: " + dumps_envelope({"timedOut": True}).encode() + b"\n\n"
                return
            events = await _next_events(call, watcher, min(remaining, SLICE))
            for event in events:
                yield f"event: {event.event}\ndata: {event.to_json()}\n\n".encode()
            if not events:
                yield b": keep-alive\n\n"

    return _WatchStream(stream(), slot.close)


ROUTES: list[RouteSpec] = [
    ("GET", "/v1/watch/{scope}/{namespace}", long_poll, False),
    ("GET", "/v1/events/{scope}/{namespace}", event_stream, False),
]
