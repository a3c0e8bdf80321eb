"""Keyspaces over HTTP: list them (each token sees only what it may read), delete one.

``GET /v1/keyspaces?scope=&after=&limit=`` answers the page the engine's
:meth:`~statebox.StateStore.keyspaces` would, filtered by the caller's read grants: the
server reads further pages of the store until it has ``limit`` keyspaces the caller may
read, so a page is never short while more readable ones follow, and ``next`` (the
``after`` of the next page) names the last keyspace returned — never one the caller may
not read. ``DELETE /v1/kv/{scope}/{namespace}`` deletes the whole keyspace (a write grant
on it), each key's history recording the deletion.
"""

from __future__ import annotations

from functools import partial

from starlette.responses import Response

from ..core.model import Keyspace, KeyspaceInfo, Scope, parse_keyspace_cursor
from ..core.results import KeyspacesResult
from .auth import Access
from .call import Call, RouteSpec
from .state import json_response

__all__ = ["ROUTES"]

#: Keyspaces read from the store per round while filtering by grants.
_ROUND = 1000


def _readable(
    call: Call, scope: str | None, after: Keyspace | None, limit: int, now: int
) -> tuple[list[KeyspaceInfo], bool]:
    """Up to ``limit`` (0: all) keyspaces the caller may read, and whether more follow.
    Runs on a worker thread: it may read several rounds."""
    backend, principal = call.state.backend, call.principal
    found: list[KeyspaceInfo] = []
    wanted = limit + 1 if limit else 0  # one more tells whether another page follows
    while True:
        round_size = max(wanted - len(found), _ROUND) if wanted else 0
        batch = backend.list_keyspaces(scope, after=after, limit=round_size, now=now)
        found += [k for k in batch if principal.can(Access.READ, k.keyspace)]
        if wanted and len(found) >= wanted:
            return found[:limit], True
        if not round_size or len(batch) < round_size:
            return found, False
        after = batch[-1].keyspace


async def list_keyspaces(call: Call) -> Response:
    raw_scope, raw_after = call.q_str("scope"), call.q_str("after")
    scope = Scope.parse(raw_scope).value if raw_scope is not None else None
    after = parse_keyspace_cursor(raw_after) if raw_after is not None else None
    limit = call.q_int("limit", minimum=0) or 0
    page, more = await call.state.read(partial(_readable, call, scope, after, limit, call.now()))
    result = KeyspacesResult(scope, page, page[-1].keyspace if more and page else None)
    return json_response(result.to_json())


async def delete_keyspace(call: Call) -> Response:
    ks = call.keyspace(Access.WRITE)
    store = call.store()
    # Alone on the writer: one keyspace may hold many keys, each deleted with its history.
    result = await call.state.write(
        partial(store.delete_keyspace, ks.scope, ks.namespace), alone=True
    )
    return json_response(result.to_json())


ROUTES: list[RouteSpec] = [
    ("GET", "/v1/keyspaces", list_keyspaces, False),
    ("DELETE", "/v1/kv/{scope}/{namespace}", delete_keyspace, False),
]
