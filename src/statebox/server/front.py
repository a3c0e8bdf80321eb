"""The outermost layer of every request: metrics, the browser checks, the body limit.

One pure-ASGI middleware (cheaper than two). ``Host``, ``Origin`` and ``Content-Type``
are checked first (:mod:`statebox.server.browsers`: no web page can drive the server).
A body whose ``Content-Length`` is over the
limit is refused with 413 before a byte of it is read; a chunked body is counted as it
arrives and refused as soon as it passes the limit, so no request is ever read whole
when it is too large.
"""

from __future__ import annotations

import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import InvalidReferenceError, StateboxError, ValueTooLargeError
from ..wire.codec import error_body
from .browsers import BrowserGuard
from .metrics import Metrics

__all__ = ["FrontMiddleware"]


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


_SLASH: Final = InvalidReferenceError("invalid scope or namespace: must not contain '/'")


def _encoded_slash_in_namespace(scope: Scope) -> bool:
    """``/v1/kv/dag/a%2Fb`` would be routed (on the decoded path) as namespace ``a`` and
    key ``b``; a namespace can never hold '/', so such a path is refused instead."""
    raw: bytes = scope.get("raw_path") or b""
    if b"%" not in raw:
        return False
    parts = raw.split(b"/", 5)  # "", "v1", operation, scope, namespace, rest
    return (
        len(parts) >= 5
        and parts[1] == b"v1"  # statebox's own API; Dapr's /v1.0 keys may hold "/"
        and parts[2] != b"leases"
        and any(b"%2f" in part.lower() for part in parts[3:5])
    )


def too_large(limit: int) -> ValueTooLargeError:
    return ValueTooLargeError(f"request body too large: more than {limit} bytes")


class FrontMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        guard: BrowserGuard | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = max_body_bytes
        self.guard = guard if guard is not None else BrowserGuard((), ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": _with_safety_headers(message.get("headers"))}
            await send(message)

        limit = self.limit
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)  # the endpoint answers 413
            return message

        try:
            length = _content_length(scope)
            refused = self.guard.check(scope)
            if refused is not None:
                await _refuse(send_and_note, refused)
            elif length is not None and length > limit:
                await _refuse(send_and_note, too_large(limit))
            elif _encoded_slash_in_namespace(scope):
                await _refuse(send_and_note, _SLASH)
            else:
                await self.app(scope, receive_within_limit, send_and_note)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(template, scope["method"], status, time.perf_counter() - started)


#: On every answer: no browser guesses a JSON answer is HTML (nosniff), and no page of
#: another site frames one of ours (the web page at /ui, the docs at /docs).
_SAFETY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
)


def _with_safety_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    listed = list(headers or ())
    present = {name.lower() for name, _ in listed}
    listed.extend(header for header in _SAFETY_HEADERS if header[0] not in present)
    return listed


async def _refuse(send: Send, exc: StateboxError) -> None:
    body = error_body(exc).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
