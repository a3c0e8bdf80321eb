"""Read-modify-write, rollback, history and transactions over HTTP (SPEC §5): each
route calls one engine method; a write answers with ``ETag: "<version>"``."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, ClassVar, Final

from msgspec import UNSET, Meta, Raw, UnsetType
from starlette.responses import Response

from ..core import results
from ..core.envelope import envelope_json
from ..store import MISSING
from ..web import Answer, Body, ExpectedVersion, Flag, Limit, Query, Router, Version, exact
from ..web.fields import FencingField, OptionalSeconds
from ..wire.codec import batch_operation, transaction_operation
from .call import Call
from .guards import (
    ETAG,
    GUARD,
    KEY_PATH,
    NEEDS_REVEAL,
    Reveal,
    RevealQuery,
    authorized_fencing,
    doc,
    guarded_write,
    no_create_only,
    preconditions,
    written,
)
from .models import (
    OPERATIONS_SCHEMA,
    DeleteOperation,
    HistoryResult,
    IfMatch,
    KeyPath,
    SetOperation,
    SetResult,
    SpacePath,
    TransactionResult,
)
from .state import json_response

__all__ = ["router"]

router = Router("update")


_PATCH: Final = Meta(extra_json_schema={"type": "array", "items": {"type": "object"}})


class UpdateBody(Body):
    """Exactly one transform: `jq`, `merge` or `patch`."""

    schema_extra: ClassVar[dict[str, Any]] = {
        "oneOf": [{"required": [name]} for name in ("jq", "merge", "patch")]
    }

    jq: Annotated[str, doc("A jq program: the new value is its output.")] | None = None
    merge: Annotated[Raw, doc("A JSON merge patch (RFC 7386).")] | UnsetType = UNSET
    patch: Annotated[Raw, _PATCH, doc("A JSON patch (RFC 6902).")] | UnsetType = UNSET
    default: Annotated[Raw, doc("The value to transform when missing.")] | UnsetType = UNSET
    ttl: Annotated[OptionalSeconds, doc("Expire after this many seconds.")] = None
    expected_version: Annotated[ExpectedVersion, doc(GUARD)] | None = None
    fencing: FencingField = None


def _given(raw: Raw | UnsetType) -> Any:
    return MISSING if isinstance(raw, UnsetType) else exact(raw)


@router.post(
    "/v1/update" + KEY_PATH,
    summary="update: atomic read-modify-write with jq, a merge patch or a JSON patch",
    description=NEEDS_REVEAL,
    path_params=KeyPath,
    query=RevealQuery,
    headers=IfMatch,
    body=UpdateBody,
    responses={200: Answer(SetResult, headers=ETAG)},
    errors=(409, 412),
    access="write",
)
async def update(call: Call, query: RevealQuery, body: UpdateBody) -> Response:
    ks = call.granted
    call.authorize_compare(ks, "an update (its jq, merge or patch reads the stored value)")
    reveal = call.reveal(query.reveal, ks)
    expected, create_only, header = preconditions(call, body.expected_version)
    no_create_only(create_only, "update")
    store = call.store()
    key = call.request.path_params["key"]
    fencing = authorized_fencing(call, body.fencing)

    def work() -> results.SetResult:
        # Off the event loop: a merge or patch of megabytes is parsed here, not there.
        return store.update(
            key,
            jq=body.jq,
            merge=_given(body.merge),
            patch=_given(body.patch),
            default=_given(body.default),
            ttl=body.ttl,
            expected_version=expected,
            fencing=fencing,
            scope=ks.scope,
            namespace=ks.namespace,
        )

    # alone: a jq transform may take a while, so no group of writes waits on it
    result = await guarded_write(call, header, work, alone=True)
    return written(result, reveal)


class RollbackBody(Body):
    version: Annotated[Version, doc("the version to write back")]
    expected_version: Annotated[ExpectedVersion, doc(GUARD)] | None = None
    fencing: FencingField = None


@router.post(
    "/v1/rollback" + KEY_PATH,
    summary="rollback: write a kept past version back as a new version",
    path_params=KeyPath,
    query=RevealQuery,
    headers=IfMatch,
    body=RollbackBody,
    responses={200: Answer(SetResult, headers=ETAG)},
    errors=(409, 412),
    access="write",
)
async def rollback(call: Call, query: RevealQuery, body: RollbackBody) -> Response:
    ks = call.granted
    reveal = call.reveal(query.reveal, ks)
    expected, create_only, header = preconditions(call, body.expected_version)
    no_create_only(create_only, "rollback")
    store = call.store()
    result = await guarded_write(
        call,
        header,
        partial(
            store.rollback,
            call.request.path_params["key"],
            body.version,
            expected_version=expected,
            fencing=authorized_fencing(call, body.fencing),
            scope=ks.scope,
            namespace=ks.namespace,
        ),
    )
    return written(result, reveal)


class HistoryQuery(Query):
    limit: Annotated[Limit, doc("At most this many (0: all kept).")] = 0
    include_values: Annotated[Flag, doc("Include each version's value.")] = False
    reveal: Reveal = False


@router.get(
    "/v1/history" + KEY_PATH,
    summary="history: kept versions, newest first, deletions included",
    path_params=KeyPath,
    query=HistoryQuery,
    responses={200: Answer(HistoryResult)},
    access="read",
)
async def history(call: Call, query: HistoryQuery) -> Response:
    ks = call.granted
    reveal = call.reveal(query.reveal, ks)
    store = call.reader()
    result = await call.state.read(
        partial(
            store.history,
            call.request.path_params["key"],
            scope=ks.scope,
            namespace=ks.namespace,
            limit=query.limit,
            include_values=query.include_values,
        )
    )
    return json_response(envelope_json(result, reveal))


def _operation(call: Call, raw: Raw, index: int) -> dict[str, Any]:
    """A transaction operation as every face reads it (``transaction_operation``: its
    fencing already read), the fencing then authorized."""
    op = transaction_operation(batch_operation(raw), index)
    if op.get("fencing") is not None:
        op["fencing"] = authorized_fencing(call, op["fencing"])
    return op


#: A list of operations, each kept as its JSON text until it is applied.
Operations = Annotated[
    list[Annotated[Raw, Meta(extra_json_schema=OPERATIONS_SCHEMA)]],
    doc("a list of set/delete operations"),
]


class TransactionBody(Body):
    schema_models = (SetOperation, DeleteOperation)

    ops: Operations
    fencing: FencingField = None


@router.post(
    "/v1/txn/{scope}/{namespace}",
    summary="transaction: set/delete operations, all or nothing",
    path_params=SpacePath,
    body=TransactionBody,
    responses={200: Answer(TransactionResult)},
    errors=(409,),
    access="write",
)
async def transaction(call: Call, body: TransactionBody) -> Response:
    ks = call.granted
    ops = body.ops
    big = call.batch(len(ops))
    store = call.store()
    fencing = authorized_fencing(call, body.fencing)

    def commit() -> str:  # a big one on the writer thread: values normalize there too
        operations = [_operation(call, op, i) for i, op in enumerate(ops)]
        result = store.transaction(
            operations, fencing=fencing, scope=ks.scope, namespace=ks.namespace
        )
        return envelope_json(result)

    return json_response(await call.state.write(commit, alone=big))
