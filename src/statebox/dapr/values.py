"""What both Dapr faces share about values and transaction operations.

:func:`is_json` decides whether a Dapr value's bytes are JSON as statebox's engine
accepts JSON (:func:`statebox.core.exactjson.parse_literals`: exact numbers, any size,
``1e400`` included), so the HTTP and gRPC faces store and answer the same bytes the
same way. :func:`transaction_item` turns one operation of a Dapr transaction (HTTP's
``{"operation": ..., "request": ...}``, gRPC's ``TransactionalStateOperation``) into the
transport-free item :mod:`.state_api` executes, refusing an operation type Dapr refuses
with Dapr's code and statuses (HTTP 400, gRPC ``UNIMPLEMENTED``: dapr/dapr
``pkg/api/http/http.go`` onPostStateTransaction, ``pkg/api/grpc/grpc.go``
ExecuteStateTransaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from ..core.errors import InvalidValueError
from ..core.exactjson import parse_literals
from ..core.values import RawJSON
from .errors import NOT_SUPPORTED_STATE_OPERATION, DaprError

if TYPE_CHECKING:
    from ..core.values import Blob
    from .state_api import DeleteItem, SaveItem

__all__ = [
    "OCTET_STREAM",
    "is_json",
    "transaction_item",
    "unsupported_operation",
]

OCTET_STREAM: Final = "application/octet-stream"


def is_json(data: bytes) -> bool:
    """Whether ``data`` is one JSON text as statebox's engine accepts it (UTF-8, exact
    numbers: ``1e400`` and ``1.000000000000000000001`` are JSON)."""
    try:
        parse_literals(data.decode("utf-8"))
    except (UnicodeDecodeError, InvalidValueError, RecursionError):
        return False
    return True


def unsupported_operation(operation: str) -> DaprError:
    """Dapr's answer to a transaction operation it does not know: 400 over HTTP,
    ``UNIMPLEMENTED`` over gRPC, ``ERR_NOT_SUPPORTED_STATE_OPERATION`` on both."""
    return DaprError(
        NOT_SUPPORTED_STATE_OPERATION,
        f"operation type {operation} not supported",
        400,
        "UNIMPLEMENTED",
    )


def transaction_item(
    operation: str,
    key: str,
    value: RawJSON | Blob | None,
    etag: str | None,
    metadata: Mapping[str, str],
    concurrency: str | None,
) -> SaveItem | DeleteItem:
    """The item of one transaction operation: ``upsert`` saves ``value`` (None:
    JSON ``null``), ``delete`` deletes; any other operation is
    :func:`unsupported_operation`."""
    # state_api imports this module (is_json): its items are imported when first used.
    from .state_api import DeleteItem, SaveItem

    if operation == "upsert":
        return SaveItem(
            key=key,
            value=RawJSON(b"null") if value is None else value,
            etag=etag,
            metadata=metadata,
            concurrency=concurrency,
        )
    if operation == "delete":
        return DeleteItem(key=key, etag=etag, metadata=metadata, concurrency=concurrency)
    raise unsupported_operation(operation)
