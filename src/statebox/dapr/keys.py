"""Dapr state keys and statebox keys.

A Dapr state key is first prefixed as Dapr prefixes it (dapr/dapr
``pkg/components/state/state_config.go``), by the component's ``keyPrefix`` metadata
(its name in any case; its value lower-cased, as Dapr reads it):

- ``appid`` (the default): ``APPID||key`` (just ``key`` when the app id is empty);
- ``name``: ``STORENAME||key``;
- ``namespace``: ``NAMESPACE.APPID||key``, with ``NAMESPACE`` from the environment
  variable of that name (without it ``APPID||key``, as Dapr falls back);
- ``none``: ``key``;
- anything else: ``VALUE||key``.

A key holding ``||`` is refused (400 ``ERR_MALFORMED_REQUEST``), as Dapr refuses it.

The prefixed key is then the statebox key :func:`encode_key` gives: the text itself when
it is a valid statebox key as it is (``validate_key(k) == k``: no leading or trailing
white space, no empty, ``.`` or ``..`` segment, no leading or trailing ``/``, no ``\\``)
and does not begin with ``~``; otherwise ``~`` followed by the URL-safe base64 of its
UTF-8 bytes, without padding. Plain keys stay readable in ``statebox get``; the mapping
is injective (an encoded key always begins with ``~``, a kept one never does) and
:func:`decode_key` inverts it.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from ..core.errors import InvalidReferenceError
from ..core.model import validate_key
from .components import Component
from .errors import MALFORMED_REQUEST, DaprError

__all__ = ["ENCODED_MARK", "SEPARATOR", "KeyMapper", "decode_key", "encode_key", "key_prefix"]

SEPARATOR: Final = "||"
ENCODED_MARK: Final = "~"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_key(text: str) -> str:
    """The statebox key for the text ``text`` (any string): itself when it is a valid
    statebox key as it is and does not begin with ``~``, else ``~`` + base64url(UTF-8)
    without padding."""
    raw = text.encode("utf-8", "surrogatepass")
    # A lone surrogate is never a statebox key (not asked: core's quoted() cannot name one
    # beside other non-ASCII text).
    plain = text.isascii() or _utf8(text)
    if plain and text and not text.startswith(ENCODED_MARK):
        try:
            if validate_key(text) == text:
                return text
        except InvalidReferenceError:
            pass
    return ENCODED_MARK + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_key(stored: str) -> str:
    """The text whose :func:`encode_key` is ``stored``. A ``~`` key whose rest is not
    base64url is a ``ValueError``."""
    if not stored.startswith(ENCODED_MARK):
        return stored
    body = stored[len(ENCODED_MARK) :]
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"not an encoded Dapr key: {stored!r}") from None
    return raw.decode("utf-8", "surrogatepass")


def _strategy(component: Component) -> str:
    for name, value in component.metadata.items():
        if name.lower() == "keyprefix":
            return value.lower()
    return "appid"


def key_prefix(component: Component, app_id: str, namespace: str | None = None) -> str:
    """What Dapr puts before a key of ``component`` (``""``: nothing)."""
    strategy = _strategy(component)
    if strategy == "none":
        return ""
    if strategy == "name":
        return component.name + SEPARATOR
    if strategy in ("appid", "namespace"):
        if not app_id:
            return ""
        ns = os.environ.get("NAMESPACE", "") if namespace is None else namespace
        if strategy == "namespace" and ns:
            return f"{ns}.{app_id}{SEPARATOR}"
        return app_id + SEPARATOR
    return strategy + SEPARATOR


class KeyMapper:
    """Dapr keys of one state store to statebox keys and back."""

    def __init__(self, component: Component, app_id: str, *, namespace: str | None = None) -> None:
        self.component = component
        self.app_id = app_id
        self.prefix = key_prefix(component, app_id, namespace)

    def stored_key(self, key: str) -> str:
        """The statebox key of the Dapr key ``key``; a :class:`DaprError` (400
        ``ERR_MALFORMED_REQUEST``) for an empty key or one holding ``||``."""
        if not isinstance(key, str) or not key:
            raise DaprError(MALFORMED_REQUEST, "state key cannot be empty", 400, "INVALID_ARGUMENT")
        if SEPARATOR in key:
            raise DaprError(
                MALFORMED_REQUEST,
                f"input key/keyPrefix '{key}' can't contain '{SEPARATOR}'",
                400,
                "INVALID_ARGUMENT",
            )
        return encode_key(self.prefix + key)

    def dapr_key(self, stored: str) -> str:
        """The Dapr key of the statebox key ``stored`` (the inverse of
        :meth:`stored_key`); a key written with another prefix loses it as Dapr's
        ``GetOriginalStateKey`` does (what follows the first ``||``)."""
        text = decode_key(stored)
        if self.prefix and text.startswith(self.prefix):
            return text[len(self.prefix) :]
        parts = text.split(SEPARATOR, 2)
        return parts[1] if len(parts) > 1 else text
