"""Dapr's state API over the engine (statebox.dapr.state_api), on real SQLite stores:
etags and concurrency, TTL, bulk reads, transactions all-or-nothing, values, grants."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from statebox import StateStore
from statebox.core.clock import ManualClock, format_timestamp
from statebox.core.model import Keyspace
from statebox.core.values import Blob, RawJSON
from statebox.dapr.components import load_components
from statebox.dapr.errors import DaprError
from statebox.dapr.state_api import (
    DaprContext,
    DeleteItem,
    SaveItem,
    delete_bulk_state,
    delete_state,
    execute_transaction,
    get_bulk_state,
    get_state,
    save_state,
    value_from_bytes,
)

from .conftest import make_store
from .dapr_http_support import STATESTORE_YAML as SEED_STATESTORE
from .dapr_support import StoreCaller

T = TypeVar("T")
KS = Keyspace("custom", "dapr-statestore")
NS: dict[str, Any] = {"scope": "custom", "namespace": "dapr-statestore"}
STORE = "statestore"


def run(work: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await work

    return asyncio.run(wrapped())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[StateStore]:
    with make_store(f"sqlite:///{tmp_path / 'state.db'}", clock=clock) as opened:
        yield opened


@pytest.fixture
def dapr(tmp_path: Path) -> DaprContext:
    components_dir = tmp_path / "components"
    components_dir.mkdir()
    (components_dir / "statestore.yaml").write_text(SEED_STATESTORE)
    return DaprContext(load_components(components_dir), "myapp")


@pytest.fixture
def caller(store: StateStore) -> StoreCaller:
    return StoreCaller(store)


def save(caller: StoreCaller, dapr: DaprContext, *items: SaveItem) -> None:
    run(save_state(caller, dapr, STORE, list(items)))


def get(caller: StoreCaller, dapr: DaprContext, key: str) -> tuple[bytes | None, str | None]:
    item = run(get_state(caller, dapr, STORE, key, {}))
    assert item.key == key
    return item.data, item.etag


def failure(work: Awaitable[object]) -> DaprError:
    with pytest.raises(DaprError) as caught:
        run(work)
    return caught.value


def json_item(key: str, text: str, **fields: object) -> SaveItem:
    return SaveItem(key, RawJSON(text), **fields)  # type: ignore[arg-type]


# --- values and keys -------------------------------------------------------------------


def test_json_is_stored_as_statebox_json_under_the_prefixed_key(
    caller: StoreCaller, dapr: DaprContext, store: StateStore
) -> None:
    save(caller, dapr, SaveItem("config_1", value_from_bytes(b'{"b": 1, "a": [1, 2]}', {})))
    item = run(get_state(caller, dapr, STORE, "config_1", {}))
    assert (item.data, item.etag, item.content_type) == (
        b'{"a":[1,2],"b":1}',
        "1",
        "application/json",
    )
    assert store.get("myapp||config_1", **NS).value == {"a": [1, 2], "b": 1}


def test_other_bytes_are_blobs_kept_exactly(caller: StoreCaller, dapr: DaprContext) -> None:
    raw = b"\xff\x00 binary"
    assert value_from_bytes(raw, {}) == Blob(raw, "application/octet-stream")
    assert value_from_bytes(b"hello world", {}) == Blob(b"hello world")
    typed = value_from_bytes(b'{"kept":  "as is"}', {"contentType": "text/plain"})
    assert typed == Blob(b'{"kept":  "as is"}', "text/plain")
    assert value_from_bytes(b"[1]", {"contentType": "application/json"}) == RawJSON(b"[1]")
    save(caller, dapr, SaveItem("bin", Blob(raw)), SaveItem("typed", typed))
    assert get(caller, dapr, "bin")[0] == raw
    item = run(get_state(caller, dapr, STORE, "typed", {}))
    assert (item.data, item.content_type) == (b'{"kept":  "as is"}', "text/plain")


def test_keys_statebox_cannot_hold_as_they_are_round_trip(
    caller: StoreCaller, dapr: DaprContext, store: StateStore
) -> None:
    for key in (" padded ", "~x", "a//b", "../up", "ключ/ø"):
        save(caller, dapr, json_item(key, f'"{key}"'))
        assert get(caller, dapr, key)[0] == f'"{key}"'.encode()
    keys = [e.key for e in store.list(**NS).entries]
    assert "myapp||ключ/ø" in keys and all(k.startswith(("~", "myapp||")) for k in keys)


def test_json_over_the_stores_limit_is_kept_as_bytes(tmp_path: Path, dapr: DaprContext) -> None:
    with make_store(f"sqlite:///{tmp_path / 'small.db'}", json_limit=64) as small:
        caller = StoreCaller(small)
        big = b'{"data": "' + b"x" * 100 + b'"}'
        save(caller, dapr, SaveItem("big", value_from_bytes(big, {})))
        assert get(caller, dapr, "big")[0] == big


def test_an_unknown_store_and_a_bad_key(caller: StoreCaller, dapr: DaprContext) -> None:
    error = failure(get_state(caller, dapr, "nope", "k", {}))
    assert (error.code, error.http_status) == ("ERR_STATE_STORE_NOT_FOUND", 400)
    error = failure(get_state(caller, dapr, STORE, "a||b", {}))
    assert (error.code, error.http_status) == ("ERR_MALFORMED_REQUEST", 400)
    assert failure(save_state(caller, dapr, STORE, [json_item("a||b", "1")])).http_status == 400


# --- etags and concurrency ---------------------------------------------------------------


def test_the_etag_is_the_version_and_a_stale_one_writes_nothing(
    caller: StoreCaller, dapr: DaprContext
) -> None:
    save(caller, dapr, json_item("k", "1"))
    save(caller, dapr, json_item("k", "2", etag="1"))
    assert get(caller, dapr, "k") == (b"2", "2")
    stale = failure(save_state(caller, dapr, STORE, [json_item("k", "3", etag="1")]))
    assert (stale.code, stale.http_status, stale.grpc_status) == ("ERR_STATE_SAVE", 409, "ABORTED")
    assert "possible etag mismatch" in stale.message
    for etag in ("0", "02", "9"):  # never given out, or not this entry's
        assert (
            failure(save_state(caller, dapr, STORE, [json_item("k", "4", etag=etag)])).http_status
            == 409
        )
    assert get(caller, dapr, "k") == (b"2", "2")


def test_an_etag_that_is_no_version_is_invalid(caller: StoreCaller, dapr: DaprContext) -> None:
    save(caller, dapr, json_item("k", "1"))
    invalid = failure(save_state(caller, dapr, STORE, [json_item("k", "2", etag="W/abc")]))
    assert (invalid.code, invalid.http_status, invalid.grpc_status) == (
        "ERR_STATE_SAVE",
        400,
        "INVALID_ARGUMENT",
    )
    assert "invalid etag value" in invalid.message
    assert get(caller, dapr, "k") == (b"1", "1")


def test_an_etag_on_a_missing_key_is_a_mismatch(caller: StoreCaller, dapr: DaprContext) -> None:
    assert (
        failure(save_state(caller, dapr, STORE, [json_item("new", "1", etag="1")])).http_status
        == 409
    )
    assert get(caller, dapr, "new") == (None, None)


def test_first_write_creates_only(caller: StoreCaller, dapr: DaprContext) -> None:
    save(caller, dapr, json_item("k", "1", concurrency="first-write"))
    again = failure(
        save_state(caller, dapr, STORE, [json_item("k", "2", concurrency="first-write")])
    )
    assert (again.http_status, again.grpc_status) == (409, "ABORTED")
    assert get(caller, dapr, "k") == (b"1", "1")
    save(caller, dapr, json_item("k", "3", concurrency="first-write", etag="1"))  # etag guards
    save(caller, dapr, json_item("k", "4", concurrency="last-write"))  # unconditional
    save(caller, dapr, json_item("k", "5"))
    assert get(caller, dapr, "k") == (b"5", "4")
    bad = failure(save_state(caller, dapr, STORE, [json_item("k", "6", concurrency="eventual")]))
    assert bad.http_status == 400


def test_saving_several_items_is_all_or_nothing(caller: StoreCaller, dapr: DaprContext) -> None:
    save(caller, dapr, json_item("b", "1"))
    items = [json_item("a", "1"), json_item("b", "2", etag="7")]
    assert failure(save_state(caller, dapr, STORE, items)).http_status == 409
    assert get(caller, dapr, "a") == (None, None)
    save(caller, dapr, json_item("a", "1"), json_item("b", "2", etag="1"))
    assert [get(caller, dapr, k) for k in ("a", "b")] == [(b"1", "1"), (b"2", "2")]
    assert caller.writes == 3  # one engine write per request


# --- TTL -----------------------------------------------------------------------------------


def test_ttl_set_reported_expired_and_cleared(
    caller: StoreCaller, dapr: DaprContext, clock: ManualClock
) -> None:
    start = clock.now_ns()
    save(caller, dapr, json_item("k", "1", metadata={"ttlInSeconds": "60"}))
    item = run(get_state(caller, dapr, STORE, "k", {}))
    expected = format_timestamp(start + 60 * 10**9)
    assert item.metadata == {"ttlExpireTime": expected}
    assert expected.endswith("Z") and "." not in expected
    clock.advance(61)
    assert get(caller, dapr, "k") == (None, None)
    save(caller, dapr, json_item("k", "2", metadata={"ttlInSeconds": "60"}))
    save(caller, dapr, json_item("k", "3", etag="1"))  # no ttl: the expiry is dropped
    clock.advance(3600)
    item = run(get_state(caller, dapr, STORE, "k", {}))
    assert (item.data, item.metadata) == (b"3", {})
    for never in ("-1", "0", ""):
        save(caller, dapr, json_item("n", "1", metadata={"ttlInSeconds": never}))
        assert run(get_state(caller, dapr, STORE, "n", {})).metadata == {}


@pytest.mark.parametrize("ttl", ["abc", "1.5", "-2", "2147483648", " 5"])
def test_a_bad_ttl_is_refused(caller: StoreCaller, dapr: DaprContext, ttl: str) -> None:
    error = failure(
        save_state(caller, dapr, STORE, [json_item("k", "1", metadata={"ttlInSeconds": ttl})])
    )
    assert (error.code, error.http_status) == ("ERR_MALFORMED_REQUEST", 400)
    assert get(caller, dapr, "k") == (None, None)


def test_bulk_reads_report_ttl(caller: StoreCaller, dapr: DaprContext, clock: ManualClock) -> None:
    save(caller, dapr, json_item("t", "1", metadata={"ttlInSeconds": "10"}))
    (item,) = run(get_bulk_state(caller, dapr, STORE, ["t"], {}))
    assert item.metadata == {"ttlExpireTime": format_timestamp(clock.now_ns() + 10**10)}


# --- bulk, deletes, transactions ---------------------------------------------------------


def test_bulk_get_keeps_the_order_and_reports_missing_keys(
    caller: StoreCaller, dapr: DaprContext
) -> None:
    save(caller, dapr, json_item("a", '"A"'), json_item("b", '"B"'))
    items = run(get_bulk_state(caller, dapr, STORE, ["b", "missing", "a", "b"], {}))
    assert [(i.key, i.data, i.etag) for i in items] == [
        ("b", b'"B"', "1"),
        ("missing", None, None),
        ("a", b'"A"', "1"),
        ("b", b'"B"', "1"),
    ]
    assert run(get_bulk_state(caller, dapr, STORE, [], {})) == []
    assert failure(get_bulk_state(caller, dapr, STORE, ["a", "x||y"], {})).http_status == 400


def test_delete_with_and_without_etags(caller: StoreCaller, dapr: DaprContext) -> None:
    run(delete_state(caller, dapr, STORE, DeleteItem("missing")))  # no error
    missing = failure(delete_state(caller, dapr, STORE, DeleteItem("missing", etag="1")))
    assert (missing.code, missing.http_status, missing.grpc_status) == (
        "ERR_STATE_DELETE",
        409,
        "ABORTED",
    )
    save(caller, dapr, json_item("k", "1"), json_item("k", "2"))
    assert failure(delete_state(caller, dapr, STORE, DeleteItem("k", etag="1"))).http_status == 409
    assert get(caller, dapr, "k") == (b"2", "2")
    run(delete_state(caller, dapr, STORE, DeleteItem("k", etag="2")))
    assert get(caller, dapr, "k") == (None, None)


def test_bulk_delete_is_all_or_nothing(caller: StoreCaller, dapr: DaprContext) -> None:
    save(caller, dapr, json_item("a", "1"), json_item("b", "1"))
    stale = failure(
        delete_bulk_state(caller, dapr, STORE, [DeleteItem("a"), DeleteItem("b", etag="5")])
    )
    assert (stale.code, stale.http_status, stale.grpc_status) == (
        "ERR_STATE_BULK_DELETE",
        409,
        "ABORTED",
    )
    assert get(caller, dapr, "a") == (b"1", "1")
    run(delete_bulk_state(caller, dapr, STORE, [DeleteItem("a"), DeleteItem("b", etag="1")]))
    assert [get(caller, dapr, k) for k in ("a", "b")] == [(None, None)] * 2


def test_a_transaction_is_all_or_nothing(caller: StoreCaller, dapr: DaprContext) -> None:
    save(caller, dapr, json_item("old", "1"), json_item("kept", "1"))
    failing: list[SaveItem | DeleteItem] = [
        json_item("new", '"n"'),
        DeleteItem("old"),
        json_item("kept", "2", etag="9"),
    ]
    error = failure(execute_transaction(caller, dapr, STORE, failing, {}))
    # Dapr answers every failed transaction 500 ERR_STATE_TRANSACTION, a mismatch too.
    assert (error.code, error.http_status, error.grpc_status) == (
        "ERR_STATE_TRANSACTION",
        500,
        "INTERNAL",
    )
    assert error.message.startswith("error while executing state transaction: ")
    assert [get(caller, dapr, k) for k in ("new", "old", "kept")] == [
        (None, None),
        (b"1", "1"),
        (b"1", "1"),
    ]
    passing: list[SaveItem | DeleteItem] = [
        json_item("new", '"n"'),
        DeleteItem("old", etag="1"),
        json_item("kept", "2", etag="1"),
    ]
    run(execute_transaction(caller, dapr, STORE, passing, {}))
    assert [get(caller, dapr, k) for k in ("new", "old", "kept")] == [
        (b'"n"', "1"),
        (None, None),
        (b"2", "2"),
    ]
    invalid = failure(
        execute_transaction(caller, dapr, STORE, [json_item("new", "1", etag="x")], {})
    )
    assert (invalid.code, invalid.http_status) == ("ERR_STATE_TRANSACTION", 500)
    run(execute_transaction(caller, dapr, STORE, [], {}))  # nothing to do


# --- grants --------------------------------------------------------------------------------


def test_reads_need_read_and_writes_need_write(store: StateStore, dapr: DaprContext) -> None:
    writer = StoreCaller(store, read=[], write=[KS])
    run(save_state(writer, dapr, STORE, [json_item("k", "1")]))
    denied = failure(get_state(writer, dapr, STORE, "k", {}))
    assert (denied.code, denied.http_status, denied.grpc_status) == (
        "ERR_PERMISSION_DENIED",
        403,
        "PERMISSION_DENIED",
    )
    assert failure(get_bulk_state(writer, dapr, STORE, ["k"], {})).http_status == 403
    reader = StoreCaller(store, read=[KS], write=[])
    assert run(get_state(reader, dapr, STORE, "k", {})).data == b"1"
    for work in (
        save_state(reader, dapr, STORE, [json_item("k", "2")]),
        delete_state(reader, dapr, STORE, DeleteItem("k")),
        delete_bulk_state(reader, dapr, STORE, [DeleteItem("k")]),
        execute_transaction(reader, dapr, STORE, [json_item("k", "3")], {}),
    ):
        assert failure(work).http_status == 403
    assert run(get_state(reader, dapr, STORE, "k", {})).data == b"1"
    assert ("read", KS) in reader.asked and ("write", KS) in reader.asked


def test_a_secret_state_store_is_read_with_the_reveal_grant_only(
    tmp_path: Path, dapr: DaprContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "custom/dapr-statestore")
    with make_store(f"sqlite:///{tmp_path / 'secret.db'}") as secret_store:
        assert secret_store.secret_policy.is_secret(KS)
        blind = StoreCaller(secret_store, reveal=[])
        run(save_state(blind, dapr, STORE, [json_item("pw", '{"password": "hunter2"}')]))
        assert failure(get_state(blind, dapr, STORE, "pw", {})).http_status == 403
        seeing = StoreCaller(secret_store, reveal=[KS])
        # The real bytes, not the mask statebox's own renderings show.
        assert run(get_state(seeing, dapr, STORE, "pw", {})).data == b'{"password":"hunter2"}'
        assert ("reveal", KS) in seeing.asked
