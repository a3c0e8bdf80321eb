"""The sealing layer as a backend (issue #16): every store ``open_backend`` opens is
wrapped (but the remote store, whose server seals), the wrapper keeps the inner
backend's capabilities, group commit, reset and attributes, and a store that touches no
secret keyspace loads none of the sealing machinery."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statebox.backends import open_backend, register_backend
from statebox.backends.base import group_commit_of
from statebox.backends.http import HttpBackend
from statebox.backends.memory import MemoryBackend
from statebox.backends.sealing import SEALED_CONTENT_TYPE, SealedBackend, seal_backend
from statebox.backends.sealing.backend import REGISTRY
from statebox.backends.sqlite import SqliteBackend
from statebox.core.errors import BackendUnavailableError, ConflictError, SecretKeyError
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import Delete, Put, WriteContext
from statebox.core.secrecy import SECRET_NAMESPACES_ENV, SecretPolicy
from statebox.core.values import NormalizedValue, sha256_hex

SECRET = Keyspace("custom", "vault")
NOW = 1_800_000_000_000_000_000
ENV = {"STATEBOX_SECRET_KEY": base64.urlsafe_b64encode(bytes(32)).decode()}
CTX = WriteContext(NOW, UpdatedBy(), 10)


def put(key: str, data: bytes = b'"s3cret"', **options: object) -> Put:
    return Put(key, NormalizedValue(data, "application/json", sha256_hex(data)), **options)  # type: ignore[arg-type]


def test_open_backend_wraps_every_store_but_the_remote_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_NAMESPACES_ENV, "custom/vault")
    memory = open_backend("memory://")
    assert isinstance(memory, SealedBackend) and isinstance(memory.inner, MemoryBackend)
    assert memory.policy == SecretPolicy(["custom/vault"]) == memory.secret_policy
    sqlite = open_backend(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert isinstance(sqlite, SealedBackend) and isinstance(sqlite.inner, SqliteBackend)
        assert sqlite.url == sqlite.inner.url
    finally:
        sqlite.close()
    remote = open_backend("http://127.0.0.1:9")  # nothing is sent until a call
    assert type(remote) is HttpBackend and remote.capabilities.seals_secrets
    register_backend("h1test", lambda url: MemoryBackend(url))
    custom = open_backend("h1test://x")
    assert isinstance(custom, SealedBackend) and custom.url == "h1test://x"


def test_seal_backend_wraps_once() -> None:
    inner = MemoryBackend()
    layer = seal_backend(inner)
    assert isinstance(layer, SealedBackend) and layer.inner is inner
    assert seal_backend(layer) is layer
    remote = HttpBackend("http://127.0.0.1:9")
    assert seal_backend(remote) is remote
    assert "MemoryBackend" in repr(layer)


def test_the_wrapper_has_the_inner_backends_capabilities_and_group_commit(
    tmp_path: Path,
) -> None:
    inner = SqliteBackend(f"sqlite:///{tmp_path / 's.db'}?timeout=7")
    layer = SealedBackend(inner, SecretPolicy(["custom/vault"]), ENV)
    try:
        assert layer.capabilities == SqliteBackend.capabilities
        assert group_commit_of(layer) is layer  # type: ignore[comparison-overlap]
        assert layer.timeout == 7.0
        assert isinstance(layer.locked_error(), BackendUnavailableError)
        assert layer.path == inner.path  # anything else: from the inner backend
        outcomes = layer.write_together(
            [
                lambda: layer.apply(SECRET, [put("a")], CTX),
                lambda: layer.apply(SECRET, [put("a", create_only=True)], CTX),
                lambda: layer.apply(SECRET, [put("a", b'"second"')], CTX),
            ]
        )
        assert isinstance(outcomes[1], ConflictError)
        assert [o[0].current.version for o in outcomes if isinstance(o, list)] == [1, 2]  # type: ignore[union-attr]
        got = layer.get(SECRET, "a", NOW)
        assert got is not None and got.data == b'"second"'
        raw = inner.get(SECRET, "a", NOW)
        assert raw is not None and raw.content_type == SEALED_CONTENT_TYPE
        tried = layer.try_write_together([lambda: layer.apply(SECRET, [put("b")], CTX)])
        assert tried is not None and not isinstance(tried[0], Exception)
    finally:
        layer.close()
    memory = SealedBackend(MemoryBackend(), SecretPolicy(), ENV)
    assert memory.capabilities == MemoryBackend.capabilities
    assert group_commit_of(memory) is None
    with pytest.raises(AttributeError):
        memory.write_together([])


def test_reset_gives_a_sealed_empty_store() -> None:
    layer = SealedBackend(MemoryBackend(), SecretPolicy(["custom/vault"]), ENV)
    layer.apply(SECRET, [put("a")], CTX)
    fresh = layer.reset()
    assert isinstance(fresh, SealedBackend) and fresh.policy == layer.policy
    assert fresh.environ is ENV and fresh.get(SECRET, "a", NOW) is None
    fresh.apply(SECRET, [put("a")], CTX)
    assert fresh.inner.get(SECRET, "a", NOW).content_type == SEALED_CONTENT_TYPE  # type: ignore[union-attr]


def test_everything_else_passes_through() -> None:
    inner = MemoryBackend()
    layer = SealedBackend(inner, SecretPolicy(["custom/vault"]), ENV)
    lease = layer.acquire_lease("l", "me", 10**9, NOW)
    assert layer.get_lease("l", NOW) == lease == inner.get_lease("l", NOW)
    assert layer.renew_lease("l", "me", lease.token, 10**9, NOW).token == lease.token
    assert layer.release_lease("l", "me", lease.token, NOW)
    token = layer.change_token(SECRET)
    layer.apply(SECRET, [put("a"), put("b", expires_at=NOW + 1)], CTX)
    assert layer.change_token(SECRET) != token
    assert layer.wait_for_change(SECRET, token, 0) == inner.change_token(SECRET)
    assert layer.store_change_token() == inner.store_change_token()
    assert layer.wait_for_store_change(-1, 0) == inner.change_token(SECRET)
    infos = layer.list_keyspaces(None, after=None, limit=0, now=NOW)
    # the store's registry of secret keyspaces (written on the first seal) and the keyspace
    assert [(i.keyspace, i.entries) for i in infos] == [(SECRET, 2), (REGISTRY, 1)]
    assert layer.purge_expired(NOW + 5) == 1
    assert layer.delete_keyspace(SECRET, CTX) == 1
    assert layer.get(SECRET, "a", NOW) is None
    # the deletion is in the history, the sealed value before it still opens
    history = layer.history(SECRET, "a", 0)
    assert [r.deleted for r in history] == [True, False]
    assert history[1].data == b'"s3cret"'


def test_reading_a_sealed_value_without_any_key_is_a_clear_error(tmp_path: Path) -> None:
    inner = MemoryBackend()
    SealedBackend(inner, SecretPolicy(["custom/vault"]), ENV).apply(SECRET, [put("a")], CTX)
    no_key = SealedBackend(inner, SecretPolicy(["custom/vault"]), {"STATEBOX_HOME": str(tmp_path)})
    with pytest.raises(SecretKeyError, match="there is no secret key"):
        no_key.get(SECRET, "a", NOW)
    assert not (tmp_path / "secret.key").exists()  # a read creates no key
    assert no_key.get(SECRET, "missing", NOW) is None  # nothing sealed: no key needed
    # Deleting seals nothing: it needs no key, and makes none.
    [deleted] = no_key.apply(SECRET, [Delete("a")], CTX)
    assert deleted.current is None and deleted.previous is not None
    assert deleted.previous.data == b""  # what it deleted cannot be opened without the key
    assert not (tmp_path / "secret.key").exists()


_PROBE = """
import json, sys
from statebox.backends import open_backend
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import Delete, Put, WriteContext
from statebox.core.values import normalize
backend = open_backend(sys.argv[1])
ctx = WriteContext(1, UpdatedBy(), 10)
before = set(sys.modules)
backend.apply(Keyspace(sys.argv[2], sys.argv[3]), [Put("k", normalize({"a": 1}))], ctx)
backend.get(Keyspace(sys.argv[2], sys.argv[3]), "k", 2)
print(json.dumps(sorted(set(sys.modules) - before)))
"""

_HEAVY = {
    "cryptography",
    "hashlib",
    "hmac",
    "base64",
    "random",
    "fnmatch",
    "statebox.backends.sealing.cipher",
    "statebox.backends.sealing.keyring",
    "statebox.backends.sealing._writes",
}


def _loaded(tmp_path: Path, scope: str, namespace: str) -> set[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "STATEBOX_HOME": str(tmp_path / "home"),
        SECRET_NAMESPACES_ENV: "custom/vault",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, f"sqlite:///{tmp_path / 's.db'}", scope, namespace],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_a_store_that_touches_no_secret_loads_no_sealing_machinery(tmp_path: Path) -> None:
    assert _loaded(tmp_path, "dag", "feed") & _HEAVY == set()
    assert not (tmp_path / "home").exists()
    # the probe sees them when it does touch one (the test would notice them)
    touched = _loaded(tmp_path, "custom", "vault")
    assert {"statebox.backends.sealing.cipher", "cryptography"} <= touched
    assert (tmp_path / "home" / "secret.key").exists()


def test_an_attribute_the_wrapper_lacks_is_the_inner_backends(tmp_path: Path) -> None:
    """Read and set through the wrapper (a test patching a SQL backend's internals
    through ``store.backend`` patches the backend that runs them)."""
    inner = SqliteBackend(f"sqlite:///{tmp_path / 's.db'}")
    layer = SealedBackend(inner, SecretPolicy(["custom/vault"]), ENV)
    try:
        calls: list[int] = []
        real = layer._apply_one

        def counted(*args: object) -> object:
            calls.append(1)
            return real(*args)

        layer.apply(SECRET, [put("z")], CTX)  # the first seal also writes the registry
        layer._apply_one = counted
        layer.apply(SECRET, [put("a")], CTX)
        assert calls == [1] and "_apply_one" not in vars(layer)
        del layer._apply_one  # undone the same way
        assert "_apply_one" not in vars(inner)
        layer.apply(SECRET, [put("a")], CTX)
        assert calls == [1]
        layer.apply = layer.apply  # type: ignore[method-assign]  # the wrapper's own name
        assert "apply" in vars(layer) and "apply" not in vars(inner)
    finally:
        layer.close()


def test_the_faces_find_the_layer_in_the_backends_package() -> None:
    import statebox.backends as backends
    from statebox.backends.sealing import keyring, rotate

    assert backends.seal_backend is seal_backend and backends.SealedBackend is SealedBackend
    assert backends.rotate is rotate.rotate and backends.ROTATED_BY is rotate.ROTATED_BY
    assert backends.RotateReport is rotate.RotateReport
    assert backends.generate_key is keyring.generate_key
    with pytest.raises(AttributeError):
        backends.no_such_name  # noqa: B018
