"""Import over HTTP: ``POST /v1/import/{scope}/{namespace}``, ``Backend.import_keys`` for
the remote store (``http://``), so ``statebox load`` and ``copy`` reach a server's store.

The body carries whole keys — each one's entry (or null: deleted) and its history, as
the entries API sends them — and the answer one outcome per key, in order::

    POST /v1/import/dag/feed-sync
    {"replace": false, "items": [{"key": "cursor", "current": {...}, "history": [...]}]}
    -> {"outcomes": ["created"]}

A write grant on the keyspace is needed, as for ``/v1/apply``. On a secret keyspace the
caller must also be allowed to reveal its values: "same" or "conflict" would confirm a
guess of a stored value (as a diff would). The server's store imports the batch in one
atomic section through its engine (``StateStore.import_keys``), which checks every item
and seals a secret keyspace's values with the server's key; the batch counts against
``--max-txn-ops`` and the body against ``--max-body-bytes`` as an apply does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from starlette.responses import Response

from ..core.envelope import dumps_envelope
from ..core.exactjson import loads_exact
from ..core.records import KeyImport
from ..web import Answer, Body, Router
from ..wire.imports import import_item_from_wire
from .call import Call
from .models import Entry, SpacePath
from .state import json_response

__all__ = ["router"]

router = Router("import")


class ImportItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One key's whole state: its entry (null when deleted or expired) and its kept
    history, newest first, as the entries API sends them (timestamps and ``expiresAt``
    absolute, kept as given)."""

    key: Annotated[str, Meta(min_length=1)]
    current: Entry | None
    history: list[Entry] = []


class ImportBody(Body):
    schema_models = (ImportItem,)
    # {"items": [{"history": [{"value": ...}]}]}: four levels around a value.
    envelope = 5

    items: Annotated[
        list[
            Annotated[
                msgspec.Raw, Meta(extra_json_schema={"$ref": "#/components/schemas/ImportItem"})
            ]
        ],
        Meta(
            extra_json_schema={"minItems": 1},
            description="a non-empty list of keys, each at most once",
        ),
    ]
    replace: Annotated[
        bool,
        Meta(
            description="Replace a key that holds something else (its history too) instead "
            'of answering "conflict" for it.'
        ),
    ] = False


class ImportResult(msgspec.Struct):
    """One outcome per item, in order."""

    outcomes: list[Literal["created", "same", "conflict", "replaced"]]


@router.post(
    "/v1/import/{scope}/{namespace}",
    summary="entries API: import whole keys (entry and history) all or nothing; answers "
    "created, same, conflict or replaced for each",
    path_params=SpacePath,
    body=ImportBody,
    responses={200: Answer(ImportResult)},
    access="write",
)
async def import_keys(call: Call, body: ImportBody) -> Response:
    ks = call.granted
    call.authorize_compare(ks, "an import (its same and conflict answers compare values)")
    call.batch(len(body.items))  # max_txn_ops; the body's size is the front's limit
    store = call.store()

    def run() -> str:  # on the writer thread: values are parsed and checked there
        items: list[KeyImport] = [
            import_item_from_wire(loads_exact(bytes(raw)), f"items[{index}]")
            for index, raw in enumerate(body.items)
        ]
        return dumps_envelope({"outcomes": store.import_keys(ks, items, replace=body.replace)})

    return json_response(await call.state.write(run, alone=True))
