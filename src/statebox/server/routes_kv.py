"""The operations of SPEC §4 over HTTP (§5's are in :mod:`.routes_update`): each route
calls one engine method.

Every answer is the operation's own envelope (``envelope_json(result)``, the same line
the CLI prints). Versions travel as ``ETag: "<version>"``; ``If-Match: "<version>"`` is
``expected_version`` and ``If-None-Match: *`` is ``create_only`` — a guard given that way
fails with 412, one given in the query or body with 409.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Final

from msgspec import Meta, Raw
from starlette.responses import Response

from ..core.envelope import envelope_json
from ..core.values import JSON_CONTENT_TYPE, Blob, RawJSON, check_depth
from ..store import MISSING
from ..web import (
    Answer,
    Body,
    ExpectedVersion,
    Flag,
    Limit,
    Query,
    Router,
    Seconds,
    Token,
    Version,
    exact,
)
from ..web.fields import AfterKey
from ..wire.codec import value_from_wire
from .call import Call
from .guards import (
    ETAG,
    GUARD,
    KEY_PATH,
    NEEDS_REVEAL,
    Reveal,
    RevealQuery,
    doc,
    etag,
    fencing_query,
    guarded_write,
    no_create_only,
    preconditions,
    written,
)
from .models import (
    DeleteResult,
    DiffResult,
    GetResult,
    IfMatch,
    KeyPath,
    ListResult,
    Preconditions,
    SetResult,
    SpacePath,
)
from .state import json_response

__all__ = ["router"]

router = Router("kv")


def _is_json(media_type: str) -> bool:
    """A body to parse as JSON: no type or a JSON type; any other type is stored as bytes
    with that type (a web form's types never get here: browsers.py refuses them)."""
    essence = media_type.split(";")[0].strip().lower()
    return essence in _JSON_TYPES or essence.endswith("+json")


_JSON_TYPES = ("", JSON_CONTENT_TYPE, "text/json")


# --- SPEC §4 ----------------------------------------------------------------------------


class GetQuery(Query):
    default: Annotated[str, doc("JSON text answered when missing.")] | None = None
    required: Annotated[Flag, doc("Missing is 404 (wins over default).")] = False
    version: Annotated[Version, doc("A past version from the history.")] | None = None
    reveal: Reveal = False


@router.get(
    "/v1/kv" + KEY_PATH,
    summary="get: read one entry (or a past version)",
    path_params=KeyPath,
    query=GetQuery,
    responses={200: Answer(GetResult, headers=ETAG)},
    access="read",
)
async def kv_get(call: Call, query: GetQuery) -> Response:
    ks = call.granted
    reveal = call.reveal(query.reveal, ks)
    if query.default is not None:
        check_depth(query.default, "?default=")
    store = call.reader()
    result = await call.state.read(
        partial(
            store.get,
            call.request.path_params["key"],
            scope=ks.scope,
            namespace=ks.namespace,
            default=MISSING if query.default is None else RawJSON(query.default),
            required=query.required,
            version=query.version,
        )
    )
    return json_response(
        envelope_json(result, reveal), headers=etag(result.version) if result.found else None
    )


_LEASE: Final = "Fenced write: the lease name."
_TOKEN: Final = "Fenced write: the lease's fencing token."


class PutQuery(Query):
    expected_version: Annotated[ExpectedVersion, doc(GUARD)] | None = None
    create_only: Annotated[Flag, doc("Conflict if the key exists (409).")] = False
    ttl: Annotated[Seconds, doc("Expire after this many seconds.")] | None = None
    lease: Annotated[str, doc(_LEASE)] | None = None
    token: Annotated[Token, doc(_TOKEN)] | None = None


@router.put(
    "/v1/kv" + KEY_PATH,
    summary="set: write one entry",
    path_params=KeyPath,
    query=PutQuery,
    headers=Preconditions,
    content={
        "application/json": {},
        "application/octet-stream": {"type": "string", "format": "binary"},
    },
    responses={200: Answer(SetResult, headers=ETAG)},
    errors=(409, 412),
    access="write",
)
async def kv_put(call: Call, query: PutQuery) -> Response:
    ks = call.granted
    expected, create_only, header = preconditions(call, query.expected_version)
    body = await call.request.body()
    media = call.headers.get("content-type", "").strip()
    if _is_json(media):
        check_depth(body, "request body")
    value: Any = RawJSON(body) if _is_json(media) else Blob(body, media)
    store = call.store()
    result = await guarded_write(
        call,
        header,
        partial(
            store.set,
            call.request.path_params["key"],
            value,
            scope=ks.scope,
            namespace=ks.namespace,
            expected_version=expected,
            create_only=create_only or query.create_only,
            ttl=query.ttl,
            fencing=fencing_query(call, query.lease, query.token),
        ),
    )
    return written(result)


class DeleteQuery(Query):
    expected_version: Annotated[ExpectedVersion, doc(GUARD)] | None = None
    lease: Annotated[str, doc(_LEASE)] | None = None
    token: Annotated[Token, doc(_TOKEN)] | None = None


@router.delete(
    "/v1/kv" + KEY_PATH,
    summary="delete: remove one entry (missing is not an error)",
    path_params=KeyPath,
    query=DeleteQuery,
    headers=IfMatch,
    responses={200: Answer(DeleteResult)},
    errors=(409, 412),
    access="write",
)
async def kv_delete(call: Call, query: DeleteQuery) -> Response:
    ks = call.granted
    expected, create_only, header = preconditions(call, query.expected_version)
    no_create_only(create_only, "a delete")
    store = call.store()
    result = await guarded_write(
        call,
        header,
        partial(
            store.delete,
            call.request.path_params["key"],
            scope=ks.scope,
            namespace=ks.namespace,
            expected_version=expected,
            fencing=fencing_query(call, query.lease, query.token),
        ),
    )
    return json_response(envelope_json(result))


class ListQuery(Query):
    prefix: Annotated[str, doc("A plain byte prefix of the keys.")] | None = None
    limit: Annotated[Limit, doc("At most this many (0: all).")] = 0
    after: Annotated[AfterKey, doc("Continue after this key.")] | None = None
    include_values: Annotated[Flag, doc("Include each value.")] = False
    reveal: Reveal = False


@router.get(
    "/v1/kv/{scope}/{namespace}",
    summary="list: entries by key prefix, ascending by bytes",
    path_params=SpacePath,
    query=ListQuery,
    responses={200: Answer(ListResult)},
    access="read",
)
async def kv_list(call: Call, query: ListQuery) -> Response:
    ks = call.granted
    reveal = call.reveal(query.reveal, ks)
    store = call.reader()
    result = await call.state.read(
        partial(
            store.list,
            query.prefix,
            scope=ks.scope,
            namespace=ks.namespace,
            limit=query.limit,
            include_values=query.include_values,
            after=query.after,
        )
    )
    return json_response(envelope_json(result, reveal))


_BASE64: Final = Meta(extra_json_schema={"enum": ["base64"]})


class DiffBody(Body):
    value: Annotated[Raw, doc("The value (JSON; with encoding, base64 text).")]
    encoding: Annotated[str, _BASE64, doc("base64: value is bytes, base64-encoded.")] | None = None
    contentType: Annotated[str, doc("The bytes' content type (with encoding).")] | None = None
    update: Annotated[bool, doc("Write the value when it changed.")] = True
    expected_version: Annotated[ExpectedVersion, doc(GUARD)] | None = None


@router.post(
    "/v1/diff" + KEY_PATH,
    summary="diff: compare with the stored value, write when changed",
    description=NEEDS_REVEAL,
    path_params=KeyPath,
    query=RevealQuery,
    headers=IfMatch,
    body=DiffBody,
    responses={200: Answer(DiffResult)},
    errors=(409, 412),
    access="write",
)
async def diff(call: Call, query: RevealQuery, body: DiffBody) -> Response:
    ks = call.granted
    call.authorize_compare(ks, "a diff (it compares the value with the stored one)")
    reveal = call.reveal(query.reveal, ks)
    expected, create_only, header = preconditions(call, body.expected_version)
    no_create_only(create_only, "diff")
    if body.encoding is None and body.contentType is None:
        value: Any = RawJSON(bytes(body.value))  # stored exactly as sent
    else:
        wire = {"value": exact(body.value), "encoding": body.encoding}
        if body.contentType is not None:
            wire["contentType"] = body.contentType
        value = value_from_wire(wire)
    store = call.store()
    result = await guarded_write(
        call,
        header,
        partial(
            store.diff,
            call.request.path_params["key"],
            value,
            scope=ks.scope,
            namespace=ks.namespace,
            update=body.update,
            expected_version=expected,
        ),
    )
    return json_response(envelope_json(result, reveal))
