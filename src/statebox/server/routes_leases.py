"""Leases (SPEC §5) and the store-wide purge, each route one engine method.

A lease is authorized as scope ``lease`` with its name as the namespace: a token needs a
write grant matching ``lease``/``<name>`` to acquire, renew or release it, a read grant
to look at it — or to fence a write with it (:func:`authorize_fence`), since a fenced
write's refusal tells the lease's latest token. Durations (``ttl``) are seconds, exact
to the nanosecond.

``GET /v1/leases?after=&limit=`` lists the live leases the caller may read, by name: the
server reads on past the ones it may not (as ``GET /v1/keyspaces`` does), so a page is
never short while more readable ones follow, and ``next`` names the last lease returned.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Final

import msgspec
from msgspec import Meta
from starlette.responses import Response

from ..core import params
from ..core.envelope import dumps_envelope, envelope_json
from ..core.errors import InvalidRequestError, NotFoundError, PermissionDeniedError, quoted
from ..core.leases import validate_lease_name
from ..core.model import Keyspace
from ..core.records import Lease
from ..core.results_beyond import LeaseResult as LeaseFound
from ..core.results_beyond import LeasesResult
from ..web import Answer, Body, Query, Router, Seconds, Token
from ..web.fields import PARSE, Positive
from .auth import LEASE_SCOPE, Access
from .call import Call
from .models import LeasePath, LeaseResult, PurgeResult
from .state import json_response

__all__ = ["authorize_fence", "router"]

router = Router("leases")


def _lease_name(call: Call, raw: object, access: Access) -> str:
    name = validate_lease_name(raw)
    call.authorize(access, Keyspace(LEASE_SCOPE, name))
    return name


def authorize_fence(call: Call, lease: object) -> None:
    """A write fenced by ``lease`` needs a read grant on it: without one, a token could
    fence with anyone's lease and learn its latest token from the refusal. Checked
    before the store is asked, so the refusal says nothing of the lease itself."""
    name = validate_lease_name(lease)
    if not call.principal.can(Access.READ, Keyspace(LEASE_SCOPE, name)):
        raise PermissionDeniedError(
            f"token {quoted(call.principal.name)} may not fence a write with lease "
            f"{quoted(name)}: that needs a read grant on scope {quoted(LEASE_SCOPE)}, "
            f"namespace {quoted(name)}"
        )


_NAME: Final = Meta(extra_json_schema={"minLength": 1}, description="The lease's name.")
_HOLDER: Final = Meta(extra_json_schema={"minLength": 1}, description="as acquire returned it")
_TTL: Final = Meta(description="the lease duration in seconds")
_TOKEN: Final = Meta(description="the fencing token acquire returned")


class AcquireBody(Body):
    name: Annotated[str, _NAME]
    ttl: Annotated[Seconds, _TTL]
    holder: Annotated[str, _HOLDER] | None = None


@router.post(
    "/v1/leases/acquire",
    summary="acquire a lease (409 while another holder's lease is live)",
    body=AcquireBody,
    responses={200: Answer(LeaseResult)},
    errors=(409,),
)
async def acquire(call: Call, body: AcquireBody) -> Response:
    name = _lease_name(call, body.name, Access.WRITE)
    store = call.store()
    result = await call.state.write(
        partial(store.acquire_lease, name, body.ttl, holder=body.holder)
    )
    return json_response(envelope_json(result))


class RenewBody(Body):
    name: Annotated[str, _NAME]
    ttl: Annotated[Seconds, _TTL]
    holder: Annotated[str, _HOLDER]
    token: Annotated[Token, _TOKEN]


@router.post(
    "/v1/leases/renew",
    summary="renew a live lease",
    body=RenewBody,
    responses={200: Answer(LeaseResult)},
    errors=(409,),
)
async def renew(call: Call, body: RenewBody) -> Response:
    name = _lease_name(call, body.name, Access.WRITE)
    store = call.store()
    result = await call.state.write(
        partial(store.renew_lease, name, body.ttl, token=body.token, holder=body.holder)
    )
    return json_response(envelope_json(result))


class ReleaseBody(Body):
    name: Annotated[str, _NAME]
    holder: Annotated[str, _HOLDER]
    token: Annotated[Token, _TOKEN]


@router.post(
    "/v1/leases/release",
    summary="release a lease early",
    body=ReleaseBody,
    responses={200: Answer(LeaseResult)},
    errors=(409,),
)
async def release(call: Call, body: ReleaseBody) -> Response:
    name = _lease_name(call, body.name, Access.WRITE)
    store = call.store()
    result = await call.state.write(
        partial(store.release_lease, name, token=body.token, holder=body.holder)
    )
    return json_response(envelope_json(result))


#: A page of ``GET /v1/leases``: 100 leases unless asked, never more than 1000.
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000


def _page_size(raw: object, name: str) -> int:
    size = params.integer(raw, name, minimum=1)
    if size > MAX_PAGE:
        raise InvalidRequestError(f"invalid {name} {size}: must be {MAX_PAGE} or less")
    return size


class LeasesQuery(Query):
    limit: Annotated[
        int,
        Meta(
            extra_json_schema={"minimum": 1, "maximum": MAX_PAGE},
            extra={PARSE: _page_size},
            description=f"At most this many ({DEFAULT_PAGE} by default, {MAX_PAGE} at most).",
        ),
    ] = DEFAULT_PAGE
    after: (
        Annotated[
            str,
            Meta(
                extra_json_schema={"minLength": 1},
                description="Continue after this lease name (the previous page's next).",
            ),
        ]
        | None
    ) = None


class LeasesAnswer(msgspec.Struct, kw_only=True):
    operation: str
    leases: list[LeaseResult]
    next: str | None


def _readable_leases(
    call: Call, after: str | None, limit: int, now: int
) -> tuple[list[Lease], bool]:
    """Up to ``limit`` live leases the caller may read, and whether more follow. Runs on
    a worker thread: it may read several rounds."""
    backend, principal = call.state.backend, call.principal
    found: list[Lease] = []
    wanted = limit + 1  # one more tells whether another page follows
    while True:
        round_size = max(wanted - len(found), MAX_PAGE)
        batch = backend.list_leases(now, after, round_size)
        found += [
            lease
            for lease in batch
            if principal.can(Access.READ, Keyspace(LEASE_SCOPE, lease.name))
        ]
        if len(found) >= wanted:
            return found[:limit], True
        if len(batch) < round_size:
            return found, False
        after = batch[-1].name


@router.get(
    "/v1/leases",
    summary="the live leases the token may read, by name, paged",
    query=LeasesQuery,
    responses={200: Answer(LeasesAnswer)},
)
async def list_leases(call: Call, query: LeasesQuery) -> Response:
    after = validate_lease_name(query.after) if query.after is not None else None
    page, more = await call.state.read(
        partial(_readable_leases, call, after, query.limit, call.now())
    )
    leases = [
        LeaseFound("get", lease.name, lease.holder, lease.token, lease.expires_at) for lease in page
    ]
    result = LeasesResult(leases, page[-1].name if more and page else None)
    return json_response(envelope_json(result))


@router.get(
    "/v1/leases/{name:path}",
    summary="the latest lease on a name (404: never acquired)",
    path_params=LeasePath,
    responses={200: Answer(LeaseResult)},
)
async def get_lease(call: Call) -> Response:
    name = _lease_name(call, call.request.path_params["name"], Access.READ)
    store = call.reader()
    result = await call.state.read(partial(store.get_lease, name))
    if result is None:
        raise NotFoundError(f"lease {quoted(name)} was never acquired")
    return json_response(envelope_json(result))


class PurgeBody(Body):
    limit: Annotated[Positive, Meta(description="At most this many (1000 by default).")] | None = (
        None
    )


@router.post(
    "/v1/purge",
    summary="purge expired entries now (needs a write grant on every namespace)",
    body=PurgeBody,
    responses={200: Answer(PurgeResult)},
)
async def purge(call: Call, body: PurgeBody) -> Response:
    call.authorize_everything(Access.WRITE)
    limit = body.limit or 1000
    store = call.store()
    purged = await call.state.write(partial(store.purge_expired, limit), alone=True)
    return json_response(dumps_envelope({"operation": "purge", "purged": purged}))
