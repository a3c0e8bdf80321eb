"""What an error tells the client, and what only the server's log may know.

A backend's messages are written for the operator: they name the store URL, the SQLite
file, the file store's directory, the PostgreSQL host (the CLI shows them as they are:
whoever runs it is the operator). Over HTTP the caller is not the operator, so an error
that may carry them — the store unavailable, a corrupt record, an unexpected failure, or
any message naming the server's storage — is answered with a generic message and a
request id (``"requestId"`` in the body, ``X-Request-Id`` header); the full message, with
passwords masked, goes to the server's log under that id.

So is a :class:`SecretKeyError`: the server's secret key missing, unreadable, or not the
one a value was sealed with. Its message names the key file (or the variable the key
came from) and key ids, which are the operator's business, not a client's; and the path
of the server's key file is one of the words no answer may carry. No message holds a
secret value (the sealing layer names keyspace, key, version and key ids only).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

from ..core.envelope import dumps_envelope
from ..core.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptEntryError,
    SecretKeyError,
    StateboxError,
)
from ..core.redaction import redact_text, redact_url
from ..wire.codec import error_body

__all__ = ["REQUEST_ID_HEADER", "Disclosure", "key_file_words", "new_request_id", "storage_words"]

log = logging.getLogger("statebox.server")

REQUEST_ID_HEADER: Final = "x-request-id"

_GENERIC: Final[dict[type[StateboxError], str]] = {
    BackendUnavailableError: (
        "the store is unavailable (unreachable, or busy past its timeout): retry later; "
        "a write answered this way may or may not have been applied, read before retrying"
    ),
    CorruptEntryError: "a stored record could not be read (it was left untouched)",
    SecretKeyError: "the server cannot open a secret value with its key, or seal one",
    StateboxError: "internal server error",
}


def new_request_id() -> str:
    return secrets.token_hex(8)


@lru_cache(maxsize=8)  # one server has one store (a test-mode reset makes another)
def storage_words(store_url: str, backend: object) -> tuple[str, ...]:
    """The strings that locate the storage: a message holding one is not shown."""
    words = {store_url, redact_url(store_url)}
    for attribute in ("url", "path", "root", "where"):
        value = getattr(backend, attribute, None)
        if value is not None:
            words.add(str(value))
    options = getattr(backend, "options", None)  # PostgreSQL: the URL as shown
    if options is not None:
        words.add(str(getattr(options, "display", "")))
    # "memory://" and the like locate nothing, and would match innocent messages.
    return tuple(word for word in words if len(word) >= 8 and word != "memory://")


def key_file_words(backend: object) -> tuple[str, ...]:
    """The path of the server's secret key file (``STATEBOX_SECRET_KEY_FILE``, else
    ``$STATEBOX_HOME/secret.key``, as the sealing layer of ``backend`` reads it): a
    message holding it is not shown. Read at each error, as the layer reads it at each
    sealed operation."""
    from ..backends import key_file_path  # the sealing layer's, through the factory

    environ = getattr(backend, "environ", None)  # a sealed backend's (None: os.environ)
    path = key_file_path(environ if isinstance(environ, Mapping) else None)
    return (path,) if len(path) >= 8 else ()


def _generic(exc: StateboxError) -> str | None:
    for cls in type(exc).__mro__:
        if cls in _GENERIC and (cls is not StateboxError or type(exc) is StateboxError):
            return _GENERIC[cls]
    return None


class Disclosure:
    """Turns an error into the body a client may see (and logs what it may not)."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(words)

    def withheld(self, exc: StateboxError) -> str | None:
        """What a client is told instead of ``exc``'s message (``None``: its message
        may be shown)."""
        generic = _generic(exc)
        if generic is None and not any(word in exc.message for word in self.words):
            return None
        return generic or "the error's details name the server's storage and are withheld"

    def disclosed(
        self, exc: StateboxError, request_id: str | None = None
    ) -> tuple[str, str | None]:
        """``(message, request_id)``: the message a client may see, and the request id
        its withheld details are logged under (``None`` when nothing was withheld).
        With ``request_id`` given, the caller has logged the details already."""
        shown = self.withheld(exc)
        if shown is None:
            return exc.message, None
        if request_id is None:
            request_id = new_request_id()
            log.error(
                "request %s: %s (HTTP %d): %s",
                request_id,
                exc.kind,
                exc.http_status,
                redact_text(exc.message),
            )
        return (
            f"{shown} (the server's log has the details under request id {request_id})",
            request_id,
        )

    def message(self, exc: StateboxError, request_id: str | None = None) -> str:
        """The message a client may see for ``exc`` (another API's error body carries
        it): its own, or a generic one naming the request id its details are logged
        under."""
        return self.disclosed(exc, request_id)[0]

    def body(self, exc: StateboxError, request_id: str | None = None) -> tuple[str, str | None]:
        """``(body, request_id)``: the request id is ``None`` when nothing was withheld.
        With ``request_id`` given, the caller has logged the details already."""
        if self.withheld(exc) is None:
            return error_body(exc), None
        message, request_id = self.disclosed(exc, request_id)
        inner: dict[str, Any] = {
            "kind": exc.kind,
            "message": message,
            "requestId": request_id,
        }
        if isinstance(exc, ConflictError):
            inner["index"] = exc.index
            inner["currentVersion"] = exc.current_version
        return dumps_envelope({"error": inner}), request_id
