"""The entries API: the backend contract over HTTP, for the remote store (``http://``).

These routes carry exactly what :class:`~statebox.backends.base.Backend` needs — whole
entries with their timestamps, writers and expiry, history records, an all-or-nothing
apply that answers with the entries before and after, and the change token that watch
waits on — so a :class:`~statebox.StateStore` over ``http://`` behaves as one over the
server's own store. They are plain JSON and documented in ``/openapi.json``, so any
client may use them too.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.responses import Response

from ..backends.base import Applied, Delete, Entry, Mutation, Put, WriteContext
from ..core.errors import InvalidRequestError, NotFoundError, quoted
from ..core.leases import as_fence
from ..core.model import validate_key, validate_prefix
from ..core.results import dumps_envelope
from ..store import StateStore
from ..transactions import DeleteOp, SetOp, parse_operation
from ..wire.codec import entry_json, parse_seconds, record_json, value_from_wire
from .auth import Access
from .call import Call, RouteSpec, check_fields
from .routes_kv import KEY_PATH
from .routes_leases import authorize_fence
from .state import json_response
from .watch import until_disconnected

__all__ = ["ROUTES", "reset"]


def _entry_or_null(entry: Entry | None) -> str:
    return "null" if entry is None else entry_json(entry)


async def get_entry(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    key = validate_key(call.request.path_params["key"])
    entry = await call.state.read(partial(call.state.backend.get, ks, key, call.now()))
    if entry is None:
        raise NotFoundError(
            f"key {quoted(key)} not found in scope {quoted(ks.scope)}, namespace "
            f"{quoted(ks.namespace)}"
        )
    return json_response(f'{{"entry":{entry_json(entry)}}}')


async def scan_entries(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    prefix = validate_prefix(call.q_str("prefix"))
    after = call.q_str("after")
    include_values = call.q_bool("include_values")
    entries = await call.state.read(
        partial(
            call.state.backend.scan,
            ks,
            prefix,
            after=None if after is None else validate_key(after),
            limit=call.q_int("limit", minimum=0) or 0,
            include_values=include_values,
            now=call.now(),
        )
    )
    items = ",".join(entry_json(e, include_value=include_values) for e in entries)
    return json_response(f'{{"entries":[{items}]}}')


async def records(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    key = validate_key(call.request.path_params["key"])
    version = call.q_int("version", minimum=1)
    backend = call.state.backend
    if version is not None:
        record = await call.state.read(partial(backend.get_version, ks, key, version))
        found = [] if record is None else [record]
    else:
        limit = call.q_int("limit", minimum=0) or 0
        found = await call.state.read(partial(backend.history, ks, key, limit))
    return json_response(f'{{"records":[{",".join(record_json(r) for r in found)}]}}')


def _mutation(call: Call, store: StateStore, raw: Any, index: int, now: int) -> Mutation:
    if isinstance(raw, dict) and "encoding" in raw:
        value = value_from_wire(raw)
        raw = {k: v for k, v in raw.items() if k not in ("encoding", "contentType")}
        raw["value"] = value
    if isinstance(raw, dict) and isinstance(raw.get("fencing"), dict):
        fencing = raw["fencing"]
        raw = {**raw, "fencing": (fencing.get("lease"), fencing.get("token"))}
    op = parse_operation(raw, index)
    key = validate_key(op.key)
    fence = as_fence(op.fencing)
    if fence is not None:
        authorize_fence(call, fence.lease)
    if isinstance(op, DeleteOp):
        return Delete(key, op.expected_version, fence)
    assert isinstance(op, SetOp)
    # The contract's apply takes any expiry, even a past one: ttl is exact and may be <= 0.
    expires_at = None if op.ttl is None else now + parse_seconds(op.ttl, "ttl")
    return Put(
        key, store.normalize(op.value), op.expected_version, op.create_only, expires_at, fence
    )


async def apply(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    body = await call.body_object(batch=True)
    # No history_limit field: how many versions a key keeps is the store's policy (the
    # server's --history-limit), never a writer's, who could otherwise erase a history.
    check_fields(body, {"ops"}, "apply")
    ops = body.get("ops")
    if not isinstance(ops, list) or not ops:
        raise InvalidRequestError('apply needs "ops": a non-empty list of set/delete operations')
    big = call.batch(ops)
    store = call.store()
    ctx = WriteContext(
        now=call.now(), updated_by=call.updated_by(), history_limit=store.history_limit
    )
    if not big:
        mutations = [_mutation(call, store, raw, i, ctx.now) for i, raw in enumerate(ops)]
        applied = await call.state.write(partial(call.state.backend.apply, ks, mutations, ctx))
        return json_response(_applied_json(applied))

    def commit() -> str:  # on the writer thread: its values normalize there too
        mutations = [_mutation(call, store, raw, i, ctx.now) for i, raw in enumerate(ops)]
        return _applied_json(call.state.backend.apply(ks, mutations, ctx))

    return json_response(await call.state.write(commit, alone=True))


def _applied_json(applied: list[Applied]) -> str:
    results = ",".join(
        f'{{"previous":{_entry_or_null(a.previous)},"current":{_entry_or_null(a.current)}}}'
        for a in applied
    )
    return f'{{"results":[{results}]}}'


async def changes(call: Call) -> Response:
    ks = call.keyspace(Access.READ)
    after = call.q_int("after")
    backend = call.state.backend
    if after is None:
        token = await call.state.read(partial(backend.change_token, ks))
    else:
        raw_timeout = call.q_str("timeout")
        seconds = 30.0 if raw_timeout is None else parse_seconds(raw_timeout, "timeout") / 1e9
        if seconds < 0:
            raise InvalidRequestError("invalid timeout: must be 0 or more seconds")
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


async def reset(call: Call) -> Response:
    """Test mode only: empty the store (each conformance test starts from nothing)."""
    call.authorize_everything(Access.WRITE)
    call.state.reset()
    return json_response(dumps_envelope({"reset": True}))


ROUTES: list[RouteSpec] = [
    ("GET", "/v1/entries" + KEY_PATH, get_entry, False),
    ("GET", "/v1/entries/{scope}/{namespace}", scan_entries, False),
    ("GET", "/v1/records" + KEY_PATH, records, False),
    ("POST", "/v1/apply/{scope}/{namespace}", apply, False),
    ("GET", "/v1/changes/{scope}/{namespace}", changes, False),
]
