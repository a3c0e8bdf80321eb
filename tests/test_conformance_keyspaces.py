"""Keyspaces as first-class (issue #13, item 6), on every backend in tests/backends.py:
listing them (counts of live entries, last update, paging), deleting one whole, and
``expiresAt`` in get, list and history where an entry has a TTL."""

from __future__ import annotations

import json

import pytest

from statebox import (
    ConfigurationError,
    InvalidReferenceError,
    InvalidValueError,
    ManualClock,
    StateStore,
)
from statebox.core.clock import format_timestamp

from .backends import conformance_backend_url  # noqa: F401  (backend_url, sealed variants too)


def _rows(store: StateStore, **options: object) -> list[tuple[str, str, int]]:
    """The keyspaces listed, but for the registry of secret keyspaces a sealed store
    keeps (the sealed variants: an entry per keyspace sealed into, docs/secrets.md)."""
    result = store.keyspaces(**options)  # type: ignore[arg-type]
    registry = ("statebox", "secret-keyspaces")
    return [
        (k.scope, k.namespace, k.entries)
        for k in result.keyspaces
        if (k.scope, k.namespace) != registry
    ]


def test_an_empty_store_has_no_keyspaces(store: StateStore) -> None:
    result = store.keyspaces()
    assert list(result.keyspaces) == []
    assert result.to_json() == '{"operation":"keyspaces","keyspaces":[]}'


def test_keyspaces_are_listed_in_byte_order_with_their_live_entries(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("a", 1, scope="global")
    store.set("a", 1, scope="custom", namespace="é")  # U+00E9: after "z" in UTF-8 bytes
    store.set("a", 1, scope="custom", namespace="z")
    store.set("b", 2, scope="custom", namespace="z")
    store.set("a", 1, scope="custom", namespace="Z")
    store.set("a", 1)  # dag / feed-sync
    assert _rows(store) == [
        ("custom", "Z", 1),
        ("custom", "z", 2),
        ("custom", "é", 1),
        ("dag", "feed-sync", 1),
        ("global", "_", 1),
    ]


def test_updated_at_is_the_newest_write_of_the_keyspace(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("a", 1)
    clock.advance(5)
    newest = store.set("b", 1)
    clock.advance(5)
    store.set("c", 1, scope="global")
    info = store.keyspaces(scope="dag").keyspaces
    assert len(info) == 1
    assert info[0].updated_at == store.get("b").updated_at
    assert newest.version == 1
    assert json.loads(store.keyspaces(scope="dag").to_json())["keyspaces"] == [
        {
            "scope": "dag",
            "namespace": "feed-sync",
            "entries": 2,
            "updatedAt": format_timestamp(info[0].updated_at),
        }
    ]


def test_expired_entries_are_not_counted_and_empty_keyspaces_not_listed(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("short", 1, ttl=1)
    store.set("long", 1, ttl=100)
    store.set("gone", 1, scope="global", ttl=1)
    assert _rows(store) == [("dag", "feed-sync", 2), ("global", "_", 1)]
    clock.advance(2)
    assert _rows(store) == [("dag", "feed-sync", 1)]
    store.delete("long")
    assert _rows(store) == []


def test_scope_filter_and_paging(store: StateStore) -> None:
    for namespace in ("a", "b", "c", "d", "e"):
        store.set("k", 1, scope="custom", namespace=namespace)
    store.set("k", 1, scope="global")
    first = store.keyspaces(scope="custom", limit=2)
    assert [k.namespace for k in first.keyspaces] == ["a", "b"]
    assert first.as_data()["next"] == "custom/b"
    assert first.as_data()["scope"] == "custom"
    second = store.keyspaces(scope="custom", limit=2, after=first.as_data()["next"])
    assert [k.namespace for k in second.keyspaces] == ["c", "d"]
    last = store.keyspaces(scope="custom", limit=2, after="custom/d")
    assert [k.namespace for k in last.keyspaces] == ["e"]
    assert "next" not in last.as_data()  # nothing follows: no empty last page
    exact = store.keyspaces(scope="custom", limit=5)
    assert "next" not in exact.as_data()
    # after crosses scopes when no scope is given
    assert _rows(store, after="custom/e") == [("global", "_", 1)]
    assert _rows(store, after="dag/zzz", limit=1) == [("global", "_", 1)]


@pytest.mark.parametrize("after", ["custom", "nope/x", "custom/", "custom/a/b"])
def test_a_bad_after_is_refused(store: StateStore, after: str) -> None:
    with pytest.raises(InvalidReferenceError):
        store.keyspaces(after=after)


def test_a_bad_scope_or_limit_is_refused(store: StateStore) -> None:
    with pytest.raises(InvalidReferenceError):
        store.keyspaces(scope="lease")
    with pytest.raises(InvalidValueError):
        store.keyspaces(limit=-1)


def test_delete_keyspace_removes_every_entry_of_that_keyspace_only(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("a", 1, scope="run")
    store.set("b/c", 2, scope="run")
    store.set("expired", 3, scope="run", ttl=1)
    store.set("a", 1, scope="run", namespace="run-2")
    store.set("a", 1)
    clock.advance(2)
    result = store.delete_keyspace(scope="run")
    assert (result.keyspace.scope, result.keyspace.namespace, result.deleted) == (
        "run",
        "run-1",
        2,
    )
    assert result.to_json() == (
        '{"operation":"deleteKeyspace","scope":"run","namespace":"run-1","deleted":2}'
    )
    assert list(store.list(scope="run").entries) == []
    assert not store.get("a", scope="run").found
    assert store.get("a", scope="run", namespace="run-2").found
    assert store.get("a").found
    assert _rows(store) == [("dag", "feed-sync", 1), ("run", "run-2", 1)]
    # nothing left: deleting again deletes nothing, and is no error
    assert store.delete_keyspace(scope="run").deleted == 0


def test_delete_keyspace_records_each_deletion_in_history(store: StateStore) -> None:
    store.set("a", 1)
    store.set("a", 2)
    store.delete_keyspace()
    versions = store.history("a").versions
    assert [(v.version, v.deleted) for v in versions] == [(2, True), (2, False), (1, False)]
    again = store.set("a", 3)
    assert (again.version, again.created) == (1, True)


def test_delete_keyspace_wakes_a_watcher(store: StateStore) -> None:
    store.set("a", 1)
    watcher = store.watcher("a")
    store.delete_keyspace()
    events = watcher.poll(timeout=5)
    assert [(e.key, e.event) for e in events] == [("a", "deleted")]


# --- the reserved scope statebox ---------------------------------------------------------


def test_the_reserved_scope_statebox_is_a_keyspace_like_any_other(
    store: StateStore, clock: ManualClock
) -> None:
    with pytest.raises(ConfigurationError, match='scope "statebox" requires a namespace'):
        store.set("k", 1, scope="statebox")
    first = store.set("run-1", {"status": "running"}, scope="statebox", namespace="runs")
    assert (first.keyspace.scope, first.keyspace.namespace, first.version) == (
        "statebox",
        "runs",
        1,
    )
    clock.advance(1)
    store.set("run-1", {"status": "succeeded"}, scope="statebox", namespace="runs")
    store.set("run-2", {"status": "failed"}, scope="statebox", namespace="runs")
    store.set("run-1/load/stdout", "hello", scope="statebox", namespace="logs")
    store.set("run-1", {"other": True}, scope="custom", namespace="runs")
    got = store.get("run-1", scope="statebox", namespace="runs")
    assert (got.value, got.version) == ({"status": "succeeded"}, 2)
    listed = store.list(scope="statebox", namespace="runs", include_values=True).entries
    assert [(e.key, e.version) for e in listed] == [("run-1", 2), ("run-2", 1)]
    versions = store.history("run-1", scope="statebox", namespace="runs").versions
    assert [v.version for v in versions] == [2, 1]
    assert _rows(store, scope="statebox") == [("statebox", "logs", 1), ("statebox", "runs", 2)]
    assert ("custom", "runs", 1) in _rows(store)
    assert store.delete("run-2", scope="statebox", namespace="runs").deleted
    assert store.delete_keyspace(scope="statebox", namespace="runs").deleted == 1
    assert list(store.list(scope="statebox", namespace="runs").entries) == []
    assert _rows(store, scope="statebox") == [("statebox", "logs", 1)]
    # the same key in another scope is untouched
    assert store.get("run-1", scope="custom", namespace="runs").value == {"other": True}
    result = store.transaction(
        [{"op": "set", "key": "a", "value": 1}, {"op": "set", "key": "b", "value": 2}],
        scope="statebox",
        namespace="txn",
    )
    assert [op.version for op in result.results] == [1, 1]
    assert store.get("b", scope="statebox", namespace="txn").value == 2


# --- expiresAt ---------------------------------------------------------------------------


def test_expires_at_appears_only_where_there_is_a_ttl(
    store: StateStore, clock: ManualClock
) -> None:
    plain = store.set("plain", {"a": 1})
    timed = store.set("timed", {"a": 1}, ttl=90)
    expires = store.get("timed").expires_at
    assert expires is not None
    stamp = format_timestamp(expires)
    # get: byte-identical without a TTL, expiresAt after hash with one
    assert store.get("plain").to_json() == (
        '{"operation":"get","scope":"dag","namespace":"feed-sync","key":"plain","found":true,'
        f'"version":1,"hash":"{plain.hash}","value":{{"a":1}}}}'
    )
    assert store.get("timed").to_json() == (
        '{"operation":"get","scope":"dag","namespace":"feed-sync","key":"timed","found":true,'
        f'"version":1,"hash":"{timed.hash}","expiresAt":"{stamp}","value":{{"a":1}}}}'
    )
    listed = {e["key"]: e for e in store.list().as_data()["entries"]}
    assert "expiresAt" not in listed["plain"]
    assert listed["timed"]["expiresAt"] == stamp
    assert "expiresAt" not in store.history("plain").as_data()["versions"][0]
    assert store.history("timed").as_data()["versions"][0]["expiresAt"] == stamp


def test_history_shows_expires_at_on_the_current_version_only(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("k", 1, ttl=60)
    store.set("k", 2, ttl=120)
    versions = store.history("k").as_data()["versions"]
    assert "expiresAt" in versions[0]
    assert "expiresAt" not in versions[1]  # superseded: it no longer expires
    store.set("k", 3)  # a set without ttl drops it
    assert "expiresAt" not in store.history("k").as_data()["versions"][0]
    assert "expiresAt" not in store.get("k").as_data()
