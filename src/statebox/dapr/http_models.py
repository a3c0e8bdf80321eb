"""What the Dapr HTTP face reads and writes: the request bodies as Dapr's clients send
them (decoded with :mod:`msgspec`, a failure Dapr's 400 ``ERR_MALFORMED_REQUEST``), the
path, query and header models and the JSON schemas ``/openapi.json`` shows, the items
:mod:`.state_api` takes, and the bulk answer, written from the stored bytes.

The routes themselves are in :mod:`.http`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from ..core.envelope import value_fields
from ..core.errors import StateboxError
from ..core.exactjson import check_depth
from ..core.results import StoredValue
from ..core.values import JSON_CONTENT_TYPE, RawJSON
from ..web import Query, RequestView
from .errors import MALFORMED_REQUEST, DaprError
from .state_api import DeleteItem, Item, SaveItem
from .values import OCTET_STREAM, is_json, transaction_item

__all__ = [
    "BINDING_SCHEMA",
    "METADATA",
    "BULK_SCHEMA",
    "SAVE_SCHEMA",
    "TRANSACTION_SCHEMA",
    "BindingPath",
    "BindingRequest",
    "BulkGetRequest",
    "DeleteQuery",
    "GetQuery",
    "HealthQuery",
    "IfMatch",
    "SecretKeyPath",
    "SecretStorePath",
    "StateRequest",
    "StoreKeyPath",
    "StorePath",
    "TransactionRequest",
    "binding_data",
    "bulk_answer",
    "decode",
    "malformed",
    "merged",
    "query_metadata",
    "save_items",
    "transaction_items",
]

#: The prefix of Dapr's metadata in a query (``?metadata.ttlInSeconds=5``) and in
#: response headers (``metadata.ttlExpireTime``).
METADATA: Final = "metadata."


def _doc(text: str) -> Meta:
    return Meta(description=text)


def malformed(what: str) -> DaprError:
    """Dapr's 400 for a request it cannot read, naming what was wrong."""
    return DaprError(
        MALFORMED_REQUEST, f"failed deserializing HTTP body: {what}", 400, "INVALID_ARGUMENT"
    )


# --- request bodies, decoded as Dapr's clients send them ---------------------------------


class Options(msgspec.Struct, omit_defaults=True):
    concurrency: str | None = None
    consistency: str | None = None


class StateRequest(msgspec.Struct, omit_defaults=True):
    """One item of ``POST /v1.0/state/{store}``, and a transaction's upsert or delete."""

    key: Annotated[str, _doc("The state key (Dapr prefixes it: appid||key).")]
    value: Annotated[msgspec.Raw, _doc("Any JSON (upsert); stored as its JSON text.")] = (
        msgspec.Raw(b"")
    )
    etag: Annotated[str, _doc("Write only if the stored etag is this one.")] | None = None
    metadata: Annotated[dict[str, str], _doc("ttlInSeconds, contentType...")] | None = None
    options: Options | None = None


class BulkGetRequest(msgspec.Struct):
    keys: list[str] = msgspec.field(default_factory=list)
    parallelism: int = 0
    metadata: dict[str, str] | None = None


class TransactionOperation(msgspec.Struct):
    operation: str
    request: StateRequest


class TransactionRequest(msgspec.Struct):
    operations: list[TransactionOperation] = msgspec.field(default_factory=list)
    metadata: dict[str, str] | None = None


class BindingRequest(msgspec.Struct):
    operation: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")
    metadata: dict[str, str] | None = None


def decode(kind: type[Any], raw: bytes, what: str) -> Any:
    """``raw`` as ``kind``; Dapr's 400 ``ERR_MALFORMED_REQUEST`` if it is not one."""
    try:
        check_depth(raw, "request body", envelope=4)
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise malformed(f"{what}: {exc}") from None
    except StateboxError as exc:
        raise malformed(f"{what}: {exc.message}") from None


# --- the schemas /openapi.json shows -----------------------------------------------------

_STRINGS: Final = {"type": "object", "additionalProperties": {"type": "string"}}
_STATE_ITEM: Final = {
    "type": "object",
    "required": ["key"],
    "properties": {
        "key": {"type": "string", "description": "The state key (Dapr prefixes it)."},
        "value": {"description": "Any JSON (an upsert): stored as its JSON text."},
        "etag": {"type": "string", "description": "Only if the stored etag is this."},
        "metadata": {**_STRINGS, "description": "ttlInSeconds, contentType..."},
        "options": {
            "type": "object",
            "properties": {
                "concurrency": {"enum": ["first-write", "last-write"]},
                "consistency": {"enum": ["eventual", "strong"]},
            },
        },
    },
}
SAVE_SCHEMA: Final = {"type": "array", "items": _STATE_ITEM}
BULK_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "keys": {"type": "array", "items": {"type": "string"}},
        "parallelism": {"type": "integer"},
        "metadata": _STRINGS,
    },
}
TRANSACTION_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["operation", "request"],
                "properties": {
                    "operation": {"enum": ["upsert", "delete"]},
                    "request": _STATE_ITEM,
                },
            },
        },
        "metadata": _STRINGS,
    },
}
BINDING_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "operation": {"enum": ["create", "get", "delete", "list"]},
        "data": {"description": "Any JSON: a string is stored as its text."},
        "metadata": {**_STRINGS, "description": "key / fileName / blobName / name, prefix"},
    },
}


# --- paths, queries, headers -------------------------------------------------------------


class StorePath(msgspec.Struct):
    store: Annotated[str, _doc("The state store component's name.")]


class StoreKeyPath(msgspec.Struct):
    store: Annotated[str, _doc("The state store component's name.")]
    key: Annotated[str, _doc("The state key (it may hold /).")]


class SecretStorePath(msgspec.Struct):
    store: Annotated[str, _doc("The secret store component's name.")]


class SecretKeyPath(msgspec.Struct):
    store: Annotated[str, _doc("The secret store component's name.")]
    key: Annotated[str, _doc("The secret's name (it may hold /).")]


class BindingPath(msgspec.Struct):
    name: Annotated[str, _doc("The output binding component's name.")]


class HealthQuery(Query):
    appid: Annotated[str, _doc("Not ready (500) unless this is the app id.")] | None = None


class GetQuery(Query):
    consistency: Annotated[str, _doc("eventual or strong (statebox is always strong).")] | None = (
        None
    )


class DeleteQuery(Query):
    concurrency: Annotated[str, _doc("first-write or last-write (the default).")] | None = None
    consistency: Annotated[str, _doc("eventual or strong (statebox is always strong).")] | None = (
        None
    )


class IfMatch(msgspec.Struct):
    if_match: Annotated[str, _doc("Delete only if the stored etag is this one.")] | None = (
        msgspec.field(default=None, name="If-Match")
    )


def query_metadata(call: RequestView) -> dict[str, str]:
    """``?metadata.NAME=VALUE`` parameters, as Dapr reads them (the first of a repeated one)."""
    found: dict[str, str] = {}
    for name, value in call.request.query_params.multi_items():
        if name.startswith(METADATA) and name[len(METADATA) :] not in found:
            found[name[len(METADATA) :]] = value
    return found


def merged(own: Mapping[str, str] | None, query: Mapping[str, str]) -> dict[str, str]:
    """An item's metadata with the query's merged in (the query wins, as in Dapr)."""
    return {**(own or {}), **query}


# --- the items state_api takes -----------------------------------------------------------


def _value(raw: msgspec.Raw) -> RawJSON:
    """An HTTP state value: any JSON, stored as its JSON text (absent: null)."""
    text = bytes(raw)
    return RawJSON(text if text else b"null")


def _check_keys(items: Sequence[StateRequest]) -> None:
    for item in items:
        if not item.key:
            raise malformed('"key" is a required field')


def save_items(items: Sequence[StateRequest], query: Mapping[str, str]) -> list[SaveItem]:
    """The items of a save request (each needs a key), the query's metadata merged in."""
    _check_keys(items)
    return [
        SaveItem(
            key=item.key,
            value=_value(item.value),
            etag=item.etag,
            metadata=merged(item.metadata, query),
            concurrency=(item.options or Options()).concurrency or None,
        )
        for item in items
    ]


def transaction_items(
    request: TransactionRequest, query: Mapping[str, str]
) -> list[SaveItem | DeleteItem]:
    """The operations of a transaction request; an unknown operation is Dapr's 400
    ``ERR_NOT_SUPPORTED_STATE_OPERATION``."""
    _check_keys([op.request for op in request.operations])
    return [
        transaction_item(
            op.operation,
            op.request.key,
            _value(op.request.value),
            op.request.etag,
            merged(op.request.metadata, query),
            (op.request.options or Options()).concurrency or None,
        )
        for op in request.operations
    ]


def binding_data(raw: msgspec.Raw) -> bytes:
    """The bytes a binding receives for the body's ``data``: a JSON string is its text
    (what Dapr's object-store bindings store for it), any other JSON its JSON text,
    none (or null) no bytes."""
    text = bytes(raw)
    if not text or text == b"null":
        return b""
    value = msgspec.json.decode(text)
    if isinstance(value, str):
        return value.encode()
    return text


# --- the bulk answer ---------------------------------------------------------------------


def _bulk_data(item: Item) -> msgspec.Raw | str:
    """``data`` of a found item: a JSON value's stored text as it is (exact numbers,
    nothing re-encoded); any other value (a blob, whatever its bytes) the base64 text of
    its bytes, as a JSON string."""
    data = item.data or b""
    content_type = item.content_type or OCTET_STREAM
    if content_type == JSON_CONTENT_TYPE and is_json(data):
        return msgspec.Raw(data)
    shown: str = value_fields(StoredValue(data, content_type, False))["value"]
    return shown  # the envelope's base64 form of a binary value


def bulk_answer(items: Sequence[Item]) -> bytes:
    """A bulk read's JSON array as Dapr writes it, in request order: ``key``; for a
    found key ``data`` (:func:`_bulk_data`), ``etag`` and ``metadata`` when present."""
    answer: list[dict[str, Any]] = []
    for item in items:
        found: dict[str, Any] = {"key": item.key}
        if item.data is not None:
            found["data"] = _bulk_data(item)
            if item.etag is not None:
                found["etag"] = item.etag
            if item.metadata:
                found["metadata"] = dict(item.metadata)
        answer.append(found)
    return msgspec.json.encode(answer)
