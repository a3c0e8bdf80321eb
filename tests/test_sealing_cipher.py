"""Sealed values (statebox.backends.sealing.cipher, issue #16): the stored format, the
associated data binding each ciphertext to its scope, namespace, key and version, and
the errors: a wrong or missing key is a SecretKeyError, an altered or moved ciphertext a
CorruptEntryError; never garbage, never the plaintext in a message."""

from __future__ import annotations

import base64
import json
import sys

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from statebox.backends.memory import MemoryBackend
from statebox.backends.sealing import SealedBackend, cipher
from statebox.backends.sealing.cipher import (
    SEALED_CONTENT_TYPE,
    associated_data,
    open_value,
    seal_value,
    sealed_key_id,
)
from statebox.backends.sealing.keyring import Keyring, key_id
from statebox.core.errors import ConfigurationError, CorruptEntryError, SecretKeyError
from statebox.core.install import extra_hint
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import Put, WriteContext
from statebox.core.secrecy import SecretPolicy
from statebox.core.values import NormalizedValue, sha256_hex

KS = Keyspace("custom", "vault")
KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
RING_A = Keyring((KEY_A,), "test")
NOW = 1_800_000_000_000_000_000
PLAIN = b'{"password":"hunter2"}'


def test_the_stored_format() -> None:
    sealed = seal_value(RING_A, KS, "db", 3, "application/json", PLAIN)
    assert sealed[:4] == b"SBX1"
    assert sealed[4:12] == bytes.fromhex(key_id(KEY_A)) and sealed_key_id(sealed) == key_id(KEY_A)
    nonce, body = sealed[12:24], sealed[24:]
    assert len(body) == len(b"application/json\n" + PLAIN) + 16  # ciphertext and tag
    # Decrypted here with the AD the docs give, independently of open_value.
    ad = json.dumps(["sbx1", "custom", "vault", "db", 3], separators=(",", ":")).encode()
    assert associated_data(KS, "db", 3) == ad
    assert AESGCM(KEY_A).decrypt(nonce, body, ad) == b"application/json\n" + PLAIN
    assert PLAIN not in sealed and b"hunter2" not in sealed
    # a fresh nonce each time
    assert seal_value(RING_A, KS, "db", 3, "application/json", PLAIN) != sealed


def test_the_associated_data_is_unambiguous() -> None:
    """JSON, so no choice of names makes two entries' associated data equal."""
    pairs = [
        (Keyspace("custom", "a"), "b/c", Keyspace("custom", "a/b"), "c"),
        (Keyspace("custom", 'a","b'), "c", Keyspace("custom", "a"), 'b","c'),
        (Keyspace("custom", "a\u00e9"), "k", Keyspace("custom", "a\\u00e9"), "k"),
    ]
    for ks1, k1, ks2, k2 in pairs:
        assert associated_data(ks1, k1, 1) != associated_data(ks2, k2, 1)
    assert associated_data(KS, "k", 1) != associated_data(KS, "k", 11)


_text = st.text(max_size=12).filter(lambda t: "\n" not in t)


@given(
    content_type=_text,
    data=st.binary(max_size=200),
    scope=st.sampled_from(["dag", "custom", "run"]),
    namespace=st.text(min_size=1, max_size=8),
    key=st.text(min_size=1, max_size=8),
    version=st.integers(min_value=1, max_value=2**62),
)
def test_a_sealed_value_opens_only_where_it_was_sealed(
    content_type: str, data: bytes, scope: str, namespace: str, key: str, version: int
) -> None:
    keyspace = Keyspace(scope, namespace)
    sealed = seal_value(RING_A, keyspace, key, version, content_type, data)
    assert open_value(RING_A, keyspace, key, version, sealed) == (content_type, data, KEY_A)
    elsewhere = [
        (Keyspace(scope, namespace + "x"), key, version),
        (Keyspace("global" if scope != "global" else "dag", namespace), key, version),
        (keyspace, key + "x", version),
        (keyspace, key, version + 1),
        (keyspace, key, version - 1),
    ]
    for other_keyspace, other_key, other_version in elsewhere:
        with pytest.raises(CorruptEntryError, match="fails authentication"):
            open_value(RING_A, other_keyspace, other_key, other_version, sealed)


@given(st.binary(min_size=1, max_size=64), st.data())
def test_an_altered_byte_fails_authentication(data: bytes, draw: st.DataObject) -> None:
    sealed = bytearray(seal_value(RING_A, KS, "k", 1, "application/json", data))
    position = draw.draw(st.integers(min_value=12, max_value=len(sealed) - 1))
    sealed[position] ^= draw.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(CorruptEntryError) as caught:
        open_value(RING_A, KS, "k", 1, bytes(sealed))
    assert 'key "k" version 1 (scope "custom", namespace "vault")' in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"SBX1", b"SBX2" + bytes(40), b'{"a":1}'])
def test_what_is_not_sealed_data_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptEntryError, match="is not sealed data"):
        open_value(RING_A, KS, "k", 1, data)


def test_a_value_sealed_under_another_key_is_a_secret_key_error() -> None:
    sealed = seal_value(RING_A, KS, "db", 1, "application/json", PLAIN)
    ring_b = Keyring((KEY_B,), "STATEBOX_SECRET_KEY")
    with pytest.raises(SecretKeyError) as caught:
        open_value(ring_b, KS, "db", 1, sealed)
    message = str(caught.value)
    assert f"sealed with key id {key_id(KEY_A)}" in message
    assert "not in the keyring from STATEBOX_SECRET_KEY" in message
    assert key_id(KEY_B) in message and "wrong key?" in message
    assert "hunter2" not in message and caught.value.http_status == 500
    # The old key kept second: it opens.
    both = Keyring((KEY_B, KEY_A), "STATEBOX_SECRET_KEY")
    assert open_value(both, KS, "db", 1, sealed)[:2] == ("application/json", PLAIN)
    with pytest.raises(SecretKeyError, match="there is no secret key"):
        open_value(None, KS, "db", 1, sealed)


def _put(layer: SealedBackend, key: str, data: bytes) -> None:
    value = NormalizedValue(data, "application/json", sha256_hex(data))
    layer.apply(KS, [Put(key, value)], WriteContext(NOW, UpdatedBy(), 10))


def _raw_put(inner: MemoryBackend, keyspace: Keyspace, key: str, data: bytes) -> None:
    """Bytes put where the layer would read them, as an attacker with the storage can."""
    value = NormalizedValue(data, SEALED_CONTENT_TYPE, sha256_hex(data))
    inner.apply(keyspace, [Put(key, value)], WriteContext(NOW, UpdatedBy(), 10))


def test_a_ciphertext_moved_in_the_store_is_refused_by_the_layer() -> None:
    inner = MemoryBackend()
    env = {"STATEBOX_SECRET_KEY": base64.urlsafe_b64encode(KEY_A).decode()}
    layer = SealedBackend(inner, SecretPolicy(["custom/*"]), env)
    _put(layer, "db", PLAIN)
    stolen = inner.get(KS, "db", NOW)
    assert stolen is not None
    _raw_put(inner, KS, "other", stolen.data)  # another key, version 1
    _raw_put(inner, Keyspace("custom", "vault2"), "db", stolen.data)  # another namespace
    _raw_put(inner, KS, "db", stolen.data)  # the same key, version 2
    for keyspace, key, version in [
        (KS, "other", 1),
        (Keyspace("custom", "vault2"), "db", 1),
        (KS, "db", 2),
    ]:
        with pytest.raises(CorruptEntryError) as caught:
            layer.get(keyspace, key, NOW)
        assert f'key "{key}" version {version}' in str(caught.value)
        assert "hunter2" not in str(caught.value)
    # Version 1 in the history still opens where it was sealed.
    record = layer.get_version(KS, "db", 1)
    assert record is not None and record.data == PLAIN


def test_without_cryptography_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    monkeypatch.setattr(cipher, "_ciphers", {})
    monkeypatch.setattr(cipher, "_hash_keys", {})
    with pytest.raises(ConfigurationError) as caught:
        seal_value(RING_A, KS, "k", 1, "application/json", b"1")
    assert str(caught.value) == (
        "secret keyspaces need the cryptography package: run: " + extra_hint("secrets")
    )
    with pytest.raises(ConfigurationError, match="cryptography"):
        cipher.keyed_hash(KEY_A, Keyspace("custom", "v"), "k", "application/json", b"1")
