"""The application factory: the routers it mounts, every route one shape.

Every endpoint is the same: authenticate, read the route's declared query and body,
authorize the keyspace, call one engine (or backend) method, answer with its JSON.
:func:`endpoint` wraps each declared route (:class:`statebox.web.Route`) with
authentication, the decoding of its input and the error mapping
(``StateboxError.http_status``, the ``{"error": {...}}`` body, metrics);
:class:`~statebox.server.call.Call` gives the handler what it needs from the request;
:class:`~statebox.server.state.ServerState` is what all requests share.

The server's own areas are routers (:func:`server_routers`); another face adds its own
through the ``statebox.routers`` entry points (:func:`statebox.web.plugin_routers`),
without a change here. ``/openapi.json`` is generated from the routes of them all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..backends import open_backend
from ..backends.base import Backend
from ..core.clock import Clock, SystemClock
from ..core.envelope import dumps_envelope
from ..core.errors import InvalidRequestError, StateboxError
from ..store import StateStore
from ..web import Route, Router, plugin_routers, starlette_routes
from ..wire.codec import error_body
from . import (
    docs,
    routes_keyspaces,
    routes_kv,
    routes_leases,
    routes_raw,
    routes_update,
    watch,
)
from .auth import ANONYMOUS
from .browsers import CORS_HEADERS, CORS_METHODS, BrowserGuard
from .call import Call
from .config import ServerConfig
from .disclosure import new_request_id
from .front import FrontMiddleware
from .state import ServerState, json_response

__all__ = ["create_app", "endpoint", "server_routers"]

log = logging.getLogger("statebox.server")


def endpoint(state: ServerState, route: Route) -> Any:
    """A Starlette endpoint: authenticate, decode the route's input, run its handler,
    map errors to responses."""
    handler = route.handler

    async def run(request: Request) -> Response:
        try:
            principal = ANONYMOUS if route.public else state.authenticate(request)
            call = Call(request, state, principal)
            if route.access is not None:  # refused before its input is even read
                call.keyspace(route.access)
            return await handler(call, *await call.arguments(route))
        except StateboxError as exc:
            return state.error_response(exc)
        except OverflowError:  # a number too large for the storage's 64-bit integers
            problem = InvalidRequestError("a number in the request is out of range")
            return state.error_response(problem)
        except ClientDisconnect:  # gone mid-body (or cut off by --body-timeout): no fault
            # of the server's, and nobody to answer (the response is dropped)
            problem = InvalidRequestError("the client went away before its body arrived")
            return state.error_response(problem)
        except Exception:
            request_id = new_request_id()  # the client gets it, the log line has it
            log.exception(
                "request %s: unexpected error in %s %s",
                request_id,
                request.method,
                request.url.path,
            )
            return state.error_response(StateboxError("internal server error"), request_id)

    run.__name__ = handler.__name__
    return run


async def _purge_periodically(state: ServerState, interval: float) -> None:
    """Expired entries are invisible already; this reclaims their space."""
    batch = 1000
    while True:
        await anyio.sleep(interval)
        try:
            while (
                await state.write(
                    lambda: state.backend.purge_expired(state.clock.now_ns(), batch), alone=True
                )
                >= batch
            ):
                pass
        except StateboxError as exc:
            log.warning("statebox: purging expired entries failed: %s", exc.message)


def _middleware(state: ServerState, config: ServerConfig) -> list[Middleware]:
    """The front checks (browsers.py: Host, Origin, Content-Type; the body limit), then
    CORS headers and preflights for the origins the operator allowed, if any."""
    guard = BrowserGuard(config.allowed_hosts, config.allowed_origins)
    layers = [
        Middleware(
            FrontMiddleware,
            metrics=state.metrics,
            max_body_bytes=config.max_body_bytes,
            guard=guard,
        )
    ]
    if config.allowed_origins:
        layers.append(
            Middleware(
                CORSMiddleware,
                allow_origins=sorted(guard.origins),  # as browsers write them
                allow_methods=list(CORS_METHODS),
                allow_headers=list(CORS_HEADERS),
                expose_headers=["etag"],
                max_age=600,
            )
        )
    return layers


def server_routers(config: ServerConfig) -> list[Router]:
    """The server's own areas, each a router (the test reset only in test mode)."""
    routers = [
        routes_kv.router,
        routes_update.router,
        routes_keyspaces.router,
        routes_raw.router,
        routes_leases.router,
        watch.router,
        docs.router,
    ]
    if config.test_mode:
        routers.append(routes_raw.test_router)
    return routers


def create_app(
    store: str | Backend | StateStore,
    config: ServerConfig | None = None,
    *,
    clock: Clock | None = None,
) -> Starlette:
    """The statebox HTTP API over one store (a URL, an open backend, or an open
    :class:`StateStore`: its backend, and its clock unless ``clock`` is given).

    A backend given as an object is sealed as ``open_backend`` seals the one it opens
    (:func:`~statebox.backends.sealing.backend.seal_backend`: unchanged when it seals
    already), so secret keyspaces are sealed at rest however the server was made."""
    if isinstance(store, StateStore):
        clock = clock if clock is not None else store.clock
        store = store.backend
    config = config if config is not None else ServerConfig()
    if isinstance(store, str):
        backend = open_backend(store)
    else:
        from ..backends import seal_backend

        backend = seal_backend(store)
    url = store if isinstance(store, str) else backend.url
    state = ServerState(url, backend, config, clock if clock is not None else SystemClock())

    routers = [*server_routers(config), *plugin_routers()]
    routes = starlette_routes(routers, lambda route: endpoint(state, route))
    state.routers = routers  # /openapi.json describes them

    async def not_routed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            problem: StateboxError = InvalidRequestError(
                f"method {request.method} is not allowed on {request.url.path}"
            )
            return json_response(error_body(problem), 405, dict(exc.headers or {}))
        # Its own kind: a client must never take a missing route for a missing entry.
        message = f"no route {request.method} {request.url.path}: see /openapi.json"
        body = dumps_envelope({"error": {"kind": "no_route", "message": message}})
        return json_response(body, exc.status_code)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            if config.purge_interval > 0:
                tasks.start_soon(_purge_periodically, state, config.purge_interval)
            yield
            tasks.cancel_scope.cancel()
        if state.writer is not None:
            state.writer.close()
        if state.changes is not None:
            state.changes.close()  # its threads stop asking the backend
        state.backend.close()

    app = Starlette(
        routes=routes,
        middleware=_middleware(state, config),
        exception_handlers={HTTPException: not_routed},
        lifespan=lifespan,
    )
    app.state.statebox = state
    return app
