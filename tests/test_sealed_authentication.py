"""Secrets at rest (issue 16): a ciphertext opens only where it was sealed.

A ciphertext copied (through the backend under the sealing layer) to another key, another
version or another keyspace — a secret one or not: a sealed value is opened wherever it
is found — reads as CorruptEntryError; altered or truncated bytes too; a store opened
with another key, or with none, raises SecretKeyError naming the key id and what to do —
never garbage, never the plaintext. (What the storage holds: test_sealed_storage.py.)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import CorruptEntryError, StateStore
from statebox.backends.base import Backend, Delete, Entry, Put, WriteContext
from statebox.backends.sealing.backend import SealedBackend, seal_backend
from statebox.backends.sealing.cipher import SEALED_CONTENT_TYPE
from statebox.backends.sealing.keyring import key_id
from statebox.core.errors import SecretKeyError
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.values import NormalizedValue

from .backends import BACKENDS, new_secret_key
from .conftest import CONTEXT, make_store
from .test_sealed_storage import POLICY, PUBLIC, SECRET, VAULT, VAULT2, raw_key, secret_key

__all__ = ["secret_key"]  # the fixture, used here by name


# --- authentication: a ciphertext opens only where it was sealed ----------------------


@pytest.fixture(params=["memory", "sqlite", "file", "postgres"])
def sealed_store(
    request: pytest.FixtureRequest, tmp_path: Path, secret_key: str
) -> Iterator[StateStore]:
    with BACKENDS[request.param](tmp_path, request) as url, make_store(url) as store:
        assert isinstance(store.backend, SealedBackend)
        yield store


def inner(store: StateStore) -> Backend:
    assert isinstance(store.backend, SealedBackend)
    return store.backend.inner


def raw_entry(store: StateStore, keyspace: Keyspace, key: str) -> Entry:
    entry = inner(store).get(keyspace, key, time.time_ns())
    assert entry is not None and entry.content_type == SEALED_CONTENT_TYPE
    return entry


def put_raw(
    store: StateStore,
    keyspace: Keyspace,
    key: str,
    data: bytes,
    *,
    expected_version: int | None = None,
    create_only: bool = False,
) -> int:
    """Write ``data`` as the sealed value of ``key`` under the sealing layer (as someone
    with access to the storage could); the version it got."""
    # stored as any entry is: with the SHA-256 of its bytes (file:// checks it on reading)
    value = NormalizedValue(data, SEALED_CONTENT_TYPE, hashlib.sha256(data).hexdigest())
    put = Put(key, value, expected_version=expected_version, create_only=create_only)
    (applied,) = inner(store).apply(keyspace, [put], WriteContext(time.time_ns(), UpdatedBy()))
    assert applied.current is not None
    return applied.current.version


def delete_raw(store: StateStore, keyspace: Keyspace, key: str) -> None:
    inner(store).apply(keyspace, [Delete(key)], WriteContext(time.time_ns(), UpdatedBy()))


def vault(keyspace: Keyspace = VAULT) -> dict[str, Any]:
    return {"scope": keyspace.scope, "namespace": keyspace.namespace}


def assert_clean_message(exc: pytest.ExceptionInfo[Exception], *names: str) -> str:
    message = str(exc.value)
    assert SECRET not in message and "s3cr3t" not in message
    assert message.isprintable(), repr(message)  # no bytes of garbage in it
    for name in names:
        assert name in message, (name, message)
    return message


def test_a_ciphertext_moved_to_another_key_fails_authentication(
    sealed_store: StateStore,
) -> None:
    sealed_store.set("a", {"password": SECRET}, **vault())
    assert put_raw(sealed_store, VAULT, "b", raw_entry(sealed_store, VAULT, "a").data) == 1
    with pytest.raises(CorruptEntryError) as info:
        sealed_store.get("b", **vault())
    assert_clean_message(info, '"b"', "version 1", '"vault"', "authentication")
    with pytest.raises(CorruptEntryError):
        sealed_store.list(include_values=True, **vault())
    assert sealed_store.get("a", **vault()).value == {"password": SECRET}  # a is intact


def test_a_ciphertext_moved_to_another_version_fails_authentication(
    sealed_store: StateStore,
) -> None:
    sealed_store.set("c", {"password": SECRET}, **vault())
    sealed_store.set("c", {"password": "changed"}, **vault())
    old = inner(sealed_store).get_version(VAULT, "c", 1)
    assert old is not None and old.data.startswith(b"SBX1")
    assert put_raw(sealed_store, VAULT, "c", old.data, expected_version=2) == 3
    with pytest.raises(CorruptEntryError) as info:
        sealed_store.get("c", **vault())
    assert_clean_message(info, '"c"', "version 3")
    with pytest.raises(CorruptEntryError):
        sealed_store.history("c", **vault())
    # The versions really sealed as 1 and 2 still open (through the layer: the engine's
    # get(version=) reads the current entry first, which fails here).
    opened = [sealed_store.backend.get_version(VAULT, "c", v) for v in (1, 2)]
    assert [r.data if r else None for r in opened] == [
        b'{"password":"%s"}' % SECRET.encode(),
        b'{"password":"changed"}',
    ]


def test_a_ciphertext_moved_to_another_keyspace_fails_authentication(
    sealed_store: StateStore,
) -> None:
    sealed_store.set("a", {"password": SECRET}, **vault())
    data = raw_entry(sealed_store, VAULT, "a").data
    assert put_raw(sealed_store, VAULT2, "a", data) == 1  # same key, same version
    with pytest.raises(CorruptEntryError) as info:
        sealed_store.get("a", **vault(VAULT2))
    assert_clean_message(info, '"vault2"', "version 1")
    # Into a keyspace that is not secret: a sealed value is opened wherever it is (never
    # handed out as a value), and fails there as anywhere else.
    put_raw(sealed_store, PUBLIC, "a", data)
    with pytest.raises(CorruptEntryError) as info:
        sealed_store.get("a", **vault(PUBLIC))
    assert_clean_message(info, '"public"', "version 1")


def test_the_same_bytes_put_back_where_they_were_sealed_do_open(
    sealed_store: StateStore,
) -> None:
    """The control of the tests around it: rewriting a ciphertext through the backend
    under the layer is not itself what makes a read fail."""
    sealed_store.set("a", {"password": SECRET}, **vault())
    data = raw_entry(sealed_store, VAULT, "a").data
    delete_raw(sealed_store, VAULT, "a")
    assert put_raw(sealed_store, VAULT, "a", data, create_only=True) == 1
    assert sealed_store.get("a", **vault()).value == {"password": SECRET}


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


ALTERATIONS: dict[str, Callable[[bytes], bytes]] = {
    "last byte cut (the tag)": lambda d: d[:-1],
    "cut to the header": lambda d: d[:24],
    "cut to ten bytes": lambda d: d[:10],
    "emptied": lambda d: b"",
    "a ciphertext byte flipped": lambda d: _flip(d, 30),
    "a tag byte flipped": lambda d: _flip(d, len(d) - 1),
    "a nonce byte flipped": lambda d: _flip(d, 14),
    "the magic changed": lambda d: b"SBX2" + d[4:],
    "a byte appended": lambda d: d + b"\0",
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_altered_or_truncated_ciphertext_is_a_corrupt_entry(
    tmp_path: Path, secret_key: str, alteration: str
) -> None:
    with make_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.set("a", {"password": SECRET}, **vault())
        data = raw_entry(store, VAULT, "a").data
        delete_raw(store, VAULT, "a")
        # the same key and version: only the bytes differ from what was sealed there
        assert put_raw(store, VAULT, "a", ALTERATIONS[alteration](data), create_only=True) == 1
        with pytest.raises(CorruptEntryError) as info:
            store.get("a", **vault())
        assert_clean_message(info, '"a"', "version 1")


def test_a_key_id_byte_flipped_is_an_unknown_key(tmp_path: Path, secret_key: str) -> None:
    with make_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.set("a", {"password": SECRET}, **vault())
        data = raw_entry(store, VAULT, "a").data
        delete_raw(store, VAULT, "a")
        put_raw(store, VAULT, "a", _flip(data, 6), create_only=True)
        with pytest.raises(SecretKeyError) as info:
            store.get("a", **vault())
        assert_clean_message(info, _flip(data, 6)[4:12].hex())


def test_another_key_is_a_secret_key_error_naming_the_key_id(
    sealed_store: StateStore, secret_key: str
) -> None:
    sealed_store.set("a", {"password": SECRET}, **vault())
    sealed_store.set("a", {"password": SECRET + "2"}, **vault())
    before = raw_entry(sealed_store, VAULT, "a")
    other = new_secret_key()
    wrong = StateStore(
        seal_backend(
            inner(sealed_store),
            environ={"STATEBOX_SECRET_NAMESPACES": POLICY, "STATEBOX_SECRET_KEY": other},
        ),
        context=CONTEXT,
    )
    assert isinstance(wrong.backend, SealedBackend)
    stored_id = key_id(raw_key(secret_key))
    assert before.data[4:12].hex() == stored_id
    reads: dict[str, Callable[[], object]] = {
        "get": lambda: wrong.get("a", **vault()),
        "get a version": lambda: wrong.get("a", version=1, **vault()),
        "list": lambda: wrong.list(include_values=True, **vault()),
        "history": lambda: wrong.history("a", **vault()),
        "update": lambda: wrong.update("a", jq=".n = 1", **vault()),
    }
    for name, read in reads.items():
        with pytest.raises(SecretKeyError) as info:
            read()
        message = assert_clean_message(info, stored_id, "STATEBOX_SECRET_KEY")
        assert key_id(raw_key(other)) in message, name  # which key was tried
    assert raw_entry(sealed_store, VAULT, "a") == before  # the failed update wrote nothing


def test_reopening_a_sqlite_store_with_another_key_or_none(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with make_store(url) as store:
        store.set("a", {"password": SECRET}, **vault())
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    with make_store(url) as store, pytest.raises(SecretKeyError) as info:
        store.get("a", **vault())
    assert_clean_message(info, key_id(raw_key(secret_key)), "wrong key")
    # No key at all: a read says so and does not make one (a key file is made to seal).
    monkeypatch.delenv("STATEBOX_SECRET_KEY")
    home = tmp_path / "home"
    with make_store(url) as store, pytest.raises(SecretKeyError) as info:
        store.get("a", **vault())
    assert_clean_message(info, key_id(raw_key(secret_key)), "STATEBOX_SECRET_KEY")
    assert not (home / "secret.key").exists()
    monkeypatch.setenv("STATEBOX_SECRET_KEY", secret_key)
    with make_store(url) as store:
        assert store.get("a", **vault()).value == {"password": SECRET}
