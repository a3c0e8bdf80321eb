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
from typing import Annotated, Final, TypeVar

import anyio
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..core.envelope import dumps_envelope, envelope_json
from ..core.results import WatchEvent, WatchResult
from ..watch import Watcher
from ..web import Answer, Flag, Query, Router
from ..web.fields import After, WaitSeconds
from .call import Call
from .guards import Reveal
from .models import SpacePath
from .models import WatchResult as WatchAnswer
from .state import json_response

__all__ = ["WAIT_TIMEOUT", "router", "until_disconnected"]

T = TypeVar("T")

#: The longest an event stream stays silent: then it sends a keep-alive comment.
SLICE: Final = 15.0


router = Router("watch")

# No maximum here: a longer wait is cut to the server's --max-wait (60 s by default).
WAIT_TIMEOUT: Final = Meta(description="Seconds (at most the server's --max-wait).")


class WatchQuery(Query):
    key: Annotated[str, Meta(description="Watch this key (or give prefix).")] | None = None
    prefix: Annotated[str, Meta(description="Watch every key under this prefix.")] | None = None
    after_version: Annotated[After, Meta(description="The version already known.")] | None = None
    include_values: Annotated[Flag, Meta(description="Include the new values.")] = False
    timeout: Annotated[WaitSeconds, WAIT_TIMEOUT] | None = None
    reveal: Reveal = False


async def _watcher(call: Call, query: WatchQuery) -> Watcher:
    ks = call.granted
    store = call.reader()
    start = partial(
        store.watcher,
        query.key,
        prefix=query.prefix,
        after_version=query.after_version,
        include_values=query.include_values,
        scope=ks.scope,
        namespace=ks.namespace,
    )
    if query.prefix is not None:  # its first look scans the whole prefix: off the loop
        return await call.state.scan(start)
    return await call.state.read(start)


async def _next_events(call: Call, watcher: Watcher, timeout: float) -> list[WatchEvent]:
    """The watcher's next events, waiting up to ``timeout`` seconds for the first."""
    return await call.state.watch(
        watcher.keyspace, watcher.changes, bool, timeout, scans=watcher.prefix is not None
    )


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


@router.get(
    "/v1/watch/{scope}/{namespace}",
    summary="watch (long poll): wait until a key or a prefix changes",
    path_params=SpacePath,
    query=WatchQuery,
    responses={200: Answer(WatchAnswer)},
    errors=(429,),
    access="read",
)
async def long_poll(call: Call, query: WatchQuery) -> Response:
    reveal = call.reveal(query.reveal, call.granted)
    wait = 30.0 if query.timeout is None else query.timeout
    timeout = min(wait, call.state.config.max_wait)
    with call.state.watch_slot(call.principal):
        watcher = await _watcher(call, query)
        events = await until_disconnected(
            call.request, partial(_next_events, call, watcher, timeout)
        )
    if events is None:  # the client left: nobody reads this
        return Response(status_code=204)
    result = WatchResult(watcher.keyspace, watcher.key, watcher.prefix, events)
    return json_response(envelope_json(result, reveal))


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


@router.get(
    "/v1/events/{scope}/{namespace}",
    summary="watch (server-sent events): every change as it happens",
    path_params=SpacePath,
    query=WatchQuery,
    responses={
        200: Answer(
            media_type="text/event-stream",
            description="An event stream: event created|updated|deleted, data: the event's "
            "envelope",
            schema={"type": "string"},
        )
    },
    errors=(429,),
    access="read",
)
async def event_stream(call: Call, query: WatchQuery) -> Response:
    reveal = call.reveal(query.reveal, call.granted)
    timeout = query.timeout
    slot = ExitStack()  # given back by the response when the stream ends
    slot.enter_context(call.state.watch_slot(call.principal))
    try:
        watcher = await _watcher(call, query)
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
                data = envelope_json(event, reveal)
                yield f"event: {event.event}\ndata: {data}\n\n".encode()
            if not events:
                yield b": keep-alive\n\n"

    return _WatchStream(stream(), slot.close)
