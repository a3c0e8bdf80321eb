"""Dapr's errors: a code (``ERR_STATE_SAVE``), a message, an HTTP status and a gRPC status.

Every operation of this package raises :class:`DaprError` only: the HTTP face renders it
as Dapr's body ``{"errorCode": CODE, "message": MESSAGE}`` with its status, the gRPC face
as its status code and message. The codes and statuses are Dapr's own (dapr/dapr
``pkg/messages/predefined.go``, ``pkg/messages/errorcodes/errorcodes.go``,
``pkg/api/errors/state.go``, ``pkg/api/http/http.go``, ``pkg/api/grpc/grpc.go``).

A statebox error met on the way becomes a :class:`DaprError` under the code of the
operation that met it (:func:`translated`): a failed guard is Dapr's etag mismatch (409 /
``ABORTED``), a missing grant ``ERR_PERMISSION_DENIED`` (403), a refused value or key
400. Statebox failures Dapr has no status for keep the nearest one (the store
unavailable: 503 / ``UNAVAILABLE``, where Dapr would answer 500). An error whose message
may locate the server's storage or key (the store unavailable, a corrupt record, the
secret key, anything unexpected) is answered with a generic message; the original stays
in :attr:`DaprError.cause` for the server's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from ..core.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptEntryError,
    InvalidReferenceError,
    InvalidRequestError,
    InvalidValueError,
    NotFoundError,
    PermissionDeniedError,
    SecretKeyError,
    StateboxError,
    TooManyRequestsError,
    UnauthenticatedError,
    ValueTooLargeError,
)

__all__ = [
    "BULK_DELETE",
    "BULK_GET",
    "INVOKE_OUTPUT_BINDING",
    "MALFORMED_REQUEST",
    "NOT_SUPPORTED_STATE_OPERATION",
    "PERMISSION_DENIED",
    "SECRET_GET",
    "SECRET_STORES_NOT_CONFIGURED",
    "SECRET_STORE_NOT_FOUND",
    "STATE_DELETE",
    "STATE_GET",
    "STATE_SAVE",
    "STATE_STORE_NOT_CONFIGURED",
    "STATE_STORE_NOT_FOUND",
    "STATE_TRANSACTION",
    "DaprError",
    "dapr_error_of",
    "translated",
]

# Dapr's codes (pkg/messages/errorcodes/errorcodes.go).
MALFORMED_REQUEST: Final = "ERR_MALFORMED_REQUEST"
STATE_STORE_NOT_FOUND: Final = "ERR_STATE_STORE_NOT_FOUND"
STATE_STORE_NOT_CONFIGURED: Final = "ERR_STATE_STORE_NOT_CONFIGURED"
STATE_GET: Final = "ERR_STATE_GET"
BULK_GET: Final = "ERR_STATE_BULK_GET"
STATE_SAVE: Final = "ERR_STATE_SAVE"
STATE_DELETE: Final = "ERR_STATE_DELETE"
BULK_DELETE: Final = "ERR_STATE_BULK_DELETE"
STATE_TRANSACTION: Final = "ERR_STATE_TRANSACTION"
#: A transaction operation that is neither ``upsert`` nor ``delete`` (:mod:`.values`).
NOT_SUPPORTED_STATE_OPERATION: Final = "ERR_NOT_SUPPORTED_STATE_OPERATION"
SECRET_STORE_NOT_FOUND: Final = "ERR_SECRET_STORE_NOT_FOUND"
#: Dapr spells this one with an S: ERR_SECRET_STORES_NOT_CONFIGURED.
SECRET_STORES_NOT_CONFIGURED: Final = "ERR_SECRET_STORES_NOT_CONFIGURED"
SECRET_GET: Final = "ERR_SECRET_GET"
PERMISSION_DENIED: Final = "ERR_PERMISSION_DENIED"
INVOKE_OUTPUT_BINDING: Final = "ERR_INVOKE_OUTPUT_BINDING"
#: Not Dapr's: its API-token check answers a bare 401 (HTTP text "invalid api token",
#: gRPC UNAUTHENTICATED) without a code; statebox names it.
UNAUTHENTICATED: Final = "ERR_UNAUTHENTICATED"

#: Codes whose failures Dapr answers 500 / INTERNAL even for an etag mismatch
#: (pkg/api/http/http.go onPostStateTransaction, pkg/api/grpc/grpc.go ExecuteStateTransaction).
_ALWAYS_INTERNAL: Final = frozenset({STATE_TRANSACTION})

#: Messages that may name the server's storage or key file: never shown to a client.
_GENERIC: Final[tuple[tuple[type[StateboxError], str], ...]] = (
    (
        BackendUnavailableError,
        "the store is unavailable (unreachable, or busy past its timeout): retry later",
    ),
    (CorruptEntryError, "a stored record could not be read (it was left untouched)"),
    (SecretKeyError, "the server cannot open a secret value with its key, or seal one"),
)


class DaprError(StateboxError):
    """An error as Dapr answers it: ``code`` (``ERR_...``), ``message``, ``http_status``
    and ``grpc_status`` (the *name* of a ``grpc.StatusCode``, e.g. ``"ABORTED"``, so this
    module needs no grpc). ``cause``: the statebox error it stands for, if any."""

    kind = "dapr"

    def __init__(
        self,
        code: str,
        message: str,
        http_status: int,
        grpc_status: str,
        *,
        cause: StateboxError | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.grpc_status = grpc_status
        self.cause = cause

    def __repr__(self) -> str:
        return (
            f"DaprError({self.code!r}, {self.message!r}, {self.http_status}, {self.grpc_status!r})"
        )

    def body(self) -> dict[str, str]:
        """Dapr's HTTP error body."""
        return {"errorCode": self.code, "message": self.message}


def _status(exc: StateboxError, code: str) -> tuple[int, str]:
    if code in _ALWAYS_INTERNAL:
        return 500, "INTERNAL"
    if isinstance(exc, ConflictError):
        return 409, "ABORTED"
    if isinstance(exc, ValueTooLargeError):
        return 413, "RESOURCE_EXHAUSTED"
    if isinstance(exc, (InvalidReferenceError, InvalidValueError, InvalidRequestError)):
        return 400, "INVALID_ARGUMENT"
    if isinstance(exc, NotFoundError):
        return 404, "NOT_FOUND"
    if isinstance(exc, BackendUnavailableError):
        return 503, "UNAVAILABLE"
    if isinstance(exc, TooManyRequestsError):
        return 429, "RESOURCE_EXHAUSTED"
    return 500, "INTERNAL"


def _shown(exc: StateboxError) -> str:
    for kind, text in _GENERIC:
        if isinstance(exc, kind):
            return text
    known = (
        ConflictError,
        InvalidReferenceError,
        InvalidValueError,
        InvalidRequestError,
        NotFoundError,
        TooManyRequestsError,
        PermissionDeniedError,
    )
    return exc.message if isinstance(exc, known) else "internal error"


def dapr_error_of(exc: StateboxError, code: str, context: str = "") -> DaprError:
    """``exc`` as Dapr answers it under ``code``; a :class:`DaprError` is returned as it
    is. ``context`` (Dapr's words for what failed, e.g. ``failed saving state in state
    store S``) prefixes the message. A missing grant is ``ERR_PERMISSION_DENIED`` (403 /
    ``PERMISSION_DENIED``) and a missing or unknown token 401 / ``UNAUTHENTICATED``,
    whatever ``code`` is."""
    if isinstance(exc, DaprError):
        return exc
    if isinstance(exc, UnauthenticatedError):
        return DaprError(UNAUTHENTICATED, exc.message, 401, "UNAUTHENTICATED", cause=exc)
    if isinstance(exc, PermissionDeniedError):
        return DaprError(PERMISSION_DENIED, exc.message, 403, "PERMISSION_DENIED", cause=exc)
    shown = _shown(exc)
    if isinstance(exc, ConflictError):  # Dapr's words for an etag mismatch
        shown = f"possible etag mismatch. error from state store: {shown}"
    http_status, grpc_status = _status(exc, code)
    message = f"{context}: {shown}" if context else shown
    return DaprError(code, message, http_status, grpc_status, cause=exc)


@contextmanager
def translated(code: str, context: str = "") -> Iterator[None]:
    """Inside: a :class:`StateboxError` leaves as :func:`dapr_error_of` ``(exc, code,
    context)``; a :class:`DaprError` leaves as it is."""
    try:
        yield
    except DaprError:
        raise
    except StateboxError as exc:
        raise dapr_error_of(exc, code, context) from exc
