"""The routes about the server itself: ``/healthz``, ``/metrics``, ``/openapi.json``, ``/docs``.

``/docs`` is one self-contained page (no CDN: the server may run where nothing can be
downloaded) that reads ``/openapi.json`` and renders a form for every operation, so a
person can try the API from a browser.
"""

from __future__ import annotations

from functools import cache, partial
from importlib.resources import files
from typing import Final

from starlette.responses import HTMLResponse, Response

from ..core.model import Keyspace
from ..core.results import dumps_envelope
from .call import Call, RouteSpec
from .metrics import CONTENT_TYPE
from .openapi import build_schema
from .state import json_response

__all__ = ["ROUTES"]

_PROBE: Final = Keyspace("global", "_")


async def healthz(call: Call) -> Response:
    # The cheapest read every backend has: proves the storage answers.
    await call.state.read(partial(call.state.backend.change_token, _PROBE))
    return json_response(dumps_envelope({"ok": True}))


async def metrics(call: Call) -> Response:
    return Response(call.state.metrics.render(), media_type=CONTENT_TYPE)


async def openapi(call: Call) -> Response:
    from .. import __version__

    return json_response(dumps_envelope(build_schema(__version__)))


async def docs_page(call: Call) -> Response:
    return HTMLResponse(_page())


@cache
def _page() -> str:
    return (files(__package__) / "docs.html").read_text(encoding="utf-8")


ROUTES: list[RouteSpec] = [
    ("GET", "/healthz", healthz, True),
    ("GET", "/metrics", metrics, True),
    ("GET", "/openapi.json", openapi, True),
    ("GET", "/docs", docs_page, True),
]
