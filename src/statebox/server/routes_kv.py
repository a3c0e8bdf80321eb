"""The operations of SPEC §4 and §5 over HTTP: each route calls one engine method.

Every answer is the operation's own envelope (``result.to_json()``, the same line the CLI
prints). Versions travel as ``ETag: "<version>"``; ``If-Match: "<version>"`` is
``expected_version`` and ``If-None-Match: *`` is ``create_only`` — a guard given that way
fails with 412, one given in the query or body with 409.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.responses import Response

from ..core.errors import (
    ConflictError,
    FencingError,
    InvalidRequestError,
    InvalidValueError,
    quoted,
)
from ..core.leases import Fencing
from ..core.results import SetResult
from ..core.values import JSON_CONTENT_TYPE, Blob, RawJSON, check_depth
from ..store import MISSING
from ..wire.codec import float_seconds, parse_seconds, value_from_wire
from .auth import Access
from .call import (
    Call,
    RouteSpec,
    bounded_int,
    check_fields,
    field_bool,
    field_int,
    field_str,
)
from .routes_leases import authorize_fence
from .state import json_response

__all__ = ["ROUTES"]

KEY_PATH = "/{scope}/{namespace}/{key:path}"


def _etag(version: int) -> dict[str, str]:
    return {"etag": f'"{version}"'}


def _ttl(raw: object) -> float | None:
    return None if raw is None else float_seconds(parse_seconds(raw, "ttl"))


def _query_ttl(call: Call) -> float | None:
    """``?ttl=``, refused here when not positive: the engine's refusal would name the
    body field that the other routes take the ttl in."""
    raw = call.q_str("ttl")
    ttl = _ttl(raw)
    if ttl is not None and not ttl > 0:
        raise InvalidValueError(
            f"invalid ?ttl= {quoted(raw)}: must be a positive number of seconds"
        )
    return ttl


def _fencing_query(call: Call) -> Fencing | None:
    lease, token = call.q_str("lease"), call.q_int("token")
    if lease is None and token is None:
        return None
    if lease is None or token is None:
        raise InvalidRequestError("a fenced write needs both ?lease= and ?token=")
    authorize_fence(call, lease)
    return (lease, token)


def _fencing_body(call: Call, body: dict[str, Any]) -> Fencing | None:
    raw = body.get("fencing")
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"lease", "token"}:
        raise InvalidRequestError('invalid "fencing": use {"lease": NAME, "token": N}')
    authorize_fence(call, raw["lease"])
    return (raw["lease"], raw["token"])


def _preconditions(call: Call, body_version: int | None) -> tuple[int | None, bool, bool]:
    """``(expected_version, create_only_from_header, guarded_by_header)``."""
    headers = call.headers
    expected = body_version
    if_match, if_none_match = headers.get("if-match"), headers.get("if-none-match")
    if if_match is not None:
        text = if_match.strip().removeprefix("W/")
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        if not (text.isascii() and text.isdigit()):  # "²" is a digit int() refuses
            raise InvalidRequestError(
                f"invalid If-Match {quoted(if_match)}: send the ETag of the version you read, "
                'e.g. "3"'
            )
        if body_version is not None:
            raise InvalidRequestError("give an expected version or If-Match, not both")
        if len(text) > 19:  # no 64-bit version has 20 digits; int() refuses 4,300
            raise InvalidRequestError(
                f"invalid If-Match: a version of {len(text)} digits is out of range"
            )
        expected = bounded_int("If-Match", int(text), None)
    if if_none_match is not None and if_none_match.strip() != "*":
        raise InvalidRequestError('If-None-Match on a write must be "*" (create only)')
    header = if_match is not None or if_none_match is not None
    return expected, if_none_match is not None, header


async def _guarded_write(call: Call, header: bool, fn: Any, *, alone: bool = False) -> Any:
    try:
        return await call.state.write(fn, alone=alone)
    except FencingError:
        raise
    except ConflictError as exc:
        if header:
            raise exc.as_precondition_failed() from exc
        raise


def _is_json(media_type: str) -> bool:
    """A body to parse as JSON: no type or a JSON type; any other type is stored as bytes
    with that type (a web form's types never get here: browsers.py refuses them)."""
    essence = media_type.split(";")[0].strip().lower()
    return essence in _JSON_TYPES or essence.endswith("+json")


_JSON_TYPES = ("", JSON_CONTENT_TYPE, "text/json")


def _written(result: SetResult) -> Response:
    return json_response(result.to_json(), headers=_etag(result.version))


# --- SPEC §4 ----------------------------------------------------------------------------


async def kv_get(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    raw_default = call.q_str("default")
    if raw_default is not None:
        check_depth(raw_default, "?default=")
    store = call.reader()
    result = await call.state.read(
        partial(
            store.get,
            call.request.path_params["key"],
            scope=ks.scope,
            namespace=ks.namespace,
            default=MISSING if raw_default is None else RawJSON(raw_default),
            required=call.q_bool("required"),
            version=call.q_int("version", minimum=1),
        )
    )
    return json_response(result.to_json(), headers=_etag(result.version) if result.found else None)


async def kv_put(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    expected, create_only, header = _preconditions(call, call.q_int("expected_version"))
    body = await call.request.body()
    media = call.headers.get("content-type", "").strip()
    if _is_json(media):
        check_depth(body, "request body")
    value: Any = RawJSON(body) if _is_json(media) else Blob(body, media)
    store = call.store()
    result = await _guarded_write(
        call,
        header,
        partial(
            store.set,
            call.request.path_params["key"],
            value,
            scope=ks.scope,
            namespace=ks.namespace,
            expected_version=expected,
            create_only=create_only or call.q_bool("create_only"),
            ttl=_query_ttl(call),
            fencing=_fencing_query(call),
        ),
    )
    return _written(result)


async def kv_delete(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    expected, create_only, header = _preconditions(call, call.q_int("expected_version"))
    if create_only:
        raise InvalidRequestError("If-None-Match does not apply to a delete")
    store = call.store()
    result = await _guarded_write(
        call,
        header,
        partial(
            store.delete,
            call.request.path_params["key"],
            scope=ks.scope,
            namespace=ks.namespace,
            expected_version=expected,
            fencing=_fencing_query(call),
        ),
    )
    return json_response(result.to_json())


async def kv_list(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    store = call.reader()
    result = await call.state.read(
        partial(
            store.list,
            call.q_str("prefix"),
            scope=ks.scope,
            namespace=ks.namespace,
            limit=call.q_int("limit", minimum=0) or 0,
            include_values=call.q_bool("include_values"),
            after=call.q_str("after"),
        )
    )
    return json_response(result.to_json())


async def diff(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    body = await call.body_object()
    check_fields(body, {"value", "encoding", "contentType", "update", "expected_version"}, "diff")
    expected, create_only, header = _preconditions(call, field_int(body, "expected_version"))
    if create_only:
        raise InvalidRequestError("If-None-Match does not apply to diff")
    store = call.store()
    result = await _guarded_write(
        call,
        header,
        partial(
            store.diff,
            call.request.path_params["key"],
            value_from_wire(body),
            scope=ks.scope,
            namespace=ks.namespace,
            update=field_bool(body, "update", True),
            expected_version=expected,
        ),
    )
    return json_response(result.to_json())


# --- SPEC §5 ----------------------------------------------------------------------------


async def update(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    body = await call.body_object()
    allowed = {"jq", "merge", "patch", "default", "ttl", "expected_version", "fencing"}
    check_fields(body, allowed, "update")
    expected, create_only, header = _preconditions(call, field_int(body, "expected_version"))
    if create_only:
        raise InvalidRequestError("If-None-Match does not apply to update")
    store = call.store()
    result = await _guarded_write(
        call,
        header,
        partial(
            store.update,
            call.request.path_params["key"],
            jq=field_str(body, "jq"),
            merge=body.get("merge", MISSING),
            patch=body.get("patch", MISSING),
            default=body.get("default", MISSING),
            ttl=_ttl(body.get("ttl")),
            expected_version=expected,
            fencing=_fencing_body(call, body),
            scope=ks.scope,
            namespace=ks.namespace,
        ),
        alone=True,  # a jq transform may take a while: no group waits on it
    )
    return _written(result)


async def rollback(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    body = await call.body_object()
    check_fields(body, {"version", "expected_version", "fencing"}, "rollback")
    to_version = field_int(body, "version", minimum=1)
    if to_version is None:
        raise InvalidRequestError('rollback needs "version": the version to write back')
    expected, create_only, header = _preconditions(call, field_int(body, "expected_version"))
    if create_only:
        raise InvalidRequestError("If-None-Match does not apply to rollback")
    store = call.store()
    result = await _guarded_write(
        call,
        header,
        partial(
            store.rollback,
            call.request.path_params["key"],
            to_version,
            expected_version=expected,
            fencing=_fencing_body(call, body),
            scope=ks.scope,
            namespace=ks.namespace,
        ),
    )
    return _written(result)


async def history(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    store = call.reader()
    result = await call.state.read(
        partial(
            store.history,
            call.request.path_params["key"],
            scope=ks.scope,
            namespace=ks.namespace,
            limit=call.q_int("limit", minimum=0) or 0,
            include_values=call.q_bool("include_values"),
        )
    )
    return json_response(result.to_json())


def _operation(call: Call, raw: Any, index: int) -> Any:
    """A transaction operation with a base64 value turned into a Blob."""
    if isinstance(raw, dict) and "encoding" in raw:
        op = {k: v for k, v in raw.items() if k not in ("encoding", "contentType")}
        op["value"] = value_from_wire(raw)
        raw = op
    if isinstance(raw, dict) and raw.get("ttl") is not None:
        raw = {**raw, "ttl": _ttl(raw["ttl"])}
    if isinstance(raw, dict) and raw.get("fencing") is not None:  # any form: authorized
        raw = {**raw, "fencing": _fencing_body(call, raw)}
    return raw


async def transaction(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    body = await call.body_object(batch=True)
    check_fields(body, {"ops", "fencing"}, "transaction")
    ops = body.get("ops")
    if not isinstance(ops, list):
        raise InvalidRequestError('a transaction needs "ops": a list of set/delete operations')
    big = call.batch(ops)
    store = call.store()
    fencing = _fencing_body(call, body)

    def commit() -> str:  # a big one on the writer thread: values normalize there too
        operations = [_operation(call, op, i) for i, op in enumerate(ops)]
        return store.transaction(
            operations, fencing=fencing, scope=ks.scope, namespace=ks.namespace
        ).to_json()

    return json_response(await call.state.write(commit, alone=big))


ROUTES: list[RouteSpec] = [
    ("GET", "/v1/kv" + KEY_PATH, kv_get, False),
    ("PUT", "/v1/kv" + KEY_PATH, kv_put, False),
    ("DELETE", "/v1/kv" + KEY_PATH, kv_delete, False),
    ("GET", "/v1/kv/{scope}/{namespace}", kv_list, False),
    ("POST", "/v1/diff" + KEY_PATH, diff, False),
    ("POST", "/v1/update" + KEY_PATH, update, False),
    ("POST", "/v1/rollback" + KEY_PATH, rollback, False),
    ("GET", "/v1/history" + KEY_PATH, history, False),
    ("POST", "/v1/txn/{scope}/{namespace}", transaction, False),
]
