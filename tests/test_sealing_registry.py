"""Secrecy is kept in the store (issue #16, review round 2): a process without
``STATEBOX_SECRET_NAMESPACES`` neither writes in clear where another process sealed, nor
hands out ciphertext as a value. Three rules make it so, each tested here over memory://
and a real SQLite file (and once through the real executable):

- the first seal into a keyspace registers it (scope ``statebox``, namespace
  ``secret-keyspaces``); every layer asks that registry about a keyspace its patterns do
  not name, and seals and masks a registered one;
- a sealed value is opened whatever the policy says, and its keyspace learned as secret;
- a write that replaced a sealed value (the race with the registry) is re-sealed at once.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from statebox import StateStore
from statebox.backends.base import Backend
from statebox.backends.memory import MemoryBackend
from statebox.backends.sealing import SEALED_CONTENT_TYPE, SealedBackend
from statebox.backends.sealing.backend import REGISTRY
from statebox.backends.sqlite import SqliteBackend
from statebox.core.model import Keyspace, RunContext, UpdatedBy
from statebox.core.records import Delete, Entry, HistoryRecord, Put, WriteContext
from statebox.core.secrecy import RECHECK_SECONDS, SecretPolicy
from statebox.core.values import NormalizedValue, sha256_hex

from .test_cli import Cli, clean_env

__all__ = ["clean_env"]  # the fixture, used here by name

SECRET = Keyspace("custom", "vault")
PLAIN = Keyspace("custom", "plain")
DECLARED = SecretPolicy(["custom/vault"])
ENV = {"STATEBOX_SECRET_KEY": base64.urlsafe_b64encode(bytes(range(32))).decode()}
NOW = 1_800_000_000_000_000_000
CTX = WriteContext(NOW, UpdatedBy(dag_name="t"), 10)
JSON = "application/json"


def put(key: str, data: bytes = b'"hunter2"') -> Put:
    return Put(key, NormalizedValue(data, JSON, sha256_hex(data)))


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend: Backend
    if request.param == "memory":
        backend = MemoryBackend()
    else:
        backend = SqliteBackend(f"sqlite:///{tmp_path / 's.db'}")
    yield backend
    backend.close()


def declared(inner: Backend) -> SealedBackend:
    """A process with the setting."""
    return SealedBackend(inner, DECLARED, ENV)


def undeclared(inner: Backend) -> SealedBackend:
    """A process without it (the same key: it can open what the other sealed)."""
    return SealedBackend(inner, SecretPolicy(), ENV)


def stored(inner: Backend, key: str, keyspace: Keyspace = SECRET) -> Entry:
    entry = inner.get(keyspace, key, NOW)
    assert entry is not None
    return entry


def registry_reads(inner: Backend) -> list[Keyspace]:
    """Count the reads of the registry from now on (the instance's get, replaced)."""
    seen: list[Keyspace] = []
    real = inner.get

    def get(keyspace: Keyspace, key: str, now: int) -> Entry | None:
        if keyspace == REGISTRY:
            seen.append(keyspace)
        return real(keyspace, key, now)

    inner.get = get  # type: ignore[method-assign]
    return seen


# -- the registry -----------------------------------------------------------------------------


def test_the_first_seal_registers_the_keyspace_once(inner: Backend) -> None:
    assert inner.get(REGISTRY, "custom/vault", NOW) is None
    declared(inner).apply(SECRET, [Delete("gone")], CTX)  # nothing sealed: nothing said
    assert inner.get(REGISTRY, "custom/vault", NOW) is None
    first = declared(inner)
    first.apply(SECRET, [put("a")], CTX)
    entry = stored(inner, "custom/vault", REGISTRY)
    assert (entry.content_type, json.loads(entry.data)) == (
        JSON,
        {"scope": "custom", "namespace": "vault"},
    )
    first.apply(SECRET, [put("b")], CTX)
    declared(inner).apply(SECRET, [put("c")], CTX)  # another process: finds it, writes none
    assert [r.version for r in inner.history(REGISTRY, "custom/vault", 0)] == [1]


def test_a_process_without_the_setting_seals_and_masks_a_registered_keyspace(
    inner: Backend,
) -> None:
    declared(inner).apply(SECRET, [put("a")], CTX)
    layer = undeclared(inner)
    store = StateStore(layer, context=RunContext(dag="d"))
    assert store.secret_policy is layer.policy
    written = store.set("b", "mine", scope="custom", namespace="vault")
    assert stored(inner, "b").content_type == SEALED_CONTENT_TYPE
    assert written.hash != sha256_hex(b'"mine"')  # the keyed hash
    got = store.get("a", scope="custom", namespace="vault")
    assert got.value == "hunter2"  # the library holds the key
    assert '"value":"***","masked":true' in got.to_json()
    # Elsewhere nothing changes: stored in clear, shown.
    store.set("x", "open", scope="custom", namespace="plain")
    assert stored(inner, "x", PLAIN).data == b'"open"'
    assert '"value":"open"' in store.get("x", scope="custom", namespace="plain").to_json()


def test_the_registry_is_asked_once_then_again_only_after_a_no_expired(inner: Backend) -> None:
    layer = undeclared(inner)
    reads = registry_reads(inner)
    assert not layer.policy.is_secret(SECRET)
    assert len(reads) == 1
    for _ in range(50):  # the hot path: the answer remembered
        assert not layer.policy.is_secret(SECRET)
        layer.apply(PLAIN, [put("x", b"1")], CTX)
        layer.get(PLAIN, "x", NOW)
    assert len(reads) == 2  # PLAIN's first use
    declared(inner).apply(SECRET, [put("a")], CTX)  # registered now
    assert not layer.policy.is_secret(SECRET)  # a "no" trusted for a moment
    time.sleep(RECHECK_SECONDS + 0.05)
    assert layer.policy.is_secret(SECRET)
    inner.apply(REGISTRY, [Delete("custom/vault")], CTX)
    time.sleep(RECHECK_SECONDS + 0.05)
    count = len(reads)
    assert layer.policy.is_secret(SECRET)  # a "yes" is kept: never asked again
    assert len(reads) == count


# -- reads never hand out ciphertext --------------------------------------------------------


def _unregistered_secret(inner: Backend) -> None:
    """Values sealed in ``SECRET`` with no registry entry (a store sealed before the
    registry, or a reader that looked just before it was written)."""
    layer = declared(inner)
    layer.apply(SECRET, [put("a", b'"one"')], CTX)
    layer.apply(SECRET, [put("a", b'"two"'), put("b", b'"bee"')], CTX)
    layer.apply(SECRET, [Delete("b")], CTX)
    inner.apply(REGISTRY, [Delete("custom/vault")], CTX)


@pytest.mark.parametrize("read", ["get", "scan", "scan-keys", "history", "get_version"])
def test_a_sealed_value_is_opened_whatever_the_policy_says(inner: Backend, read: str) -> None:
    _unregistered_secret(inner)
    layer = undeclared(inner)
    assert not layer.policy.is_secret(SECRET)
    got: list[Entry | HistoryRecord | None]
    if read == "get":
        got = [layer.get(SECRET, "a", NOW)]
        values = [(2, b'"two"')]
    elif read.startswith("scan"):
        with_values = read == "scan"
        got = [*layer.scan(SECRET, "", after=None, limit=0, include_values=with_values, now=NOW)]
        values = [(2, b'"two"' if with_values else b"")]
    elif read == "history":
        got = [*layer.history(SECRET, "b", 0)]
        values = [(1, b""), (1, b'"bee"')]  # the deletion, then the value
    else:
        got = [layer.get_version(SECRET, "a", 1)]
        values = [(1, b'"one"')]
    assert [(e.version, e.data) if e else None for e in got] == values
    assert {e.content_type if e else None for e in got} == {JSON}
    assert layer.policy.is_secret(SECRET)  # learned: the engine masks from now on


def test_the_engine_masks_what_a_read_found_sealed(inner: Backend) -> None:
    _unregistered_secret(inner)
    store = StateStore(undeclared(inner), context=RunContext(dag="d"))
    got = store.get("a", scope="custom", namespace="vault")
    assert got.value == "two" and '"value":"***","masked":true' in got.to_json()


# -- the race: a write in clear over a sealed value ----------------------------------------


def test_a_write_that_replaced_a_sealed_value_is_sealed_at_once(inner: Backend) -> None:
    late = undeclared(inner)
    assert not late.policy.is_secret(SECRET)  # it looked: not registered (yet)
    declared(inner).apply(SECRET, [put("k", b'"old"')], CTX)
    [applied] = late.apply(SECRET, [put("k", b'"new"')], CTX)  # still taken for plain
    assert applied.previous is not None and applied.previous.data == b'"old"'  # opened
    current = applied.current
    assert current is not None and (current.version, current.data) == (3, b'"new"')
    assert current.hash != sha256_hex(b'"new"')
    raw = stored(inner, "k")
    assert (raw.version, raw.content_type) == (3, SEALED_CONTENT_TYPE)
    assert late.policy.is_secret(SECRET)
    # What the race leaves in clear: the one history record of the write it lost.
    kinds = [(r.version, r.content_type) for r in inner.history(SECRET, "k", 0)]
    assert kinds == [(3, SEALED_CONTENT_TYPE), (2, JSON), (1, SEALED_CONTENT_TYPE)]
    assert late.get(SECRET, "k", NOW) == current


def test_a_batch_that_replaced_a_sealed_value_is_sealed_at_once(inner: Backend) -> None:
    late = undeclared(inner)
    assert not late.policy.is_secret(SECRET)
    declared(inner).apply(SECRET, [put("k", b'"old"')], CTX)
    [secret, plain] = late.apply_batch(
        [(SECRET, [put("k", b'"a"'), put("k", b'"b"')]), (PLAIN, [put("x", b"1")])], CTX
    )
    assert [a.current.version for a in secret if a.current] == [2, 4]
    assert secret[0].previous is not None and secret[0].previous.data == b'"old"'
    assert stored(inner, "k").content_type == SEALED_CONTENT_TYPE
    assert plain[0].current is not None and stored(inner, "x", PLAIN).data == b"1"
    assert not late.policy.is_secret(PLAIN)


# -- through the executable ---------------------------------------------------------------------


def test_a_cli_without_the_setting_seals_and_masks_where_one_with_it_sealed(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    db = tmp_path / "state.db"
    env = {k: v for k, v in clean_env.items() if not k.startswith("STATEBOX_SECRET")}
    cli = Cli(env, f"sqlite:///{db}")
    vault = ("--scope", "custom", "--namespace", "vault")
    with_it = {"STATEBOX_SECRET_NAMESPACES": "custom/vault"}
    assert cli("set", "a", '"s3cret-a"', *vault, env=with_it).data["version"] == 1
    assert cli("get", "a", *vault).data["value"] == "***"  # without the setting
    assert cli("set", "b", '"s3cret-b"', *vault).data["version"] == 1
    listed = cli("list", *vault, "--include-values").data["entries"]
    assert isinstance(listed, list) and {e["value"] for e in listed} == {"***"}
    assert cli("get", "b", *vault, "--reveal").data["value"] == "s3cret-b"
    with sqlite3.connect(db) as conn:
        blobs = [bytes(row[0]) for row in conn.execute("SELECT data FROM statebox_history")]
    assert blobs and not any(b"s3cret" in blob for blob in blobs)


def test_a_long_namespace_is_registered_under_a_key_every_store_takes(tmp_path: Path) -> None:
    """The file store takes namespaces of up to 127 bytes but keys of up to 125 (file
    names of 255 characters): ``SCOPE/NAMESPACE`` past 64 bytes is hashed."""
    from statebox.backends import open_backend
    from statebox.backends.sealing.backend import registry_key

    opened = open_backend(f"file://{tmp_path / 'fs'}")
    assert isinstance(opened, SealedBackend)
    inner = opened.inner
    long = Keyspace("custom", "n" * 127)
    SealedBackend(inner, SecretPolicy(["custom/n*"]), ENV).apply(long, [put("a")], CTX)
    key = registry_key(long)
    assert key.startswith("custom/sha256/") and len(key) == len("custom/sha256/") + 32
    assert stored(inner, key, REGISTRY).data == b'{"namespace":"%s","scope":"custom"}' % (
        b"n" * 127
    )
    assert undeclared(inner).policy.is_secret(long)
    assert registry_key(Keyspace("custom", "n" * 57)) == "custom/" + "n" * 57  # 64 bytes
    inner.close()
