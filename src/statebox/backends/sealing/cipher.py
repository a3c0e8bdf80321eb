"""Sealing one value: AES-256-GCM bound to its entry, and the keyed hash of a secret.

Stored data of a sealed entry (content type :data:`SEALED_CONTENT_TYPE`)::

    b"SBX1" | key id (8 bytes) | nonce (12 random bytes) | AES-GCM ciphertext and tag

The plaintext is the value's own content type (UTF-8), a newline, and its bytes, so the
content type is secret and authenticated too and comes back on opening. The associated
data is the JSON array ``["sbx1", scope, namespace, key, version]``: a ciphertext copied
to another entry, keyspace or version fails authentication. Nonces are random: with
96-bit nonces one key seals billions of values before a repeat becomes a concern
(NIST SP 800-38D), far more than a store rotates over.

The hash a secret entry reports is HMAC-SHA256 under a key derived from the key that
sealed it (HKDF, info ``statebox entry hash``) over the JSON array ``[scope, namespace,
key, content type]``, a newline and the data: equal values of one key hash alike under
one sealing key (across its versions: watches and diffs see whether it changed), and a
low-entropy value (a PIN) cannot be guessed from its hash without the key, which a plain
SHA-256 would allow — nor confirmed by writing a guess under another key and comparing
hashes (the entry's address is in the message). It is computed when the value is sealed
or opened, never stored: the backend stores the SHA-256 of the sealed bytes, as it does
of any bytes (the file backend checks a record against it).

``cryptography`` is imported here only, when the first secret is sealed or opened.
"""

from __future__ import annotations

import json
import os

from ...core.errors import ConfigurationError, CorruptEntryError, SecretKeyError, quoted
from ...core.install import extra_hint
from ...core.model import Keyspace
from .backend import SEALED_CONTENT_TYPE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from .keyring import Keyring

__all__ = [
    "SEALED_CONTENT_TYPE",
    "associated_data",
    "keyed_hash",
    "open_value",
    "seal_value",
    "sealed_key_id",
]

MAGIC: Final = b"SBX1"
_KID_BYTES: Final = 8
_NONCE_BYTES: Final = 12
_HEADER: Final = len(MAGIC) + _KID_BYTES + _NONCE_BYTES
_TAG_BYTES: Final = 16


def _aead() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigurationError(
            f"secret keyspaces need the cryptography package: run: {extra_hint('secrets')}"
        ) from None
    return AESGCM


# One AESGCM object and one hash key per key: building them costs more than sealing.
_ciphers: dict[bytes, Any] = {}
_hash_keys: dict[bytes, bytes] = {}


def _cipher(key: bytes) -> Any:
    cipher = _ciphers.get(key)
    if cipher is None:
        if len(_ciphers) > 64:
            _ciphers.clear()
        cipher = _ciphers[key] = _aead()(key)
    return cipher


def _hash_key(key: bytes) -> bytes:
    derived = _hash_keys.get(key)
    if derived is None:
        _aead()  # the same message when cryptography is missing
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"statebox entry hash"
        ).derive(key)
        if len(_hash_keys) > 64:
            _hash_keys.clear()
        _hash_keys[key] = derived
    return derived


def _json_array(*items: str | int) -> bytes:
    """``items`` as compact ASCII JSON: an unambiguous encoding of several strings."""
    return json.dumps(items, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def associated_data(keyspace: Keyspace, key: str, version: int) -> bytes:
    """What a sealed value is bound to, as unambiguous JSON text."""
    return _json_array("sbx1", keyspace.scope, keyspace.namespace, key, version)


def keyed_hash(
    key: bytes, keyspace: Keyspace, entry_key: str, content_type: str, data: bytes
) -> str:
    """The hash entry ``entry_key`` of ``keyspace`` reports for a value, under the key
    that sealed it: 64 hex characters, like SHA-256's. Bound to the entry's address, not
    its version (a JSON array: a newline never appears inside it)."""
    import hmac

    address = _json_array(keyspace.scope, keyspace.namespace, entry_key, content_type)
    return hmac.new(_hash_key(key), address + b"\n" + data, "sha256").hexdigest()


def seal_value(
    keyring: Keyring, keyspace: Keyspace, key: str, version: int, content_type: str, data: bytes
) -> bytes:
    """``data`` of ``content_type`` sealed under the primary key for that entry version."""
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = content_type.encode("utf-8") + b"\n" + data
    sealed: bytes = _cipher(keyring.primary).encrypt(
        nonce, plaintext, associated_data(keyspace, key, version)
    )
    return MAGIC + bytes.fromhex(keyring.primary_id) + nonce + sealed


def sealed_key_id(data: bytes) -> str | None:
    """The id of the key ``data`` was sealed under, or None when it is not sealed data."""
    if len(data) < _HEADER + _TAG_BYTES or not data.startswith(MAGIC):
        return None
    return data[len(MAGIC) : len(MAGIC) + _KID_BYTES].hex()


def _where(keyspace: Keyspace, key: str, version: int) -> str:
    return (
        f"key {quoted(key)} version {version} (scope {quoted(keyspace.scope)}, namespace "
        f"{quoted(keyspace.namespace)})"
    )


def open_value(
    keyring: Keyring | None, keyspace: Keyspace, key: str, version: int, data: bytes
) -> tuple[str, bytes, bytes]:
    """``(content type, data, the key that sealed it)`` of a sealed value. SecretKeyError:
    no keyring, or the key it was sealed under is not in it. CorruptEntryError: not
    sealed data, or it fails authentication (altered, or copied from another entry or
    version)."""
    kid = sealed_key_id(data)
    if kid is None:
        raise CorruptEntryError(
            f"the sealed value of {_where(keyspace, key, version)} is not sealed data "
            "(truncated or altered)"
        )
    if keyring is None:
        raise SecretKeyError(
            f"{_where(keyspace, key, version)} is sealed with key id {kid}, and there is no "
            "secret key: set STATEBOX_SECRET_KEY or STATEBOX_SECRET_KEY_FILE, or restore the "
            "key file"
        )
    secret = keyring.by_id(kid)
    if secret is None:
        known = ", ".join(keyring.key_ids)
        raise SecretKeyError(
            f"{_where(keyspace, key, version)} is sealed with key id {kid}, which is not in "
            f"the keyring from {keyring.source} (key ids {known}): wrong key?"
        )
    from cryptography.exceptions import InvalidTag

    nonce = data[len(MAGIC) + _KID_BYTES : _HEADER]
    try:
        plaintext: bytes = _cipher(secret).decrypt(
            nonce, data[_HEADER:], associated_data(keyspace, key, version)
        )
    except InvalidTag:
        raise CorruptEntryError(
            f"the sealed value of {_where(keyspace, key, version)} fails authentication under "
            f"key id {kid}: it was altered, or copied from another entry or version"
        ) from None
    content_type, newline, value = plaintext.partition(b"\n")
    try:
        if not newline:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "no content type")
        return content_type.decode("utf-8"), value, secret
    except UnicodeDecodeError:
        raise CorruptEntryError(
            f"the sealed value of {_where(keyspace, key, version)} holds no content type"
        ) from None
