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
or as an :class:`~statebox.web.Extension` (routers, services run in the app's lifespan
with a :class:`~statebox.server.host.ServerHost`, secret keyspaces), without a change
here. ``/openapi.json`` is generated from the routes of them all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
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
from ..web import Extension, Route, Router, plugin_routers, starlette_routes
from ..wire.codec import error_body
from . import (
    docs,
    routes_import,
    routes_keyspaces,
    routes_kv,
    routes_leases,
    routes_raw,
    routes_update,
    routes_whoami,
    watch,
)
from .auth import ANONYMOUS
from .browsers import CORS_HEADERS, CORS_METHODS, BrowserGuard
from .call import Call
from .config import ServerConfig
from .disclosure import new_request_id
from .front import FrontMiddleware
from .host import ServerHost
from .state import ServerState, json_response

__all__ = ["create_app", "endpoint", "server_routers"]

log = logging.getLogger("statebox.server")


def endpoint(state: ServerState, route: Route) -> Any:
    """A Starlette endpoint: authenticate, decode the route's input, run its handler,
    map errors to responses."""
    handler = route.handler

    errors_as = route.errors_as

    def answer(exc: StateboxError, request_id: str | None = None) -> Response:
        # A route of another API answers in that API's error body (errors_as), with the
        # message the server discloses; every other route in statebox's.
        if errors_as is not None:
            return state.error_as(errors_as, exc, request_id)
        return state.error_response(exc, request_id)

    async def run(request: Request) -> Response:
        try:
            principal = ANONYMOUS if route.public else state.authenticate(request)
            call = Call(request, state, principal)
            if route.access is not None:  # refused before its input is even read
                call.keyspace(route.access)
            return await handler(call, *await call.arguments(route))
        except StateboxError as exc:
            return answer(exc)
        except OverflowError:  # a number too large for the storage's 64-bit integers
            return answer(InvalidRequestError("a number in the request is out of range"))
        except ClientDisconnect:  # gone mid-body (or cut off by --body-timeout): no fault
            # of the server's, and nobody to answer (the response is dropped)
            return answer(InvalidRequestError("the client went away before its body arrived"))
        except Exception:
            request_id = new_request_id()  # the client gets it, the log line has it
            log.exception(
                "request %s: unexpected error in %s %s",
                request_id,
                request.method,
                request.url.path,
            )
            return answer(StateboxError("internal server error"), request_id)

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


def _close(state: ServerState) -> None:
    """At shutdown (after the extensions' services exited): the writer, the watches'
    threads, then the store."""
    if state.writer is not None:
        state.writer.close()
    if state.changes is not None:
        state.changes.close()  # its threads stop asking the backend
    state.scan_pool.shutdown(wait=True)  # no scan reads a closed store
    state.backend.close()


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
        routes_import.router,
        routes_leases.router,
        routes_whoami.router,
        watch.router,
        docs.router,
    ]
    if config.test_mode:
        routers.append(routes_raw.test_router)
    return routers


async def _start_extensions(
    state: ServerState, extensions: Sequence[Extension], running: AsyncExitStack
) -> None:
    """Declare the extensions' secret keyspaces, then enter their services (exited, in
    the reverse order, by ``running``)."""
    host = ServerHost(state)
    for extension in extensions:
        for keyspace in extension.secret_keyspaces:
            await state.write(partial(state.declare_secret, keyspace), alone=True)
    for extension in extensions:
        for service in extension.services:
            await running.enter_async_context(service(host))


def create_app(
    store: str | Backend | StateStore,
    config: ServerConfig | None = None,
    *,
    clock: Clock | None = None,
    extensions: Sequence[Extension] = (),
    on_started: Callable[[], None] | None = None,
) -> Starlette:
    """The statebox HTTP API over one store (a URL, an open backend, or an open
    :class:`StateStore`: its backend, and its clock unless ``clock`` is given).

    ``extensions`` (:class:`statebox.web.Extension`, what other faces add): their
    routers are mounted beside the server's own and the ``statebox.routers`` entry
    points'; when the app starts (its lifespan) their secret keyspaces are declared and
    then their services entered, and when it stops the services are exited before the
    store is closed. ``on_started`` is called once they all run (``serve`` prints its
    "listening on" lines then, so a client that waits for them finds every port ready).

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

    routers = [
        *server_routers(config),
        *plugin_routers(),
        *(router for extension in extensions for router in extension.routers),
    ]
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
        try:
            async with anyio.create_task_group() as tasks:
                # The services stop first, outside the cancelled scope: a service's own
                # shutdown (the gRPC server's grace period) awaits, and must not be
                # cancelled half-way.
                async with AsyncExitStack() as running:
                    try:
                        await _start_extensions(state, extensions, running)
                    except StateboxError as exc:
                        state.startup_error = exc  # serve() reports it and exits
                        raise
                    if config.purge_interval > 0:
                        tasks.start_soon(_purge_periodically, state, config.purge_interval)
                    if on_started is not None:
                        on_started()
                    yield
                tasks.cancel_scope.cancel()
        finally:
            _close(state)

    app = Starlette(
        routes=routes,
        middleware=_middleware(state, config),
        exception_handlers={HTTPException: not_routed},
        lifespan=lifespan,
    )
    app.state.statebox = state
    return app
