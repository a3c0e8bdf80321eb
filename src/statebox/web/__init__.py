"""The toolkit every HTTP face declares its routes with (``statebox[server]``).

A face — the server's own API, and later the runner's variable endpoint, the Dapr API,
the UI — declares each route once, on a :class:`Router`::

    router = Router("notes")

    class NoteBody(Body):
        text: str                               # required: no default
        pinned: bool = False                    # optional: a default

    @router.post("/v1/notes/{name}", summary="pin a note", body=NoteBody,
                 responses={200: Answer(NoteResult)})
    async def pin(call: RequestView, body: NoteBody) -> Response: ...

That declaration is the only place the route exists: the server mounts it, validates the
query (:class:`Query`) and the body (:class:`Body`, closed) before the handler runs, and
generates ``/openapi.json`` from it (:mod:`.openapi`). A face that is not the server adds
its router through the ``statebox.routers`` entry point group (:func:`plugin_routers`);
faces import this package, never each other. A face that adds more than routes to
``statebox serve`` (options, ports, services run beside the app, secret keyspaces) is
an :class:`Extension`, found through the ``statebox.serve_extensions`` entry points
(:mod:`.extension`). Starlette and msgspec are imported here
and in the server only: the CLI never imports this package.
"""

from __future__ import annotations

from .extension import EXTENSION_GROUP, Caller, Extension, Host, Service
from .fields import (
    INT64_MAX,
    INT64_MIN,
    After,
    AfterKey,
    Body,
    ExpectedVersion,
    FencingField,
    Flag,
    Int64,
    Limit,
    OptionalSeconds,
    Positive,
    Query,
    Seconds,
    Token,
    Version,
    WaitSeconds,
    exact,
)
from .openapi import ErrorResponses, build_document
from .routing import (
    ROUTER_GROUP,
    Answer,
    ErrorsAs,
    Handler,
    RequestView,
    Route,
    Router,
    plugin_routers,
    starlette_routes,
)

__all__ = [
    "EXTENSION_GROUP",
    "INT64_MAX",
    "INT64_MIN",
    "ROUTER_GROUP",
    "After",
    "AfterKey",
    "Answer",
    "Body",
    "Caller",
    "ErrorResponses",
    "ErrorsAs",
    "ExpectedVersion",
    "Extension",
    "FencingField",
    "Flag",
    "Handler",
    "Host",
    "Int64",
    "Limit",
    "OptionalSeconds",
    "Positive",
    "Query",
    "RequestView",
    "Route",
    "Router",
    "Seconds",
    "Service",
    "Token",
    "Version",
    "WaitSeconds",
    "build_document",
    "exact",
    "plugin_routers",
    "starlette_routes",
]
