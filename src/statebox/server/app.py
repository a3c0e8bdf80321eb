"""The application factory: every route, one shape.

Every endpoint is the same: authenticate, authorize the keyspace, call one engine (or
backend) method, answer with its JSON. :func:`endpoint` wraps each handler with
authentication and the error mapping (``StateboxError.http_status``, the
``{"error": {...}}`` body, metrics); :class:`~statebox.server.call.Call` gives the
handler what it needs from the request; :class:`~statebox.server.state.ServerState` is
what all requests share.
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
from starlette.routing import Route

from ..backends import open_backend
from ..backends.base import Backend
from ..core.clock import Clock, SystemClock
from ..core.errors import InvalidRequestError, StateboxError
from ..core.results import dumps_envelope
from ..store import StateStore
from ..wire.codec import error_body
from . import docs, routes_keyspaces, routes_kv, routes_leases, routes_raw, watch
from .auth import ANONYMOUS
from .browsers import CORS_HEADERS, CORS_METHODS, BrowserGuard
from .call import Call, Handler, RouteSpec
from .config import ServerConfig
from .disclosure import new_request_id
from .front import FrontMiddleware
from .state import ServerState, json_response

__all__ = ["create_app", "endpoint"]

log = logging.getLogger("statebox.server")


def endpoint(state: ServerState, handler: Handler, *, public: bool = False) -> Any:
    """A Starlette endpoint: authenticate, run ``handler``, map errors to responses."""

    async def run(request: Request) -> Response:
        try:
            principal = ANONYMOUS if public else state.authenticate(request)
            return await handler(Call(request, state, principal))
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


def _route(path: str, endpoints: dict[str, Any]) -> Route:
    """One route for ``path``, choosing the handler by method: Starlette matches each
    route's pattern in turn, so a PUT listed after the GET of its path matched twice."""
    if len(endpoints) == 1:
        method, only = next(iter(endpoints.items()))
        return Route(path, only, methods=[method])  # Starlette answers HEAD for a GET
    if "GET" in endpoints and "HEAD" not in endpoints:
        endpoints = {**endpoints, "HEAD": endpoints["GET"]}  # as Starlette does for a GET

    async def dispatch(request: Request) -> Response:
        response: Response = await endpoints[request.method](request)
        return response

    return Route(path, dispatch, methods=list(endpoints))


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


def create_app(
    store: str | Backend | StateStore,
    config: ServerConfig | None = None,
    *,
    clock: Clock | None = None,
) -> Starlette:
    """The statebox HTTP API over one store (a URL, an open backend, or an open
    :class:`StateStore`: its backend, and its clock unless ``clock`` is given)."""
    if isinstance(store, StateStore):
        clock = clock if clock is not None else store.clock
        store = store.backend
    config = config if config is not None else ServerConfig()
    backend = open_backend(store) if isinstance(store, str) else store
    url = store if isinstance(store, str) else backend.url
    state = ServerState(url, backend, config, clock if clock is not None else SystemClock())

    specs: list[RouteSpec] = [
        *routes_kv.ROUTES,
        *routes_raw.ROUTES,
        *routes_leases.ROUTES,
        *routes_keyspaces.ROUTES,
        *watch.ROUTES,
        *docs.ROUTES,
    ]
    if config.test_mode:
        specs.append(("POST", "/v1/_test/reset", routes_raw.reset, False))
    by_path: dict[str, dict[str, Any]] = {}
    for method, path, handler, public in specs:
        by_path.setdefault(path, {})[method] = endpoint(state, handler, public=public)
    routes = [_route(path, endpoints) for path, endpoints in by_path.items()]

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
