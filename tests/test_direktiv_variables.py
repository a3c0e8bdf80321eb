"""Direktiv's variables on a real SQLite file store (runner/direktiv/variables.py).

Encoding and decoding follow Direktiv v0.10's getter.go / setter.go; deletion is
null-only (statebox's rule, documented); writes are guarded by the versions the instance
read, all or nothing across scopes in one transaction (``transaction_across``).
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import StateStore, open_store
from statebox.core.values import Blob
from statebox.runner.direktiv.errors import (
    INVALID_BASE64,
    INVALID_KEY,
    INVALID_SCOPE,
    INVALID_VALUE,
    VAR_CONFLICT,
    DirektivError,
    VarConflict,
)
from statebox.runner.direktiv.variables import (
    SCOPES,
    Variables,
    VarWrite,
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with open_store(url) as s:
        yield s


def instance(store: StateStore, name: str = "i1", workflow: str = "wf") -> Variables:
    return Variables(store, workflow=workflow, instance_id=name)


def set_one(v: Variables, scope: str, key: str, value: Any, mime: Any = None) -> None:
    v.write([v.plan_set(scope, key, value, mime)])


# -- scopes ------------------------------------------------------------------------------


def test_scopes_map_to_statebox_keyspaces(store: StateStore) -> None:
    assert SCOPES == {"instance": "run", "workflow": "dag", "namespace": "global"}
    a = instance(store, "run-a", "counter")
    set_one(a, "instance", "x", 1)
    set_one(a, "workflow", "x", 2)
    set_one(a, "namespace", "x", 3)
    assert store.get("x", scope="run", namespace="run-a").value == 1
    assert store.get("x", scope="dag", namespace="counter").value == 2
    assert store.get("x", scope="global").value == 3
    # Another instance of the same workflow: its own instance scope, the same others.
    b = instance(store, "run-b", "counter")
    assert [b.get(s, "x") for s in ("instance", "workflow", "namespace")] == [None, 2, 3]
    # Another workflow: only the namespace scope is shared.
    c = instance(store, "run-c", "other")
    assert [c.get(s, "x") for s in ("instance", "workflow", "namespace")] == [None, None, 3]


def test_system_scope(store: StateStore) -> None:
    v = instance(store, "inst-42")
    assert v.get("system", "instance") == "inst-42"
    first, second = v.get("system", "uuid"), v.get("system", "uuid")
    assert first != second and uuid.UUID(first).version == 4
    epoch = v.get("system", "epoch")
    assert isinstance(epoch, int) and abs(epoch - time.time()) < 5
    with pytest.raises(DirektivError) as info:
        v.get("system", "nope")
    assert not info.value.catchable
    with pytest.raises(DirektivError) as info:
        v.plan_set("system", "x", 1)
    assert info.value.code == INVALID_SCOPE


# "abc\n": a name is matched whole (Python's "$" matches before a final newline).
@pytest.mark.parametrize("key", ["", "1abc", "a-", "a b", "a/b", "ä", 5, None, "abc\n"])
def test_keys_follow_direktivs_name_rule(store: StateStore, key: Any) -> None:
    v = instance(store)
    for call in (lambda: v.get("workflow", key), lambda: v.plan_set("workflow", key, 1)):
        with pytest.raises(DirektivError) as info:
            call()
        assert info.value.code == INVALID_KEY and info.value.catchable


def test_names_the_rule_allows(store: StateStore) -> None:
    v = instance(store)
    for key in ("a", "A1", "a.b-c_d9", "x.y"):
        set_one(v, "workflow", key, key)
        assert v.get("workflow", key) == key


def test_unknown_scope(store: StateStore) -> None:
    with pytest.raises(DirektivError) as info:
        instance(store).get("file", "x")
    assert info.value.code == INVALID_SCOPE


# -- MIME types, as Direktiv encodes and decodes them --------------------------------------


def test_json_values_round_trip(store: StateStore) -> None:
    v = instance(store)
    value = {"list": [1, "two", None, True], "n": 1.5}
    set_one(v, "workflow", "j", value)
    assert v.get("workflow", "j") == value
    assert v.read_raw("workflow", "j") == (
        b'{"list":[1,"two",null,true],"n":1.5}',
        "application/json",
    )


def test_a_yaml_given_object_with_a_json_mime_type_is_a_json_entry(store: StateStore) -> None:
    v = instance(store)
    write = v.plan_set("workflow", "y", {"name": "x", "tags": ["a"]}, "application/json")
    assert write == VarWrite(
        "workflow", "y", {"name": "x", "tags": ["a"]}, mime_type="application/json"
    )
    v.write([write])
    assert v.get("workflow", "y") == {"name": "x", "tags": ["a"]}


def test_text_plain_stores_the_text(store: StateStore) -> None:
    v = instance(store)
    set_one(v, "workflow", "t", "hello world", "text/plain")
    assert v.read_raw("workflow", "t") == (b"hello world", "text/plain")
    # Direktiv's getter: not JSON, so the base64 of the bytes ...
    assert v.get("workflow", "t") == base64.b64encode(b"hello world").decode()
    # ... and text that is JSON reads as that JSON.
    set_one(v, "workflow", "t", "42", "text/plain; charset=utf-8")
    assert v.read_raw("workflow", "t") == (b"42", "text/plain; charset=utf-8")
    assert v.get("workflow", "t") == 42
    # A non-string is written as Go's fmt.Sprint writes it.
    set_one(v, "workflow", "t", {"b": 1, "a": [1.5, None]}, "text/plain")
    assert v.read_raw("workflow", "t") == (b"map[a:[1.5 <nil>] b:1]", "text/plain")


def test_octet_stream_stores_the_decoded_bytes(store: StateStore) -> None:
    v = instance(store)
    raw = bytes(range(256))
    set_one(v, "workflow", "b", base64.b64encode(raw).decode(), "application/octet-stream")
    assert v.read_raw("workflow", "b") == (raw, "application/octet-stream")
    assert v.get("workflow", "b") == base64.b64encode(raw).decode()
    # Bytes that are JSON read as JSON; Go's decoder skips line breaks in base64.
    encoded = base64.b64encode(b'{"a": 1}').decode()
    set_one(v, "workflow", "b", encoded[:4] + "\r\n" + encoded[4:], "application/octet-stream")
    assert v.get("workflow", "b") == {"a": 1}
    # A non-string: its JSON, stored as binary.
    set_one(v, "workflow", "b", [1, 2], "application/octet-stream")
    assert v.read_raw("workflow", "b") == (b"[1,2]", "application/octet-stream")
    assert v.get("workflow", "b") == [1, 2]


@pytest.mark.parametrize("bad", ["not base64!", "abc", "YQ==YQ==", "YQ"])
def test_invalid_base64_is_refused_before_anything_is_written(store: StateStore, bad: str) -> None:
    v = instance(store)
    with pytest.raises(DirektivError) as info:
        v.plan_set("workflow", "b", bad, "application/octet-stream")
    assert info.value.code == INVALID_BASE64 and not info.value.catchable
    assert v.read_raw("workflow", "b") is None


def test_the_literal_mime_type_decides(store: StateStore) -> None:
    # Direktiv compares the mimeType as written, not its evaluated value.
    v = instance(store)
    write = v.plan_set(
        "workflow", "b", "aGk=", "application/octet-stream", mime_literal="jq(.mime)"
    )
    assert write.value == "aGk=" and write.mime_type == "application/octet-stream"


def test_binary_entries_decode_as_direktiv_reads_them(store: StateStore) -> None:
    v = instance(store)
    cases: list[tuple[bytes, Any]] = [
        (b"", None),
        (b"  [1, 2] ", [1, 2]),
        (b'"s"', "s"),
        (b"NaN", base64.b64encode(b"NaN").decode()),
        (b"\xff\xfe", base64.b64encode(b"\xff\xfe").decode()),
        (b"{", base64.b64encode(b"{").decode()),
        (b"1e400", base64.b64encode(b"1e400").decode()),
        (b'"a\xffb"', "a\ufffdb"),
    ]
    for data, expected in cases:
        v.write_raw([("namespace", "raw", data, "application/x-thing")])
        assert v.get("namespace", "raw") == expected, data


def test_write_raw_keeps_the_content_type(store: StateStore) -> None:
    v = instance(store)
    v.write_raw([("instance", "a", b"x", ""), ("workflow", "b", b"y", "text/csv")])
    assert v.read_raw("instance", "a") == (b"x", "application/octet-stream")
    assert v.read_raw("workflow", "b") == (b"y", "text/csv")
    assert v.read_raw("workflow", "missing") is None


# -- deletion: null only ---------------------------------------------------------------------


def test_null_deletes(store: StateStore) -> None:
    v = instance(store)
    set_one(v, "workflow", "k", 5)
    write = v.plan_set("workflow", "k", None)
    assert write.delete
    v.write([write])
    assert v.read_raw("workflow", "k") is None
    v.write([v.plan_set("workflow", "never", None)])  # deleting a missing one is fine


@pytest.mark.parametrize("value", [0, "", {}, [], False])
def test_empty_values_are_stored_not_deleted(store: StateStore, value: Any) -> None:
    # Direktiv v0.8+ deletes on 0, "", {} and []; statebox keeps them (only null deletes).
    v = instance(store)
    set_one(v, "workflow", "k", value)
    assert v.read_raw("workflow", "k") is not None
    assert v.get("workflow", "k") == value


def test_empty_text_is_stored_and_reads_as_null(store: StateStore) -> None:
    v = instance(store)
    set_one(v, "workflow", "k", "", "text/plain")
    assert v.read_raw("workflow", "k") == (b"", "text/plain")
    assert v.get("workflow", "k") is None


def test_a_value_over_the_limit_is_refused_with_nothing_written(url: str) -> None:
    with open_store(url, json_limit=100) as small:
        v = instance(small)
        with pytest.raises(DirektivError) as info:
            v.write([v.plan_set("instance", "a", 1), v.plan_set("workflow", "b", "x" * 200)])
        assert info.value.code == INVALID_VALUE
        assert v.read_raw("instance", "a") is None


# -- guards ----------------------------------------------------------------------------------


def test_reads_guard_later_writes(store: StateStore) -> None:
    a, b = instance(store, "a"), instance(store, "b")
    assert a.get("workflow", "counter") is None  # read missing: guarded by "no entry"
    set_one(b, "workflow", "other", 1)
    set_one(a, "workflow", "other", 2)  # never read by a: unguarded, no conflict
    set_one(a, "workflow", "counter", 1)
    set_one(a, "workflow", "counter", 2)  # the guard moved to a's own write: no conflict
    assert b.get("workflow", "counter") == 2
    set_one(b, "workflow", "counter", 3)
    with pytest.raises(VarConflict) as info:
        set_one(a, "workflow", "counter", 3)
    assert info.value.code == VAR_CONFLICT and info.value.catchable
    assert info.value.keys == [("workflow", "counter")]
    assert "version 2" in info.value.message and "version 3" in info.value.message
    # Reading again moves the guard: the retry succeeds.
    assert a.get("workflow", "counter") == 3
    set_one(a, "workflow", "counter", 4)
    assert b.get("workflow", "counter") == 4


def test_unread_variables_are_written_unguarded(store: StateStore) -> None:
    a, b = instance(store, "a"), instance(store, "b")
    set_one(b, "workflow", "free", 1)
    set_one(a, "workflow", "free", 2)  # a never read it: last writer wins
    assert b.get("workflow", "free") == 2


def test_a_conflict_leaves_every_scope_unchanged(store: StateStore) -> None:
    a, b = instance(store, "a"), instance(store, "b")
    set_one(a, "instance", "x", "old")
    set_one(a, "namespace", "n", "old")
    a.get("workflow", "counter")
    set_one(b, "workflow", "counter", 10)
    with pytest.raises(VarConflict):
        a.write(
            [
                a.plan_set("instance", "x", "new"),
                a.plan_set("instance", "fresh", 1),
                a.plan_set("workflow", "counter", 1),
                a.plan_set("namespace", "n", "new"),
            ]
        )
    assert a.get("instance", "x") == "old"
    assert a.get("instance", "fresh") is None
    assert a.get("workflow", "counter") == 10
    assert a.get("namespace", "n") == "old"


def _spy(v: Variables) -> list[list[tuple[Any, Any, list[Any]]]]:
    """Record the parts of each ``transaction_across`` call of ``v``'s store; a
    per-keyspace ``transaction`` fails the test."""
    real = v.store.transaction_across
    calls: list[list[tuple[Any, Any, list[Any]]]] = []

    def across(parts: Any, **kwargs: Any) -> Any:
        listed = [(scope, namespace, list(ops)) for scope, namespace, ops in parts]
        calls.append(listed)
        return real(listed, **kwargs)

    def one_keyspace(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a setter's variables are written in one transaction_across")

    v.store.transaction_across = across  # type: ignore[method-assign]
    v.store.transaction = one_keyspace  # type: ignore[method-assign]
    return calls


def _racing(store: StateStore, action: Any, *, times: int = 1) -> None:
    """Run ``action`` just before each of the next ``times`` writes reach ``store``'s
    backend (``apply`` or ``apply_batch``; the action's own writes excepted): another
    writer landing after an instance read its variables, before its write lands — the
    place where only the write itself can find the conflict."""
    backend = store.backend
    state = {"fired": 0, "busy": False}

    def hook(name: str) -> None:
        real = getattr(backend, name)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            if not state["busy"] and state["fired"] < times:
                state["busy"] = True
                try:
                    action()
                finally:
                    state["busy"] = False
                state["fired"] += 1
            return real(*args, **kwargs)

        setattr(backend, name, hooked)

    hook("apply")
    hook("apply_batch")


def test_a_write_over_three_scopes_is_one_transaction(store: StateStore) -> None:
    a = instance(store, "a")
    a.get("workflow", "w")
    calls = _spy(a)
    a.write(
        [
            a.plan_set("namespace", "n", 3),
            a.plan_set("workflow", "w", 2),
            a.plan_set("instance", "i", 1),
            a.plan_set("instance", "gone", None),
        ]
    )
    assert len(calls) == 1
    (parts,) = calls
    assert [(scope, namespace) for scope, namespace, _ops in parts] == [
        ("run", None),
        ("dag", None),
        ("global", None),
    ]
    # The variable read is guarded by the version read (0: missing); the others are not.
    guards = {op.key: op.expected_version for _s, _n, ops in parts for op in ops}
    assert guards == {"i": None, "gone": None, "w": 0, "n": None}
    assert [a.get(s, k) for s, k in [("instance", "i"), ("workflow", "w"), ("namespace", "n")]] == [
        1,
        2,
        3,
    ]


def test_a_conflict_in_the_namespace_part_writes_nothing_anywhere(store: StateStore) -> None:
    a, other = instance(store, "a"), instance(store, "other")
    set_one(a, "instance", "kept", "before")
    set_one(a, "workflow", "w", "before")
    a.get("namespace", "counter")  # guarded: version 0
    # The other instance writes it after a's read, just before a's write: only the
    # write itself can find the conflict.
    _racing(store, lambda: set_one(other, "namespace", "counter", 99))
    with pytest.raises(VarConflict) as info:
        a.write(
            [
                a.plan_set("namespace", "counter", 1),
                a.plan_set("workflow", "w", "after"),
                a.plan_set("instance", "kept", None),
                a.plan_set("instance", "new", {"x": 1}),
            ]
        )
    assert info.value.keys == [("namespace", "counter")]
    assert "this instance read it missing, it is at version 1" in info.value.message
    # Nothing of it was ever written: not written and undone, the versions never moved.
    kept = store.get("kept", scope="run", namespace="a")
    assert (kept.value, kept.version) == ("before", 1)
    assert a.read_raw("instance", "new") is None
    assert store.get("new", scope="run", namespace="a").version == 0
    w = store.get("w", scope="dag", namespace="wf")
    assert (w.value, w.version) == ("before", 1)
    assert a.read_raw("namespace", "counter") == (b"99", "application/json")


def test_a_conflict_names_every_guarded_variable_that_changed(store: StateStore) -> None:
    a, other = instance(store, "a"), instance(store, "other")
    a.get("instance", "i")
    a.get("workflow", "w")
    a.get("namespace", "n")

    def meanwhile() -> None:
        store.set("w", 1, scope="dag", namespace="wf")
        set_one(other, "namespace", "n", 1)

    _racing(store, meanwhile)
    with pytest.raises(VarConflict) as info:
        a.write(
            [
                a.plan_set(s, k, 5)
                for s, k in [("instance", "i"), ("workflow", "w"), ("namespace", "n")]
            ]
        )
    assert info.value.keys == [("workflow", "w"), ("namespace", "n")]
    assert a.read_raw("instance", "i") is None


def test_a_race_on_an_unguarded_variable_is_no_conflict(store: StateStore) -> None:
    a, other = instance(store, "a"), instance(store, "other")
    set_one(a, "instance", "x", 0)
    _racing(store, lambda: set_one(other, "workflow", "free", "theirs"))
    # Never read by a: unguarded, the last writer wins.
    a.write([a.plan_set("instance", "x", 1), a.plan_set("workflow", "free", "ours")])
    assert a.get("workflow", "free") == "ours"
    assert a.get("instance", "x") == 1


def test_a_concurrent_reader_never_sees_half_a_write(url: str) -> None:
    """A setter writing ``i`` to instance, workflow and namespace variables, 150 times,
    while a reader polls them in that order: each is read no earlier than the one
    before, so all or nothing means every poll sees them non-decreasing; written one
    keyspace after another, a poll would see the instance variable ahead."""
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with open_store(url) as own:
                while not stop.is_set():
                    x = own.get("x", scope="run", namespace="writer").value or 0
                    y = own.get("y", scope="dag", namespace="wf").value or 0
                    z = own.get("z", scope="global").value or 0
                    seen.append((x, y, z))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with open_store(url) as own:
        w = instance(own, "writer")
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            last = 0
            # 150 setters at least, and on until some poll has seen the writes under way
            # (bounded): a reader that only ever saw before or after proves nothing.
            while last < 150 or (last < 3000 and not any(0 < p[0] < last for p in seen)):
                last += 1
                w.write(
                    [
                        w.plan_set(s, k, last)
                        for s, k in [("instance", "x"), ("workflow", "y"), ("namespace", "z")]
                    ]
                )
        finally:
            stop.set()
            thread.join()
    assert not errors
    assert any(0 < poll[0] < last for poll in seen)  # a poll between the first and last
    torn = [poll for poll in seen if not poll[0] <= poll[1] <= poll[2]]
    assert torn == []


def test_a_concurrent_reader_never_sees_a_write_that_conflicted(url: str) -> None:
    """A setter over three scopes, 100 times, each time the namespace variable it read
    written by another instance just before its write lands, while a reader polls its
    instance and workflow variables: every write conflicts, and no poll ever sees
    either written (written and undone after the fact, a poll could)."""
    stop = threading.Event()
    seen: set[Any] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with open_store(url) as own:
                while not stop.is_set():
                    seen.add(own.get("x", scope="run", namespace="writer").value)
                    seen.add(own.get("y", scope="dag", namespace="wf").value)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with open_store(url) as own:
        w, other = instance(own, "writer"), instance(own, "other")
        set_one(w, "instance", "x", "old")
        set_one(w, "workflow", "y", "old")
        bumps = iter(range(1, 1000))
        _racing(own, lambda: set_one(other, "namespace", "n", next(bumps)), times=1000)
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for attempt in range(100):
                w.get("namespace", "n")  # the guard: the version now
                with pytest.raises(VarConflict):
                    w.write(
                        [
                            w.plan_set("instance", "x", f"new {attempt}"),
                            w.plan_set("workflow", "y", f"new {attempt}"),
                            w.plan_set("namespace", "n", -1),
                        ]
                    )
        finally:
            stop.set()
            thread.join()
        assert own.get("x", scope="run", namespace="writer").version == 1
        assert own.get("y", scope="dag", namespace="wf").version == 1
        assert own.get("n", scope="global").value != -1
    assert not errors
    assert seen == {"old"}


def test_the_last_write_of_a_variable_wins(store: StateStore) -> None:
    a = instance(store)
    a.get("workflow", "k")
    a.write([a.plan_set("workflow", "k", 1), a.plan_set("workflow", "k", 2)])
    assert a.get("workflow", "k") == 2


def test_write_raw_is_guarded_and_moves_the_guard(store: StateStore) -> None:
    a, b = instance(store, "a"), instance(store, "b")
    a.get("workflow", "state")
    a.write_raw([("workflow", "state", b"v1", "text/plain")])
    a.write_raw([("workflow", "state", b"v1b", "text/plain")])  # the guard moved: no conflict
    b.write_raw([("workflow", "state", b"v2", "text/plain")])
    with pytest.raises(VarConflict):
        a.write_raw([("workflow", "state", b"v3", "text/plain")])
    assert a.read_raw("workflow", "state") == (b"v2", "text/plain")


def test_a_raw_read_guards_later_writes(store: StateStore) -> None:
    """``read_raw`` (an action's ``files:`` and ``/var`` GET) guards as ``get`` does: a
    change by another instance between the read and the write is a conflict, not a lost
    update; a missing variable is guarded too (someone creating it conflicts)."""
    a, b = instance(store, "a"), instance(store, "b")
    set_one(b, "workflow", "n", 1)
    assert a.read_raw("workflow", "n") == (b"1", "application/json")
    assert a.read_raw("workflow", "fresh") is None
    set_one(b, "workflow", "n", 5)
    set_one(b, "workflow", "fresh", 5)
    for key in ("n", "fresh"):
        with pytest.raises(VarConflict) as info:
            a.write_raw([("workflow", key, b"2", "")])
        assert info.value.keys == [("workflow", key)]
    assert b.get("workflow", "n") == b.get("workflow", "fresh") == 5


def test_eight_threads_incrementing_lose_nothing(url: str) -> None:
    per_thread = 15
    retries: list[int] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with open_store(url) as own:
                v = instance(own, f"thread-{n}", "counter")
                conflicts = 0
                for _ in range(per_thread):
                    while True:
                        count = v.get("workflow", "count") or 0
                        try:
                            v.write([v.plan_set("workflow", "count", count + 1)])
                            break
                        except VarConflict:
                            conflicts += 1
                retries.append(conflicts)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open_store(url) as check:
        assert instance(check, "x", "counter").get("workflow", "count") == 8 * per_thread
    assert len(retries) == 8


def test_blob_values_pass_through_write(store: StateStore) -> None:
    v = instance(store)
    v.write([VarWrite("workflow", "f", Blob(b"abc", "text/plain"))])
    assert v.read_raw("workflow", "f") == (b"abc", "text/plain")
