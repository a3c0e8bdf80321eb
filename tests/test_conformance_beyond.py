"""The conformance suite for SPEC §5 (update, history, TTL, transactions, leases, watch),
on every backend in tests/backends.py. Public API and the fixture's ManualClock only."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from statebox import (
    AsyncStateStore,
    Blob,
    ConflictError,
    DeleteOp,
    FencingError,
    InvalidReferenceError,
    InvalidValueError,
    ManualClock,
    NotFoundError,
    RawJSON,
    RunContext,
    SetOp,
    StateStore,
)

from .backends import (
    conformance_backend_url,  # noqa: F401  (backend_url, sealed variants too)
    new_secret_key,
)
from .conftest import make_store
from .server_util import later

ROOT = Path(__file__).resolve().parent.parent


def text(store: StateStore, key: str, **kw: Any) -> str:
    got = store.get(key, **kw)
    assert got.stored is not None
    return got.stored.text


# --- update ---------------------------------------------------------------------------


def test_update_with_jq_starts_from_the_default_and_reports_the_value(store: StateStore) -> None:
    first = store.update("counter", jq=".n += 1", default={"n": 0})
    assert (first.operation, first.version, first.created, first.value) == (
        "update",
        1,
        True,
        {"n": 1},
    )
    second = store.update("counter", jq=".n += 1", default={"n": 100})  # default unused now
    assert (second.version, second.created, second.value) == (2, False, {"n": 2})
    assert store.get("counter").value == {"n": 2}
    envelope = second.to_json()
    assert envelope.startswith('{"operation":"update","scope":"dag","namespace":"feed-sync",')
    tail = f'"version":2,"hash":"{second.hash}","created":false,"value":{{"n":2}}}}'
    assert envelope.endswith(tail)


def test_update_of_a_missing_key_without_default_starts_from_null(store: StateStore) -> None:
    assert store.update("k", jq="[.]").value == [None]
    assert store.update("m", merge={"a": 1}).value == {"a": 1}


def test_update_keeps_number_literals_it_did_not_touch(store: StateStore) -> None:
    store.set("k", RawJSON('{"a": 1.2300, "big": 9007199254740993, "e": 1E5, "n": 1}'))
    result = store.update("k", jq=".n += 1")
    expected = '{"a":1.2300,"big":9007199254740993,"e":1E5,"n":2}'
    assert result.stored is not None and result.stored.text == expected
    assert text(store, "k") == expected
    store.update("k", merge=RawJSON('{"x": 2.50}'))
    assert text(store, "k") == '{"a":1.2300,"big":9007199254740993,"e":1E5,"n":2,"x":2.50}'
    patched = store.update("k", patch=[{"op": "remove", "path": "/x"}])
    assert patched.stored is not None and patched.stored.text == expected


def test_update_with_a_merge_patch_follows_rfc_7386(store: StateStore) -> None:
    store.set("k", {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}})
    result = store.update(
        "k", merge={"title": "Hello!", "author": {"familyName": None}, "tags": ["x"]}
    )
    assert result.value == {"title": "Hello!", "author": {"givenName": "John"}, "tags": ["x"]}
    assert store.update("k", merge=[1]).value == [1]  # a non-object patch replaces


def test_update_with_a_json_patch_follows_rfc_6902(store: StateStore) -> None:
    store.set("k", {"a": [1, 2], "b": "x"})
    ops = [
        {"op": "test", "path": "/b", "value": "x"},
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "move", "from": "/b", "path": "/c"},
    ]
    assert store.update("k", patch=ops).value == {"a": [1, 2, 3], "c": "x"}
    assert store.update("k", patch=RawJSON('[{"op":"replace","path":"/c","value":1}]')).value == {
        "a": [1, 2, 3],
        "c": 1,
    }


def test_a_failing_json_patch_names_its_operation_and_writes_nothing(store: StateStore) -> None:
    store.set("k", {"a": 1})
    ops = [{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 9}]
    with pytest.raises(InvalidValueError, match="JSON patch operation 1"):
        store.update("k", patch=ops)
    with pytest.raises(InvalidValueError, match="operation 0"):
        store.update("k", patch=[{"op": "remove", "path": "/missing"}])
    got = store.get("k")
    assert (got.version, got.value) == (1, {"a": 1})


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (".a +", "invalid jq expression"),
        (".a.b", "failed: Cannot index number"),
        ("empty", "yielded no value"),
        (".a, .a", "yielded more than one value"),
        ('error("boom")', "failed: boom"),
        ("", "non-empty"),
    ],
)
def test_jq_that_fails_or_does_not_yield_one_value_writes_nothing(
    store: StateStore, expr: str, message: str
) -> None:
    store.set("k", {"a": 1})
    with pytest.raises(InvalidValueError, match=message) as info:
        store.update("k", jq=expr)
    assert info.value.exit_code == 2
    got = store.get("k")
    assert (got.version, got.value) == (1, {"a": 1})


def test_jq_cannot_read_the_environment_or_files(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A well-formed key: the store may be one that seals with it (tests/backends.py).
    secret = new_secret_key()
    monkeypatch.setenv("STATEBOX_SECRET_KEY", secret)
    assert secret not in store.update("k", jq="$ENV | tostring").value
    with pytest.raises(InvalidValueError, match="import directives are not allowed"):
        store.update("k", jq='import "passwd" as $p {search: "/etc"}; $p')


def test_update_needs_exactly_one_transform(store: StateStore) -> None:
    with pytest.raises(InvalidValueError, match=r"exactly one transform.*got none"):
        store.update("k")
    with pytest.raises(InvalidValueError, match="got a jq expression and a merge patch"):
        store.update("k", jq=".", merge={})
    assert not store.get("k").found


def test_update_with_expected_version_does_not_retry(store: StateStore) -> None:
    store.set("k", {"n": 1})
    store.set("k", {"n": 2})
    with pytest.raises(ConflictError, match="expected version 1 but its version is 2"):
        store.update("k", jq=".n += 1", expected_version=1)
    assert store.get("k").value == {"n": 2}
    assert store.update("k", jq=".n += 1", expected_version=2).value == {"n": 3}
    with pytest.raises(ConflictError):
        store.update("new", jq=".", expected_version=1)
    assert store.update("new", jq="1", expected_version=0).version == 1


def test_update_refuses_binary_entries(store: StateStore) -> None:
    store.set("b", Blob(b"\x00\x01", "application/octet-stream"))
    with pytest.raises(InvalidValueError, match="binary"):
        store.update("b", jq=".")


def test_threads_updating_one_key_lose_nothing(store: StateStore) -> None:
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(25):
            store.update("counter", jq=".n += 1", default={"n": 0}, scope="global")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = store.get("counter", scope="global")
    assert (got.value, got.version) == ({"n": 100}, 100)


# --- history and rollback -------------------------------------------------------------


def test_history_lists_versions_newest_first_with_deletions(store: StateStore) -> None:
    store.set("k", "a")
    store.set("k", "b")
    store.delete("k")
    store.set("k", "c")  # re-created: version 1 again
    history = store.history("k", include_values=True)
    rows = [(v.version, v.deleted, v.stored and v.stored.parse()) for v in history.versions]
    assert rows == [(1, False, "c"), (2, True, None), (2, False, "b"), (1, False, "a")]
    envelope = history.as_data()
    assert envelope["operation"] == "history"
    assert envelope["versions"][1]["deleted"] is True
    assert "deleted" not in envelope["versions"][0]
    assert [v.version for v in store.history("k", limit=2).versions] == [1, 2]


@pytest.mark.parametrize("limit", [-1, 1.5, True, "2"])
def test_history_rejects_an_invalid_limit(store: StateStore, limit: Any) -> None:
    store.set("k", 1)
    store.set("k", 2)
    with pytest.raises(InvalidValueError, match="invalid limit"):
        store.history("k", limit=limit)


def test_a_limit_beyond_64_bits_is_out_of_range(store: StateStore) -> None:
    # Every face takes 64-bit integers only (core/params.py), the library too: the same
    # refusal whatever the backend, before any request is sent.
    store.set("k", 1)
    for call in (
        lambda: store.history("k", limit=2**70),
        lambda: store.list(limit=2**70),
        lambda: store.keyspaces(limit=2**63),
        lambda: store.purge_expired(limit=2**70),
    ):
        with pytest.raises(InvalidValueError, match="out of range") as info:
            call()
        assert info.value.params == ("limit",)
    assert [v.version for v in store.history("k", limit=2**63 - 1).versions] == [1]


def test_history_keeps_the_last_n_versions(backend_url: str, clock: ManualClock) -> None:
    with make_store(backend_url, clock=clock, history_limit=3) as small:
        skip_if_history_is_the_servers(small)
        for i in range(1, 7):
            small.set("k", i)
        assert [v.version for v in small.history("k").versions] == [6, 5, 4]
        assert small.get("k", version=4).value == 4
        assert not small.get("k", version=3).found
        with pytest.raises(NotFoundError, match='version 3 of key "k"'):
            small.get("k", version=3, required=True)


def test_history_limit_zero_turns_history_off(backend_url: str, clock: ManualClock) -> None:
    with make_store(backend_url, clock=clock, history_limit=0) as store:
        skip_if_history_is_the_servers(store)
        store.set("k", 1)
        store.set("k", 2)
        store.delete("k")
        assert store.history("k").versions == []
        assert not store.get("k", version=1).found


def skip_if_history_is_the_servers(store: StateStore) -> None:
    if store.backend.capabilities.own_history_limit:
        pytest.skip("the server's --history-limit applies: tests/test_capabilities.py")


def test_get_version_reads_a_past_value(store: StateStore) -> None:
    store.set("k", {"v": 1})
    store.set("k", {"v": 2})
    old = store.get("k", version=1)
    assert (old.found, old.version, old.value) == (True, 1, {"v": 1})
    assert store.get("k", version=2).value == {"v": 2}
    assert not store.get("k", version=9).found


def test_rollback_writes_an_old_value_as_a_new_version(store: StateStore) -> None:
    store.set("k", {"v": "a"})
    store.set("k", {"v": "b"})
    store.set("k", {"v": "c"})
    result = store.rollback("k", 1)
    assert (result.operation, result.version, result.created, result.value) == (
        "rollback",
        4,
        False,
        {"v": "a"},
    )
    assert result.hash == store.get("k", version=1).hash
    assert store.get("k").value == {"v": "a"}
    assert [v.version for v in store.history("k").versions] == [4, 3, 2, 1]
    assert result.to_json().startswith('{"operation":"rollback",')


def test_rollback_is_guarded(store: StateStore) -> None:
    store.set("k", 1)
    store.set("k", 2)
    with pytest.raises(ConflictError, match="expected version 1 but its version is 2"):
        store.rollback("k", 1, expected_version=1)
    assert store.get("k").version == 2
    assert store.rollback("k", 1, expected_version=2).version == 3
    with pytest.raises(NotFoundError, match='version 7 of key "k"'):
        store.rollback("k", 7)
    with pytest.raises(InvalidValueError):
        store.rollback("k", 0)


def test_rollback_of_a_deleted_key_recreates_it(store: StateStore) -> None:
    store.set("k", "kept")
    store.delete("k")
    result = store.rollback("k", 1)
    assert (result.version, result.created, store.get("k").value) == (1, True, "kept")


# --- ttl ------------------------------------------------------------------------------


def test_an_entry_expires_after_its_ttl(store: StateStore, clock: ManualClock) -> None:
    store.set("k", "v", ttl=10)
    clock.advance(9.9)
    assert store.get("k").found
    clock.advance(0.1)
    got = store.get("k", default="gone")
    assert (got.found, got.value) == (False, "gone")


def test_expired_entries_are_missing_for_every_operation(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("a", 1, ttl=5)
    store.set("b", 2, ttl=5)
    store.set("c", 3)
    clock.advance(5)
    assert [e.key for e in store.list().entries] == ["c"]
    diff = store.diff("a", 1, update=False)
    assert (diff.changed, diff.found_previous) == (True, False)
    assert not store.delete("b").deleted
    with pytest.raises(ConflictError, match="does not exist"):
        store.set("a", 9, expected_version=1)
    with pytest.raises(ConflictError, match="does not exist"):
        store.delete("a", expected_version=1)
    assert store.set("a", 9, create_only=True).version == 1
    assert store.set("b", 9, expected_version=0).created
    assert store.update("x", jq=".", default=0).created


def test_update_starts_over_from_the_default_once_expired(
    store: StateStore, clock: ManualClock
) -> None:
    store.update("hits", jq=". + 1", default=0, ttl=60)
    store.update("hits", jq=". + 1")  # keeps the expiry it had
    clock.advance(30)
    assert store.get("hits").value == 2
    clock.advance(30)
    assert not store.get("hits").found
    assert store.update("hits", jq=". + 1", default=0).value == 1


def test_update_with_ttl_moves_the_expiry_and_set_without_ttl_drops_it(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("k", 1, ttl=10)
    clock.advance(8)
    store.update("k", jq=". + 1", ttl=10)
    clock.advance(8)
    assert store.get("k").value == 2
    store.set("k", 3)
    clock.advance(3600)
    assert store.get("k").value == 3


@pytest.mark.parametrize("ttl", [0, -1, "10", True, float("nan")])
def test_invalid_ttls_are_refused(store: StateStore, ttl: Any) -> None:
    with pytest.raises(InvalidValueError, match="invalid ttl"):
        store.set("k", 1, ttl=ttl)
    with pytest.raises(InvalidValueError, match="invalid ttl"):
        store.update("k", jq=".", ttl=ttl)
    assert not store.get("k").found


def test_expired_rows_are_purged_and_history_is_kept(store: StateStore, clock: ManualClock) -> None:
    store.set("a", 1, ttl=1)
    store.set("b", 2, ttl=1)
    store.set("c", 3, ttl=100)
    assert store.purge_expired() == 0
    clock.advance(2)
    assert store.purge_expired() == 2
    assert store.purge_expired() == 0
    assert [v.version for v in store.history("a").versions] == [1]
    assert store.get("c").found


def test_the_engine_purges_expired_rows_as_it_writes(backend_url: str, clock: ManualClock) -> None:
    with make_store(backend_url, clock=clock, purge_every=3) as store:
        store.set("old", 1, ttl=1)
        clock.advance(2)
        store.set("x", 1)
        store.set("x", 2)  # the third write purges
        assert store.purge_expired() == 0


# --- transactions ---------------------------------------------------------------------


def test_a_transaction_applies_every_operation(store: StateStore, clock: ManualClock) -> None:
    store.set("gone", 0)
    store.set("b", "old")
    result = store.transaction(
        [
            {"op": "set", "key": "a", "value": 1, "createOnly": True},
            SetOp("b", "new", expected_version=1),
            {"op": "delete", "key": "gone", "expected_version": 1},
            DeleteOp("never-there"),
            {"op": "set", "key": "t", "value": None, "ttl": 5},
        ]
    )
    assert [(r.to_dict()["operation"], r.key) for r in result.results] == [
        ("set", "a"),
        ("set", "b"),
        ("delete", "gone"),
        ("delete", "never-there"),
        ("set", "t"),
    ]
    data = result.as_data()
    assert data["operation"] == "transaction" and data["namespace"] == "feed-sync"
    assert data["results"][1] == {
        "index": 1,
        "operation": "set",
        "key": "b",
        "version": 2,
        "hash": result.results[1].hash,  # type: ignore[union-attr]
        "created": False,
    }
    assert [r.get("deleted") for r in data["results"][2:4]] == [True, False]
    assert store.get("a").value == 1 and store.get("b").value == "new"
    assert not store.get("gone").found
    assert store.get("t").found and store.get("t").value is None
    clock.advance(5)
    assert not store.get("t").found


def test_a_transaction_with_one_stale_guard_changes_nothing(store: StateStore) -> None:
    store.set("a", 1)
    store.set("b", 1)
    store.set("b", 2)
    store.set("d", "keep")
    ops = [
        {"op": "set", "key": "a", "value": 100, "expected_version": 1},
        {"op": "delete", "key": "d"},
        {"op": "set", "key": "new", "value": True},
        {"op": "set", "key": "b", "value": 100, "expected_version": 1},  # stale: b is at 2
    ]
    with pytest.raises(ConflictError) as info:
        store.transaction(ops)
    assert info.value.index == 3
    assert info.value.current_version == 2
    assert "operation 3" in info.value.message and '"b"' in info.value.message
    assert (store.get("a").value, store.get("a").version) == (1, 1)
    assert (store.get("b").value, store.get("b").version) == (2, 2)
    assert store.get("d").value == "keep"
    assert not store.get("new").found
    assert [v.version for v in store.history("a").versions] == [1]


def test_a_transaction_create_only_conflict_names_the_operation(store: StateStore) -> None:
    store.set("x", 1)
    with pytest.raises(ConflictError, match=r'operation 1 \(set "x"\).*to create it only') as info:
        store.transaction([SetOp("y", 1), SetOp("x", 2, create_only=True)])
    assert info.value.index == 1
    assert not store.get("y").found


def test_operations_on_one_key_in_a_transaction_see_each_other(store: StateStore) -> None:
    result = store.transaction(
        [SetOp("k", 1, expected_version=0), SetOp("k", 2, expected_version=1), DeleteOp("k")]
    )
    assert [getattr(r, "version", None) for r in result.results] == [1, 2, None]
    assert not store.get("k").found
    assert [(v.version, v.deleted) for v in store.history("k").versions] == [
        (2, True),
        (2, False),
        (1, False),
    ]


@pytest.mark.parametrize(
    ("op", "error", "message"),
    [
        ({"op": "set", "key": "k"}, InvalidValueError, '"value" is required'),
        ({"op": "put", "key": "k", "value": 1}, InvalidValueError, '"op" must be'),
        ({"op": "set", "key": "k", "value": 1, "extra": 1}, InvalidValueError, "extra"),
        ({"op": "delete"}, InvalidValueError, '"key" is required'),
        ({"op": "set", "key": "../x", "value": 1}, InvalidReferenceError, "invalid key"),
        ({"op": "set", "key": "k", "value": 1, "ttl": -1}, InvalidValueError, "invalid ttl"),
        ("set k 1", InvalidValueError, "must be an object"),
    ],
)
def test_invalid_operations_are_named_and_nothing_is_written(
    store: StateStore, op: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        store.transaction([{"op": "set", "key": "first", "value": 1}, op])
    assert "operation 1" in str(info.value)
    assert not store.get("first").found


def test_an_empty_transaction_does_nothing(store: StateStore) -> None:
    assert store.transaction([]).as_data()["results"] == []


# --- leases and fencing ---------------------------------------------------------------


def test_lease_tokens_grow_and_a_live_lease_is_exclusive(
    store: StateStore, clock: ManualClock
) -> None:
    first = store.acquire_lease("nightly", 30, holder="run-a")
    assert (first.name, first.holder, first.token) == ("nightly", "run-a", 1)
    assert first.as_data()["operation"] == "lease"
    with pytest.raises(ConflictError, match='held by "run-a"') as info:
        store.acquire_lease("nightly", 30, holder="run-b")
    assert info.value.exit_code == 4
    clock.advance(30)
    second = store.acquire_lease("nightly", 30, holder="run-b")
    assert second.token == 2
    assert store.acquire_lease("other", 30, holder="run-a").token == 1  # per name


def test_a_holder_that_lost_its_lease_cannot_write_with_its_old_token(
    store: StateStore, clock: ManualClock
) -> None:
    old = store.acquire_lease("import", 10, holder="attempt-1")
    store.set("cursor", 1, fencing=old)
    clock.advance(11)  # attempt-1 stalls; its lease expires
    new = store.acquire_lease("import", 10, holder="attempt-2")
    store.set("cursor", 2, fencing=new)
    with pytest.raises(FencingError, match='token 1 of lease "import" is stale') as info:
        store.set("cursor", 99, fencing=old)
    assert info.value.exit_code == 4
    with pytest.raises(FencingError):
        store.set("cursor", 99, fencing=("import", 1))
    with pytest.raises(FencingError):
        store.delete("cursor", fencing=old)
    with pytest.raises(FencingError):
        store.update("cursor", jq=". + 100", fencing=old)
    with pytest.raises(FencingError) as txn:
        store.transaction([SetOp("other", 1), SetOp("cursor", 99, fencing=old)])
    assert txn.value.index == 1
    with pytest.raises(FencingError):
        store.transaction([SetOp("other", 1)], fencing=old)
    got = store.get("cursor")
    assert (got.value, got.version) == (2, 2)
    assert not store.get("other").found
    assert store.update("cursor", jq=". + 1", fencing=new).value == 3


def test_a_fenced_write_after_the_lease_was_released_and_retaken_is_refused(
    store: StateStore,
) -> None:
    lease = store.acquire_lease("job", 60)
    released = store.release_lease(lease)
    assert released.released is True
    assert store.release_lease(lease).released is False  # not ours any more
    again = store.acquire_lease("job", 60)
    assert again.token == lease.token + 1
    with pytest.raises(FencingError):
        store.set("k", 1, fencing=lease)
    assert store.set("k", 1, fencing=again).version == 1


def test_renew_extends_only_a_live_lease_of_its_holder(
    store: StateStore, clock: ManualClock
) -> None:
    lease = store.acquire_lease("job", 10, holder="me")
    clock.advance(8)
    renewed = store.renew_lease(lease)  # for the original 10 s again
    assert renewed.token == lease.token
    assert renewed.expires_at == lease.expires_at + 8_000_000_000
    clock.advance(8)  # past the first expiry, inside the renewed one
    with pytest.raises(ConflictError):
        store.acquire_lease("job", 10, holder="someone-else")
    with pytest.raises(FencingError):
        store.renew_lease("job", 10, token=lease.token, holder="someone-else")
    clock.advance(3)
    with pytest.raises(FencingError, match="expired"):
        store.renew_lease(renewed)
    latest = store.get_lease("job")
    assert latest is not None and latest.holder == "me"


def test_list_leases_lists_the_live_leases_by_the_bytes_of_their_names(
    store: StateStore, clock: ManualClock
) -> None:
    assert store.list_leases() == []
    # Byte order, whatever a database's collation says: "Z" < "a", "-" < "1" < "_",
    # and a non-ASCII name after every ASCII one.
    names = ["job_1", "é-job", "a", "job10", "Z", "job-2"]
    for i, name in enumerate(names):
        store.acquire_lease(name, 30 + i, holder=f"holder-{i}")
    listed = store.list_leases()
    assert [lease.name for lease in listed] == ["Z", "a", "job-2", "job10", "job_1", "é-job"]
    for lease in listed:  # each as get_lease gives it
        assert lease == store.get_lease(lease.name)
        assert lease.as_data()["operation"] == "lease"
    first = listed[0]
    assert (first.action, first.holder, first.token) == ("get", "holder-4", 1)
    assert first.expires_at == clock.now_ns() + 34 * 1_000_000_000


def test_list_leases_leaves_out_expired_and_released_leases(
    store: StateStore, clock: ManualClock
) -> None:
    short = store.acquire_lease("short", 10, holder="a")
    store.acquire_lease("long", 60, holder="b")
    done = store.acquire_lease("done", 60, holder="c")
    assert [lease.name for lease in store.list_leases()] == ["done", "long", "short"]
    assert store.release_lease(done).released is True
    assert [lease.name for lease in store.list_leases()] == ["long", "short"]
    clock.advance(9)
    assert [lease.name for lease in store.list_leases()] == ["long", "short"]
    clock.advance(1)  # expires_at == now: expired
    assert [lease.name for lease in store.list_leases()] == ["long"]
    again = store.acquire_lease("short", 10, holder="d")  # retaken: listed, new token
    assert again.token == short.token + 1
    listed = store.list_leases()
    assert [(lease.name, lease.holder, lease.token) for lease in listed] == [
        ("long", "b", 1),
        ("short", "d", 2),
    ]
    assert store.get_lease("done") is not None  # still known, just not held


def test_list_leases_pages_with_after_and_limit(store: StateStore, clock: ManualClock) -> None:
    for name in ["e", "a", "d", "b", "c"]:
        store.acquire_lease(name, 30, holder="h")
    store.acquire_lease("bb", 5, holder="h")
    clock.advance(5)  # "bb" expired: skipped inside a page, not counted
    page = store.list_leases(limit=2)
    assert [lease.name for lease in page] == ["a", "b"]
    page = store.list_leases(after=page[-1].name, limit=2)
    assert [lease.name for lease in page] == ["c", "d"]
    page = store.list_leases(after=page[-1].name, limit=2)
    assert [lease.name for lease in page] == ["e"]
    assert store.list_leases(after="e", limit=2) == []
    assert [lease.name for lease in store.list_leases(after="b")] == ["c", "d", "e"]
    assert [lease.name for lease in store.list_leases(after="ba")] == ["c", "d", "e"]
    assert [lease.name for lease in store.list_leases(limit=0)] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("limit", [-1, True, "2", 2**64])
def test_list_leases_refuses_an_invalid_limit(store: StateStore, limit: Any) -> None:
    with pytest.raises(InvalidValueError):
        store.list_leases(limit=limit)


def test_the_default_holder_comes_from_the_run_context(store: StateStore) -> None:
    a = store.acquire_lease("x", 5)
    assert a.holder.startswith("feed-sync/run-1/load#")
    store.release_lease(a)
    assert store.acquire_lease("x", 5).holder != a.holder  # a retry is another holder


@pytest.mark.parametrize("fencing", [("job", 0), ("", 1), ("job", "1"), "job", 5])
def test_malformed_fencing_is_refused(store: StateStore, fencing: Any) -> None:
    with pytest.raises(InvalidValueError):
        store.set("k", 1, fencing=fencing)
    assert not store.get("k").found


# --- watch ----------------------------------------------------------------------------


def test_watch_times_out_when_nothing_changes(store: StateStore) -> None:
    store.set("k", 1)
    started = time.monotonic()
    result = store.watch("k", timeout=0.2)
    assert result.timed_out and result.events == []
    assert 0.15 <= time.monotonic() - started < 5
    assert result.as_data() == {
        "operation": "watch",
        "scope": "dag",
        "namespace": "feed-sync",
        "key": "k",
        "events": [],
        "timedOut": True,
    }


def test_watch_sees_a_write_from_another_thread(store: StateStore) -> None:
    store.set("k", {"v": 1})
    writer = later(0.1, lambda: store.set("k", {"v": 2}))
    result = store.watch("k", timeout=10, include_values=True)
    writer.join()
    assert not result.timed_out
    (event,) = result.events
    assert (event.key, event.event, event.previous_version, event.version) == (
        "k",
        "updated",
        1,
        2,
    )
    assert event.value == {"v": 2} and event.hash == store.get("k").hash
    assert event.to_json().startswith(
        '{"operation":"watch","scope":"dag","namespace":"feed-sync","key":"k","event":"updated"'
    )


def test_watch_reports_creation_and_deletion(store: StateStore) -> None:
    writer = later(0.05, lambda: store.set("k", 1))
    (created,) = store.watch("k", timeout=10).events
    writer.join()
    assert (created.event, created.previous_version, created.version) == ("created", 0, 1)
    writer = later(0.05, lambda: store.delete("k"))
    (deleted,) = store.watch("k", timeout=10).events
    writer.join()
    assert (deleted.event, deleted.deleted, deleted.previous_version, deleted.version) == (
        "deleted",
        True,
        1,
        0,
    )
    assert deleted.as_data()["deleted"] is True and "hash" not in deleted.as_data()


def test_watch_past_a_known_version(store: StateStore) -> None:
    for v in range(3):
        store.set("k", v)
    (event,) = store.watch("k", after_version=1, timeout=10).events  # already past: at once
    assert (event.previous_version, event.version) == (1, 3)
    assert store.watch("k", after_version=3, timeout=0.05).timed_out
    (gone,) = store.watch("missing", after_version=2, timeout=10).events
    assert gone.event == "deleted"
    assert store.watch("missing", after_version=0, timeout=0.05).timed_out


def test_watch_a_prefix_ignores_other_keys(store: StateStore) -> None:
    store.set("jobs/a", 1)

    def writes() -> None:
        store.set("other", 1)
        store.set("jobs", 1)  # "jobs" does not start with "jobs/"
        time.sleep(0.1)
        store.set("jobs/b", 1)

    writer = later(0.05, writes)
    result = store.watch(prefix="jobs/", timeout=10)
    writer.join()
    assert [(e.key, e.event) for e in result.events] == [("jobs/b", "created")]
    assert result.as_data()["prefix"] == "jobs/"


def test_watch_a_prefix_after_version_reports_newer_entries_at_once(store: StateStore) -> None:
    store.set("p/a", 1)
    store.set("p/b", 1)
    store.set("p/b", 2)
    store.set("q", 1)
    everything = store.watch(prefix="p/", after_version=0, timeout=10).events
    assert [(e.key, e.event, e.version) for e in everything] == [
        ("p/a", "created", 1),
        ("p/b", "created", 2),
    ]
    newer = store.watch(prefix="p/", after_version=1, timeout=10).events
    assert [(e.key, e.previous_version, e.version) for e in newer] == [("p/b", 1, 2)]


def test_watch_iter_follows_every_change(store: StateStore) -> None:
    def writes() -> None:
        for v in range(1, 4):
            store.set("k", v)
            time.sleep(0.05)
        store.delete("k")

    events = store.watch_iter("k", timeout=10)
    writer = later(0.05, writes)
    seen = []
    for event in events:
        seen.append(event)
        if event.deleted:
            break
    writer.join()
    versions = [e.version for e in seen]
    assert versions[-1] == 0 and versions[-2] == 3
    assert versions[:-1] == sorted(set(versions[:-1]))  # never repeated, never backwards
    assert seen[0].previous_version == 0


def test_watch_iter_stops_at_its_timeout(store: StateStore) -> None:
    started = time.monotonic()
    assert list(store.watch_iter(prefix="", timeout=0.1)) == []
    assert time.monotonic() - started < 5


def test_an_expiry_shows_as_a_deletion_when_the_watch_looks_again(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("k", 1, ttl=5)
    watcher = store.watcher("k")
    clock.advance(5)
    (event,) = watcher.poll(0.05)
    assert event.event == "deleted"


def test_watch_needs_exactly_one_target(store: StateStore) -> None:
    with pytest.raises(InvalidValueError, match="exactly one"):
        store.watch(timeout=0)
    with pytest.raises(InvalidValueError, match="exactly one"):
        store.watch("k", prefix="k", timeout=0)
    with pytest.raises(InvalidValueError, match="after_version"):
        store.watch("k", after_version=-1, timeout=0)
    with pytest.raises(InvalidValueError, match="timeout"):
        store.watch("k", timeout=-1)


WRITER = """
import sys
from statebox import RunContext, open_store
with open_store(sys.argv[1], context=RunContext(dag="elsewhere")) as store:
    store.set("shared/k", {"from": "another process"}, scope="global")
"""


def test_watch_sees_a_write_from_another_process(store: StateStore) -> None:
    if not store.backend.capabilities.cross_process:
        pytest.skip(f"{store.backend.url} lives inside one process")
    watcher = store.watcher(prefix="shared/", scope="global", include_values=True)
    events: list[Any] = []
    watching = threading.Thread(target=lambda: events.extend(watcher.poll(30)))
    watching.start()
    subprocess.run(
        [sys.executable, "-c", WRITER, store.backend.url], cwd=ROOT, check=True, timeout=60
    )
    watching.join()
    (event,) = events
    assert (event.key, event.event, event.value) == (
        "shared/k",
        "created",
        {"from": "another process"},
    )


# --- the async twins ------------------------------------------------------------------


def test_async_twins(store: StateStore, clock: ManualClock) -> None:
    astore = AsyncStateStore(store)

    async def scenario() -> None:
        assert (await astore.update("n", jq=". + 1", default=0)).value == 1
        assert (await astore.update("n", merge=5)).value == 5
        assert (await astore.rollback("n", 1)).value == 1
        txn = await astore.transaction([SetOp("a", 1), DeleteOp("n")])
        assert len(txn.results) == 2
        lease = await astore.acquire_lease("job", 10)
        await astore.renew_lease(lease)
        clock.advance(11)
        other = await astore.acquire_lease("job", 10)
        with pytest.raises(FencingError):
            await astore.set("a", 2, fencing=lease)
        assert (await astore.release_lease(other)).released
        assert (await astore.get_lease("job")) is not None
        store.set("t", 1, ttl=1)
        clock.advance(2)
        assert await astore.purge_expired() == 1

        async def write_soon() -> None:
            await asyncio.sleep(0.1)
            await astore.set("w", 1)
            await asyncio.sleep(0.1)
            await astore.set("w", 2)

        writer = asyncio.create_task(write_soon())
        assert (await astore.watch("w", timeout=10)).events[0].version == 1
        seen = [e.version async for e in astore.watch_iter("w", timeout=0.5)]
        await writer
        assert seen == [2]

    asyncio.run(scenario())


def test_async_update_race(store: StateStore) -> None:
    astore = AsyncStateStore(store)

    async def scenario() -> None:
        await asyncio.gather(
            *(astore.update("c", jq=". + 1", default=0, scope="global") for _ in range(20))
        )

    asyncio.run(scenario())
    assert store.get("c", scope="global").value == 20


def test_with_context_keeps_the_beyond_options(store: StateStore) -> None:
    other = store.with_context(RunContext(dag="x"))
    assert (other.jq_timeout, other.update_attempts, other.purge_every) == (
        store.jq_timeout,
        store.update_attempts,
        store.purge_every,
    )


# --- docs/beyond.md runs --------------------------------------------------------------


def test_the_beyond_doc_examples_run(store: StateStore, clock: ManualClock) -> None:
    doc = (ROOT / "docs" / "beyond.md").read_text()
    blocks = re.findall(r"```(python|json)\n(.*?)```", doc, re.S)
    python = [code for lang, code in blocks if lang == "python"]
    assert len(python) > 5
    namespace: dict[str, Any] = {"store": store, "clock": clock}
    for code in python[1:]:  # the first opens its own store: the fixture's replaces it
        exec(code, namespace)
    assert store.get("cursor").value == {"id": 11}
    for lang, code in blocks:
        if lang == "json":
            assert json.loads(code)["operation"] in ("update", "transaction", "watch")


def test_absurd_durations_are_invalid_values(store: StateStore) -> None:
    from statebox import InvalidValueError

    with pytest.raises(InvalidValueError, match="at most"):
        store.set("k", 1, ttl=1e300)
    with pytest.raises(InvalidValueError, match="at most"):
        store.acquire_lease("l", 1e300)
    assert not store.get("k").found


def test_a_lease_name_with_nul_is_an_invalid_value(store: StateStore) -> None:
    from statebox import InvalidValueError

    with pytest.raises(InvalidValueError, match="NUL"):
        store.acquire_lease("a\x00b", 10)
    with pytest.raises(InvalidValueError, match="NUL"):
        store.set("k", 1, fencing=("a\x00b", 1))
    assert not store.get("k").found
