"""The routes about the server itself: ``/healthz``, ``/metrics``, ``/openapi.json``, ``/docs``.

``/openapi.json`` is generated from the routes of every mounted router (:mod:`.openapi`).
``/docs`` is one self-contained page (no CDN: the server may run where nothing can be
downloaded) that reads ``/openapi.json`` and renders a form for every operation, so a
person can try the API from a browser. All four are public: they name no namespace or key.
"""

from __future__ import annotations

from functools import cache, partial
from importlib.resources import files
from typing import Any, Final

import msgspec
from starlette.responses import HTMLResponse, Response

from ..core.envelope import dumps_envelope
from ..core.model import Keyspace
from ..web import Answer, Router
from .call import Call
from .metrics import CONTENT_TYPE
from .openapi import build_schema
from .state import json_response

__all__ = ["router"]

_PROBE: Final = Keyspace("global", "_")
_TEXT: Final = {"type": "string"}

router = Router("docs")


class Health(msgspec.Struct):
    ok: bool


@router.get(
    "/healthz",
    summary="liveness and storage check",
    responses={200: Answer(Health)},
    public=True,
)
async def healthz(call: Call) -> Response:
    # The cheapest read every backend has: proves the storage answers.
    await call.state.read(partial(call.state.backend.change_token, _PROBE))
    return json_response(dumps_envelope({"ok": True}))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: Answer(media_type="text/plain", schema=_TEXT)},
    public=True,
)
async def metrics(call: Call) -> Response:
    return Response(call.state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/openapi.json", summary="this document", public=True)
async def openapi(call: Call) -> Response:
    state = call.state
    if state.openapi_json is None:
        from .. import __version__

        document: dict[str, Any] = build_schema(state.routers, __version__)
        state.openapi_json = dumps_envelope(document)
    return json_response(state.openapi_json)


@router.get(
    "/docs",
    summary="interactive documentation",
    responses={200: Answer(media_type="text/html", schema=_TEXT)},
    public=True,
)
async def docs_page(call: Call) -> Response:
    return HTMLResponse(_page())


@cache
def _page() -> str:
    return (files(__package__) / "docs.html").read_text(encoding="utf-8")
