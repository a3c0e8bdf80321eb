"""One request as a handler sees it (:class:`Call`, a :class:`statebox.web.RequestView`),
and how its declared query and body are read before the handler runs."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request

from ..core.errors import InvalidRequestError, PermissionDeniedError, quoted
from ..core.model import Keyspace, RunContext, UpdatedBy
from ..core.values import check_depth
from ..store import StateStore
from ..web import Body, Query, RequestView, Route
from ..web.decoding import decode_body, decode_query
from ..wire.codec import NOW_HEADER, check_op_count, updated_by_from_headers
from .auth import Access, Principal
from .state import NO_CONTEXT, FixedClock, ServerState
from .writer import BIG_BATCH_BYTES, is_big_batch

__all__ = ["Call", "authorize", "authorize_reveal", "check_batch", "read_on"]

T = TypeVar("T")
B = TypeVar("B", bound=Body)


class Call:
    """One request as a handler sees it."""

    __slots__ = ("_granted", "_headers", "body_size", "principal", "request", "state")

    def __init__(self, request: Request, state: ServerState, principal: Principal) -> None:
        self.request = request
        self.state = state
        self.principal = principal
        self._headers: dict[str, str] | None = None
        #: The path's keyspace once authorized, and for which access.
        self._granted: tuple[str, Keyspace] | None = None
        #: Bytes of the body :meth:`body` read.
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

    def keyspace(self, access: str) -> Keyspace:
        """The path's scope and namespace, validated, and checked against the grants
        (once: the route's declared ``access`` is checked before its input is read)."""
        if self._granted is not None and self._granted[0] == access:
            return self._granted[1]
        params = self.request.path_params
        keyspace = self.state.keyspace(params["scope"], params["namespace"])
        self.authorize(access, keyspace)
        self._granted = (access, keyspace)
        return keyspace

    @property
    def granted(self) -> Keyspace:
        """The path's keyspace, as the route's declared ``access`` authorized it before
        the handler ran (the declaration is the one place a route says what it needs)."""
        if self._granted is None:
            raise AssertionError("a route on a keyspace declares access=")
        return self._granted[1]

    def authorize(self, access: str, keyspace: Keyspace) -> None:
        authorize(self.principal, access, keyspace)

    def secret(self, keyspace: Keyspace) -> bool:
        """Whether ``keyspace``'s values are secret (the server's policy)."""
        return self.state.secret_policy.is_secret(keyspace)

    def reveal(self, wanted: bool, keyspace: Keyspace) -> bool:
        """``?reveal=true`` (``wanted``) allowed: on a secret keyspace it needs a grant
        with ``reveal: true`` (else 403); elsewhere it changes nothing."""
        if wanted and self.secret(keyspace):
            self.authorize_reveal(keyspace)
        return wanted

    def authorize_reveal(self, keyspace: Keyspace, what: str = "", hint: str = "") -> None:
        """A 403 unless the caller may see the values of ``keyspace`` (a secret one);
        ``what`` needs them, when not ``?reveal=true`` (an entries API route)."""
        authorize_reveal(self.principal, keyspace, what, hint)

    def authorize_compare(self, keyspace: Keyspace, what: str) -> None:
        """A 403 on a secret ``keyspace`` unless the caller may reveal its values: ``what``
        (a diff, an update's transform) reads the stored value, and its answer — changed
        or not, applied or refused — would confirm a guess of it. A plain write (set,
        delete, a transaction) reads no value and needs only the write grant."""
        if self.secret(keyspace):
            self.authorize_reveal(
                keyspace, what, "set, delete and transactions need only the write grant"
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

    async def read(self, work: Callable[[], T], *, alone: bool = False) -> T:
        """``work`` where the server runs reads; ``alone`` (a long read): always on a
        worker thread, even where small reads run on the event loop."""
        return await read_on(self.state, work, alone=alone)

    async def write(self, work: Callable[[], T], *, alone: bool = False) -> T:
        return await self.state.write(work, alone=alone)

    # -- input --------------------------------------------------------------------------

    @property
    def query(self) -> QueryParams:
        return self.request.query_params  # parsed once: the request caches it

    def decoded_query(self, model: type[Query]) -> Query:
        """The route's query model; no parsing at all when there is no query string."""
        if not self.request.scope["query_string"]:
            return _no_query(model)
        return decode_query(model, self.query)

    async def body(self, model: type[B], where: str) -> B:
        """The request body as ``model``: one JSON object, closed, numbers kept exactly as
        written. A large one is decoded on a worker thread: the event loop keeps
        answering."""
        raw = await self.request.body()
        self.body_size = len(raw)
        check_depth(raw, "request body", envelope=model.envelope)
        if len(raw) > BIG_BATCH_BYTES:
            return await anyio.to_thread.run_sync(decode_body, model, raw, where)
        return decode_body(model, raw, where)

    async def arguments(self, route: Route) -> list[object]:
        """What ``route``'s handler takes after the call: its query, then its body."""
        found: list[object] = []
        if route.query is not None:
            found.append(self.decoded_query(route.query))
        if route.body is not None:
            found.append(await self.body(route.body, route.name))
        return found

    def batch(self, count: int, size: int = 0) -> bool:
        """Check a transaction's size (``count`` operations) against ``max_txn_ops``;
        whether it (``size`` bytes of values, or the request body, whichever is more)
        is big enough to be committed off the event loop, on the writer thread."""
        return check_batch(self.state, count, max(size, self.body_size))

    @property
    def max_txn_ops(self) -> int:
        return self.state.config.max_txn_ops


def check_batch(state: ServerState, count: int, size: int) -> bool:
    """A transaction of ``count`` operations checked against ``max_txn_ops`` (an
    InvalidRequestError over it); whether it, ``size`` bytes, is big enough to be
    committed off the event loop (``alone``)."""
    check_op_count(count, state.config.max_txn_ops)
    return is_big_batch(count, size)


async def read_on(state: ServerState, work: Callable[[], T], *, alone: bool = False) -> T:
    """``work`` where ``state`` runs reads; ``alone`` (a long read, many keys or a whole
    keyspace): always on a worker thread, where small reads may run on the event loop
    (``inline_reads``), which nothing else could serve meanwhile."""
    if alone:
        return await anyio.to_thread.run_sync(work)
    return await state.read(work)


def authorize(principal: Principal, access: str, keyspace: Keyspace) -> None:
    """A 403 unless ``principal`` has the ``access`` grant on ``keyspace``."""
    if not principal.can(Access(access), keyspace):
        raise PermissionDeniedError(
            f"token {quoted(principal.name)} has no {access} grant on scope "
            f"{quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}"
        )


def authorize_reveal(principal: Principal, keyspace: Keyspace, what: str, hint: str) -> None:
    """A 403 unless ``principal`` may see the values of ``keyspace`` (a secret one);
    ``what`` needs them, when not ``?reveal=true`` (an entries API route)."""
    if not principal.can_reveal(keyspace):
        hint = hint or (
            "the /v1/kv routes answer its values masked"
            if what
            else "without ?reveal=true its values are answered masked"
        )
        raise PermissionDeniedError(
            f"token {quoted(principal.name)} has no reveal grant on scope "
            f"{quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}, a secret "
            f"keyspace: {what or '?reveal=true'} needs a grant with reveal: true on it "
            f"({hint})"
        )


@cache
def _no_query(model: type[Query]) -> Query:
    """``model`` with every parameter absent, built once per model: most requests have
    no query string (handlers read a query, never change it)."""
    return decode_query(model, {})


if TYPE_CHECKING:
    from ..web import Caller

    def _a_call_is_a_request_view(call: Call) -> RequestView:
        return call  # mypy: the server's Call is what other faces' handlers code against

    def _a_call_is_a_caller(call: Call) -> Caller:
        return call  # ... and what a face's operations act through
