"""``StateStore.declare_secret_keyspace`` (issue 17): a keyspace made secret by a call,
not by ``STATEBOX_SECRET_NAMESPACES``, and kept so in the store.

After the call, a write into the keyspace is sealed at rest (the SQLite file and its WAL,
the PostgreSQL rows hold no plaintext: each inspection has its control, the same write
before the declaration, which does show it), reads through the store give the value
marked secret, and another process — a ``statebox get`` subprocess on the same store,
with no secret policy in its environment — masks it. The call is idempotent (one
registry entry), and a store that cannot seal refuses it with a ConfigurationError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import StateStore, open_store
from statebox.backends.sealing.backend import REGISTRY, SEALED_CONTENT_TYPE, registry_key
from statebox.backends.sqlite import SqliteBackend
from statebox.core.errors import ConfigurationError
from statebox.core.model import Keyspace

from .backends import new_secret_key
from .pg import admin_connection, fresh_schema_url

SECRET = "dapr-Pa55w0rd-7c1e"
EARLIER = "written-before-the-declaration-4b2f"
VAULT = Keyspace("custom", "dapr-vault")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh key in the environment (subprocesses inherit it), no secret policy."""
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATEBOX_SECRET_NAMESPACES", raising=False)
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
    return tmp_path


def sqlite_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def cli_get(url: str, key: str, *extra: str) -> dict[str, object]:
    """``statebox get`` in its own process (no policy in its environment)."""
    env = {k: v for k, v in os.environ.items() if k != "STATEBOX_SECRET_NAMESPACES"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "statebox.cli", "get", key, "--store", url),
            *("--scope", VAULT.scope, "--namespace", VAULT.namespace, *extra),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def declare_and_write(store: StateStore) -> None:
    ns: dict[str, Any] = {"scope": VAULT.scope, "namespace": VAULT.namespace}
    assert not store.secret_policy.is_secret(VAULT)
    store.set("earlier", EARLIER, **ns)  # the control: before the declaration, in clear
    assert store.declare_secret_keyspace(VAULT.scope, VAULT.namespace) == VAULT
    assert store.declare_secret_keyspace(VAULT.scope, VAULT.namespace) == VAULT  # again
    assert store.secret_policy.is_secret(VAULT)
    store.set("password", {"password": SECRET}, **ns)
    got = store.get("password", **ns)
    assert got.stored is not None and got.stored.secret
    assert got.stored.data == json.dumps({"password": SECRET}, separators=(",", ":")).encode()


def check_other_process(url: str) -> None:
    masked = cli_get(url, "password")
    assert masked["found"] is True and masked["masked"] is True
    assert SECRET not in json.dumps(masked)
    revealed = cli_get(url, "password", "--reveal")
    assert revealed["value"] == {"password": SECRET}


def test_sqlite_declared_keyspace_is_sealed_and_masked_elsewhere(home: Path) -> None:
    path = home / "state.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        declare_and_write(store)
        raw = store.backend.inner.get(VAULT, "password", 0)  # type: ignore[attr-defined]
        assert raw is not None and raw.content_type == SEALED_CONTENT_TYPE
        registry = store.backend.inner.scan(  # type: ignore[attr-defined]
            REGISTRY, "", after=None, limit=0, include_values=False, now=0
        )
        assert [entry.key for entry in registry] == [registry_key(VAULT)]
    stored = sqlite_bytes(path)
    assert EARLIER.encode() in stored  # the control: the inspection sees plaintext
    assert SECRET.encode() not in stored
    check_other_process(url)


def test_declared_in_one_process_seals_in_another(home: Path) -> None:
    """The declaration is the store's: a second store (as another process would open
    it, with a fresh policy) seals its own writes there."""
    path = home / "state.db"
    url = f"sqlite:///{path}"
    with open_store(url) as first:
        first.declare_secret_keyspace(VAULT.scope, VAULT.namespace)
    with open_store(url) as second:
        second.set("token", SECRET, scope=VAULT.scope, namespace=VAULT.namespace)
        got = second.get("token", scope=VAULT.scope, namespace=VAULT.namespace)
        assert got.stored is not None and got.stored.secret
    assert SECRET.encode() not in sqlite_bytes(path)


def test_postgres_declared_keyspace_is_sealed(home: Path, pg_server: str) -> None:
    with fresh_schema_url(pg_server) as url:
        with open_store(url) as store:
            declare_and_write(store)
        schema = url.rsplit("schema=", 1)[1].split("&")[0]
        with admin_connection(url) as conn:
            rows = conn.execute(
                f'SELECT key, content_type, data FROM "{schema}".statebox_entries '
                "WHERE namespace = %s",
                (VAULT.namespace.encode(),),
            ).fetchall()
        by_key = {
            bytes(k).decode() if not isinstance(k, str) else k: (c, bytes(d)) for k, c, d in rows
        }
        assert EARLIER.encode() in by_key["earlier"][1]  # the control
        content_type, data = by_key["password"]
        assert content_type == SEALED_CONTENT_TYPE and SECRET.encode() not in data
        check_other_process(url)


def test_a_store_that_does_not_seal_refuses(home: Path) -> None:
    bare = StateStore(SqliteBackend(f"sqlite:///{home / 'bare.db'}"))
    try:
        with pytest.raises(ConfigurationError, match="does not seal"):
            bare.declare_secret_keyspace(VAULT.scope, VAULT.namespace)
    finally:
        bare.close()


def test_the_registry_itself_cannot_be_declared(home: Path) -> None:
    with (
        open_store(f"sqlite:///{home / 'state.db'}") as store,
        pytest.raises(ConfigurationError, match="registry"),
    ):
        store.backend.declare_secret(REGISTRY, store._write_context())


@pytest.fixture
def remote(home: Path) -> Iterator[str]:
    from .server_util import running_server

    with running_server(f"sqlite:///{home / 'served.db'}") as server:
        yield server.url


def test_a_remote_store_refuses_naming_its_server(remote: str) -> None:
    with (
        open_store(remote) as store,
        pytest.raises(ConfigurationError, match="the server behind it seals"),
    ):
        store.declare_secret_keyspace(VAULT.scope, VAULT.namespace)
