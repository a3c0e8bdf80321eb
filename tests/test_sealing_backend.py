"""The sealing layer (statebox.backends.sealing, issue #16) at the backend contract, over
memory:// and a real SQLite file: secret values stored sealed and read back, each Put
sealed for exactly the version it gets (batches, guards, expiry), conflicts on the
caller's guards reported as the backend reports them, on the layer's own guards retried,
and everything else passed through."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from statebox.backends.base import Backend, Mutation, WriteContext
from statebox.backends.memory import MemoryBackend
from statebox.backends.sealing import SEALED_CONTENT_TYPE, SealedBackend, _writes
from statebox.backends.sealing.backend import REGISTRY
from statebox.backends.sealing.keyring import key_id
from statebox.backends.sqlite import SqliteBackend
from statebox.core.errors import (
    BackendUnavailableError,
    ConflictError,
    FencingError,
)
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import Applied, Delete, Fence, Put
from statebox.core.secrecy import SecretPolicy
from statebox.core.values import NormalizedValue, sha256_hex

SECRET = Keyspace("custom", "vault")
CLEAR = Keyspace("custom", "plain")
POLICY = SecretPolicy(["custom/vault"])
KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
NOW = 1_800_000_000_000_000_000
JSON = "application/json"


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def env_for(*keys: bytes) -> dict[str, str]:
    return {"STATEBOX_SECRET_KEY": ",".join(b64(k) for k in keys)}


def expected_hash(
    key: bytes, content_type: str, data: bytes, *, entry: str, keyspace: Keyspace = SECRET
) -> str:
    """The keyed hash as docs/secrets.md defines it, computed here independently."""
    hash_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"statebox entry hash"
    ).derive(key)
    address = [keyspace.scope, keyspace.namespace, entry, content_type]
    message = json.dumps(address, separators=(",", ":")).encode() + b"\n" + data
    return hmac.new(hash_key, message, "sha256").hexdigest()


def value(data: bytes, content_type: str = JSON) -> NormalizedValue:
    return NormalizedValue(data, content_type, sha256_hex(data))


def put(key: str, data: bytes = b'{"pw":"hunter2"}', **options: object) -> Put:
    return Put(key, value(data), **options)  # type: ignore[arg-type]


def ctx(now: int = NOW) -> WriteContext:
    return WriteContext(now, UpdatedBy(dag_name="t"), 10)


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        backend: Backend = MemoryBackend()
    else:
        backend = SqliteBackend(f"sqlite:///{tmp_path / 's.db'}")
    yield backend
    backend.close()


@pytest.fixture
def layer(inner: Backend) -> SealedBackend:
    return SealedBackend(inner, POLICY, env_for(KEY_A))


def assert_sealed_at_rest(inner: Backend, keyspace: Keyspace, key: str, plaintext: bytes) -> None:
    raw = inner.get(keyspace, key, NOW)
    assert raw is not None
    assert raw.content_type == SEALED_CONTENT_TYPE
    assert raw.data.startswith(b"SBX1" + bytes.fromhex(key_id(KEY_A)))
    assert plaintext not in raw.data and b"hunter" not in raw.data
    assert raw.hash == hashlib.sha256(raw.data).hexdigest()  # what every backend checks
    for record in inner.history(keyspace, key, 0):
        assert b"hunter" not in record.data


# -- values at rest and back ---------------------------------------------------------------


def test_a_secret_value_is_stored_sealed_and_read_back(
    layer: SealedBackend, inner: Backend
) -> None:
    data = b'{"pw":"hunter2"}'
    [applied] = layer.apply(SECRET, [put("db")], ctx())
    assert applied.previous is None and applied.current is not None
    assert (applied.current.data, applied.current.content_type) == (data, JSON)
    assert applied.current.version == 1
    assert applied.current.hash == expected_hash(KEY_A, JSON, data, entry="db")
    assert applied.current.hash != hashlib.sha256(data).hexdigest()
    assert_sealed_at_rest(inner, SECRET, "db", data)
    got = layer.get(SECRET, "db", NOW)
    assert got is not None and got == applied.current


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "application/octet-stream"])
def test_a_binary_value_keeps_its_content_type(layer: SealedBackend, content_type: str) -> None:
    data = bytes(range(256))
    layer.apply(SECRET, [Put("blob", value(data, content_type))], ctx())
    got = layer.get(SECRET, "blob", NOW)
    assert got is not None and (got.data, got.content_type) == (data, content_type)
    assert got.hash == expected_hash(KEY_A, content_type, data, entry="blob")


def test_a_hash_is_bound_to_its_entry_not_to_its_version(inner: Backend) -> None:
    layer = SealedBackend(inner, SecretPolicy(["custom/vault*"]), env_for(KEY_A))
    layer.apply(SECRET, [put("a", b"1234"), put("guess", b"1234"), put("c", b"1235")], ctx())
    a, guess, c = (layer.get(SECRET, k, NOW) for k in ("a", "guess", "c"))
    assert a is not None and guess is not None and c is not None
    # A writer of another key cannot confirm a guess of "a" by comparing the hashes.
    assert len({a.hash, guess.hash, c.hash}) == 3
    layer.apply(Keyspace("custom", "vault2"), [put("a", b"1234")], ctx())
    elsewhere = layer.get(Keyspace("custom", "vault2"), "a", NOW)
    assert elsewhere is not None and elsewhere.hash != a.hash
    # The same key's value written again hashes alike (watches and diffs see no change).
    layer.apply(SECRET, [put("a", b"9")], ctx())
    layer.apply(SECRET, [put("a", b"1234")], ctx())
    hashes_by_version = {r.version: r.hash for r in layer.history(SECRET, "a", 0)}
    assert hashes_by_version[3] == hashes_by_version[1] == a.hash != hashes_by_version[2]
    other = SealedBackend(inner, POLICY, env_for(KEY_B, KEY_A))
    other.apply(SECRET, [put("d", b"1234")], ctx())
    d = other.get(SECRET, "d", NOW)
    assert d is not None and d.hash != expected_hash(KEY_A, JSON, b"1234", entry="d")
    assert d.hash == expected_hash(KEY_B, JSON, b"1234", entry="d")
    # An entry's hash is that of the key that sealed it: the same under the new keyring.
    again = other.get(SECRET, "c", NOW)
    assert again is not None and again.hash == c.hash


def test_a_keyspace_not_secret_passes_through(
    inner: Backend, tmp_path: Path, layer: SealedBackend
) -> None:
    file_layer = SealedBackend(inner, POLICY, {"STATEBOX_HOME": str(tmp_path / "home")})
    data = b'{"pw":"hunter2"}'
    [applied] = file_layer.apply(CLEAR, [put("db", data)], ctx())
    assert applied.current is not None and applied.current.hash == sha256_hex(data)
    raw = inner.get(CLEAR, "db", NOW)
    assert raw is not None and raw.data == data and raw.content_type == JSON
    assert file_layer.get(CLEAR, "db", NOW) == raw
    assert not (tmp_path / "home").exists()  # no key was needed, none was made
    scanned = file_layer.scan(CLEAR, "", after=None, limit=0, include_values=True, now=NOW)
    assert scanned == [raw]
    assert file_layer.history(CLEAR, "db", 0) == inner.history(CLEAR, "db", 0)


# -- the version each Put is sealed for -------------------------------------------------------


def versions(applied: Sequence[Applied]) -> list[int | None]:
    return [a.current.version if a.current is not None else None for a in applied]


def assert_every_version_opens(layer: SealedBackend, key: str) -> None:
    seen = set()
    for record in layer.history(SECRET, key, 0):
        if not record.deleted:
            assert record.data.startswith(b'{"n":'), record
            assert record.content_type == JSON
            assert record.hash == expected_hash(KEY_A, JSON, record.data, entry=key)
            if record.version not in seen:  # the newest record of a version number
                assert layer.get_version(SECRET, key, record.version) == record
            seen.add(record.version)


def n(i: int) -> bytes:
    return b'{"n":%d}' % i


def test_put_put_delete_put_on_a_missing_key(layer: SealedBackend) -> None:
    batch: list[Mutation] = [put("k", n(1)), put("k", n(2)), Delete("k"), put("k", n(3))]
    applied = layer.apply(SECRET, batch, ctx())
    assert versions(applied) == [1, 2, None, 1]
    got = layer.get(SECRET, "k", NOW)
    assert got is not None and (got.version, got.data) == (1, n(3))
    assert applied[2].previous is not None and applied[2].previous.data == n(2)
    assert_every_version_opens(layer, "k")


def test_put_put_delete_put_on_a_key_at_version_3(layer: SealedBackend) -> None:
    layer.apply(SECRET, [put("k", n(0)), put("k", n(0)), put("k", n(0))], ctx())
    applied = layer.apply(
        SECRET, [put("k", n(1)), put("k", n(2)), Delete("k"), put("k", n(3))], ctx()
    )
    assert versions(applied) == [4, 5, None, 1]
    assert [a.previous.version if a.previous else None for a in applied] == [3, 4, 5, None]
    assert_every_version_opens(layer, "k")


def test_guarded_puts_create_only_and_expected_version(layer: SealedBackend) -> None:
    applied = layer.apply(
        SECRET,
        [put("k", n(1), create_only=True), put("k", n(2)), put("k", n(3), expected_version=2)],
        ctx(),
    )
    assert versions(applied) == [1, 2, 3]
    applied = layer.apply(
        SECRET, [put("k", n(4), expected_version=3), Delete("k", expected_version=4)], ctx()
    )
    assert versions(applied) == [4, None]
    applied = layer.apply(SECRET, [put("k", n(5), expected_version=0), put("k", n(6))], ctx())
    assert versions(applied) == [1, 2]
    assert_every_version_opens(layer, "k")


def test_an_expired_entry_counts_as_missing(layer: SealedBackend) -> None:
    layer.apply(SECRET, [put("k", n(1)), put("k", n(2), expires_at=NOW + 10)], ctx())
    later = NOW + 20
    assert layer.get(SECRET, "k", later) is None
    [applied] = layer.apply(SECRET, [put("k", n(3))], ctx(later))  # the layer guards with 0
    assert versions([applied]) == [1] and applied.previous is None
    got = layer.get(SECRET, "k", later)
    assert got is not None and (got.version, got.data) == (1, n(3))
    layer.apply(SECRET, [put("e", n(1), expires_at=NOW + 10)], ctx())
    [guarded] = layer.apply(SECRET, [put("e", n(2), expected_version=0)], ctx(later))
    assert versions([guarded]) == [1]
    assert_every_version_opens(layer, "k")
    assert_every_version_opens(layer, "e")


# -- conflicts ----------------------------------------------------------------------------------


def test_a_conflict_on_the_callers_guard_keeps_its_index(
    layer: SealedBackend, inner: Backend
) -> None:
    with pytest.raises(ConflictError) as caught:
        layer.apply(SECRET, [put("a"), put("b", expected_version=5)], ctx())
    assert type(caught.value) is ConflictError and caught.value.index == 1
    assert "expected version 5" in caught.value.message
    layer.apply(SECRET, [put("c")], ctx())
    with pytest.raises(ConflictError) as caught:
        layer.apply(SECRET, [put("a"), put("c", create_only=True)], ctx())
    assert caught.value.index == 1 and caught.value.current_version == 1
    assert inner.get(SECRET, "a", NOW) is None  # nothing of either batch


def test_apply_batch_across_a_secret_and_a_clear_keyspace(
    layer: SealedBackend, inner: Backend
) -> None:
    results = layer.apply_batch(
        [(CLEAR, [put("x", n(1)), put("y", n(2))]), (SECRET, [put("a", n(3)), put("a", n(4))])],
        ctx(),
    )
    assert [versions(r) for r in results] == [[1, 1], [1, 2]]
    assert results[1][1].current is not None and results[1][1].current.data == n(4)
    clear = inner.get(CLEAR, "x", NOW)
    assert clear is not None and clear.data == n(1)  # stored as given
    sealed = inner.get(SECRET, "a", NOW)
    assert sealed is not None and sealed.content_type == SEALED_CONTENT_TYPE
    # The flat index of the caller's failing guard, counted across both batches.
    with pytest.raises(ConflictError) as caught:
        layer.apply_batch(
            [
                (CLEAR, [put("x", n(5)), put("z", n(6))]),
                (SECRET, [put("a", n(7)), put("b", n(8), expected_version=7)]),
            ],
            ctx(),
        )
    assert type(caught.value) is ConflictError and caught.value.index == 3
    with pytest.raises(ConflictError) as caught:
        layer.apply_batch(
            [(SECRET, [put("a", n(7))]), (CLEAR, [put("x", n(5), expected_version=9)])], ctx()
        )
    assert caught.value.index == 1
    assert inner.get(CLEAR, "z", NOW) is None
    after = layer.get(SECRET, "a", NOW)
    assert after is not None and after.version == 2


def test_a_fence_failing_on_a_put_the_layer_guarded_is_not_retried(layer: SealedBackend) -> None:
    calls = count_applies(layer)
    with pytest.raises(FencingError) as caught:
        layer.apply(SECRET, [put("a"), put("b", fence=Fence("lease", 3))], ctx())
    assert caught.value.index == 1 and calls == [1]


def count_applies(layer: SealedBackend) -> list[int]:
    calls = [0]
    real_apply, real_batch = layer.inner.apply, layer.inner.apply_batch

    def apply(keyspace: Keyspace, *args: object) -> list[Applied]:
        calls[0] += keyspace != REGISTRY  # not the layer's entry in the store's registry
        return real_apply(keyspace, *args)  # type: ignore[arg-type]

    def apply_batch(*args: object) -> list[list[Applied]]:
        calls[0] += 1
        return real_batch(*args)  # type: ignore[arg-type]

    layer.inner.apply = apply  # type: ignore[method-assign,assignment]
    layer.inner.apply_batch = apply_batch  # type: ignore[method-assign,assignment]
    return calls


class Racing(MemoryBackend):
    """A memory store where another writer writes ``key`` (sealed, through its own layer)
    just before each of the first ``races`` writes: between the layer's read and its
    write, as a writer in another process can. ``calls`` counts the layer's writes."""

    def __init__(self, key: str, races: int) -> None:
        super().__init__()
        self.key, self.races, self.calls = key, races, 0
        self.other = SealedBackend(self, POLICY, env_for(KEY_A))
        self.racing = False

    def _race(self, keyspace: Keyspace) -> None:
        if self.racing:
            return
        self.calls += 1
        if self.races > 0:
            self.races -= 1
            self.racing = True
            try:
                self.other.apply(keyspace, [put(self.key, b'"other"')], ctx())
            finally:
                self.racing = False

    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        self._race(keyspace)
        return super().apply(keyspace, mutations, ctx)

    def apply_batch(
        self, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        self._race(SECRET)
        return super().apply_batch(batches, ctx)


def test_an_unguarded_put_raced_by_another_writer_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_writes, "_pause", lambda attempt: None)
    inner = Racing("k", races=0)
    layer = SealedBackend(inner, POLICY, env_for(KEY_A))
    layer.apply(SECRET, [put("k", n(0))], ctx())
    inner.races, inner.calls = 3, 0
    [applied] = layer.apply(SECRET, [put("k", n(1))], ctx())
    # 3 attempts lost to the other writer (each wrote a version: 1 + 3), then ours.
    assert inner.calls == 4
    assert applied.current is not None and applied.current.version == 5
    assert applied.previous is not None and applied.previous.data == b'"other"'
    got = layer.get(SECRET, "k", NOW)
    assert got is not None and (got.version, got.data) == (5, n(1))
    # The same in a batch across keyspaces.
    inner.races = 2
    results = layer.apply_batch([(CLEAR, [put("x")]), (SECRET, [put("k", n(2))])], ctx())
    assert results[1][0].current is not None and results[1][0].current.version == 8
    assert_every_version_opens_any(layer, "k")


def assert_every_version_opens_any(layer: SealedBackend, key: str) -> None:
    for record in layer.history(SECRET, key, 0):
        assert record.content_type == JSON and not record.data.startswith(b"SBX1")


def test_a_write_that_always_loses_the_race_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_writes, "_pause", lambda attempt: None)
    monkeypatch.setattr(_writes, "ATTEMPTS", 4)
    inner = Racing("k", races=100)
    layer = SealedBackend(inner, POLICY, env_for(KEY_A))
    with pytest.raises(BackendUnavailableError, match="conflicted with other writers 4 times"):
        layer.apply(SECRET, [put("k", n(1))], ctx())


def test_threads_setting_one_secret_key_lose_no_write(tmp_path: Path) -> None:
    """Unguarded sets from many threads, each through the layer over one SQLite file:
    every one is applied, each sealed for the version it got."""
    inner = SqliteBackend(f"sqlite:///{tmp_path / 's.db'}")
    layer = SealedBackend(inner, POLICY, env_for(KEY_A))
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                layer.apply(SECRET, [put("k", b'{"n":%d}' % (t * 100 + i))], ctx())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        got = layer.get(SECRET, "k", NOW)
        assert got is not None and got.version == 200
        history = layer.history(SECRET, "k", 0)
        assert [r.version for r in history] == list(range(200, 190, -1))
        assert_every_version_opens(layer, "k")
    finally:
        inner.close()


# -- results and reads ---------------------------------------------------------------------------


def test_what_a_write_replaced_is_given_opened(layer: SealedBackend) -> None:
    layer.apply(SECRET, [put("k", n(1))], ctx())
    [second] = layer.apply(SECRET, [put("k", n(2))], ctx())
    assert second.previous is not None
    digest = expected_hash(KEY_A, JSON, n(1), entry="k")
    assert (second.previous.data, second.previous.hash) == (n(1), digest)
    [deleted] = layer.apply(SECRET, [Delete("k")], ctx())
    assert deleted.current is None and deleted.previous is not None
    assert deleted.previous.data == n(2)


def test_a_write_over_a_value_sealed_under_a_lost_key_succeeds(inner: Backend) -> None:
    SealedBackend(inner, POLICY, env_for(KEY_A)).apply(SECRET, [put("k", n(1))], ctx())
    only_b = SealedBackend(inner, POLICY, env_for(KEY_B))
    [applied] = only_b.apply(SECRET, [put("k", n(2))], ctx())  # the operator sets it anew
    assert applied.current is not None and applied.current.data == n(2)
    assert applied.previous is not None and applied.previous.data == b""
    got = only_b.get(SECRET, "k", NOW)
    assert got is not None and got.data == n(2)


def test_scan_history_and_versions_are_opened(layer: SealedBackend) -> None:
    layer.apply(SECRET, [put("a", n(1)), put("b", n(2))], ctx())
    layer.apply(SECRET, [put("a", n(3)), Delete("b")], ctx())
    with_values = layer.scan(SECRET, "", after=None, limit=0, include_values=True, now=NOW)
    assert [(e.key, e.version, e.data, e.content_type) for e in with_values] == [
        ("a", 2, n(3), JSON)
    ]
    without = layer.scan(SECRET, "", after=None, limit=0, include_values=False, now=NOW)
    assert [(e.key, e.data, e.content_type, e.hash) for e in without] == [
        ("a", b"", JSON, expected_hash(KEY_A, JSON, n(3), entry="a"))
    ]
    history = layer.history(SECRET, "b", 0)
    assert [(r.version, r.deleted, r.data) for r in history] == [(1, True, b""), (1, False, n(2))]
    # The deletion marker names the hash and content type of the version it deleted.
    assert history[0].hash == history[1].hash == expected_hash(KEY_A, JSON, n(2), entry="b")
    assert history[0].content_type == JSON
    limited = layer.history(SECRET, "b", 1)  # the deleted version read to find them
    assert limited[0].hash == history[1].hash
    record = layer.get_version(SECRET, "a", 1)
    assert record is not None and record.data == n(1)
    assert layer.get_version(SECRET, "a", 9) is None


def test_deletion_markers_name_what_they_deleted_across_recreations(layer: SealedBackend) -> None:
    """Version 1 three times over (delete, re-create): each deletion marker is given the
    content type and keyed hash of the value it deleted, not of another version 1."""
    for i in (1, 2, 3):
        layer.apply(SECRET, [put("b", n(i))], ctx())
        if i < 3:
            layer.apply(SECRET, [Delete("b")], ctx())
    history = layer.history(SECRET, "b", 0)
    assert [(r.version, r.deleted, r.data) for r in history] == [
        (1, False, n(3)),
        (1, True, b""),
        (1, False, n(2)),
        (1, True, b""),
        (1, False, n(1)),
    ]
    hashes = [expected_hash(KEY_A, JSON, n(i), entry="b") for i in (3, 2, 2, 1, 1)]
    assert [r.hash for r in history] == hashes
    assert {r.content_type for r in history} == {JSON}
    # The last marker shown without the value it deleted: that one is read (not the
    # newest version 1, which get_version gives).
    assert [r.hash for r in layer.history(SECRET, "b", 4)] == hashes[:4]
