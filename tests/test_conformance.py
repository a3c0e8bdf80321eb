"""The conformance suite (SPEC §1-4): every rule, on every backend in tests/backends.py."""

from __future__ import annotations

import json

import pytest

from statebox import (
    MISSING,
    Blob,
    ConfigurationError,
    ConflictError,
    InvalidReferenceError,
    InvalidValueError,
    ManualClock,
    NotFoundError,
    RawJSON,
    RunContext,
    StateStore,
    ValueTooLargeError,
)

from .backends import (
    conformance_backend_url,  # noqa: F401  (backend_url, sealed variants too)
    entry_hash,
)

# --- addressing ----------------------------------------------------------------------


def test_default_scope_is_dag_with_the_workflow_name(store: StateStore) -> None:
    result = store.set("cursors/feed", {"last_id": 1})
    assert (result.keyspace.scope, result.keyspace.namespace) == ("dag", "feed-sync")


@pytest.mark.parametrize(
    ("scope", "namespace"),
    [("dag", "feed-sync"), ("root_dag", "nightly"), ("run", "run-1"), ("global", "_")],
)
def test_scope_default_namespaces(store: StateStore, scope: str, namespace: str) -> None:
    store.set("k", scope, scope=scope)
    got = store.get("k", scope=scope)
    assert got.keyspace.namespace == namespace
    assert got.value == scope
    # the same entry, addressed with the explicit namespace
    assert store.get("k", scope=scope, namespace=namespace).value == scope


def test_scopes_are_separate_keyspaces(store: StateStore) -> None:
    store.set("k", 1, scope="dag")
    store.set("k", 2, scope="global")
    store.set("k", 3, scope="custom", namespace="feed-sync")
    assert [
        store.get("k", scope=s, namespace=n).value
        for s, n in [("dag", None), ("global", None), ("custom", "feed-sync")]
    ] == [1, 2, 3]


def test_root_dag_defaults_to_the_dag_for_a_top_level_run(store: StateStore) -> None:
    top = store.with_context(RunContext(dag="solo", run_id="r"))
    assert top.set("k", 1, scope="root_dag").keyspace.namespace == "solo"


def test_explicit_namespace_overrides_every_scope(store: StateStore) -> None:
    for scope in ("dag", "root_dag", "run", "global", "custom"):
        assert store.set("k", 1, scope=scope, namespace="other").keyspace.namespace == "other"


def test_custom_scope_requires_a_namespace(store: StateStore) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        store.set("k", 1, scope="custom")


@pytest.mark.parametrize(
    ("scope", "variable"),
    [("dag", "STATEBOX_DAG"), ("root_dag", "STATEBOX_ROOT_DAG"), ("run", "STATEBOX_RUN_ID")],
)
def test_missing_context_names_the_variable(store: StateStore, scope: str, variable: str) -> None:
    bare = store.with_context(RunContext())
    with pytest.raises(ConfigurationError, match=variable):
        bare.get("k", scope=scope)
    assert bare.set("k", 1, scope="global").keyspace.namespace == "_"


@pytest.mark.parametrize("scope", ["DAG", "Global", "workflow", "", "dag2"])
def test_unknown_scope_is_an_invalid_reference(store: StateStore, scope: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid scope"):
        store.get("k", scope=scope)


def test_whitespace_is_trimmed(store: StateStore) -> None:
    store.set("  cursors/feed \t", 1, scope=" global ", namespace="  ns ")
    assert store.get("cursors/feed", scope="global", namespace="ns").value == 1
    assert [e.key for e in store.list(" cur ", scope="global", namespace="ns").entries] == [
        "cursors/feed"
    ]


@pytest.mark.parametrize(
    "key", ["", " ", "/a", "a/", "a//b", "./a", "a/.", "a/../b", "..", ".", "a\\b"]
)
def test_invalid_keys_are_rejected_by_every_operation(store: StateStore, key: str) -> None:
    for call in (
        lambda: store.get(key),
        lambda: store.set(key, 1),
        lambda: store.diff(key, 1),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidReferenceError, match="invalid key"):
            call()


def test_error_names_the_offending_key(store: StateStore) -> None:
    with pytest.raises(InvalidReferenceError, match=r'invalid key "\.\./bad"'):
        store.set("../bad", 1)


@pytest.mark.parametrize("namespace", ["", "  ", "a/b", "a\\b", ".", ".."])
def test_invalid_namespaces(store: StateStore, namespace: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid namespace"):
        store.set("k", 1, scope="custom", namespace=namespace)


def test_unusual_but_valid_names_work(store: StateStore) -> None:
    odd = ["Cursor/CON:<latest>", "ünï/cödé", "a b", "a.b/..c", "x:y*z?", "emoji/😀", "a\x00b"]
    for key in odd:
        store.set(key, key, scope="custom", namespace="Daily:Agent <1>")
    for key in odd:
        assert store.get(key, scope="custom", namespace="Daily:Agent <1>").value == key
    listed = store.list(scope="custom", namespace="Daily:Agent <1>").entries
    assert [e.key for e in listed] == sorted(odd, key=lambda k: k.encode())


def test_keys_are_case_sensitive_and_hierarchy_does_not_collide(store: StateStore) -> None:
    for key in ("a", "A", "a/b", "a/B"):
        store.set(key, key)
    assert [store.get(k).value for k in ("a", "A", "a/b", "a/B")] == ["a", "A", "a/b", "a/B"]


@pytest.mark.parametrize("prefix", ["/a", "a\\", "a//", "a/../", "..", "./"])
def test_invalid_prefixes(store: StateStore, prefix: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid prefix"):
        store.list(prefix)


# --- values ----------------------------------------------------------------------------


def test_values_are_normalized_and_hashed(store: StateStore) -> None:
    text = '{ "b": [1.2300, 1E5, 9007199254740993, -0], "a": "<&>", "a": "last" }'
    result = store.set("v", RawJSON(text))
    expected = b'{"a":"last","b":[1.2300,1E5,9007199254740993,-0]}'
    digest = entry_hash(store, expected, key="v")  # SHA-256, keyed where the store seals
    assert result.hash == digest
    got = store.get("v")
    assert got.stored is not None and got.stored.data == expected
    assert got.to_json().endswith(f',"hash":"{digest}","value":{expected.decode()}}}')


def test_identical_values_have_identical_hashes_whatever_their_layout(store: StateStore) -> None:
    # One key written three times: a sealed store's keyed hash is bound to the key too.
    a = store.set("a", RawJSON('{"x": 1, "y": [true, null]}'))
    b = store.set("a", RawJSON('{\n  "y": [true,null],\n  "x": 1\n}\n'))
    c = store.set("a", {"y": [True, None], "x": 1})
    assert a.hash == b.hash == c.hash == entry_hash(store, b'{"x":1,"y":[true,null]}', key="a")


def test_one_and_one_point_zero_are_different(store: StateStore) -> None:
    assert store.set("a", RawJSON("1")).hash != store.set("b", RawJSON("1.0")).hash


def test_more_than_one_value_is_invalid_and_writes_nothing(store: StateStore) -> None:
    store.set("k", 1)
    with pytest.raises(InvalidValueError, match="more than one JSON value"):
        store.set("k", RawJSON("1 2"))
    got = store.get("k")
    assert (got.version, got.value) == (1, 1)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "NaN", "{'a':1}", "01", '"\x01"'])
def test_invalid_json_is_rejected(store: StateStore, text: str) -> None:
    with pytest.raises(InvalidValueError, match="invalid JSON"):
        store.set("k", RawJSON(text))
    assert not store.get("k").found


def test_size_limit_on_input_and_after_normalization(store: StateStore) -> None:
    store.set("k", "ok")
    raw = '"' + "<" * 174_763 + '"'
    assert len(raw.encode()) < 1_048_576
    with pytest.raises(ValueTooLargeError, match=r"value too large: 1048580 bytes exceeds 1048576"):
        store.set("k", RawJSON(raw))
    big = '"' + "a" * 1_048_575 + '"'
    with pytest.raises(ValueTooLargeError, match=r"value too large: 1048577 bytes exceeds 1048576"):
        store.set("k", RawJSON(big))
    exactly = '"' + "a" * 1_048_574 + '"'
    assert store.set("k", RawJSON(exactly)).version == 2
    assert store.get("k").version == 2


def test_json_null_is_a_value(store: StateStore) -> None:
    result = store.set("k", None)
    got = store.get("k")
    assert got.found and got.value is None and result.hash == entry_hash(store, b"null", key="k")
    assert got.to_json().endswith('"value":null}')


def test_binary_entries_keep_bytes_and_content_type(store: StateStore) -> None:
    data = bytes(range(256)) * 10
    result = store.set("files/blob", Blob(data, "application/gzip"))
    assert result.hash == entry_hash(store, data, "application/gzip", key="files/blob")
    got = store.get("files/blob")
    assert got.stored is not None
    assert (got.stored.data, got.stored.content_type) == (data, "application/gzip")
    assert got.value == data
    listed = store.list("files/", include_values=True).entries[0]
    assert listed.stored is not None and listed.stored.data == data


def test_binary_limit_is_configurable(backend_url: str, clock: ManualClock) -> None:
    from .conftest import make_store

    with make_store(backend_url, clock=clock, binary_limit=100) as small:
        small.set("b", Blob(b"x" * 100, "text/plain"))
        with pytest.raises(ValueTooLargeError, match="101 bytes exceeds 100"):
            small.set("b", Blob(b"x" * 101, "text/plain"))
        assert small.get("b").version == 1


# --- versions and optimistic concurrency ----------------------------------------------


def test_versions_count_every_write(store: StateStore, clock: ManualClock) -> None:
    first = store.set("k", {"a": 1})
    assert (first.version, first.created) == (1, True)
    created_at = store.get("k").created_at
    clock.advance(1.5)
    second = store.set("k", {"a": 1})  # identical value: still a new version
    assert (second.version, second.created, second.hash) == (2, False, first.hash)
    got = store.get("k")
    assert got.created_at == created_at
    assert got.updated_at == created_at + 1_500_000_000


def test_delete_then_recreate_restarts_at_version_one(
    store: StateStore, clock: ManualClock
) -> None:
    store.set("k", 1)
    store.set("k", 2)
    old_created = store.get("k").created_at
    assert store.delete("k").deleted
    clock.advance(1)
    again = store.set("k", 3)
    assert (again.version, again.created) == (1, True)
    assert store.get("k").created_at > old_created


@pytest.mark.parametrize(("expected", "ok"), [(0, True), (1, False), (-1, False), (7, False)])
def test_expected_version_on_a_missing_key(store: StateStore, expected: int, ok: bool) -> None:
    if ok:
        assert store.set("k", 1, expected_version=expected).version == 1
    else:
        with pytest.raises(ConflictError) as info:
            store.set("k", 1, expected_version=expected)
        assert info.value.current_version == 0
        assert not store.get("k").found


@pytest.mark.parametrize(
    ("expected", "ok"), [(2, True), (0, False), (1, False), (3, False), (-2, False)]
)
def test_expected_version_on_an_existing_key(store: StateStore, expected: int, ok: bool) -> None:
    store.set("k", "v1")
    store.set("k", "v2")
    if ok:
        assert store.set("k", "v3", expected_version=expected).version == 3
    else:
        with pytest.raises(ConflictError, match="expected version"):
            store.set("k", "v3", expected_version=expected)
        got = store.get("k")
        assert (got.version, got.value) == (2, "v2")


def test_create_only(store: StateStore) -> None:
    assert store.set("k", 1, create_only=True).created
    with pytest.raises(ConflictError, match="already exists"):
        store.set("k", 2, create_only=True)
    # create_only is checked before expected_version
    with pytest.raises(ConflictError, match="already exists"):
        store.set("k", 2, create_only=True, expected_version=1)
    assert store.get("k").value == 1


def test_updated_by_records_the_run_context(store: StateStore) -> None:
    store.set("k", 1)
    got = store.get("k")
    assert got.updated_by.dag_name == "feed-sync"
    assert got.updated_by.dag_run_id == "run-1"
    assert got.updated_by.step_name == "load"
    other = store.with_context(RunContext(dag="feed-sync", run_id="run-2", step="save"))
    other.set("k", 2)
    got = store.get("k")
    assert (got.updated_by.dag_run_id, got.updated_by.step_name) == ("run-2", "save")


def test_timestamps_are_rfc3339_utc(store: StateStore, clock: ManualClock) -> None:
    clock.advance(0.123456789)
    store.set("k", 1)
    entry = store.list().to_dict()["entries"][0]
    assert entry["createdAt"] == "2026-01-01T00:00:00.123456789Z"
    clock.advance(0.876543211)
    store.set("k", 2)
    entry = store.list().to_dict()["entries"][0]
    assert entry["updatedAt"] == "2026-01-01T00:00:01Z"


# --- get -------------------------------------------------------------------------------


def test_get_found_envelope(store: StateStore) -> None:
    store.set("cursors/feed", {"last_id": 123})
    digest = entry_hash(store, b'{"last_id":123}', key="cursors/feed")
    assert store.get("cursors/feed").to_json() == (
        '{"operation":"get","scope":"dag","namespace":"feed-sync","key":"cursors/feed",'
        f'"found":true,"version":1,"hash":"{digest}","value":{{"last_id":123}}}}'
    )


def test_get_missing_envelopes(store: StateStore) -> None:
    head = '{"operation":"get","scope":"dag","namespace":"feed-sync","key":"nope","found":false'
    assert store.get("nope").to_json() == head + "}"
    assert store.get("nope", default=None).to_json() == head + ',"value":null}'
    assert store.get("nope", default={"last_id": 0}).to_json() == head + ',"value":{"last_id":0}}'
    assert store.get("nope", default=RawJSON("1.50")).to_json() == head + ',"value":1.50}'
    assert store.get("nope", default=MISSING).value is None


def test_required_wins_over_default(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match='"nope" not found'):
        store.get("nope", required=True, default={"x": 1})
    store.set("nope", 1)
    assert store.get("nope", required=True).value == 1


def test_get_default_is_normalized_and_validated(store: StateStore) -> None:
    with pytest.raises(InvalidValueError):
        store.get("nope", default=RawJSON("{"))


# --- set -------------------------------------------------------------------------------


def test_set_envelope(store: StateStore) -> None:
    first = store.set("cursors/feed", {"last_id": 123}).to_json()
    digest = entry_hash(store, b'{"last_id":123}', key="cursors/feed")
    assert first == (
        '{"operation":"set","scope":"dag","namespace":"feed-sync","key":"cursors/feed",'
        f'"version":1,"hash":"{digest}","created":true}}'
    )
    assert '"version":2' in store.set("cursors/feed", {"last_id": 123}).to_json()


def test_envelope_strings_are_raw_utf8_but_values_keep_go_escapes(store: StateStore) -> None:
    line = store.set("ключ<1>", {"t": "<é>"}, scope="custom", namespace="ns&co").to_json()
    assert '"namespace":"ns&co","key":"ключ<1>"' in line
    got = store.get("ключ<1>", scope="custom", namespace="ns&co").to_json()
    assert got.endswith('"value":{"t":"\\u003cé\\u003e"}}')


# --- diff ------------------------------------------------------------------------------


def test_diff_on_a_missing_key_writes(store: StateStore) -> None:
    result = store.diff("snap", {"count": 1})
    digest = entry_hash(store, b'{"count":1}', key="snap")
    assert result.to_json() == (
        '{"operation":"diff","scope":"dag","namespace":"feed-sync","key":"snap",'
        f'"changed":true,"foundPrevious":false,"version":1,"hash":"{digest}",'
        '"current":{"count":1}}'
    )
    assert store.get("snap").version == 1


def test_diff_unchanged_reports_the_stored_entry(store: StateStore) -> None:
    store.set("snap", {"count": 1})
    result = store.diff("snap", RawJSON('{ "count" : 1 }'))
    digest = entry_hash(store, b'{"count":1}', key="snap")
    assert result.to_json() == (
        '{"operation":"diff","scope":"dag","namespace":"feed-sync","key":"snap",'
        f'"changed":false,"foundPrevious":true,"previousVersion":1,"version":1,"hash":"{digest}",'
        '"previous":{"count":1},"current":{"count":1}}'
    )
    assert store.get("snap").version == 1


def test_diff_changed_writes_a_new_version(store: StateStore) -> None:
    store.set("snap", {"count": 1})
    result = store.diff("snap", {"count": 2})
    assert (result.changed, result.previous_version, result.version) == (True, 1, 2)
    assert result.hash == entry_hash(store, b'{"count":2}', key="snap")
    assert '"previous":{"count":1},"current":{"count":2}}' in result.to_json()
    assert store.get("snap").value == {"count": 2}


def test_diff_without_update_writes_nothing(store: StateStore) -> None:
    missing = store.diff("snap", {"count": 1}, update=False)
    assert missing.to_json() == (
        '{"operation":"diff","scope":"dag","namespace":"feed-sync","key":"snap",'
        '"changed":true,"foundPrevious":false,"current":{"count":1}}'
    )
    assert not store.get("snap").found
    store.set("snap", {"count": 1})
    changed = store.diff("snap", {"count": 2}, update=False)
    digest = entry_hash(store, b'{"count":1}', key="snap")
    assert (changed.changed, changed.version, changed.hash) == (True, 1, digest)
    assert store.get("snap").value == {"count": 1}


def test_diff_checks_expected_version_before_changed(store: StateStore) -> None:
    with pytest.raises(ConflictError):
        store.diff("snap", 1, expected_version=3, update=False)
    store.set("snap", 1)
    with pytest.raises(ConflictError):
        store.diff("snap", 1, expected_version=5)  # unchanged, but the guard fails
    assert store.diff("snap", 2, expected_version=1).version == 2


def test_diff_null_value(store: StateStore) -> None:
    result = store.diff("k", None)
    assert result.changed and result.to_json().endswith('"current":null}')


# --- delete ----------------------------------------------------------------------------


def test_delete_envelopes(store: StateStore) -> None:
    store.set("cursors/feed", 1)
    head = '{"operation":"delete","scope":"dag","namespace":"feed-sync","key":"cursors/feed"'
    assert store.delete("cursors/feed").to_json() == head + ',"deleted":true}'
    assert store.delete("cursors/feed").to_json() == head + ',"deleted":false}'
    assert not store.get("cursors/feed").found


def test_delete_with_expected_version(store: StateStore) -> None:
    assert not store.delete("k", expected_version=0).deleted
    with pytest.raises(ConflictError):
        store.delete("k", expected_version=1)
    store.set("k", 1)
    store.set("k", 2)
    with pytest.raises(ConflictError):
        store.delete("k", expected_version=1)
    assert store.get("k").version == 2
    assert store.delete("k", expected_version=2).deleted


# --- list ------------------------------------------------------------------------------


def test_list_envelope(store: StateStore, clock: ManualClock) -> None:
    store.set("cursors/feed", {"last_id": 1})
    clock.advance(3600)
    store.set("cursors/feed", {"last_id": 2})
    digest = entry_hash(store, b'{"last_id":2}', key="cursors/feed")
    line = store.list("cursors/").to_json()
    assert line == (
        '{"operation":"list","scope":"dag","namespace":"feed-sync","prefix":"cursors/",'
        '"entries":[{"scope":"dag","namespace":"feed-sync","key":"cursors/feed","version":2,'
        f'"hash":"{digest}","createdAt":"2026-01-01T00:00:00Z",'
        '"updatedAt":"2026-01-01T01:00:00Z"}]}'
    )
    with_values = store.list("cursors/", include_values=True).to_json()
    assert with_values.endswith('"updatedAt":"2026-01-01T01:00:00Z","value":{"last_id":2}}]}')


def test_list_empty(store: StateStore) -> None:
    assert store.list().to_json() == (
        '{"operation":"list","scope":"dag","namespace":"feed-sync","entries":[]}'
    )


def test_list_prefix_is_a_plain_byte_prefix(store: StateStore) -> None:
    for key in ("cursor", "cursors/api", "cursors/feed", "cur", "cup", "d", "curt"):
        store.set(key, 1)
    assert [e.key for e in store.list("cur").entries] == [
        "cur",
        "cursor",
        "cursors/api",
        "cursors/feed",
        "curt",
    ]
    assert [e.key for e in store.list("cursors/").entries] == ["cursors/api", "cursors/feed"]
    assert [e.key for e in store.list("cursors").entries] == ["cursors/api", "cursors/feed"]


def test_list_orders_by_bytes(store: StateStore) -> None:
    keys = ["b", "a", "B", "é", "z", "a/b", "a-b", "~", "\u00ff", "\uffff", "😀"]
    for key in keys:
        store.set(key, 1)
    assert [e.key for e in store.list().entries] == sorted(keys, key=lambda k: k.encode())


def test_list_limit_and_after_page_through(store: StateStore) -> None:
    keys = [f"k/{i:03d}" for i in range(25)]
    for key in reversed(keys):
        store.set(key, key)
    assert [e.key for e in store.list(limit=0).entries] == keys
    pages, after = [], None
    while True:
        page = store.list("k/", limit=10, after=after).entries
        if not page:
            break
        pages.append([e.key for e in page])
        after = page[-1].key
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [k for page in pages for k in page] == keys
    # after a key outside the prefix range
    assert [e.key for e in store.list("k/", after="a").entries] == keys
    assert store.list("k/", after="z").entries == []


def test_list_does_not_cross_keyspaces(store: StateStore) -> None:
    store.set("k", 1, scope="custom", namespace="a")
    store.set("k", 1, scope="custom", namespace="ab")
    store.set("k", 1, scope="global")
    assert [
        e.namespace for e in [x.keyspace for x in store.list(scope="custom", namespace="a").entries]
    ] == ["a"]


def test_list_rejects_a_negative_limit(store: StateStore) -> None:
    with pytest.raises(InvalidValueError, match="limit"):
        store.list(limit=-1)


def test_as_data_round_trips_the_envelope(store: StateStore) -> None:
    store.set("k", {"x": [1, 2]})
    assert store.get("k").as_data()["value"] == {"x": [1, 2]}
    assert json.loads(store.list(include_values=True).to_json())["entries"][0]["value"] == {
        "x": [1, 2]
    }


# --- a failed write leaves the previous version intact --------------------------------


def test_failed_writes_leave_the_previous_version(store: StateStore) -> None:
    store.set("k", {"v": 1})
    failures = [
        lambda: store.set("k", RawJSON("{bad")),
        lambda: store.set("k", 2, expected_version=9),
        lambda: store.set("k", 2, create_only=True),
        lambda: store.set("k", RawJSON('"' + "x" * 1_048_576 + '"')),
        lambda: store.diff("k", 3, expected_version=0),
        lambda: store.delete("k", expected_version=5),
    ]
    for fail in failures:
        with pytest.raises((InvalidValueError, ConflictError)):
            fail()
    got = store.get("k")
    assert (got.version, got.value) == (1, {"v": 1})
