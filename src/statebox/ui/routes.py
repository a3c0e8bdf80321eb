"""The routes of the web page: ``GET /ui`` (and ``/ui/``), ``GET /ui/assets/{name}``,
and ``GET /`` → ``/ui``.

The page holds no data, so these routes are public: the data comes from the API, which
the page calls with the user's token. Only the files shipped in ``assets/`` are served
(a whitelist made when the module is imported: a name not in it is a 404, so no path
can reach outside), each with its content type, an ``ETag`` (``If-None-Match`` answers
304) and ``Cache-Control: no-cache``. Every answer carries :data:`SECURITY_HEADERS`: a
Content-Security-Policy that allows only the server's own scripts, styles and API (no
inline script or style, no other origin, no framing), ``nosniff``, no referrer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Annotated, Final

import msgspec
from starlette.responses import Response

from ..web import Answer, RequestView, Router

__all__ = ["ASSETS", "CSP", "SECURITY_HEADERS", "Asset", "router"]

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: On every answer of the page's routes.
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_DOCUMENTED: Final = {
    **{name: "what it says" for name in SECURITY_HEADERS},
    "ETag": "the file's SHA-256 (If-None-Match answers 304)",
    "Cache-Control": "no-cache: revalidated on every load",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One shipped file: its bytes, content type and entity tag."""

    body: bytes
    media_type: str
    etag: str


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        name = prefix + item.name
        if item.is_dir():
            if not item.name.startswith(("_", ".")):
                found.update(_walk(item, name + "/"))
            continue
        suffix = "." + item.name.rsplit(".", 1)[-1] if "." in item.name else ""
        media_type = _TYPES.get(suffix)
        if media_type is None:  # only the page's own kinds of file
            continue
        body = item.read_bytes()
        found[name] = Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


#: The files the page may load, by their name under ``/ui/assets/``.
ASSETS: Final[Mapping[str, Asset]] = _walk(files(__package__) / "assets")

router = Router("ui")


class AssetPath(msgspec.Struct):
    name: Annotated[
        str,
        msgspec.Meta(description="A file of the page: app.js, app.css, views/browse.js …"),
    ]


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**SECURITY_HEADERS, **(extra or {})}


def _serve(call: RequestView, asset: Asset) -> Response:
    headers = _headers({"ETag": asset.etag, "Cache-Control": "no-cache"})
    sent = call.headers.get("if-none-match", "")
    if asset.etag in (tag.strip().removeprefix("W/") for tag in sent.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _not_found(name: str) -> Response:
    message = f"the page has no file {json.dumps(name)}: see /ui"
    body = json.dumps({"error": {"kind": "not_found", "message": message}})
    return Response(body, 404, media_type="application/json", headers=_headers())


_PAGE: Final = {
    200: Answer(
        media_type="text/html",
        schema={"type": "string"},
        description="The page (index.html)",
        headers=_DOCUMENTED,
    ),
    304: Answer(media_type="text/html", schema={"type": "string"}, description="Not modified"),
}


@router.get("/ui", summary="the web page", responses=_PAGE, public=True)
async def ui_page(call: RequestView) -> Response:
    return _serve(call, ASSETS["index.html"])


@router.get("/ui/", summary="the web page (also at /ui)", responses=_PAGE, public=True)
async def ui_page_slash(call: RequestView) -> Response:
    return _serve(call, ASSETS["index.html"])


@router.get(
    "/ui/assets/{name:path}",
    summary="a file of the web page (scripts, stylesheet, icon)",
    description="Only the files the page ships; each with its own content type "
    "(text/javascript, text/css, text/html, image/svg+xml). Any other name is 404.",
    path_params=AssetPath,
    responses={
        200: Answer(
            media_type="text/javascript",
            schema={"type": "string"},
            description="The file, in its content type",
            headers=_DOCUMENTED,
        ),
        304: Answer(media_type="text/javascript", schema={"type": "string"}),
    },
    errors=(404,),
    public=True,
)
async def ui_asset(call: RequestView) -> Response:
    name = str(call.request.path_params.get("name", ""))
    asset = ASSETS.get(name)
    if asset is None:
        return _not_found(name)
    return _serve(call, asset)


@router.get(
    "/",
    summary="the web page's address: a redirect to /ui",
    responses={
        307: Answer(
            media_type="text/plain",
            schema={"type": "string"},
            description="Temporary redirect to /ui",
            headers={"Location": "/ui"},
        )
    },
    public=True,
)
async def root(call: RequestView) -> Response:
    headers = _headers({"Location": "/ui"})
    return Response("see /ui\n", 307, media_type="text/plain", headers=headers)
