"""The application: configuration, per-request helpers, and the app factory.

Every endpoint is the same shape — authenticate, authorize the keyspace, call one engine
(or backend) method, answer with its JSON — so that shape lives here once:
:func:`endpoint` wraps a handler with authentication and the error mapping
(``StateboxError.http_status``, the ``{"error": {...}}`` body, metrics), and
:class:`Call` gives the handler what it needs from the request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..backends import open_backend
from ..backends.base import Backend
from ..backends.memory import MemoryBackend
from ..backends.sqlite import SqliteBackend
from ..clock import Clock, SystemClock
from ..errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptEntryError,
    InvalidRequestError,
    PermissionDeniedError,
    StateboxError,
)
from ..model import Keyspace, RunContext, UpdatedBy, resolve_keyspace
from ..results import dumps_envelope
from ..store import StateStore
from .auth import ANONYMOUS, Access, Principal
from .config import ServerConfig
from .front import FrontMiddleware
from .metrics import Metrics
from .wire import NOW_HEADER, error_body, loads_exact, updated_by_from_headers

__all__ = [
    "Call",
    "ServerConfig",
    "ServerState",
    "bounded_int",
    "check_fields",
    "create_app",
    "endpoint",
    "field_bool",
    "field_int",
    "field_str",
    "json_response",
]

log = logging.getLogger("statebox.server")
T = TypeVar("T")
JSON: Final = "application/json"
_NO_CONTEXT: Final = RunContext()
INT64: Final = 2**63


class _FixedClock:
    """The time a test client sent (test mode only)."""

    __slots__ = ("_now",)

    def __init__(self, now: int) -> None:
        self._now = now

    def now_ns(self) -> int:
        return self._now


class _Unauthenticated(PermissionDeniedError):
    http_status = 401
    kind = "unauthenticated"


class PreconditionFailed(ConflictError):
    """A conflict on a guard that came from ``If-Match`` / ``If-None-Match``: HTTP 412."""

    http_status = 412

    @classmethod
    def from_conflict(cls, exc: ConflictError) -> PreconditionFailed:
        return cls(exc.message, index=exc.index, current_version=exc.current_version)


class ServerState:
    """What every request shares: the backend, the configuration, the metrics."""

    def __init__(self, store_url: str, backend: Backend, config: ServerConfig, clock: Clock):
        self.store_url = store_url
        self.backend = backend
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        # Embedded backends answer a read in microseconds without waiting on a lock (WAL
        # readers never block): a hop to a worker thread would cost more than the read.
        self.inline_reads = isinstance(backend, (MemoryBackend, SqliteBackend))
        # Long polls get their own threads, so watchers can never starve other requests.
        self.wait_limiter = anyio.CapacityLimiter(256)
        # SQLite has one writer at a time: queueing writes here, on a lock that wakes the
        # next one at once, beats SQLite's busy handler, which sleeps between retries.
        self.write_limiter = anyio.CapacityLimiter(1) if self.inline_reads else None
        self._stores: dict[RunContext, StateStore] = {}
        self._keyspaces: dict[tuple[str, str], Keyspace] = {}

    def reset(self) -> None:
        """Test mode: start again from an empty ``memory://`` store."""
        if not isinstance(self.backend, MemoryBackend):
            raise InvalidRequestError("reset works only on a memory:// store")
        self.backend = MemoryBackend(self.store_url)
        self._stores.clear()

    def new_store(self, context: RunContext, clock: Clock) -> StateStore:
        config = self.config
        return StateStore(
            self.backend,
            context=context,
            clock=clock,
            history_limit=config.history_limit,
            json_limit=config.json_limit,
            binary_limit=config.binary_limit,
        )

    def keyspace(self, scope: str, namespace: str) -> Keyspace:
        """A path's scope and namespace, validated (SPEC §1), cached."""
        keyspace = self._keyspaces.get((scope, namespace))
        if keyspace is None:
            if len(self._keyspaces) >= 4096:
                self._keyspaces.clear()
            keyspace = resolve_keyspace(scope, namespace, _NO_CONTEXT)
            self._keyspaces[(scope, namespace)] = keyspace
        return keyspace

    def store_for(self, context: RunContext) -> StateStore:
        """One engine per caller context, kept: its resolved keyspaces stay cached."""
        store = self._stores.get(context)
        if store is None:
            if len(self._stores) >= 1024:
                self._stores.clear()
            store = self._stores[context] = self.new_store(context, self.clock)
        return store

    async def read(self, fn: Callable[[], T]) -> T:
        if self.inline_reads:
            return fn()
        return await anyio.to_thread.run_sync(fn)

    async def write(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, limiter=self.write_limiter)

    async def wait(self, fn: Callable[[], T]) -> T:
        # A client that leaves cancels the request; the thread ends at its own timeout.
        return await anyio.to_thread.run_sync(fn, limiter=self.wait_limiter, abandon_on_cancel=True)

    def authenticate(self, request: Request) -> Principal:
        tokens = self.config.tokens
        if tokens is None:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
        principal = tokens.authenticate(secret.strip())
        if principal is None:
            raise _Unauthenticated("invalid bearer token")
        return principal

    def error_response(self, exc: StateboxError) -> Response:
        if isinstance(exc, ConflictError):
            self.metrics.conflicts += 1
        elif isinstance(exc, (BackendUnavailableError, CorruptEntryError)):
            self.metrics.backend_errors += 1
        headers = {"www-authenticate": "Bearer"} if isinstance(exc, _Unauthenticated) else None
        return json_response(error_body(exc), exc.http_status, headers)


def json_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(text, status_code=status, media_type=JSON, headers=headers)


class Call:
    """One request as a handler sees it."""

    __slots__ = ("_query", "principal", "request", "state")

    def __init__(self, request: Request, state: ServerState, principal: Principal) -> None:
        self.request = request
        self.state = state
        self.principal = principal
        self._query: QueryParams | None = None

    # -- addressing and authorization --------------------------------------------------

    def keyspace(self, access: Access) -> Keyspace:
        """The path's scope and namespace, validated, and checked against the grants."""
        params = self.request.path_params
        keyspace = self.state.keyspace(params["scope"], params["namespace"])
        self.authorize(access, keyspace)
        return keyspace

    def authorize(self, access: Access, keyspace: Keyspace) -> None:
        if not self.principal.can(access, keyspace):
            raise PermissionDeniedError(
                f"token {self.principal.name!r} has no {access.value} grant on scope "
                f"{keyspace.scope!r}, namespace {keyspace.namespace!r}"
            )

    def authorize_everything(self, access: Access) -> None:
        if not self.principal.can_everything(access):
            raise PermissionDeniedError(
                f"token {self.principal.name!r} needs a {access.value} grant on every scope "
                "and namespace ('*') for this store-wide operation"
            )

    # -- the engine for this request ---------------------------------------------------

    def now(self) -> int:
        if self.state.config.test_mode:
            raw = self.request.headers.get(NOW_HEADER)
            if raw is not None:
                try:
                    return int(raw)
                except ValueError:
                    raise InvalidRequestError(f"invalid {NOW_HEADER} header {raw!r}") from None
        return self.state.clock.now_ns()

    def updated_by(self) -> UpdatedBy:
        return updated_by_from_headers(self.request.headers, self.principal.name)

    def store(self) -> StateStore:
        """The engine acting for this caller: its run context, the server's principal."""
        who = self.updated_by()
        context = RunContext(
            dag=who.dag_name or None,
            run_id=who.dag_run_id or None,
            step=who.step_name or None,
            principal=who.principal or None,
        )
        if self.state.config.test_mode and NOW_HEADER in self.request.headers:
            return self.state.new_store(context, _FixedClock(self.now()))
        return self.state.store_for(context)

    def reader(self) -> StateStore:
        """The engine for a read (no writer to record)."""
        if self.state.config.test_mode and NOW_HEADER in self.request.headers:
            return self.state.new_store(_NO_CONTEXT, _FixedClock(self.now()))
        return self.state.store_for(_NO_CONTEXT)

    # -- input --------------------------------------------------------------------------

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = self.request.query_params
        return self._query

    async def body_object(self) -> dict[str, Any]:
        """The request body: one JSON object (numbers kept exactly as written)."""
        raw = await self.request.body()
        try:
            data = loads_exact(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidRequestError("request body must be a JSON object")
        return data

    def q_str(self, name: str) -> str | None:
        if not self.request.scope["query_string"]:
            return None  # the common case, without parsing anything
        return self.query.get(name)

    def q_int(self, name: str, *, minimum: int | None = None) -> int | None:
        raw = self.q_str(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequestError(f"invalid {name} {raw!r}: must be an integer") from None
        return bounded_int(name, value, minimum)

    def q_bool(self, name: str) -> bool:
        raw = self.q_str(name)
        if raw is None:
            return False
        lowered = raw.lower()
        if lowered in ("", "1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise InvalidRequestError(f"invalid {name} {raw!r}: must be true or false")


def check_fields(body: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )


def bounded_int(name: str, value: int, minimum: int | None) -> int:
    if minimum is not None and value < minimum:
        raise InvalidRequestError(f"invalid {name} {value!r}: must be {minimum} or more")
    if not -INT64 <= value < INT64:  # every backend stores versions and limits in 64 bits
        raise InvalidRequestError(f"invalid {name} {value!r}: out of range")
    return value


def field_int(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"invalid {name} {value!r}: must be an integer")
    return bounded_int(name, value, minimum)


def field_bool(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"invalid {name} {value!r}: must be true or false")
    return value


def field_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"invalid {name} {value!r}: must be a string")
    return value


Handler = Callable[[Call], Awaitable[Response]]


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
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.url.path)
            return state.error_response(
                StateboxError("internal server error (details are in the server's log)")
            )

    run.__name__ = handler.__name__
    return run


RouteSpec = tuple[str, str, Handler, bool]  # method, path template, handler, public


async def _purge_periodically(state: ServerState, interval: float) -> None:
    """Expired entries are invisible already; this reclaims their space."""
    batch = 1000
    while True:
        await anyio.sleep(interval)
        try:
            while (
                await state.write(lambda: state.backend.purge_expired(state.clock.now_ns(), batch))
                >= batch
            ):
                pass
        except StateboxError as exc:
            log.warning("statebox: purging expired entries failed: %s", exc.message)


def create_app(
    store: str | Backend,
    config: ServerConfig | None = None,
    *,
    clock: Clock | None = None,
) -> Starlette:
    """The statebox HTTP API over one store (a URL, or an open backend)."""
    from . import docs, routes_kv, routes_leases, routes_raw, watch  # they import this module

    config = config if config is not None else ServerConfig()
    backend = open_backend(store) if isinstance(store, str) else store
    url = store if isinstance(store, str) else backend.url
    state = ServerState(url, backend, config, clock if clock is not None else SystemClock())

    specs: list[RouteSpec] = [
        *routes_kv.ROUTES,
        *routes_raw.ROUTES,
        *routes_leases.ROUTES,
        *watch.ROUTES,
        *docs.ROUTES,
    ]
    if config.test_mode:
        specs.append(("POST", "/v1/_test/reset", routes_raw.reset, False))
    routes = [
        Route(path, endpoint(state, handler, public=public), methods=[method])
        for method, path, handler, public in specs
    ]

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
        state.backend.close()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(FrontMiddleware, metrics=state.metrics, max_body_bytes=config.max_body_bytes)
        ],
        exception_handlers={HTTPException: not_routed},
        lifespan=lifespan,
    )
    app.state.statebox = state
    return app
