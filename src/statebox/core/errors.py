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
    │   ├── PreconditionFailedError    exit 4  HTTP 412   the same, guarded by If-Match
    │   └── FencingError               exit 4  HTTP 409   a stale or never-issued lease token
    ├── BackendUnavailableError        exit 1  HTTP 503   database busy or unreachable
    ├── TooManyRequestsError           exit 1  HTTP 429   a per-client limit reached (watches)
    ├── CorruptEntryError              exit 1  HTTP 500   a stored record cannot be parsed
    ├── SecretKeyError                 exit 1  HTTP 500   no, a malformed or the wrong secret key
    └── PermissionDeniedError          exit 1  HTTP 403   no grant; a web origin not allowed
        ├── UnauthenticatedError       exit 1  HTTP 401   no or unknown bearer token
        └── MisdirectedRequestError    exit 1  HTTP 421   a Host header the server does not answer

Driver errors (``sqlite3``, ``psycopg``, ``OSError``) never escape a backend: they are
translated into one of these with ``raise ... from exc``.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: errors.py is on every cold CLI path
    from collections.abc import Callable

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
    "PreconditionFailedError",
    "RequestTimeoutError",
    "SecretKeyError",
    "StateboxError",
    "TooManyRequestsError",
    "UnauthenticatedError",
    "UnsupportedMediaTypeError",
    "ValueTooLargeError",
    "error_class",
    "json_kind",
    "python_keyword",
    "quoted",
    "requoted",
    "worded",
]


def quoted(value: object) -> str:
    """``value`` as it is shown in a message: JSON (``"a b"``, with control characters
    escaped), the same in every face, never a Python repr (``'a b'``). Text that is not
    valid Unicode (a lone surrogate) is shown escaped, as JSON can."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not plain JSON data: an exact number, a tuple key…
        text = _quoted_beyond_json(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Only the lone surrogates are escaped; other non-ASCII text stays as it is.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _quoted_beyond_json(value: object) -> str:
    """A value that holds more than JSON's types, shown as JSON all the same: an exact
    number (``Decimal``, a kept literal) as its literal, anything else as a string."""
    from decimal import Decimal  # only on this rare path

    from .envelope import EmbeddedJSON, dumps_envelope

    def plain(item: object) -> object:
        if item is None or isinstance(item, (str, bool, int, float, EmbeddedJSON)):
            return item
        literal = getattr(item, "literal", None)  # exactjson.NumberLiteral
        if isinstance(literal, str):
            return EmbeddedJSON(literal)
        if isinstance(item, Decimal):  # exactjson.JsonNumber too: str() is its literal
            return EmbeddedJSON(str(item))
        if isinstance(item, dict):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [plain(v) for v in item]
        return str(item)

    return dumps_envelope(plain(value))


def json_kind(value: object) -> str:
    """What ``value`` is, in JSON's words ("an array", "a string"), for a message that
    says what was given: never a Python type name (``list``, ``<class 'int'>``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "not a JSON value"


def requoted(text: str) -> str:
    """``text`` from a library that shows values as Python reprs (argparse's
    ``invalid choice: 'x'``, jsonpatch's ``Unknown operation 'bogus'``), with each
    quoted string as :func:`quoted` shows it: ``"x"``."""
    if "'" not in text:
        return text
    import ast  # only on an error path
    import re

    def requote(match: re.Match[str]) -> str:
        try:
            return quoted(ast.literal_eval(match.group()))
        except (ValueError, SyntaxError):
            return match.group()

    return re.sub(r"'(?:[^'\\\n]|\\.)*'", requote, text)


def python_keyword(param: str) -> str:
    """A parameter as the library spells it: ``namespace=``."""
    return f"{param}="


def worded(exc: StateboxError, spell: Callable[[str], str]) -> str:
    """``exc``'s message in one face's words: its parameters, spelt by ``spell`` (the CLI's
    ``--namespace``, HTTP's ``?namespace=``), follow in parentheses."""
    if not exc.params:
        return exc.message
    names = [spell(param) for param in exc.params]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"{exc.message} ({listed})"


class StateboxError(Exception):
    """Root of every statebox error."""

    exit_code: int = 1
    http_status: int = 500
    #: Stable machine-readable name, used by the HTTP API's error bodies.
    kind: str = "error"

    def __init__(self, message: str, *, param: str | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        #: The message in no face's words: it names the thing ("a namespace"), never a
        #: parameter's spelling (``namespace=``, ``--namespace``, ``?namespace=``).
        self.message = message
        #: The parameters the error is about, by their library names ("namespace"); each
        #: face spells them its own way (:func:`worded`).
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else param

    def __str__(self) -> str:
        """The message for library users: the parameters as keyword arguments."""
        return worded(self, python_keyword)


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
    """JSON nested deeper than the limit (``statebox.core.values.MAX_DEPTH``), refused before
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

    def as_precondition_failed(self) -> PreconditionFailedError:
        """This conflict as HTTP answers a guard sent as ``If-Match`` / ``If-None-Match``
        (RFC 9110: 412), a kind of its own, so that each kind has one status."""
        failed = PreconditionFailedError(
            self.message, index=self.index, current_version=self.current_version
        )
        failed.params = self.params
        return failed


class PreconditionFailedError(ConflictError):
    """A conflict on a guard the client sent as ``If-Match`` / ``If-None-Match``: HTTP
    412. It is a :class:`ConflictError`, so code that handles conflicts handles it too."""

    http_status = 412
    kind = "precondition_failed"


class FencingError(ConflictError):
    """A write carried a fencing token that is not the lease's latest: stale (a newer
    holder exists) or never issued (above the latest)."""

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


class SecretKeyError(StateboxError):
    """The key to seal or open a secret value is missing or malformed, or a value was
    sealed under a key id the keyring does not hold (the wrong key). A value that fails
    authentication under a key the keyring holds is a :class:`CorruptEntryError`."""

    exit_code = 1
    http_status = 500
    kind = "secret_key"


class PermissionDeniedError(StateboxError):
    """The caller's credentials do not allow the operation."""

    exit_code = 1
    http_status = 403
    kind = "permission_denied"


class UnauthenticatedError(PermissionDeniedError):
    """An HTTP request without a bearer token, or with one the server does not know
    (the server also answers ``WWW-Authenticate: Bearer``)."""

    http_status = 401
    kind = "unauthenticated"


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
