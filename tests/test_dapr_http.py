"""Dapr's HTTP state API on a real ``statebox serve`` (docs/dapr.md): health, metadata
and every state route (save, get, delete, bulk get, transactions; etags, TTL, the values
answered byte for byte), with Dapr's semantics and bodies, against a subprocess over a
SQLite file (tests/dapr_http_support.py). Secrets, bindings, tokens and statebox's own
faces on the same entries: tests/test_dapr_http_more.py.

Time is moved with ``--test-mode``'s ``X-Statebox-Now`` header (nanoseconds), as the
conformance suite moves it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from .dapr_http_support import (
    APP,
    NOW,
    STATESTORE_YAML,
    T0,
    Dapr,
    assert_dapr_error,
    components,
    start_dapr,
)

__all__ = ["STATESTORE_YAML", "components"]  # tests/test_dapr_serve.py takes them from here


@pytest.fixture(scope="module")
def dapr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dapr]:
    yield from start_dapr(tmp_path_factory)


# --- health and metadata -------------------------------------------------------------------


def test_health_routes_answer_204_without_a_token(dapr: Dapr) -> None:
    bare = httpx.Client(base_url=dapr.server.url, timeout=30)
    with bare:
        for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
            response = bare.get(path)
            assert response.status_code == 204, (path, response.text)
            assert response.content == b""
        assert bare.get("/v1.0/healthz", params={"appid": "statebox"}).status_code == 204
        wrong = bare.get("/v1.0/healthz", params={"appid": "another-app"})
        assert_dapr_error(wrong, 500, "ERR_HEALTH_APPID_NOT_MATCH")


def test_metadata_lists_the_components_served(dapr: Dapr) -> None:
    response = dapr.client.get("/v1.0/metadata")
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["id"] == "statebox"
    by_name = {c["name"]: c["type"] for c in found["components"]}
    assert by_name == {
        "statestore": "state.sqlite",
        "secretstore": "secretstores.local.file",
        "objectstore": "bindings.localstorage",
    }
    no_token = httpx.get(f"{dapr.server.url}/v1.0/metadata", timeout=30)
    assert_dapr_error(no_token, 401, "ERR_UNAUTHENTICATED")


# --- state: save, get, delete ----------------------------------------------------------


def test_save_get_delete(dapr: Dapr) -> None:
    assert dapr.save({"key": "order-1", "value": {"n": 1, "items": ["a"]}}).status_code == 204
    got = dapr.get("order-1")
    assert got.status_code == 200, got.text
    assert json.loads(got.content) == {"n": 1, "items": ["a"]}
    assert got.headers["etag"] == "1"
    assert got.headers["content-type"].startswith("application/json")
    assert "metadata.ttlexpiretime" not in got.headers

    assert dapr.save({"key": "greeting", "value": "hello"}).status_code == 204
    assert dapr.get("greeting").content == b'"hello"'  # a JSON string is stored as JSON

    deleted = dapr.client.delete("/v1.0/state/statestore/order-1")
    assert deleted.status_code == 204, deleted.text
    missing = dapr.get("order-1")
    assert missing.status_code == 204 and missing.content == b""
    # Deleting what is not there (no etag) is no error, as in Dapr.
    assert dapr.client.delete("/v1.0/state/statestore/order-1").status_code == 204


def test_keys_may_hold_slashes(dapr: Dapr) -> None:
    assert dapr.save({"key": "app/run-1/config", "value": [1, 2]}).status_code == 204
    got = dapr.get("app/run-1/config")
    assert got.status_code == 200 and json.loads(got.content) == [1, 2]
    mine = dapr.client.get(f"/v1/kv/custom/dapr-statestore/{APP}app/run-1/config")
    assert mine.status_code == 200 and mine.json()["value"] == [1, 2]  # kept as it is
    # A key that is no valid statebox key (here: a trailing /) is stored encoded:
    # "~" + base64url of "statebox||dir/", without padding (docs/dapr.md).
    assert dapr.save({"key": "dir/", "value": "d"}).status_code == 204
    assert dapr.get("dir/").content == b'"d"'
    stored = "~" + base64.urlsafe_b64encode(f"{APP}dir/".encode()).decode().rstrip("=")
    mine = dapr.client.get(f"/v1/kv/custom/dapr-statestore/{stored}")
    assert mine.status_code == 200 and mine.json()["value"] == "d"


def test_keys_may_hold_encoded_slashes(dapr: Dapr) -> None:
    assert dapr.save({"key": "app/run-2/config", "value": [1, 2]}).status_code == 204
    encoded = dapr.client.get("/v1.0/state/statestore/app%2Frun-2%2Fconfig")
    assert encoded.status_code == 200 and json.loads(encoded.content) == [1, 2]


def test_several_items_are_saved_together_or_not_at_all(dapr: Dapr) -> None:
    assert dapr.save({"key": "pair-a", "value": 1}).status_code == 204
    refused = dapr.save(
        {"key": "pair-new", "value": 2},
        {"key": "pair-a", "value": 3, "etag": "99"},  # stale: the whole save fails
    )
    assert_dapr_error(refused, 409, "ERR_STATE_SAVE")
    assert dapr.get("pair-new").status_code == 204
    assert dapr.get("pair-a").content == b"1"


def test_unknown_store_and_malformed_key(dapr: Dapr) -> None:
    assert_dapr_error(dapr.client.get("/v1.0/state/nostore/k"), 400, "ERR_STATE_STORE_NOT_FOUND")
    for response in (
        dapr.get("a||b"),
        dapr.save({"key": "a||b", "value": 1}),
        dapr.client.delete("/v1.0/state/statestore/a||b"),
    ):
        assert_dapr_error(response, 400, "ERR_MALFORMED_REQUEST")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1.0/state/statestore", b"{not json"),
        ("/v1.0/state/statestore", b'{"key": "k", "value": 1}'),  # not an array
        ("/v1.0/state/statestore", b'[{"value": 1}]'),  # no key
        ("/v1.0/state/statestore", b'[{"key": "k", "etag": 5}]'),  # etag not a string
        ("/v1.0/state/statestore/bulk", b'{"keys": "k"}'),
        ("/v1.0/state/statestore/transaction", b'{"operations": [{"operation": "upsert"}]}'),
        ("/v1.0/bindings/objectstore", b"[1, 2"),
    ],
)
def test_bad_json_is_a_400_with_dapr_body(dapr: Dapr, path: str, body: bytes) -> None:
    response = dapr.client.post(path, content=body, headers={"content-type": "application/json"})
    assert_dapr_error(response, 400, "ERR_MALFORMED_REQUEST")


# --- etags and concurrency -------------------------------------------------------------


def test_a_stale_etag_writes_nothing(dapr: Dapr) -> None:
    assert dapr.save({"key": "acct", "value": {"balance": 10}}).status_code == 204
    etag = dapr.get("acct").headers["etag"]
    assert dapr.save({"key": "acct", "value": {"balance": 20}, "etag": etag}).status_code == 204
    stale = dapr.save({"key": "acct", "value": {"balance": 99}, "etag": etag})
    assert_dapr_error(stale, 409, "ERR_STATE_SAVE")
    # Nothing was written: statebox's own API shows the value before the refused write.
    mine = dapr.client.get(f"/v1/kv/custom/dapr-statestore/{APP}acct")
    assert mine.status_code == 200
    assert mine.json()["value"] == {"balance": 20}
    assert mine.json()["version"] == int(etag) + 1

    refused = dapr.client.delete("/v1.0/state/statestore/acct", headers={"If-Match": etag})
    assert_dapr_error(refused, 409, "ERR_STATE_DELETE")
    assert dapr.get("acct").status_code == 200
    # An etag that is no version: 400 under the operation's code, as Dapr answers an
    # invalid etag.
    assert_dapr_error(
        dapr.save({"key": "acct", "value": 1, "etag": "not-a-number"}), 400, "ERR_STATE_SAVE"
    )
    current = dapr.get("acct").headers["etag"]
    ok = dapr.client.delete("/v1.0/state/statestore/acct", headers={"If-Match": current})
    assert ok.status_code == 204, ok.text
    assert dapr.get("acct").status_code == 204


def test_first_write(dapr: Dapr) -> None:
    first = {"key": "lock-1", "value": "mine", "options": {"concurrency": "first-write"}}
    assert dapr.save(first).status_code == 204
    assert_dapr_error(dapr.save({**first, "value": "theirs"}), 409, "ERR_STATE_SAVE")
    assert dapr.get("lock-1").content == b'"mine"'
    # last-write (the default) without an etag is unconditional.
    assert dapr.save({"key": "lock-1", "value": "last"}).status_code == 204
    assert dapr.get("lock-1").content == b'"last"'


# --- TTL ----------------------------------------------------------------------------------


def test_ttl_expiry_and_ttl_expire_time(dapr: Dapr) -> None:
    at = {NOW: str(T0)}
    item = {"key": "session", "value": {"user": "u1"}, "metadata": {"ttlInSeconds": "60"}}
    assert dapr.save(item, headers=at).status_code == 204
    got = dapr.get("session", headers=at)
    assert got.status_code == 200
    assert got.headers["metadata.ttlExpireTime"] == "2030-03-17T17:47:40Z"
    later = dapr.get("session", headers={NOW: str(T0 + 59 * 10**9)})
    assert later.status_code == 200
    gone = dapr.get("session", headers={NOW: str(T0 + 61 * 10**9)})
    assert gone.status_code == 204 and gone.content == b""

    # The query's metadata.ttlInSeconds works too.
    query = {"metadata.ttlInSeconds": "5"}
    assert dapr.save({"key": "short", "value": 1}, headers=at, params=query).status_code == 204
    assert dapr.get("short", headers={NOW: str(T0 + 6 * 10**9)}).status_code == 204


def test_ttl_minus_one_and_clearing(dapr: Dapr) -> None:
    at = {NOW: str(T0)}
    never = {"key": "forever", "value": 1, "metadata": {"ttlInSeconds": "-1"}}
    assert dapr.save(never, headers=at).status_code == 204
    got = dapr.get("forever", headers={NOW: str(T0 + 10**18)})
    assert got.status_code == 200 and "metadata.ttlExpireTime" not in got.headers

    expiring = {"key": "cleared", "value": 1, "metadata": {"ttlInSeconds": "10"}}
    assert dapr.save(expiring, headers=at).status_code == 204
    assert "metadata.ttlExpireTime" in dapr.get("cleared", headers=at).headers
    # A write without ttlInSeconds clears the expiry.
    assert dapr.save({"key": "cleared", "value": 2}, headers=at).status_code == 204
    kept = dapr.get("cleared", headers={NOW: str(T0 + 3600 * 10**9)})
    assert kept.status_code == 200 and "metadata.ttlExpireTime" not in kept.headers

    for bad in ("-2", "soon", "1.5"):
        refused = dapr.save({"key": "bad-ttl", "value": 1, "metadata": {"ttlInSeconds": bad}})
        assert_dapr_error(refused, 400, "ERR_MALFORMED_REQUEST")
    assert dapr.get("bad-ttl").status_code == 204


# --- bulk and transactions -------------------------------------------------------------


def test_bulk_get_reports_missing_keys_in_order(dapr: Dapr) -> None:
    saved = dapr.save({"key": "b1", "value": {"x": 1}}, {"key": "b2", "value": "two"})
    assert saved.status_code == 204, saved.text
    response = dapr.client.post(
        "/v1.0/state/statestore/bulk", json={"keys": ["b2", "nothing-here", "b1"]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"key": "b2", "data": "two", "etag": "1"},
        {"key": "nothing-here"},
        {"key": "b1", "data": {"x": 1}, "etag": "1"},
    ]
    # A binary value (written here with statebox's API): a get answers its bytes and
    # type; a bulk read, whose body is JSON, its base64 text.
    put = dapr.client.put(
        f"/v1/kv/custom/dapr-statestore/{APP}blob",
        content=b"\x00\x01\xff",
        headers={"content-type": "application/octet-stream"},
    )
    assert put.status_code == 200, put.text
    got = dapr.get("blob")
    assert got.content == b"\x00\x01\xff"
    assert got.headers["content-type"] == "application/octet-stream"
    response = dapr.client.post("/v1.0/state/statestore/bulk", json={"keys": ["blob"]})
    assert response.json() == [{"key": "blob", "data": "AAH/", "etag": "1"}]
    empty = dapr.client.post("/v1.0/state/statestore/bulk", json={"keys": []})
    assert empty.status_code == 200 and empty.json() == []


def test_transaction_is_all_or_nothing(dapr: Dapr) -> None:
    assert dapr.save({"key": "tx-keep", "value": "old"}).status_code == 204
    failing = {
        "operations": [
            {"operation": "upsert", "request": {"key": "tx-new", "value": {"a": 1}}},
            {"operation": "delete", "request": {"key": "tx-keep"}},
            {"operation": "upsert", "request": {"key": "tx-keep", "value": 1, "etag": "42"}},
        ]
    }
    response = dapr.client.post("/v1.0/state/statestore/transaction", json=failing)
    assert_dapr_error(response, 500, "ERR_STATE_TRANSACTION")
    assert dapr.get("tx-new").status_code == 204
    assert dapr.get("tx-keep").content == b'"old"'

    good = {
        "operations": [
            {"operation": "upsert", "request": {"key": "tx-new", "value": {"a": 1}}},
            {"operation": "delete", "request": {"key": "tx-keep", "etag": "1"}},
        ]
    }
    response = dapr.client.post("/v1.0/state/statestore/transaction", json=good)
    assert response.status_code == 204, response.text
    assert json.loads(dapr.get("tx-new").content) == {"a": 1}
    assert dapr.get("tx-keep").status_code == 204

    unknown = {"operations": [{"operation": "merge", "request": {"key": "tx-new"}}]}
    response = dapr.client.post("/v1.0/state/statestore/transaction", json=unknown)
    assert_dapr_error(response, 400, "ERR_NOT_SUPPORTED_STATE_OPERATION")


# --- values answered byte for byte ---------------------------------------------------------

#: JSON texts whose numbers a float would change (or could not hold), as statebox keeps them.
EXACT = {
    "exact-decimal": b'{"a":1.000000000000000000001}',
    "exact-huge": b"1e400",
    "exact-minus-zero": b"-0",
    "exact-big-int": b"[123456789012345678901234567890,-0.0]",
}


def test_json_values_are_answered_as_stored(dapr: Dapr) -> None:
    body = b"[" + b",".join(b'{"key":"%s","value":%s}' % (k.encode(), v) for k, v in EXACT.items())
    saved = dapr.client.post(
        "/v1.0/state/statestore", content=body + b"]", headers={"content-type": "application/json"}
    )
    assert saved.status_code == 204, saved.text
    for key, text in EXACT.items():
        assert dapr.get(key).content == text
    response = dapr.client.post("/v1.0/state/statestore/bulk", json={"keys": list(EXACT)})
    assert response.status_code == 200, response.text
    expected = b",".join(
        b'{"key":"%s","data":%s,"etag":"1"}' % (k.encode(), v) for k, v in EXACT.items()
    )
    assert response.content == b"[" + expected + b"]"


def test_a_bulk_read_answers_a_blob_by_its_type_not_its_bytes(dapr: Dapr) -> None:
    """A value whose content type is not JSON is base64 text in a bulk answer, even when
    its bytes happen to be JSON (docs/dapr.md)."""
    for key, data in (("plain-json", b'{"a":1}'), ("plain-text", b"hello")):
        put = dapr.client.put(
            f"/v1/kv/custom/dapr-statestore/{APP}{key}",
            content=data,
            headers={"content-type": "text/markdown"},
        )
        assert put.status_code == 200, put.text
        assert dapr.get(key).content == data
    response = dapr.client.post(
        "/v1.0/state/statestore/bulk", json={"keys": ["plain-json", "plain-text"]}
    )
    assert response.json() == [
        {"key": "plain-json", "data": base64.b64encode(b'{"a":1}').decode(), "etag": "1"},
        {"key": "plain-text", "data": base64.b64encode(b"hello").decode(), "etag": "1"},
    ]


# --- PUT, as Dapr accepts it -----------------------------------------------------------------


def test_put_is_accepted_where_dapr_accepts_it(dapr: Dapr) -> None:
    put = dapr.client.put("/v1.0/state/statestore", json=[{"key": "by-put", "value": 1}])
    assert put.status_code == 204, put.text
    bulk = dapr.client.put("/v1.0/state/statestore/bulk", json={"keys": ["by-put"]})
    assert bulk.status_code == 200 and bulk.json() == [{"key": "by-put", "data": 1, "etag": "1"}]
    upsert = {"operations": [{"operation": "upsert", "request": {"key": "by-put", "value": 2}}]}
    transaction = dapr.client.put("/v1.0/state/statestore/transaction", json=upsert)
    assert transaction.status_code == 204, transaction.text
    assert dapr.get("by-put").content == b"2"
    created = dapr.client.put(
        "/v1.0/bindings/objectstore",
        json={"operation": "create", "data": "text", "metadata": {"key": "by-put.txt"}},
    )
    assert created.status_code in (200, 204), created.text
    got = dapr.client.put(
        "/v1.0/bindings/objectstore", json={"operation": "get", "metadata": {"key": "by-put.txt"}}
    )
    assert got.status_code == 200 and got.content == b"text"


# --- the store is checked first ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1.0/state/nostore", b"[]"),
        ("/v1.0/state/nostore", b"{not json"),
        ("/v1.0/state/nostore/bulk", b'{"keys": []}'),
        ("/v1.0/state/nostore/transaction", b'{"operations": []}'),
        ("/v1.0/state/nostore/transaction", b"{}"),
    ],
)
def test_an_unknown_store_is_refused_whatever_the_body(dapr: Dapr, path: str, body: bytes) -> None:
    response = dapr.client.post(path, content=body, headers={"content-type": "application/json"})
    assert_dapr_error(response, 400, "ERR_STATE_STORE_NOT_FOUND")


def test_nothing_to_do_on_a_known_store_is_done(dapr: Dapr) -> None:
    assert dapr.client.post("/v1.0/state/statestore", json=[]).status_code == 204
    empty: dict[str, list[object]] = {"operations": []}
    assert dapr.client.post("/v1.0/state/statestore/transaction", json=empty).status_code == 204
