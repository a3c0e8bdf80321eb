"""The OpenAPI 3.1 document served at ``/openapi.json``: generated from the routes of
every mounted router (:func:`statebox.web.build_document`), with the error answers the
server can give declared once here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from ..web import ErrorResponses, Router, build_document
from .models import Error

__all__ = ["ERRORS", "build_schema"]

_REASONS: Final = {
    400: "Invalid reference or request",
    401: "Missing or invalid bearer token",
    403: "The token has no grant for this scope and namespace, or the Origin is not allowed",
    404: "Not found",
    408: "The request head (--header-timeout) or body (--body-timeout) did not arrive in "
    "time; the connection is closed",
    409: "Conflict: a version guard or a fence failed; nothing was written",
    412: "Precondition failed: If-Match / If-None-Match did not hold",
    413: "Request body or value too large, or too many operations in one transaction",
    415: "The body is not JSON (Content-Type must be application/json)",
    421: "The Host header names a host this server does not answer to",
    422: "Invalid value (also: JSON nested too deep)",
    429: "Too many open watches for this token",
    431: "The request line and headers are over --max-header-bytes; the connection is closed",
    500: "A stored record is corrupt",
    503: "The storage backend is unavailable, or the server has --max-connections "
    "connections open (that connection is closed)",
}

#: Which routes may meet which refusals.
ERRORS: Final = ErrorResponses(
    model=Error,
    reasons=_REASONS,
    # Any request, public or not: the connection limits (protocol.py), which answer and
    # close, and the front checks (browsers.py): a foreign Host or Origin.
    every=(403, 408, 421, 431, 503),
    # Bad input, a missing or refused token, an unroutable path, a value refused, a
    # corrupt record, storage that is down.
    authenticated=(400, 401, 404, 413, 422, 500),
    # A body that is not JSON (a form, text/plain) is refused (browsers.py).
    with_body=(413, 415),
)

_INFO: Final = {
    "title": "statebox",
    "description": "Persistent state for workflows: every operation of the statebox "
    "engine over HTTP. Answers are the operations' JSON envelopes; errors are "
    '{"error": {"kind", "message"}}.',
}


def build_schema(routers: Iterable[Router], version: str) -> dict[str, Any]:
    """The document of every route the server mounts."""
    return build_document(
        routers,
        info={**_INFO, "version": version},
        errors=ERRORS,
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        security=[{"bearer": []}, {}],
    )
