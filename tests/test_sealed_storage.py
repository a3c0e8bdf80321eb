"""Secrets at rest (issue 16): what the storage holds of a secret keyspace's values.

A credential written every way there is (set, update, several versions, a delete, a
binary value, a transaction) into a secret keyspace leaves no plaintext in the bytes the
storage keeps: the SQLite database file and its WAL (entries and history tables), every
file under a file:// store, the PostgreSQL rows (read with psycopg, table by table), and
the SQLite file of a real server subprocess that holds the key (its client holds none).
Nor does the value's SHA-256 appear: a secret entry's hash is keyed. Each inspection has
a control — the same writes to a keyspace that is not secret do show the plaintext — so
a method that cannot see values at all would not pass for a proof.

Authentication (a ciphertext opens only where it was sealed): test_sealed_authentication.py.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import string
import time
from pathlib import Path
from typing import Any

import pytest

from statebox import Blob, StateStore
from statebox.backends.base import Backend
from statebox.backends.sealing.backend import SealedBackend
from statebox.backends.sealing.cipher import SEALED_CONTENT_TYPE
from statebox.core.model import Keyspace
from statebox.transactions import SetOp

from .backends import SEALED_BACKENDS, new_secret_key
from .conftest import make_store
from .pg import admin_connection, fresh_schema_url
from .server_util import running_server

SECRET = "hunter2-s3cr3t-Pa55"
VAULT = Keyspace("custom", "vault")
VAULT2 = Keyspace("custom", "vault2")  # secret too (the policy says custom/vault*)
PUBLIC = Keyspace("custom", "public")  # not secret: the controls write here
POLICY = "custom/vault*"


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Secret keyspaces custom/vault*, sealed under a fresh key from the environment (no
    key file anywhere: STATEBOX_HOME is the test's own empty directory)."""
    key = new_secret_key()
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", POLICY)
    monkeypatch.setenv("STATEBOX_SECRET_KEY", key)
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
    return key


def raw_key(text: str) -> bytes:
    return base64.urlsafe_b64decode(text)


# --- the writes and what must not be found -----------------------------------------


def write_credential(store: StateStore, keyspace: Keyspace) -> list[bytes]:
    """The credential written every way there is; the bytes of every value written."""
    ns: dict[str, Any] = {"scope": keyspace.scope, "namespace": keyspace.namespace}
    first = {"user": "svc", "password": SECRET}
    store.set("db/password", first, **ns)
    store.update("db/password", jq=".rotated = true", **ns)  # version 2, still holding it
    store.set("db/password", {"password": SECRET + "-v3"}, **ns)
    store.set("old/token", SECRET, **ns)
    store.delete("old/token", **ns)  # gone, but its history keeps the value
    store.set("blob/key", Blob(SECRET.encode(), "text/plain"), **ns)
    store.transaction([SetOp("txn/a", {"p": SECRET}), SetOp("txn/b", [SECRET, 1])], **ns)
    written = [
        store.get("db/password", version=v, **ns).stored.data  # type: ignore[union-attr]
        for v in (1, 2, 3)
    ]
    written += [
        store.normalize(SECRET).data,
        SECRET.encode(),
        store.normalize({"p": SECRET}).data,
        store.normalize([SECRET, 1]).data,
    ]
    # The store gives the plaintext back (it holds the key): the bytes below are sealed,
    # not lost.
    assert store.get("db/password", **ns).value == {"password": SECRET + "-v3"}
    assert store.get("db/password", version=2, **ns).value == {**first, "rotated": True}
    assert store.get("blob/key", **ns).value == SECRET.encode()
    assert store.get("old/token", version=1, **ns).value == SECRET
    if keyspace != PUBLIC:
        assert_keyed_hashes(store, keyspace)
    return written


def assert_keyed_hashes(store: StateStore, keyspace: Keyspace) -> None:
    ns: dict[str, Any] = {"scope": keyspace.scope, "namespace": keyspace.namespace}
    for item in store.history("db/password", **ns).versions:
        got = store.get("db/password", version=item.version, **ns)
        assert got.stored is not None
        assert len(got.hash) == 64 and set(got.hash) <= set(string.hexdigits)
        assert got.hash != hashlib.sha256(got.stored.data).hexdigest()


def needles(written: list[bytes]) -> dict[str, bytes]:
    """What must not be in the stored bytes: the secret, a piece of it, its base64 at
    every alignment (a binary value is base64 in a file:// record), and the SHA-256 hex
    of every value written (a plain hash would let a low-entropy secret be guessed)."""
    found = {"the secret": SECRET.encode(), "a piece of the secret": b"s3cr3t"}
    for shift in range(3):
        encoded = base64.b64encode(SECRET.encode()[shift:])[:-4]  # the tail may differ
        found[f"the secret in base64 (shift {shift})"] = encoded
        found[f"the secret in url-safe base64 (shift {shift})"] = encoded.replace(
            b"+", b"-"
        ).replace(b"/", b"_")
    for data in written:
        found[f"the SHA-256 of {data[:24]!r}"] = hashlib.sha256(data).hexdigest().encode()
    return found


def leaks(blob: bytes, written: list[bytes]) -> list[str]:
    return [name for name, needle in needles(written).items() if needle in blob]


def assert_no_plaintext(stored: dict[str, bytes], written: list[bytes]) -> None:
    for where, blob in stored.items():
        found = leaks(blob, written)
        assert not found, f"{where} holds {', '.join(found)}"


def assert_control_shows(stored: dict[str, bytes]) -> None:
    """The control (a keyspace that is not secret): the inspection does see values."""
    assert any(SECRET.encode() in blob for blob in stored.values()), list(stored)


# --- SQLite: the database file, its WAL, the history table ------------------------------


def sqlite_rows(db: Path, table: str, namespace: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(f"SELECT namespace, key, content_type, data FROM {table}").fetchall()
    conn.close()

    def text(value: str | bytes) -> str:
        return value.decode() if isinstance(value, bytes) else value

    return [(text(k), ct, bytes(d)) for ns, k, ct, d in rows if text(ns) == namespace]


@pytest.mark.parametrize("keyspace", [VAULT, PUBLIC], ids=["secret", "control"])
def test_sqlite_database_and_wal_hold_no_plaintext(
    tmp_path: Path, secret_key: str, keyspace: Keyspace
) -> None:
    db = tmp_path / "state.db"
    wal = tmp_path / "state.db-wal"
    with make_store(f"sqlite:///{db}") as store:
        written = write_credential(store, keyspace)
        assert wal.exists()  # WAL mode: the newest pages are in the WAL until a checkpoint
        while_open = {"the database file": db.read_bytes(), "the WAL": wal.read_bytes()}
    after_close = {"the database file after close": db.read_bytes()}
    if wal.exists():
        after_close["the WAL after close"] = wal.read_bytes()
    entries = sqlite_rows(db, "statebox_entries", keyspace.namespace)
    history = sqlite_rows(db, "statebox_history", keyspace.namespace)
    rows = {
        "the entries table": b"".join(d for *_, d in entries),
        "the history table": b"".join(d for *_, d in history),
    }
    if keyspace == PUBLIC:
        assert_control_shows(while_open)
        assert_control_shows(rows)
        return
    assert_no_plaintext({**while_open, **after_close, **rows}, written)
    # Every value of the keyspace, live or past, is a sealed record; nothing else is.
    assert sorted(k for k, *_ in entries) == ["blob/key", "db/password", "txn/a", "txn/b"]
    assert len(history) == 8  # 3 of db/password, old/token's set and delete, 3 more
    for key, content_type, data in entries + history:
        if data:  # a deletion's history record holds no value
            assert content_type == SEALED_CONTENT_TYPE, key
            assert data.startswith(b"SBX1"), key


# --- file:// : every file under the store -----------------------------------------------


@pytest.mark.parametrize("keyspace", [VAULT, PUBLIC], ids=["secret", "control"])
def test_file_store_files_hold_no_plaintext(
    tmp_path: Path, secret_key: str, keyspace: Keyspace
) -> None:
    root = tmp_path / "file-store"
    with make_store(f"file://{root}") as store:
        written = write_credential(store, keyspace)
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert len(files) >= 5  # the records of four live keys and their history, at least
    if keyspace == PUBLIC:
        assert_control_shows(files)
        return
    assert_no_plaintext(files, written)


# --- PostgreSQL: every row of every table of the store's schema ------------------------


def postgres_tables(url: str) -> dict[str, bytes]:
    """Every table of the store's schema, its rows' values as bytes (text as UTF-8)."""
    schema = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))["schema"]
    tables: dict[str, bytes] = {}
    with admin_connection(url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        for name in names:
            parts = []
            for row in conn.execute(f'SELECT * FROM "{schema}"."{name}"'):
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        parts.append(bytes(value))
                    elif value is not None:
                        parts.append(str(value).encode())
            tables[name] = b"\0".join(parts)
    return tables


@pytest.mark.parametrize("keyspace", [VAULT, PUBLIC], ids=["secret", "control"])
def test_postgres_rows_hold_no_plaintext(
    pg_server: str, secret_key: str, keyspace: Keyspace
) -> None:
    with fresh_schema_url(pg_server) as url:
        with make_store(url) as store:
            written = write_credential(store, keyspace)
        tables = postgres_tables(url)
        assert {"statebox_entries", "statebox_history"} <= set(tables)
        if keyspace == PUBLIC:
            assert_control_shows(tables)
            return
        assert_no_plaintext(tables, written)
        with admin_connection(url) as conn:
            conn.execute(f"SET search_path TO {url.rsplit('schema=', 1)[1].split('&')[0]}")
            for table in ("statebox_entries", "statebox_history"):
                rows = conn.execute(
                    f"SELECT key, content_type, data FROM {table} WHERE namespace = %s",
                    (keyspace.namespace.encode(),),
                ).fetchall()
                assert rows, table
                for key, content_type, data in rows:
                    if data:
                        assert content_type == SEALED_CONTENT_TYPE, (table, key)
                        assert bytes(data).startswith(b"SBX1"), (table, key)


# --- a real server over SQLite: the server holds the key, its client none -------------


def test_server_seals_what_a_keyless_client_writes(
    tmp_path: Path, secret_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "server.db"
    server_env = {"STATEBOX_SECRET_NAMESPACES": POLICY, "STATEBOX_SECRET_KEY": secret_key}
    with running_server(f"sqlite:///{db}", env=server_env) as server:
        # The client: no key, and a home where a key file would show if it sealed itself.
        monkeypatch.delenv("STATEBOX_SECRET_KEY")
        client_home = tmp_path / "client-home"
        monkeypatch.setenv("STATEBOX_HOME", str(client_home))
        with make_store(server.url) as store:
            assert not isinstance(store.backend, SealedBackend)  # the server seals
            written = write_credential(store, VAULT)
        stored = {"the server's database file": db.read_bytes()}
        wal = tmp_path / "server.db-wal"
        if wal.exists():
            stored["the server's WAL"] = wal.read_bytes()
        log = server.log_text()
    assert not (client_home / "secret.key").exists()
    assert_no_plaintext({**stored, "the server's log": log.encode()}, written)
    history = sqlite_rows(db, "statebox_history", VAULT.namespace)
    assert len(history) == 8
    assert all(d.startswith(b"SBX1") for *_, d in history if d)


# --- the conformance suites' sealed variants (tests/backends.py) seal -------------------


@pytest.mark.parametrize("name", list(SEALED_BACKENDS))
def test_the_sealed_conformance_variants_store_ciphertext(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with SEALED_BACKENDS[name](tmp_path, request) as url, make_store(url) as store:
        store.set("k", {"password": SECRET})
        raw = inner(store).get(store.keyspace(), "k", time.time_ns())
        assert raw is not None and raw.content_type == SEALED_CONTENT_TYPE
        assert SECRET.encode() not in raw.data
        assert store.get("k").value == {"password": SECRET}


def inner(store: StateStore) -> Backend:
    assert isinstance(store.backend, SealedBackend)
    return store.backend.inner
