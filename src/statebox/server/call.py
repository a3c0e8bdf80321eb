"""One request as a handler sees it (:class:`Call`), and the checks of its input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import anyio.to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from ..core.errors import InvalidRequestError, PermissionDeniedError, quoted
from ..core.model import Keyspace, RunContext, UpdatedBy
from ..core.values import check_depth
from ..store import StateStore
from ..wire.codec import (
    NOW_HEADER,
    check_op_count,
    loads_batch,
    loads_exact,
    updated_by_from_headers,
)
from .auth import Access, Principal
from .state import NO_CONTEXT, FixedClock, ServerState
from .writer import BIG_BATCH_BYTES, is_big_batch

__all__ = [
    "Call",
    "Handler",
    "RouteSpec",
    "bounded_int",
    "check_fields",
    "field_bool",
    "field_int",
    "field_str",
]

INT64: Final = 2**63
#: Levels a JSON body adds around the values it carries (``{"ops": [{"value": ...}]}``,
#: ``{"patch": [{"value": ...}]}``): the values themselves are held to MAX_DEPTH.
BODY_ENVELOPE: Final = 3


class Call:
    """One request as a handler sees it."""

    __slots__ = ("_headers", "body_size", "principal", "request", "state")

    def __init__(self, request: Request, state: ServerState, principal: Principal) -> None:
        self.request = request
        self.state = state
        self.principal = principal
        self._headers: dict[str, str] | None = None
        #: Bytes of the body :meth:`body_object` read.
        self.body_size = 0

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers by (lower-case) name, the first of a repeated one: read
        in one pass, where each of Starlette's lookups scans them all again."""
        if self._headers is None:
            self._headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in reversed(self.request.scope["headers"])
            }
        return self._headers

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
                f"token {quoted(self.principal.name)} has no {access.value} grant on scope "
                f"{quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}"
            )

    def authorize_everything(self, access: Access) -> None:
        if not self.principal.can_everything(access):
            raise PermissionDeniedError(
                f"token {quoted(self.principal.name)} needs a {access.value} grant on every "
                'scope and namespace ("*") for this store-wide operation'
            )

    # -- the engine for this request ---------------------------------------------------

    def now(self) -> int:
        if self.state.config.test_mode:
            raw = self.headers.get(NOW_HEADER)
            if raw is not None:
                try:
                    return int(raw)
                except ValueError:
                    raise InvalidRequestError(
                        f"invalid {NOW_HEADER} header {quoted(raw)}"
                    ) from None
        return self.state.clock.now_ns()

    def updated_by(self) -> UpdatedBy:
        return updated_by_from_headers(self.headers, self.principal.name)

    def store(self) -> StateStore:
        """The engine acting for this caller: its run context, the server's principal."""
        who = self.updated_by()
        context = RunContext(
            dag=who.dag_name or None,
            run_id=who.dag_run_id or None,
            step=who.step_name or None,
            principal=who.principal or None,
        )
        if self.state.config.test_mode and NOW_HEADER in self.headers:
            return self.state.new_store(context, FixedClock(self.now()))
        return self.state.store_for(context)

    def reader(self) -> StateStore:
        """The engine for a read (no writer to record)."""
        if self.state.config.test_mode and NOW_HEADER in self.headers:
            return self.state.new_store(NO_CONTEXT, FixedClock(self.now()))
        return self.state.store_for(NO_CONTEXT)

    # -- input --------------------------------------------------------------------------

    @property
    def query(self) -> QueryParams:
        return self.request.query_params  # parsed once: the request caches it

    async def body_object(self, *, batch: bool = False) -> dict[str, Any]:
        """The request body: one JSON object (numbers kept exactly as written). A
        ``batch`` (a transaction) keeps its operations' values as text: see loads_batch."""
        raw = await self.request.body()
        limit = self.state.config.max_txn_ops
        parse = partial(loads_batch, max_ops=limit) if batch else loads_exact
        self.body_size = len(raw)
        check_depth(raw, "request body", envelope=BODY_ENVELOPE)
        try:
            # A large body is parsed on a worker thread: the event loop keeps answering.
            if len(raw) > BIG_BATCH_BYTES:
                data = await anyio.to_thread.run_sync(parse, raw)
            else:
                data = parse(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidRequestError("request body must be a JSON object")
        return data

    def batch(self, ops: list[Any]) -> bool:
        """Check a transaction's size against ``max_txn_ops``; whether it is big enough
        to be committed off the event loop, on the writer thread."""
        check_op_count(len(ops), self.state.config.max_txn_ops)
        return is_big_batch(len(ops), self.body_size)

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
            raise InvalidRequestError(
                f"invalid ?{name}= {quoted(raw)}: must be an integer"
            ) from None
        return bounded_int(f"?{name}=", value, minimum)

    def q_bool(self, name: str) -> bool:
        raw = self.q_str(name)
        if raw is None:
            return False
        lowered = raw.lower()
        if lowered in ("", "1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise InvalidRequestError(f"invalid ?{name}= {quoted(raw)}: must be true or false")


def check_fields(body: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"{where}: unknown field(s) {_listed(unknown)}; known: {_listed(sorted(allowed))}"
        )


def _listed(names: list[str]) -> str:
    return ", ".join(quoted(name) for name in names)


def bounded_int(name: str, value: int, minimum: int | None) -> int:
    """``value`` of ``name`` (as the request spells it: ``?limit=``, ``"version"``)."""
    if minimum is not None and value < minimum:
        raise InvalidRequestError(f"invalid {name} {value}: must be {minimum} or more")
    if not -INT64 <= value < INT64:  # every backend stores versions and limits in 64 bits
        raise InvalidRequestError(f"invalid {name} {value}: out of range")
    return value


def field_int(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"invalid {quoted(name)} {quoted(value)}: must be an integer")
    return bounded_int(quoted(name), value, minimum)


def field_bool(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"invalid {quoted(name)} {quoted(value)}: must be true or false")
    return value


def field_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"invalid {quoted(name)} {quoted(value)}: must be a string")
    return value


Handler = Callable[[Call], Awaitable[Response]]
RouteSpec = tuple[str, str, Handler, bool]  # method, path template, handler, public
