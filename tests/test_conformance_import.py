"""``import_keys`` (issue 19: statebox load and copy) on every backend of tests/backends.py,
the sealed variants too: whole keys written verbatim, all or nothing, with the outcomes
created, same, conflict and replaced."""

from __future__ import annotations

import hashlib
import threading

import pytest

from statebox import InvalidRequestError, ManualClock, StateStore
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import (
    IMPORT_CONFLICT,
    IMPORT_CREATED,
    IMPORT_REPLACED,
    IMPORT_SAME,
    Entry,
    HistoryRecord,
    KeyImport,
)

from .backends import (
    conformance_backend_url,  # noqa: F401  (backend_url, sealed variants too)
    entry_hash,
)

KS = Keyspace("custom", "imported")
T0 = 1_700_000_000_123_456_789  # ns, with every sub-second digit set
WHO = UpdatedBy(dag_name="feed", dag_run_id="run-7", step_name="load", principal="ci")
OTHER = UpdatedBy(dag_name="other", attempt_id="a-1")
JSON = "application/json"


def record(key: str, version: int, data: bytes, *, ct: str = JSON, at: int = 0) -> HistoryRecord:
    return HistoryRecord(
        key,
        version,
        hashlib.sha256(data).hexdigest(),
        data,
        ct,
        T0 + at,
        T0 + 1000 * version + at,
        WHO if version % 2 else OTHER,
    )


def deletion(of: HistoryRecord, at: int) -> HistoryRecord:
    return of._replace(data=b"", updated_at=of.updated_at + at, updated_by=OTHER, deleted=True)


def entry(of: HistoryRecord, expires_at: int | None = None) -> Entry:
    return Entry(
        of.key,
        of.version,
        of.hash,
        of.data,
        of.content_type,
        of.created_at,
        of.updated_at,
        of.updated_by,
        expires_at,
    )


def live_item(key: str, *values: bytes, expires_at: int | None = None) -> KeyImport:
    """A key written len(values) times (values oldest first), with all its history."""
    history = tuple(record(key, n, v) for n, v in reversed(list(enumerate(values, 1))))
    return KeyImport(key, entry(history[0], expires_at), history)


def as_read(store: StateStore, item: Entry | HistoryRecord) -> Entry | HistoryRecord:
    """``item`` as ``store`` reads it back: its hash keyed where the store seals."""
    return item._replace(
        hash=entry_hash(store, item.data, item.content_type, KS, key=item.key)
        if not isinstance(item, HistoryRecord) or not item.deleted
        else item.hash
    )


def read_back(store: StateStore, key: str) -> KeyImport:
    now = store.clock.now_ns()
    return KeyImport(key, store.backend.get(KS, key, now), tuple(store.backend.history(KS, key, 0)))


def expected(store: StateStore, item: KeyImport) -> KeyImport:
    history: list[Entry | HistoryRecord] = []
    for position, rec in enumerate(item.history):
        if rec.deleted:  # a deletion reads with the hash of the version it deleted
            deleted = next(r for r in item.history[position + 1 :] if r.version == rec.version)
            rec = rec._replace(hash=as_read(store, deleted).hash)
            history.append(rec)
        else:
            history.append(as_read(store, rec))
    current = None if item.current is None else as_read(store, item.current)
    return KeyImport(item.key, current, tuple(history))  # type: ignore[arg-type]


# --- created and same -------------------------------------------------------------------


def test_a_new_key_is_created_verbatim_and_reads_back_exactly(store: StateStore) -> None:
    expiry = store.clock.now_ns() + 3600 * 10**9
    items = [
        live_item("cursor", b'{"at":1}', b'{"at":2}', b"12345678901234567890.50"),
        live_item("with/ttl", b'"soon"', expires_at=expiry),
        KeyImport(
            "blob",
            entry(record("blob", 4, b"\x00\xffbin", ct="application/octet-stream")),
            (record("blob", 4, b"\x00\xffbin", ct="application/octet-stream"),),
        ),
        KeyImport("bare", entry(record("bare", 9, b"[]"))),  # no history kept
    ]
    assert store.import_keys(KS, items) == [IMPORT_CREATED] * 4
    for item in items:
        assert read_back(store, item.key) == expected(store, item)
    got = store.backend.get_version(KS, "cursor", 2)
    assert got == as_read(store, items[0].history[1])
    # The engine reads them as any entry.
    assert store.get("cursor", scope="custom", namespace="imported").version == 3
    # Imported again: nothing to do.
    assert store.import_keys(KS, items) == [IMPORT_SAME] * 4
    assert read_back(store, "cursor") == expected(store, items[0])


def test_a_deleted_key_carries_its_history_and_is_same_again(store: StateStore) -> None:
    v1, v2 = record("gone", 1, b"1"), record("gone", 2, b"2")
    item = KeyImport("gone", None, (deletion(v2, 5), v2, v1))
    assert store.import_keys(KS, [item]) == [IMPORT_CREATED]
    assert store.backend.get(KS, "gone", store.clock.now_ns()) is None
    assert read_back(store, "gone") == expected(store, item)
    assert store.backend.get_version(KS, "gone", 1) == as_read(store, v1)
    assert store.import_keys(KS, [item]) == [IMPORT_SAME]
    # Another history of the deleted key is something else.
    other = KeyImport("gone", None, (deletion(v1, 5), v1))
    assert store.import_keys(KS, [other]) == [IMPORT_CONFLICT]
    assert read_back(store, "gone") == expected(store, item)


def test_a_key_written_again_after_its_deletion_keeps_both_lives(store: StateStore) -> None:
    # Deleted at version 2, then written again: it began again at version 1 (SPEC: delete
    # and re-create restarts the versions), so 1 follows 2 in its history.
    v1, v2 = record("again", 1, b"1"), record("again", 2, b"2")
    reborn = record("again", 1, b'"new"', at=50_000)
    item = KeyImport("again", entry(reborn), (reborn, deletion(v2, 10), v2, v1))
    assert store.import_keys(KS, [item]) == [IMPORT_CREATED]
    assert read_back(store, "again") == expected(store, item)
    assert store.import_keys(KS, [item]) == [IMPORT_SAME]


def test_an_expired_row_is_replaced_as_if_missing(store: StateStore, clock: ManualClock) -> None:
    short = KeyImport("k", entry(record("k", 3, b'"old"'), clock.now_ns() + 10**9))
    assert store.import_keys(KS, [short]) == [IMPORT_CREATED]
    clock.advance(2)
    fresh = live_item("k", b'"new"')
    assert store.import_keys(KS, [fresh]) == [IMPORT_CREATED]
    assert read_back(store, "k") == expected(store, fresh)


# --- conflict and replace ---------------------------------------------------------------


def test_a_key_holding_something_else_conflicts_unless_replaced(store: StateStore) -> None:
    store.set("k", {"mine": True}, scope="custom", namespace="imported")
    store.set("k", {"mine": 2}, scope="custom", namespace="imported")
    before = read_back(store, "k")
    theirs = live_item("k", b'{"theirs":1}')
    untouched = live_item("fresh", b"1")
    assert store.import_keys(KS, [theirs, untouched]) == [IMPORT_CONFLICT, IMPORT_CREATED]
    assert read_back(store, "k") == before
    assert store.import_keys(KS, [theirs, untouched], replace=True) == [
        IMPORT_REPLACED,
        IMPORT_SAME,
    ]
    assert read_back(store, "k") == expected(store, theirs)  # the old history is gone
    # A later write goes on from the imported version, and keeps history as usual.
    assert store.set("k", 5, scope="custom", namespace="imported").version == 2
    assert [r.version for r in store.backend.history(KS, "k", 0)] == [2, 1]


def test_the_same_version_with_another_value_conflicts(store: StateStore) -> None:
    assert store.import_keys(KS, [live_item("k", b"1")]) == [IMPORT_CREATED]
    assert store.import_keys(KS, [live_item("k", b"2")]) == [IMPORT_CONFLICT]
    # A deleted key imported onto a live one is a conflict too.
    v1 = record("k", 1, b"1")
    assert store.import_keys(KS, [KeyImport("k", None, (deletion(v1, 1), v1))]) == [IMPORT_CONFLICT]
    assert store.import_keys(KS, [KeyImport("k", None, (deletion(v1, 1), v1))], replace=True) == [
        IMPORT_REPLACED
    ]
    assert store.backend.get(KS, "k", store.clock.now_ns()) is None


# --- validation: nothing written --------------------------------------------------------


def _bad_items() -> dict[str, KeyImport]:
    v1, v2, v3 = record("bad", 1, b"1"), record("bad", 2, b"2"), record("bad", 3, b"3")
    return {
        "other key": KeyImport("bad", entry(v2), (v2, record("elsewhere", 1, b"1"))),
        "version 0": KeyImport("bad", entry(v1._replace(version=0))),
        "history oldest first": KeyImport("bad", entry(v3), (v2, v3)),
        "twice": live_item("good", b"3"),
        "not JSON": KeyImport("bad", entry(record("bad", 1, b"{nope"))),
        "NaN": KeyImport("bad", entry(record("bad", 1, b"[1, NaN]"))),
        "Infinity in history": KeyImport("bad", entry(v2), (v2, record("bad", 1, b"-Infinity"))),
        "invalid key": KeyImport("a//b", entry(record("a//b", 1, b"1"))),
    }


@pytest.mark.parametrize("problem", list(_bad_items()))
def test_an_invalid_item_anywhere_writes_nothing(store: StateStore, problem: str) -> None:
    token = store.backend.change_token(KS)
    batch = [live_item("good", b"1"), live_item("also", b"2"), _bad_items()[problem]]
    with pytest.raises(InvalidRequestError):
        store.import_keys(KS, batch)
    for key in ("good", "also"):
        assert read_back(store, key) == KeyImport(key, None, ())
    assert store.backend.change_token(KS) == token


# --- watchers -----------------------------------------------------------------------------


def test_an_import_moves_the_change_token_and_wakes_a_watcher(store: StateStore) -> None:
    token = store.backend.change_token(KS)
    seen: list[int] = []
    waiter = threading.Thread(
        target=lambda: seen.append(store.backend.wait_for_change(KS, token, 10))
    )
    waiter.start()
    assert store.import_keys(KS, [live_item("k", b"1")]) == [IMPORT_CREATED]
    waiter.join(15)
    assert seen and seen[0] != token
    assert store.backend.change_token(KS) != token


def test_hashes_are_recomputed_from_the_values(store: StateStore) -> None:
    """A dump of a secret keyspace carries hashes keyed by its store: each value gets the
    hash of its bytes here, and a deletion the new hash of the version it deleted."""
    v1 = record("k", 1, b'"x"')
    keyed = v1._replace(hash="f" * 64)
    item = KeyImport("k", None, (deletion(keyed, 2), keyed))
    assert store.import_keys(KS, [item]) == [IMPORT_CREATED]
    assert read_back(store, "k") == expected(store, KeyImport("k", None, (deletion(v1, 2), v1)))
    assert store.import_keys(KS, [item]) == [IMPORT_SAME]


def test_a_replaced_key_keeps_only_the_given_history(store: StateStore) -> None:
    assert store.import_keys(KS, [live_item("k", b"1", b"2")]) == [IMPORT_CREATED]
    bare = KeyImport("k", entry(record("k", 7, b"7")))  # imported without its history
    assert store.import_keys(KS, [bare], replace=True) == [IMPORT_REPLACED]
    assert read_back(store, "k") == expected(store, bare)


# --- dump: selecting and resuming at any namespace ----------------------------------------


@pytest.mark.parametrize("name", ["a", ".x", "b c", "feed"])
def test_a_dump_selects_and_resumes_at_any_namespace(store: StateStore, name: str) -> None:
    # A dump starts listing keyspaces just before the one it selects or resumes in: a
    # name one character shorter, which is not always a valid namespace ("" or "." or
    # "b " that a server trims), and a remote store's server refuses an invalid one.
    from statebox.transfer import DumpPosition, dump_records

    names = ("0", name, name + "z", "~")
    for namespace in names:
        for key in ("k1", "k2"):
            store.set(key, key, scope="custom", namespace=namespace)

    def listed(**options: object) -> list[tuple[str, str]]:
        records = dump_records(store, scope="custom", **options)  # type: ignore[arg-type]
        return [(r.namespace, r.key) for r in records]

    assert listed(namespace=name) == [(name, "k1"), (name, "k2")]
    resumed = listed(after=DumpPosition("custom", name, "k1"))
    later = sorted((n for n in names if n.encode() > name.encode()), key=str.encode)
    assert resumed == [(name, "k2")] + [(n, k) for n in later for k in ("k1", "k2")]
