"""The statebox exception tree.

Every error a caller can see derives from :class:`StateboxError`. Each kind carries the
one CLI exit code and the one HTTP status it maps to, so every face reports it alike::

    StateboxError                      exit 1  HTTP 500
    ├── InvalidReferenceError          exit 2  HTTP 400   bad scope / namespace / key / prefix
    ├── InvalidValueError              exit 2  HTTP 422   not JSON, several values, bad transform
    │   ├── ValueTooLargeError         exit 2  HTTP 413
    │   └── NestingTooDeepError        exit 2  HTTP 422   JSON nested past values.MAX_DEPTH
    ├── ConfigurationError             exit 2  HTTP 400   missing run context, bad store URL
    ├── InvalidRequestError            exit 2  HTTP 400   a malformed request (HTTP body, query)
    │   ├── UnsupportedMediaTypeError  exit 2  HTTP 415   a body whose Content-Type is refused
    │   ├── HeadersTooLargeError       exit 2  HTTP 431   a request head over the server's limit
    │   └── RequestTimeoutError        exit 2  HTTP 408   a request head or body not sent in time
    ├── NotFoundError                  exit 3  HTTP 404
    ├── ConflictError                  exit 4  HTTP 409   expected_version / create_only
    │   └── FencingError               exit 4  HTTP 409   a newer lease holder exists
    ├── BackendUnavailableError        exit 1  HTTP 503   database busy or unreachable
    ├── TooManyRequestsError           exit 1  HTTP 429   a per-client limit reached (watches)
    ├── CorruptEntryError              exit 1  HTTP 500   a stored record cannot be parsed
    └── PermissionDeniedError          exit 1  HTTP 403   no grant; a web origin not allowed
        └── MisdirectedRequestError    exit 1  HTTP 421   a Host header the server does not answer

Driver errors (``sqlite3``, ``psycopg``, ``OSError``) never escape a backend: they are
translated into one of these with ``raise ... from exc``.
"""

from __future__ import annotations

import json

__all__ = [
    "BackendUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "CorruptEntryError",
    "FencingError",
    "HeadersTooLargeError",
    "InvalidReferenceError",
    "InvalidRequestError",
    "InvalidValueError",
    "NestingTooDeepError",
    "MisdirectedRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestTimeoutError",
    "StateboxError",
    "TooManyRequestsError",
    "UnsupportedMediaTypeError",
    "ValueTooLargeError",
    "error_class",
    "quoted",
]


def quoted(value: object) -> str:
    """``value`` as it is shown in a message: JSON (``"a b"``, with control characters
    escaped), the same in every face, never a Python repr (``'a b'``). Text that is not
    valid Unicode (a lone surrogate) is shown escaped, as JSON can."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, default=repr)
    return text


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


class NestingTooDeepError(InvalidValueError, ValueError):
    """JSON nested deeper than the limit (``statebox.values.MAX_DEPTH``), refused before
    it is parsed. Also a ``ValueError``, as a parser's own errors are, so code that turns
    bad JSON into an error of its own (a corrupt record file, a malformed response from a
    server) does so for this one too."""

    kind = "nesting_too_deep"


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


class UnsupportedMediaTypeError(InvalidRequestError):
    """An HTTP body sent with a ``Content-Type`` the route refuses (a web form's types)."""

    http_status = 415
    kind = "unsupported_media_type"


class HeadersTooLargeError(InvalidRequestError):
    """A request line and headers over the server's ``--max-header-bytes``."""

    http_status = 431
    kind = "headers_too_large"


class RequestTimeoutError(InvalidRequestError):
    """A request line and headers not received within the server's ``--header-timeout``,
    or a body not within its ``--body-timeout``."""

    http_status = 408
    kind = "request_timeout"


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


class TooManyRequestsError(StateboxError):
    """A client reached a limit the server sets per client (open watches per token)."""

    exit_code = 1
    http_status = 429
    kind = "too_many_requests"


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


class MisdirectedRequestError(PermissionDeniedError):
    """An HTTP request naming (in ``Host``) a server name this server does not answer to:
    how a DNS-rebinding page would reach a server on loopback."""

    http_status = 421
    kind = "misdirected_request"


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
