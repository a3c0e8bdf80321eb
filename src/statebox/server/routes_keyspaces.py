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
from typing import Annotated

from msgspec import Meta
from starlette.responses import Response

from ..core import params
from ..core.envelope import envelope_json
from ..core.model import Keyspace, KeyspaceInfo, Scope
from ..core.results import KeyspacesResult
from ..web import Answer, Limit, Query, Router
from .auth import Access
from .call import Call
from .models import SCOPES, KeyspaceDeleteResult, SpacePath
from .models import KeyspacesResult as KeyspacesAnswer
from .state import json_response

__all__ = ["router"]

router = Router("keyspaces")

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


_CURSOR = "^(" + "|".join(SCOPES) + ")/[^/\\\\]+$"


class KeyspacesQuery(Query):
    scope: Annotated[str, Meta(extra_json_schema={"enum": list(SCOPES)})] | None = None
    limit: Annotated[Limit, Meta(description="At most this many (0: all).")] = 0
    after: (
        Annotated[
            str,
            Meta(
                extra_json_schema={"pattern": _CURSOR},
                description="Continue after this SCOPE/NAMESPACE (the previous page's next).",
            ),
        ]
        | None
    ) = None


@router.get(
    "/v1/keyspaces",
    summary="keyspaces: those with live entries that the token may read, paged",
    query=KeyspacesQuery,
    responses={200: Answer(KeyspacesAnswer)},
)
async def list_keyspaces(call: Call, query: KeyspacesQuery) -> Response:
    scope = Scope.parse(query.scope).value if query.scope is not None else None
    after = params.after_keyspace(query.after, "?after=") if query.after is not None else None
    limit = query.limit
    page, more = await call.state.read(partial(_readable, call, scope, after, limit, call.now()))
    result = KeyspacesResult(scope, page, page[-1].keyspace if more and page else None)
    return json_response(envelope_json(result))


@router.delete(
    "/v1/kv/{scope}/{namespace}",
    summary="delete a keyspace: every entry of it at once (a write grant on it)",
    path_params=SpacePath,
    responses={200: Answer(KeyspaceDeleteResult)},
    access="write",
)
async def delete_keyspace(call: Call) -> Response:
    ks = call.granted
    store = call.store()
    # Alone on the writer: one keyspace may hold many keys, each deleted with its history.
    result = await call.state.write(
        partial(store.delete_keyspace, ks.scope, ks.namespace), alone=True
    )
    return json_response(envelope_json(result))
