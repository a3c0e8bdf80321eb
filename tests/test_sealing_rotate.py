"""Key rotation at unit level (statebox.backends.sealing.rotate, issue #16): a new key
first in the key file, every live secret entry re-sealed under it, old keys kept for the
history; writers that race it, an interruption, and what it refuses. (Rotation across
processes, killed mid-way: tests/test_sealed_rotation.py.)"""

from __future__ import annotations

import base64
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from statebox.backends.base import Backend, Entry
from statebox.backends.http import HttpBackend
from statebox.backends.memory import MemoryBackend
from statebox.backends.sealing import SEALED_CONTENT_TYPE, SealedBackend
from statebox.backends.sealing import rotate as rotate_module
from statebox.backends.sealing.cipher import sealed_key_id
from statebox.backends.sealing.keyring import key_id, read_key_file, write_key_file
from statebox.backends.sealing.rotate import ROTATED_BY, RotateReport, rotate
from statebox.backends.sqlite import SqliteBackend
from statebox.core.errors import ConfigurationError, SecretKeyError
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import Applied, Mutation, Put, WriteContext
from statebox.core.secrecy import SecretPolicy
from statebox.core.values import NormalizedValue, sha256_hex

POLICY = SecretPolicy(["custom/vault*"])
VAULT, VAULT2, CLEAR = (
    Keyspace("custom", "vault"),
    Keyspace("custom", "vault2"),
    Keyspace("custom", "x"),
)
OLD, NEW = bytes(range(32)), bytes(range(100, 132))
NOW = 1_800_000_000_000_000_000
CTX = WriteContext(NOW, UpdatedBy(dag_name="app"), 10)


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def put(key: str, data: bytes, **options: object) -> Put:
    return Put(key, NormalizedValue(data, "application/json", sha256_hex(data)), **options)  # type: ignore[arg-type]


def now() -> int:
    return NOW


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    return SqliteBackend(f"sqlite:///{tmp_path / 's.db'}")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "secret.key"
    write_key_file(str(path), [OLD])
    return path


def file_layer(inner: Backend, key_file: Path) -> SealedBackend:
    return SealedBackend(inner, POLICY, {"STATEBOX_SECRET_KEY_FILE": str(key_file)})


def fill(layer: SealedBackend) -> None:
    layer.apply(VAULT, [put("a", b"1"), put("b", b"2", expires_at=NOW + 10**12)], CTX)
    layer.apply(VAULT, [put("a", b"11")], CTX)  # a at version 2
    layer.apply(VAULT, [put("gone", b"3", expires_at=NOW - 1)], CTX)  # expired already
    layer.apply(VAULT2, [put("c", b"4")], CTX)
    layer.apply(CLEAR, [put("d", b"5")], CTX)


def kids(inner: Backend, keyspace: Keyspace) -> dict[str, str | None]:
    entries = inner.scan(keyspace, "", after=None, limit=0, include_values=True, now=NOW)
    return {e.key: sealed_key_id(e.data) for e in entries}


def test_rotation_adds_a_key_and_reseals_every_live_secret_entry(
    inner: Backend, key_file: Path
) -> None:
    layer = file_layer(inner, key_file)
    fill(layer)
    report = rotate(layer, environ=layer.environ, now=now)
    keys = read_key_file(str(key_file))
    assert len(keys) == 2 and keys[1] == OLD  # the new key first, the old one kept
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert report == RotateReport(key_id(keys[0]), 3, 2, (key_id(OLD),))
    assert kids(inner, VAULT) == {"a": key_id(keys[0]), "b": key_id(keys[0])}
    assert kids(inner, VAULT2) == {"c": key_id(keys[0])}
    clear = inner.get(CLEAR, "d", NOW)
    assert clear is not None and clear.version == 1 and clear.data == b"5"  # untouched
    a, b = layer.get(VAULT, "a", NOW), layer.get(VAULT, "b", NOW)
    assert a is not None and (a.version, a.data, a.updated_by) == (3, b"11", ROTATED_BY)
    assert b is not None and (b.version, b.data, b.expires_at) == (2, b"2", NOW + 10**12)
    # History sealed under the old key still opens.
    assert [r.data for r in layer.history(VAULT, "a", 0)] == [b"11", b"11", b"1"]
    again = rotate(layer, new_key=False, environ=layer.environ, now=now)
    assert again.resealed == 0 and again.key_id == report.key_id


def test_a_plain_backend_is_wrapped_and_pages_are_followed(
    inner: Backend, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rotate_module, "PAGE", 2)
    env = {"STATEBOX_SECRET_KEY_FILE": str(key_file), "STATEBOX_SECRET_NAMESPACES": "custom/v*"}
    layer = SealedBackend(inner, SecretPolicy.from_env(env), env)
    for n in range(5):
        layer.apply(Keyspace("custom", f"v{n}"), [put(f"k{i}", b"%d" % i) for i in range(5)], CTX)
    report = rotate(inner, environ=env, now=now)  # the inner backend, wrapped by rotate
    assert (report.resealed, report.keyspaces) == (25, 5)
    for n in range(5):
        assert set(kids(inner, Keyspace("custom", f"v{n}")).values()) == {report.key_id}


def test_entries_stored_in_clear_before_the_namespace_was_secret_are_sealed(
    inner: Backend, key_file: Path
) -> None:
    inner.apply(VAULT, [put("legacy", b'"pw"')], CTX)  # before custom/vault was secret
    layer = file_layer(inner, key_file)
    assert layer.get(VAULT, "legacy", NOW).data == b'"pw"'  # type: ignore[union-attr]
    report = rotate(layer, new_key=False, environ=layer.environ, now=now)
    assert report.resealed == 1 and report.previous_key_ids == ()
    raw = inner.get(VAULT, "legacy", NOW)
    assert raw is not None and raw.content_type == SEALED_CONTENT_TYPE and b"pw" not in raw.data
    assert layer.get(VAULT, "legacy", NOW).data == b'"pw"'  # type: ignore[union-attr]


def test_with_keys_from_the_environment_the_operator_adds_the_key(inner: Backend) -> None:
    layer = SealedBackend(inner, POLICY, {"STATEBOX_SECRET_KEY": b64(OLD)})
    fill(layer)
    with pytest.raises(ConfigurationError) as caught:
        rotate(layer, environ={"STATEBOX_SECRET_KEY": b64(OLD)}, now=now)
    assert "STATEBOX_SECRET_KEY" in str(caught.value) and "--no-new-key" in str(caught.value)
    env = {"STATEBOX_SECRET_KEY": f"{b64(NEW)},{b64(OLD)}"}
    report = rotate(layer, new_key=False, environ=env, now=now)
    assert report == RotateReport(key_id(NEW), 3, 2, (key_id(OLD),))
    assert set(kids(inner, VAULT).values()) == {key_id(NEW)}


def test_the_remote_store_is_rotated_where_its_server_runs() -> None:
    with pytest.raises(ConfigurationError, match="on the server's host"):
        rotate(HttpBackend("http://127.0.0.1:9"), new_key=False)


def test_an_entry_under_a_key_no_longer_held_stops_the_rotation(inner: Backend) -> None:
    SealedBackend(inner, POLICY, {"STATEBOX_SECRET_KEY": b64(OLD)}).apply(
        VAULT, [put("a", b"1")], CTX
    )
    with pytest.raises(SecretKeyError, match="wrong key"):
        rotate(
            inner,
            new_key=False,
            environ={"STATEBOX_SECRET_KEY": b64(NEW), "STATEBOX_SECRET_NAMESPACES": "custom/*"},
            now=now,
        )


class Interrupted(Exception):
    pass


def test_an_interrupted_rotation_is_finished_by_running_it_again(
    inner: Backend, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = file_layer(inner, key_file)
    layer.apply(VAULT, [put(f"k{i}", b"%d" % i) for i in range(10)], CTX)
    real_apply = SealedBackend.apply
    done = [0]

    def apply(self: SealedBackend, *args: object) -> list[Applied]:
        if done[0] == 4:
            raise Interrupted  # the rotating process dies here
        done[0] += 1
        return real_apply(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SealedBackend, "apply", apply)
    with pytest.raises(Interrupted):
        rotate(layer, environ=layer.environ, now=now)
    monkeypatch.setattr(SealedBackend, "apply", real_apply)
    new_id = key_id(read_key_file(str(key_file))[0])
    assert list(kids(inner, VAULT).values()).count(new_id) == 4
    for i in range(10):  # every entry readable meanwhile, under either key
        assert layer.get(VAULT, f"k{i}", NOW).data == b"%d" % i  # type: ignore[union-attr]
    report = rotate(layer, new_key=False, environ=layer.environ, now=now)
    assert (report.key_id, report.resealed) == (new_id, 6)
    assert set(kids(inner, VAULT).values()) == {new_id}


class StaleWriter(MemoryBackend):
    """A store another process writes to with only the old key: ``writes`` times, just
    before the rotation's write of the key ``target`` (a conflict) or at a scan."""

    def __init__(self, target: str, writes: int, at_scan: int = 0) -> None:
        super().__init__()
        self.stale = SealedBackend(self, POLICY, {"STATEBOX_SECRET_KEY": b64(OLD)})
        self.target, self.writes, self.at_scan, self.busy = target, writes, at_scan, False
        self.rotating = False

    def _write_stale(self, key: str) -> None:
        self.busy = True
        try:
            self.stale.apply(VAULT, [put(key, b'"stale"')], CTX)
        finally:
            self.busy = False

    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        hit = any(m.key == self.target for m in mutations)
        if self.rotating and not self.busy and self.writes > 0 and hit:
            self.writes -= 1
            self._write_stale(self.target)
        return super().apply(keyspace, mutations, ctx)

    def scan(self, keyspace: Keyspace, prefix: str, **options: object) -> list[Entry]:
        if self.rotating and self.at_scan > 0:
            self.at_scan -= 1
            self._write_stale("late")
        return super().scan(keyspace, prefix, **options)  # type: ignore[arg-type]


def test_writers_still_sealing_with_the_old_key_are_caught_up(key_file: Path) -> None:
    inner = StaleWriter("a", writes=2, at_scan=1)
    layer = file_layer(inner, key_file)
    layer.apply(VAULT, [put("a", b"1"), put("b", b"2")], CTX)
    inner.rotating = True
    report = rotate(layer, environ=layer.environ, now=now)
    new_id = key_id(read_key_file(str(key_file))[0])
    assert set(kids(inner, VAULT).values()) == {new_id}
    a, late = layer.get(VAULT, "a", NOW), layer.get(VAULT, "late", NOW)
    assert a is not None and a.data == b'"stale"'  # the last writer's value, re-sealed
    assert late is not None and late.data == b'"stale"'
    # a and b, "late" written by the first pass's scan: found by the second pass
    assert report.resealed == 3


def test_a_writer_that_keeps_the_old_key_first_is_reported(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rotate_module, "MAX_PASSES", 3)
    inner = StaleWriter("a", writes=0, at_scan=100)
    layer = file_layer(inner, key_file)
    layer.apply(VAULT, [put("a", b"1")], CTX)
    inner.rotating = True
    with pytest.raises(ConfigurationError, match="after 3 passes") as caught:
        rotate(layer, environ=layer.environ, now=now)
    assert "old key" in str(caught.value)


def test_rotation_keeps_every_history_record(inner: Backend, key_file: Path) -> None:
    """A key with 30 versions kept (its writers' limit is 50) keeps all 30 and gains the
    re-seal's record: the rotation's own limit (10 by default) trims nothing."""
    layer = file_layer(inner, key_file)
    keep_50 = CTX._replace(history_limit=50)
    for n in range(1, 31):
        layer.apply(VAULT, [put("a", b"%d" % n)], keep_50)
    layer.apply(VAULT, [put("short", b"1")], CTX)
    report = rotate(layer, environ=layer.environ, now=now)
    assert report.resealed == 2
    history = layer.history(VAULT, "a", 0)  # every record still opens (OLD is kept)
    assert [r.version for r in history] == list(range(31, 0, -1))
    assert [r.data for r in history] == [b"30"] + [b"%d" % n for n in range(30, 0, -1)]
    assert [r.version for r in layer.history(VAULT, "short", 0)] == [2, 1]
