"""Watch over HTTP (SPEC §5): a long poll, and a stream of server-sent events.

``GET /v1/watch/{scope}/{namespace}?key=K`` (or ``prefix=P``) answers the engine's
``watch`` envelope as soon as something changes past the known state, or when
``timeout`` passes (``"timedOut": true``). ``GET /v1/events/...`` keeps the connection
open and sends every change as an SSE event (``event: created|updated|deleted``, the
event's envelope as ``data``), with a comment line every 15 s so proxies keep it open.

Waiting happens in worker threads of their own (see ``ServerState.wait``), in slices of
at most 15 s, so a client that goes away frees its thread soon.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Final

from starlette.responses import Response, StreamingResponse

from ..errors import InvalidRequestError
from ..results import WatchResult, dumps_envelope
from ..watch import Watcher
from .auth import Access
from .call import Call, RouteSpec
from .state import json_response
from .wire import parse_seconds

__all__ = ["ROUTES"]

#: The longest one wait of an event stream blocks before it sends a keep-alive comment.
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


async def long_poll(call: Call) -> Response:
    timeout = min(_timeout(call, 30.0) or 0.0, call.state.config.max_wait)
    watcher = await _watcher(call)
    events = await call.state.wait(partial(watcher.poll, timeout))
    result = WatchResult(watcher.keyspace, watcher.key, watcher.prefix, events)
    return json_response(result.to_json())


async def event_stream(call: Call) -> Response:
    timeout = _timeout(call, None)
    watcher = await _watcher(call)
    deadline = None if timeout is None else time.monotonic() + timeout

    async def stream() -> AsyncIterator[bytes]:
        yield b": watching\n\n"
        while True:
            remaining = SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                yield b"event: end\ndata: " + dumps_envelope({"timedOut": True}).encode() + b"\n\n"
                return
            events = await call.state.wait(partial(watcher.poll, min(remaining, SLICE)))
            for event in events:
                yield f"event: {event.event}\ndata: {event.to_json()}\n\n".encode()
            if not events:
                yield b": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


ROUTES: list[RouteSpec] = [
    ("GET", "/v1/watch/{scope}/{namespace}", long_poll, False),
    ("GET", "/v1/events/{scope}/{namespace}", event_stream, False),
]
