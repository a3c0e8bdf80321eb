"""Routes and routers: each route declared once, each face's routes on its own router.

A :class:`Route` is everything about one operation — method, path, what it reads
(path, query and header parameters, a JSON body model), what it answers per status, and
whether it is public — together with its handler. The server turns the routes of every
router it mounts into Starlette routes (:func:`starlette_routes`) and into the OpenAPI
document (:mod:`.openapi`); nothing else lists them.

A handler is ``async def handler(call, [query], [body]) -> Response``: ``call`` is the
request as a face sees it (:class:`RequestView`), followed by the decoded query model if
the route declares one, and the decoded body model if it declares one, in that order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from ..core.errors import StateboxError
from .fields import Body, Query

if TYPE_CHECKING:
    from ..core.model import Keyspace
    from ..store import StateStore

__all__ = [
    "ROUTER_GROUP",
    "Answer",
    "ErrorsAs",
    "Handler",
    "RequestView",
    "Route",
    "Router",
    "plugin_routers",
    "starlette_routes",
]

T = TypeVar("T")
JSON: Final = "application/json"
#: The entry point group through which a face adds its router to the server.
ROUTER_GROUP: Final = "statebox.routers"

Handler = Callable[..., Awaitable[Response]]
#: How a route answers an error: ``(error, message)`` → the response. ``message`` is the
#: one the server discloses (no storage location, no key file: the server's log has
#: what it withholds).
ErrorsAs = Callable[[StateboxError, str], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


class RequestView(Protocol):
    """One request as a handler sees it: what a face codes against (the server's
    ``Call`` is one)."""

    @property
    def request(self) -> Request: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The request's headers by lower-case name (the first of a repeated one)."""
        ...

    def keyspace(self, access: str) -> Keyspace:
        """The path's ``{scope}`` and ``{namespace}``, validated, and authorized for
        ``access`` (``"read"`` or ``"write"``) — else a 403."""
        ...

    @property
    def granted(self) -> Keyspace:
        """The path's keyspace, authorized for the route's declared ``access`` before
        the handler runs."""
        ...

    def authorize(self, access: str, keyspace: Keyspace) -> None:
        """A 403 unless the caller has the ``access`` grant on ``keyspace``."""
        ...

    def secret(self, keyspace: Keyspace) -> bool:
        """Whether ``keyspace``'s values are secret (sealed at rest, masked in answers)."""
        ...

    def authorize_reveal(self, keyspace: Keyspace, what: str = "", hint: str = "") -> None:
        """A 403 unless the caller may see the values of ``keyspace`` (a secret one):
        ``what`` names the operation that needs them, ``hint`` what to do instead."""
        ...

    def store(self) -> StateStore:
        """The engine acting for this caller (a write records who wrote)."""
        ...

    def reader(self) -> StateStore:
        """The engine for a read."""
        ...

    async def read(self, work: Callable[[], T], *, alone: bool = False) -> T:
        """Run a blocking read where the server runs reads (a small one may run on the
        event loop); ``alone``: a long one, always on a worker thread."""
        ...

    async def write(self, work: Callable[[], T], *, alone: bool = False) -> T:
        """Run a blocking write where the server runs writes (its writer thread; a small
        one may be committed on the event loop); ``alone``: a long one, in a
        transaction of its own on the writer thread."""
        ...

    def batch(self, count: int, size: int = 0) -> bool:
        """Check ``count`` operations against ``--max-txn-ops`` (an
        InvalidRequestError over it); whether they (``size`` bytes of values, or the
        request body, whichever is more) are written off the event loop (``alone``)."""
        ...

    @property
    def max_txn_ops(self) -> int:
        """The most operations one transaction may have (``--max-txn-ops``)."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of a route: ``model`` (a ``msgspec.Struct`` or any type msgspec can
    describe; ``None``: any JSON) or an explicit ``schema``, as ``media_type``."""

    model: Any = None
    media_type: str = JSON
    description: str = "OK"
    #: Response header name → what it says.
    headers: Mapping[str, str] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One operation, declared once."""

    method: str
    #: A Starlette path template: ``/v1/kv/{scope}/{namespace}/{key:path}``.
    path: str
    handler: Handler
    summary: str
    description: str | None = None
    #: The path parameters, documented (a Struct whose fields are the template's names).
    path_params: type[msgspec.Struct] | None = None
    query: type[Query] | None = None
    #: Request headers, documented (a Struct; field names via ``msgspec.field(name=)``).
    headers: type[msgspec.Struct] | None = None
    body: type[Body] | None = None
    #: A body the handler reads itself (not one JSON model): media type → schema.
    content: Mapping[str, Mapping[str, Any]] | None = None
    responses: Mapping[int, Answer] = field(default_factory=lambda: {200: Answer()})
    #: Error statuses this route may answer besides those every route may (409, 412...).
    errors: tuple[int, ...] = ()
    #: No token needed (health, metrics, documentation).
    public: bool = False
    #: The grant (``"read"`` or ``"write"``) the caller needs on the path's ``{scope}`` /
    #: ``{namespace}``: checked before the query or body is read, so a caller without
    #: it is refused (403) whatever it sent, and never makes the server decode a body.
    #: Every route whose path names a keyspace declares it.
    access: str | None = None
    #: How this route answers every error (authentication and grants included): a face
    #: that speaks another API's error bodies. ``None``: statebox's ``{"error": {...}}``.
    errors_as: ErrorsAs | None = None

    def __post_init__(self) -> None:
        named = set(re.findall(r"\{(\w+)(?::\w+)?\}", self.path))
        declared = set() if self.path_params is None else set(self.path_params.__struct_fields__)
        if named != declared:
            raise ValueError(
                f"{self.method} {self.path}: the path names {sorted(named)}, its path "
                f"parameters declare {sorted(declared)}"
            )
        if {"scope", "namespace"} <= named and self.access not in ("read", "write"):
            raise ValueError(
                f"{self.method} {self.path}: a route on a keyspace declares access="
                '"read" or "write"'
            )
        if self.access is not None and not {"scope", "namespace"} <= named:
            raise ValueError(f"{self.method} {self.path}: access= needs a keyspace in the path")

    @property
    def name(self) -> str:
        """The operation's name (its handler's), as messages call it: ``update``."""
        return self.handler.__name__

    @property
    def template(self) -> str:
        """The path as OpenAPI writes it: ``/v1/kv/{scope}/{namespace}/{key}``."""
        return re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)

    @property
    def has_body(self) -> bool:
        return self.body is not None or self.content is not None


class Router:
    """The routes of one area or face, mounted by the server as a whole."""

    def __init__(self, name: str, routes: Iterable[Route] = ()) -> None:
        self.name = name
        self.routes: list[Route] = list(routes)

    def add(self, route: Route) -> Route:
        self.routes.append(route)
        return route

    def route(self, method: str, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        """Declare ``handler`` as the route ``method path`` (see :class:`Route`)."""

        def declare(handler: Handler) -> Handler:
            self.add(Route(method, path, handler, **declaration))
            return handler

        return declare

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declaration)

    def put(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **declaration)

    def delete(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **declaration)

    def __repr__(self) -> str:
        return f"Router({self.name!r}, {len(self.routes)} routes)"


def plugin_routers() -> list[Router]:
    """The routers other faces add, from the ``statebox.routers`` entry points: each
    names a :class:`Router`, or a callable that returns one."""
    from importlib.metadata import entry_points

    found = []
    for point in entry_points(group=ROUTER_GROUP):
        loaded = point.load()
        router = loaded if isinstance(loaded, Router) else loaded()
        if not isinstance(router, Router):
            raise TypeError(
                f"entry point {point.name} = {point.value} ({ROUTER_GROUP}) gives no Router"
            )
        found.append(router)
    return found


def starlette_routes(
    routers: Iterable[Router], endpoint: Callable[[Route], Endpoint]
) -> list[StarletteRoute]:
    """One Starlette route per path, choosing the handler by method (Starlette matches
    each route's pattern in turn, so a PUT listed after the GET of its path matched
    twice). A method declared twice on one path is refused: no router silently takes
    another's route."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for router in routers:
        for route in router.routes:
            methods = by_path.setdefault(route.path, {})
            if route.method in methods:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            methods[route.method] = endpoint(route)
    return [_one_route(path, endpoints) for path, endpoints in by_path.items()]


def _one_route(path: str, endpoints: dict[str, Endpoint]) -> StarletteRoute:
    if len(endpoints) == 1:
        method, only = next(iter(endpoints.items()))
        return StarletteRoute(path, only, methods=[method])  # Starlette adds HEAD to GET
    if "GET" in endpoints and "HEAD" not in endpoints:
        endpoints = {**endpoints, "HEAD": endpoints["GET"]}  # as Starlette does for a GET

    async def dispatch(request: Request) -> Response:
        return await endpoints[request.method](request)

    return StarletteRoute(path, dispatch, methods=list(endpoints))
