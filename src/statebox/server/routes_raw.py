"""The entries API: the backend contract over HTTP, for the remote store (``http://``).

These routes carry exactly what :class:`~statebox.backends.base.Backend` needs — whole
entries with their timestamps, writers and expiry, history records, an all-or-nothing
apply that answers with the entries before and after (on one keyspace, or on several at
once: ``POST /v1/apply``, ``apply_batch``), and the change token that watch
waits on — so a :class:`~statebox.StateStore` over ``http://`` behaves as one over the
server's own store. They are plain JSON and documented in ``/openapi.json``, so any
client may use them too.

On a secret keyspace they carry plaintext, so the routes that answer values need a grant
with ``reveal: true`` there (:mod:`.entries_shown`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta
from starlette.responses import Response

from ..backends.base import Mutation, WriteContext, check_batches
from ..core.envelope import dumps_envelope
from ..core.errors import (
    ConflictError,
    InvalidReferenceError,
    InvalidRequestError,
    InvalidValueError,
    NotFoundError,
    StateboxError,
    quoted,
)
from ..core.model import Keyspace, validate_key, validate_prefix
from ..store import StateStore
from ..web import Answer, Body, Flag, Int64, Limit, Query, Router, Version
from ..web.fields import AfterKey, WaitSeconds
from ..wire.codec import batch_operation, entry_json, record_json
from ..wire.mutations import mutation_from_wire
from .auth import Access
from .call import Call
from .entries_shown import ShownEntries, secret_values
from .guards import KEY_PATH
from .models import (
    OPERATIONS_SCHEMA,
    AppliedBatches,
    AppliedResult,
    ChangeToken,
    DeleteOperation,
    Entries,
    KeyPath,
    OneEntry,
    Records,
    Scope,
    SetOperation,
    SpacePath,
)
from .routes_leases import authorize_fence
from .state import json_response
from .watch import WAIT_TIMEOUT, until_disconnected

__all__ = ["reset", "router", "test_router"]

E = TypeVar("E", bound=StateboxError)

router = Router("entries")
#: Mounted in test mode only.
test_router = Router("test")


@router.get(
    "/v1/entries" + KEY_PATH,
    summary="entries API: one whole entry (404 when missing)",
    path_params=KeyPath,
    responses={200: Answer(OneEntry)},
    access="read",
)
async def get_entry(call: Call) -> Response:
    ks = call.granted
    keyed = secret_values(call, ks, "reading an entry through the entries API")
    key = validate_key(call.request.path_params["key"])
    entry = await call.state.read(partial(call.state.backend.get, ks, key, call.now()))
    if entry is None:
        raise NotFoundError(
            f"key {quoted(key)} not found in scope {quoted(ks.scope)}, namespace "
            f"{quoted(ks.namespace)}"
        )
    return json_response(f'{{"entry":{entry_json(entry, keyed_hash=keyed)}}}')


class ScanQuery(Query):
    prefix: Annotated[str, Meta(description="Key prefix.")] | None = None
    after: Annotated[AfterKey, Meta(description="Continue after this key.")] | None = None
    limit: Annotated[Limit, Meta(description="At most this many (0: all).")] = 0
    include_values: Annotated[Flag, Meta(description="Include the values.")] = False


@router.get(
    "/v1/entries/{scope}/{namespace}",
    summary="entries API: whole entries by prefix",
    path_params=SpacePath,
    query=ScanQuery,
    responses={200: Answer(Entries)},
    access="read",
)
async def scan_entries(call: Call, query: ScanQuery) -> Response:
    ks = call.granted
    prefix = validate_prefix(query.prefix)
    include_values = query.include_values
    keyed = call.secret(ks)
    if include_values and keyed:
        call.authorize_reveal(ks, "scanning with include_values")
    entries = await call.state.read(
        partial(
            call.state.backend.scan,
            ks,
            prefix,
            after=query.after,
            limit=query.limit,
            include_values=include_values,
            now=call.now(),
        )
    )
    items = ",".join(entry_json(e, include_value=include_values, keyed_hash=keyed) for e in entries)
    return json_response(f'{{"entries":[{items}]}}')


class RecordsQuery(Query):
    limit: Annotated[Limit, Meta(description="At most this many (0: all).")] = 0
    version: (
        Annotated[Version, Meta(description="Only the newest record of this version.")] | None
    ) = None


@router.get(
    "/v1/records" + KEY_PATH,
    summary="entries API: history records (or the one of a version)",
    path_params=KeyPath,
    query=RecordsQuery,
    responses={200: Answer(Records)},
    access="read",
)
async def records(call: Call, query: RecordsQuery) -> Response:
    ks = call.granted
    keyed = secret_values(call, ks, "reading history records")
    key = validate_key(call.request.path_params["key"])
    backend = call.state.backend
    if query.version is not None:
        record = await call.state.read(partial(backend.get_version, ks, key, query.version))
        found = [] if record is None else [record]
    else:
        found = await call.state.read(partial(backend.history, ks, key, query.limit))
    items = ",".join(record_json(r, keyed_hash=keyed) for r in found)
    return json_response(f'{{"records":[{items}]}}')


def _mutation(call: Call, store: StateStore, raw: Any, index: int, now: int) -> Mutation:
    """One operation of ``/v1/apply``, read by the wire's decoder (the http:// backend's
    encoder sits beside it); a fence must be one this caller may use."""
    return mutation_from_wire(
        raw, index, now, store.normalize, lambda fence: authorize_fence(call, fence.lease)
    )


class ApplyBody(Body):
    # No history_limit field: how many versions a key keeps is the store's policy (the
    # server's --history-limit), never a writer's, who could otherwise erase a history.
    schema_models = (SetOperation, DeleteOperation)

    ops: Annotated[
        list[Annotated[msgspec.Raw, Meta(extra_json_schema=OPERATIONS_SCHEMA)]],
        Meta(
            extra_json_schema={"minItems": 1},
            description="a non-empty list of set/delete operations",
        ),
    ]


@router.post(
    "/v1/apply/{scope}/{namespace}",
    summary="entries API: apply mutations all or nothing; answers the entries before and "
    "after each",
    path_params=SpacePath,
    body=ApplyBody,
    responses={200: Answer(AppliedResult)},
    errors=(409,),
    access="write",
)
async def apply(call: Call, body: ApplyBody) -> Response:
    ks = call.granted
    if not body.ops:
        raise InvalidRequestError('apply needs "ops": a non-empty list of set/delete operations')
    big = call.batch(len(body.ops))
    store = call.store()
    ctx = WriteContext(
        now=call.now(), updated_by=call.updated_by(), history_limit=store.history_limit
    )
    shown = ShownEntries(call, [ks])

    def mutations() -> list[Mutation]:
        ops = [batch_operation(raw) for raw in body.ops]
        return [_mutation(call, store, raw, i, ctx.now) for i, raw in enumerate(ops)]

    if not big:
        batch = mutations()
        applied = await call.state.write(partial(call.state.backend.apply, ks, batch, ctx))
        return json_response(shown.applied_json(0, applied))

    def commit() -> str:  # on the writer thread: big values are read and normalized there
        return shown.applied_json(0, call.state.backend.apply(ks, mutations(), ctx))

    return json_response(await call.state.write(commit, alone=True))


class KeyspaceOps(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One keyspace's operations in an apply across keyspaces."""

    scope: Annotated[Scope, Meta(description="The keyspace's scope.")]
    namespace: Annotated[
        str, Meta(min_length=1, description="The namespace (no '/' or '\\', not '.' or '..').")
    ]
    ops: Annotated[
        list[Annotated[msgspec.Raw, Meta(extra_json_schema=OPERATIONS_SCHEMA)]],
        Meta(
            extra_json_schema={"minItems": 1},
            description="a non-empty list of set/delete operations",
        ),
    ]


class ApplyAcrossBody(Body):
    schema_models = (SetOperation, DeleteOperation)
    # {"batches": [{"ops": [{"value": ...}]}]}: two levels more than {"ops": [...]}.
    envelope = 5

    batches: Annotated[
        list[KeyspaceOps],
        Meta(
            extra_json_schema={"minItems": 1},
            description="a non-empty list of keyspaces, each with its operations; a keyspace "
            "appears at most once",
        ),
    ]


@router.post(
    "/v1/apply",
    summary="entries API: apply mutations to several keyspaces all or nothing; answers "
    "each batch's entries before and after",
    body=ApplyAcrossBody,
    responses={200: Answer(AppliedBatches)},
    errors=(409,),
)
async def apply_across(call: Call, body: ApplyAcrossBody) -> Response:
    """``Backend.apply_batch`` over HTTP: every keyspace needs a write grant (checked
    before any operation is read), and the operations of all of them count together
    against ``max_txn_ops``. A conflict's ``index`` counts across the batches in order;
    its message, and a malformed operation's, names the batch and its keyspace."""
    # First, before any loop over the batches: each batch needs an operation, so this
    # bounds how many batches the checks below go through on the event loop.
    big = call.batch(sum(len(batch.ops) for batch in body.batches))
    spaces = _writable_keyspaces(call, body.batches)
    shown = ShownEntries(call, spaces)
    store = call.store()
    ctx = WriteContext(
        now=call.now(), updated_by=call.updated_by(), history_limit=store.history_limit
    )

    def batches() -> list[tuple[Keyspace, Sequence[Mutation]]]:
        found: list[tuple[Keyspace, Sequence[Mutation]]] = []
        index = 0  # flat, as a conflict's index counts
        for number, (keyspace, batch) in enumerate(zip(spaces, body.batches, strict=True)):
            try:
                ops = [batch_operation(raw) for raw in batch.ops]
                mutations = [
                    _mutation(call, store, op, index + i, ctx.now) for i, op in enumerate(ops)
                ]
            except (InvalidReferenceError, InvalidValueError) as exc:
                raise _in_batch(exc, number, keyspace) from exc
            found.append((keyspace, mutations))
            index += len(ops)
        return found

    def commit(parts: list[tuple[Keyspace, Sequence[Mutation]]]) -> str:
        applied = call.state.backend.apply_batch(parts, ctx)
        answers = ",".join(shown.applied_json(i, a) for i, a in enumerate(applied))
        return f'{{"batches":[{answers}]}}'

    try:
        if not big:
            parts = batches()
            return json_response(await call.state.write(partial(commit, parts)))
        # On the writer thread: big values are read and normalized there.
        return json_response(await call.state.write(lambda: commit(batches()), alone=True))
    except ConflictError as exc:
        number = _batch_of(body.batches, exc.index)
        if number is None:
            raise
        raise _in_batch(exc, number, spaces[number]) from exc


def _writable_keyspaces(call: Call, batches: Sequence[KeyspaceOps]) -> list[Keyspace]:
    """Each batch's keyspace, validated and authorized for writing in order (the first
    one the token may not write is the 403), each at most once, each with operations."""
    if not batches:
        raise InvalidRequestError(
            'apply needs "batches": a non-empty list of {"scope", "namespace", "ops"}'
        )
    spaces: list[Keyspace] = []
    for number, batch in enumerate(batches):
        keyspace = call.state.keyspace(batch.scope, batch.namespace)
        call.authorize("write", keyspace)
        if not batch.ops:
            raise InvalidRequestError(
                f'batches[{number}] ({_named(keyspace)}) needs "ops": a non-empty list of '
                "set/delete operations"
            )
        spaces.append(keyspace)
    check_batches([(keyspace, None) for keyspace in spaces])  # the backends' own check
    return spaces


def _named(keyspace: Keyspace) -> str:
    return f"scope {quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}"


def _batch_of(batches: Sequence[KeyspaceOps], index: int) -> int | None:
    """The number of the batch holding the operation at flat ``index``."""
    for number, batch in enumerate(batches):
        if index < len(batch.ops):
            return number
        index -= len(batch.ops)
    return None


def _in_batch(exc: E, number: int, keyspace: Keyspace) -> E:
    """``exc`` again, its message naming batch ``number`` and its keyspace; a conflict
    keeps its (flat) ``index`` and ``current_version``."""
    message = f"batches[{number}] ({_named(keyspace)}): {exc.message}"
    again = (
        type(exc)(message, index=exc.index, current_version=exc.current_version)
        if isinstance(exc, ConflictError)
        else type(exc)(message)
    )
    again.params = exc.params
    return again


class ChangesQuery(Query):
    after: Annotated[Int64, Meta(description="Wait until the token differs.")] | None = None
    timeout: Annotated[WaitSeconds, WAIT_TIMEOUT] | None = None


@router.get(
    "/v1/changes/{scope}/{namespace}",
    summary="entries API: the change token; with after=, wait until it moves",
    path_params=SpacePath,
    query=ChangesQuery,
    responses={200: Answer(ChangeToken)},
    errors=(429,),
    access="read",
)
async def changes(call: Call, query: ChangesQuery) -> Response:
    ks = call.granted
    after = query.after
    backend = call.state.backend
    if after is None:
        token = await call.state.read(partial(backend.change_token, ks))
    else:
        seconds = 30.0 if query.timeout is None else query.timeout
        timeout = min(seconds, call.state.config.max_wait)
        # Waits on the event loop, not in a thread (ServerState.watch); a watch like
        # the others: counted per token, ended when the client leaves.
        with call.state.watch_slot(call.principal):
            seen = await until_disconnected(
                call.request,
                partial(
                    call.state.watch,
                    ks,
                    partial(backend.change_token, ks),
                    lambda seen: seen != after,
                    timeout,
                ),
            )
        token = after if seen is None else seen
    return json_response(dumps_envelope({"token": token}))


@test_router.post("/v1/_test/reset", summary="test mode only: empty the store")
async def reset(call: Call) -> Response:
    """Test mode only: empty the store (each conformance test starts from nothing)."""
    call.authorize_everything(Access.WRITE)
    call.state.reset()
    return json_response(dumps_envelope({"reset": True}))
