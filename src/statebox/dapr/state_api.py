"""Dapr's state API over the engine, once for every transport (HTTP and gRPC).

Each operation takes the :class:`~statebox.web.extension.Caller` (the engine acting for
the authenticated principal) and the :class:`DaprContext` (the components, the app id),
checks the request as Dapr does, authorizes the keyspace (a read needs ``read`` on
``custom/dapr-STORE``, and the reveal grant when that keyspace is secret; a write needs
``write``), and runs one engine call where the server runs reads or writes. Failures are
:class:`~statebox.dapr.errors.DaprError` only.

Semantics (Dapr's, as its SQLite state store has them):

- ETag: the entry's statebox version, as a decimal string. A request etag guards the
  write or delete (a mismatch writes nothing: 409 / ``ABORTED``; an etag that is not a
  decimal number: 400 / ``INVALID_ARGUMENT``, Dapr's "invalid etag value"); an empty one
  is none. ``first-write`` without an etag writes only a key that does not exist.
- ``ttlInSeconds`` (request metadata): an integer from -1 to 2^31-1; above 0 the entry
  expires after that many seconds, -1 and 0 mean never; a write without it drops an
  earlier expiry. Reads report ``ttlExpireTime`` (RFC 3339, UTC, whole seconds).
- Values: bytes with a non-JSON ``contentType`` (request metadata) are stored as a
  :class:`~statebox.core.values.Blob` of that type; bytes that are JSON (or declared
  ``application/json``) as statebox JSON, normalized (no insignificant white space, keys
  sorted); other bytes as a Blob of ``application/octet-stream``. Reads give the stored
  bytes.
- Several items saved at once, a bulk delete, a transaction: one statebox transaction,
  all or nothing. In a transaction every failure, an etag mismatch too, is 500
  ``ERR_STATE_TRANSACTION`` (/ ``INTERNAL``), as Dapr answers it.
- Size: one of those has at most the server's ``--max-txn-ops`` operations; more is
  Dapr's 400 ``ERR_STATE_STORE_TOO_MANY_TRANSACTIONS`` (/ ``INVALID_ARGUMENT``), before
  anything is written (Dapr checks it for transactions, against its store's limit;
  statebox holds every write of several items to it). Bulk gets have no limit.

Where the work runs: the per-item work (keys, etags, values) runs in the engine call,
and a big request (many items, or big values: :meth:`Caller.batch`; a bulk get of more
than :data:`BIG_READ_KEYS` keys) runs off the event loop, so the server goes on
answering everything else meanwhile.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ..core.errors import InvalidRequestError
from ..core.model import Keyspace
from ..core.results import GetResult
from ..core.values import JSON_CONTENT_TYPE, Blob, RawJSON
from ..transactions import DeleteOp, SetOp
from .components import Component, Components
from .errors import (
    BULK_DELETE,
    BULK_GET,
    MALFORMED_REQUEST,
    STATE_DELETE,
    STATE_GET,
    STATE_SAVE,
    STATE_TRANSACTION,
    DaprError,
    translated,
)
from .keys import KeyMapper
from .values import OCTET_STREAM, is_json

if TYPE_CHECKING:
    from ..store import StateStore
    from ..web.extension import Caller

__all__ = [
    "BIG_READ_KEYS",
    "CONTENT_TYPE_KEY",
    "TOO_MANY_TRANSACTIONS",
    "TTL_EXPIRE_TIME_KEY",
    "TTL_KEY",
    "DaprContext",
    "DeleteItem",
    "Item",
    "SaveItem",
    "delete_bulk_state",
    "delete_state",
    "execute_transaction",
    "checked_batch",
    "fitted",
    "get_bulk_state",
    "get_state",
    "save_state",
    "value_from_bytes",
]

TTL_KEY: Final = "ttlInSeconds"
TTL_EXPIRE_TIME_KEY: Final = "ttlExpireTime"
CONTENT_TYPE_KEY: Final = "contentType"
#: Dapr's code for a transaction over its store's limit (pkg/messages/errorcodes).
TOO_MANY_TRANSACTIONS: Final = "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS"
#: A bulk get of more keys than this is read on a worker thread, not on the event loop
#: (where a store that answers small reads in microseconds runs them): 32 reads take
#: about a millisecond, the hop to a thread and back a tenth of that.
BIG_READ_KEYS: Final = 32
FIRST_WRITE: Final = "first-write"
LAST_WRITE: Final = "last-write"
_MAX_TTL: Final = 2**31 - 1
_GO_INT: Final = re.compile(r"[+-]?[0-9]+")
_ETAG: Final = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class DaprContext:
    """What the Dapr face knows besides the request: the components and the app id.
    ``namespace``: Dapr's ``NAMESPACE`` for the ``namespace`` key prefix (None: the
    environment variable's)."""

    components: Components
    app_id: str = "statebox"
    namespace: str | None = None

    def mapper(self, component: Component) -> KeyMapper:
        return KeyMapper(component, self.app_id, namespace=self.namespace)


@dataclass(frozen=True)
class Item:
    """A state item read: ``data`` None (and ``etag`` None) when the key does not exist."""

    key: str
    data: bytes | None
    etag: str | None
    metadata: Mapping[str, str]
    content_type: str | None


@dataclass(frozen=True)
class SaveItem:
    key: str
    value: RawJSON | Blob
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    concurrency: str | None = None  # "first-write" / "last-write" / None (last-write)


@dataclass(frozen=True)
class DeleteItem:
    key: str
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    concurrency: str | None = None


# -- the request's parts, checked as Dapr checks them ---------------------------------


def _is_json_type(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main == JSON_CONTENT_TYPE or main.endswith("+json")


def value_from_bytes(data: bytes, metadata: Mapping[str, str]) -> RawJSON | Blob:
    """The statebox value of a Dapr value's bytes: a :class:`Blob` of the request's
    non-JSON ``contentType``; else JSON when the bytes are JSON (or the content type
    says so); else a Blob of ``application/octet-stream``."""
    content_type = metadata.get(CONTENT_TYPE_KEY, "")
    if content_type and not _is_json_type(content_type):
        return Blob(bytes(data), content_type)
    if content_type or is_json(data):
        return RawJSON(bytes(data))
    return Blob(bytes(data), OCTET_STREAM)


def _ttl(metadata: Mapping[str, str]) -> int | None:
    """``ttlInSeconds`` as seconds (None: never expires); a DaprError unless valid."""
    raw = metadata.get(TTL_KEY, "")
    if raw == "":
        return None
    if not _GO_INT.fullmatch(raw):
        raise DaprError(
            MALFORMED_REQUEST,
            f"incorrect value for metadata '{TTL_KEY}': {raw!r} is not an integer",
            400,
            "INVALID_ARGUMENT",
        )
    seconds = int(raw)
    if seconds < -1 or seconds > _MAX_TTL:
        raise DaprError(
            MALFORMED_REQUEST,
            f"incorrect value for metadata '{TTL_KEY}': must be -1 or greater "
            f"(and at most {_MAX_TTL})",
            400,
            "INVALID_ARGUMENT",
        )
    return seconds if seconds > 0 else None


def _expected(etag: str | None, code: str, context: str) -> int | None:
    """The version an etag names (None: no etag). A decimal etag that is not one we
    give out (0, leading zeros) is a version no entry has: a mismatch."""
    if etag is None or etag == "":
        return None
    if not _ETAG.fullmatch(etag):
        status, grpc_status = (
            (500, "INTERNAL") if code == STATE_TRANSACTION else (400, "INVALID_ARGUMENT")
        )
        raise DaprError(
            code, f"{context}: invalid etag value: {etag!r} is not a version", status, grpc_status
        )
    version = int(etag)
    return version if version > 0 and str(version) == etag else -1


def _check_concurrency(concurrency: str | None) -> None:
    if concurrency not in (None, "", FIRST_WRITE, LAST_WRITE):
        raise DaprError(
            MALFORMED_REQUEST,
            f"unrecognized concurrency model {concurrency!r}: "
            f"must be {FIRST_WRITE} or {LAST_WRITE}",
            400,
            "INVALID_ARGUMENT",
        )


def _set_op(mapper: KeyMapper, item: SaveItem, code: str, context: str, store: StateStore) -> SetOp:
    stored = mapper.stored_key(item.key)
    _check_concurrency(item.concurrency)
    expected = _expected(item.etag, code, context)
    ttl = _ttl(item.metadata)
    create_only = expected is None and item.concurrency == FIRST_WRITE
    return SetOp(stored, fitted(item.value, store), expected, create_only, ttl)


def _delete_op(mapper: KeyMapper, item: DeleteItem, code: str, context: str) -> DeleteOp:
    stored = mapper.stored_key(item.key)
    _check_concurrency(item.concurrency)
    return DeleteOp(stored, _expected(item.etag, code, context))


def _authorize_read(caller: Caller, ks: Keyspace, what: str) -> None:
    caller.authorize("read", ks)
    if caller.secret(ks):  # Dapr answers values as they are: only to who may see them
        caller.authorize_reveal(ks, what=what)


def expire_time(expires_at: int) -> str:
    """``ttlExpireTime``: RFC 3339, UTC, whole seconds (as Go's ``time.RFC3339``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at // 1_000_000_000))


def _item(key: str, result: GetResult) -> Item:
    if not result.found or result.stored is None:
        return Item(key, None, None, {}, None)
    metadata = {}
    if result.expires_at is not None:
        metadata[TTL_EXPIRE_TIME_KEY] = expire_time(result.expires_at)
    stored = result.stored  # .data: the real bytes (a secret value is masked in renderings only)
    return Item(key, stored.data, str(result.version), metadata, stored.content_type)


def fitted(value: RawJSON | Blob, store: StateStore) -> RawJSON | Blob:
    """``value`` as ``store`` can keep it: JSON text over its JSON limit is kept as the
    bytes it is (a Blob of ``application/octet-stream``, up to the binary limit), as Dapr
    keeps any value its store takes."""
    if isinstance(value, RawJSON):
        text = value.text
        raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        if len(raw) > store.json_limit:
            return Blob(raw, OCTET_STREAM)
    return value


def _value_size(value: RawJSON | Blob) -> int:
    if isinstance(value, Blob):
        return len(value.data)
    return len(value.text)


def checked_batch(caller: Caller, count: int, size: int = 0) -> bool:
    """A write of ``count`` operations (``size`` bytes of values) checked against the
    server's ``--max-txn-ops``: over it, Dapr's 400 ``ERR_STATE_STORE_TOO_MANY_TRANSACTIONS``
    (gRPC ``INVALID_ARGUMENT``). Whether it is big enough to run off the event loop."""
    try:
        return caller.batch(count, size)
    except InvalidRequestError as exc:
        raise DaprError(
            TOO_MANY_TRANSACTIONS,
            f"the transaction contains {count} operations, which is more than what the "
            f"state store supports: {caller.max_txn_ops}",
            400,
            "INVALID_ARGUMENT",
            cause=exc,
        ) from exc


async def _transaction(
    caller: Caller,
    dapr: DaprContext,
    component: Component,
    items: Sequence[SaveItem | DeleteItem],
    code: str,
    context: str,
) -> None:
    """``items`` in one statebox transaction. Their operations are built (keys mapped,
    etags and ttls checked) in the write itself: on the writer thread when the batch is
    big, never item by item on the event loop."""
    ks = component.keyspace
    mapper = dapr.mapper(component)

    def work() -> object:
        store = caller.store()
        ops = [
            _set_op(mapper, item, code, context, store)
            if isinstance(item, SaveItem)
            else _delete_op(mapper, item, code, context)
            for item in items
        ]
        return store.transaction(ops, scope=ks.scope, namespace=ks.namespace)

    size = sum(_value_size(item.value) for item in items if isinstance(item, SaveItem))
    big = checked_batch(caller, len(items), size)
    with translated(code, context):
        caller.authorize("write", ks)
        await caller.write(work, alone=big)


# -- the operations ------------------------------------------------------------------


async def get_state(
    caller: Caller, dapr: DaprContext, store: str, key: str, metadata: Mapping[str, str]
) -> Item:
    """One key (``Item.data`` None: it does not exist)."""
    component = dapr.components.state_store(store)
    stored = dapr.mapper(component).stored_key(key)
    ks = component.keyspace
    with translated(STATE_GET, f"fail to get {key} from state store {store}"):
        _authorize_read(caller, ks, "a Dapr state read")
        result = await caller.read(
            lambda: caller.reader().get(stored, scope=ks.scope, namespace=ks.namespace)
        )
    return _item(key, result)


async def get_bulk_state(
    caller: Caller,
    dapr: DaprContext,
    store: str,
    keys: Sequence[str],
    metadata: Mapping[str, str],
) -> list[Item]:
    """Each key in request order; a missing one as an Item without data or etag."""
    component = dapr.components.state_store(store)
    mapper = dapr.mapper(component)
    if not keys:
        return []
    ks = component.keyspace

    def work() -> list[Item]:
        # Keys mapped, read and answered here: on a worker thread for many keys.
        stored = [mapper.stored_key(key) for key in keys]
        reader = caller.reader()
        return [
            _item(key, reader.get(k, scope=ks.scope, namespace=ks.namespace))
            for key, k in zip(keys, stored, strict=True)
        ]

    with translated(BULK_GET, f"failed getting state in bulk from state store {store}"):
        _authorize_read(caller, ks, "a Dapr bulk state read")
        return await caller.read(work, alone=len(keys) > BIG_READ_KEYS)


async def save_state(
    caller: Caller, dapr: DaprContext, store: str, items: Sequence[SaveItem]
) -> None:
    """Save the items: all of them, or (a failed etag, a refused value) none."""
    component = dapr.components.state_store(store)
    if not items:
        return
    context = f"failed saving state in state store {store}"
    await _transaction(caller, dapr, component, items, STATE_SAVE, context)


async def delete_state(caller: Caller, dapr: DaprContext, store: str, item: DeleteItem) -> None:
    """Delete one key (a missing key is no error, unless an etag was given)."""
    component = dapr.components.state_store(store)
    context = f"failed deleting state with key {item.key}"
    await _transaction(caller, dapr, component, [item], STATE_DELETE, context)


async def delete_bulk_state(
    caller: Caller, dapr: DaprContext, store: str, items: Sequence[DeleteItem]
) -> None:
    """Delete the keys: all of them, or (a failed etag) none."""
    component = dapr.components.state_store(store)
    if not items:
        return
    context = f"failed deleting state in state store {store}"
    await _transaction(caller, dapr, component, items, BULK_DELETE, context)


async def execute_transaction(
    caller: Caller,
    dapr: DaprContext,
    store: str,
    operations: Sequence[SaveItem | DeleteItem],
    metadata: Mapping[str, str],
) -> None:
    """Upserts and deletes, all or nothing. ``metadata`` is the request's own (Dapr
    passes it to the store, which does not use it: an operation's ttl is in its own
    metadata)."""
    component = dapr.components.state_store(store)
    if not operations:
        return
    context = "error while executing state transaction"
    await _transaction(caller, dapr, component, operations, STATE_TRANSACTION, context)
