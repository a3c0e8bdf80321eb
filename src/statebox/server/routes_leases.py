"""Leases (SPEC §5) and the store-wide purge, each route one engine method.

A lease is authorized as scope ``lease`` with its name as the namespace: a token needs a
write grant matching ``lease``/``<name>`` to acquire, renew or release it, a read grant
to look at it — or to fence a write with it (:func:`authorize_fence`), since a fenced
write's refusal tells the lease's latest token. Durations (``ttl``) are seconds, exact
to the nanosecond.
"""

from __future__ import annotations

from functools import partial

from starlette.responses import Response

from ..core.errors import InvalidRequestError, NotFoundError, PermissionDeniedError, quoted
from ..core.leases import validate_lease_name
from ..core.model import Keyspace
from ..core.results import dumps_envelope
from ..wire.codec import float_seconds, parse_seconds
from .auth import LEASE_SCOPE, Access
from .call import Call, RouteSpec, check_fields, field_int, field_str
from .state import json_response

__all__ = ["ROUTES", "authorize_fence"]


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


def _ttl(body: dict[str, object], required: bool) -> float | None:
    raw = body.get("ttl")
    if raw is None:
        if required:
            raise InvalidRequestError('missing "ttl": the lease duration in seconds')
        return None
    return float_seconds(parse_seconds(raw, "ttl"))


def _holder_and_token(body: dict[str, object]) -> tuple[str, int]:
    holder, token = field_str(body, "holder"), field_int(body, "token", minimum=1)
    if holder is None or token is None:
        raise InvalidRequestError('"holder" and "token" are required (as acquire returned them)')
    return holder, token


async def acquire(call: Call) -> Response:
    body = await call.body_object()
    check_fields(body, {"name", "ttl", "holder"}, "acquire")
    name = _lease_name(call, body.get("name"), Access.WRITE)
    store = call.store()
    result = await call.state.write(
        partial(
            store.acquire_lease,
            name,
            _ttl(body, required=True),  # type: ignore[arg-type]
            holder=field_str(body, "holder"),
        )
    )
    return json_response(result.to_json())


async def renew(call: Call) -> Response:
    body = await call.body_object()
    check_fields(body, {"name", "ttl", "holder", "token"}, "renew")
    name = _lease_name(call, body.get("name"), Access.WRITE)
    holder, token = _holder_and_token(body)
    store = call.store()
    result = await call.state.write(
        partial(store.renew_lease, name, _ttl(body, required=True), token=token, holder=holder)
    )
    return json_response(result.to_json())


async def release(call: Call) -> Response:
    body = await call.body_object()
    check_fields(body, {"name", "holder", "token"}, "release")
    name = _lease_name(call, body.get("name"), Access.WRITE)
    holder, token = _holder_and_token(body)
    store = call.store()
    result = await call.state.write(partial(store.release_lease, name, token=token, holder=holder))
    return json_response(result.to_json())


async def get_lease(call: Call) -> Response:
    name = _lease_name(call, call.request.path_params["name"], Access.READ)
    store = call.reader()
    result = await call.state.read(partial(store.get_lease, name))
    if result is None:
        raise NotFoundError(f"lease {quoted(name)} was never acquired")
    return json_response(result.to_json())


async def purge(call: Call) -> Response:
    call.authorize_everything(Access.WRITE)
    body = await call.body_object()
    check_fields(body, {"limit"}, "purge")
    limit = field_int(body, "limit", minimum=1) or 1000
    store = call.store()
    purged = await call.state.write(partial(store.purge_expired, limit), alone=True)
    return json_response(dumps_envelope({"operation": "purge", "purged": purged}))


ROUTES: list[RouteSpec] = [
    ("POST", "/v1/leases/acquire", acquire, False),
    ("POST", "/v1/leases/renew", renew, False),
    ("POST", "/v1/leases/release", release, False),
    ("GET", "/v1/leases/{name:path}", get_lease, False),
    ("POST", "/v1/purge", purge, False),
]
