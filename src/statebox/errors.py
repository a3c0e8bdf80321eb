"""The statebox exception tree.

Every error a caller can see derives from :class:`StateboxError`. Each kind carries the
one CLI exit code and the one HTTP status it maps to, so every face reports it alike::

    StateboxError                      exit 1  HTTP 500
    ├── InvalidReferenceError          exit 2  HTTP 400   bad scope / namespace / key / prefix
    ├── InvalidValueError              exit 2  HTTP 422   not JSON, several values, bad transform
    │   └── ValueTooLargeError         exit 2  HTTP 413
    ├── ConfigurationError             exit 2  HTTP 400   missing run context, bad store URL
    ├── InvalidRequestError            exit 2  HTTP 400   a malformed request (HTTP body, query)
    ├── NotFoundError                  exit 3  HTTP 404
    ├── ConflictError                  exit 4  HTTP 409   expected_version / create_only
    │   └── FencingError               exit 4  HTTP 409   a newer lease holder exists
    ├── BackendUnavailableError        exit 1  HTTP 503   database busy or unreachable
    ├── CorruptEntryError              exit 1  HTTP 500   a stored record cannot be parsed
    └── PermissionDeniedError          exit 1  HTTP 403

Driver errors (``sqlite3``, ``psycopg``, ``OSError``) never escape a backend: they are
translated into one of these with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "CorruptEntryError",
    "FencingError",
    "InvalidReferenceError",
    "InvalidRequestError",
    "InvalidValueError",
    "NotFoundError",
    "PermissionDeniedError",
    "StateboxError",
    "ValueTooLargeError",
    "error_class",
]


class StateboxError(Exception):
    """Root of every statebox error."""

    exit_code: int = 1
    http_status: int = 500
    #: Stable machine-readable name, used by the HTTP API's error bodies.
    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidReferenceError(StateboxError):
    """A scope, namespace, key or prefix that breaks the addressing rules."""

    exit_code = 2
    http_status = 400
    kind = "invalid_reference"


class InvalidValueError(StateboxError):
    """A value that is not exactly one JSON document, or a transform that failed."""

    exit_code = 2
    http_status = 422
    kind = "invalid_value"


class ValueTooLargeError(InvalidValueError):
    """A value over the size limit, before or after normalization."""

    http_status = 413
    kind = "value_too_large"


class ConfigurationError(StateboxError):
    """Missing run context, a custom scope without namespace, a bad store URL."""

    exit_code = 2
    http_status = 400
    kind = "configuration"


class InvalidRequestError(StateboxError):
    """A malformed request to a face: an HTTP body that is not JSON, a mistyped field."""

    exit_code = 2
    http_status = 400
    kind = "invalid_request"


class NotFoundError(StateboxError):
    """A required entry (or version) that does not exist."""

    exit_code = 3
    http_status = 404
    kind = "not_found"


class ConflictError(StateboxError):
    """An optimistic-concurrency guard failed; nothing was written.

    ``index`` is the position of the failing operation inside a transaction (0 for a
    single write); ``current_version`` is the version found (0 when missing).
    """

    exit_code = 4
    http_status = 409
    kind = "conflict"

    def __init__(self, message: str, *, index: int = 0, current_version: int = 0) -> None:
        super().__init__(message)
        self.index = index
        self.current_version = current_version


class FencingError(ConflictError):
    """A write carried a fencing token older than the lease's current holder."""

    kind = "fencing"


class BackendUnavailableError(StateboxError):
    """The storage could not be reached or stayed busy past its timeout."""

    exit_code = 1
    http_status = 503
    kind = "backend_unavailable"


class CorruptEntryError(StateboxError):
    """A stored record could not be parsed; it is reported, never overwritten."""

    exit_code = 1
    http_status = 500
    kind = "corrupt_entry"


class PermissionDeniedError(StateboxError):
    """The caller's credentials do not allow the operation."""

    exit_code = 1
    http_status = 403
    kind = "permission_denied"


def error_class(kind: str) -> type[StateboxError]:
    """The error class whose ``kind`` is ``kind`` (the root for an unknown kind).

    Faces that carry errors over a wire (the HTTP API and the remote store) use this to
    turn a ``kind`` back into its class; it walks the tree, so a new kind needs no list.
    """
    pending: list[type[StateboxError]] = [StateboxError]
    while pending:
        cls = pending.pop()
        if cls.kind == kind:
            return cls
        pending.extend(cls.__subclasses__())
    return StateboxError
