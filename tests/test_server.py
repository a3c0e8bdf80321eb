"""The HTTP API (SPEC §8) against a real server in a subprocess, over a real SQLite file.

One server for the module; every test works in namespaces of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .server_util import ServerProcess, later, running_server

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("server") / "state.db"
    with running_server(
        f"sqlite:///{db}?synchronous=NORMAL", args=["--max-body-bytes", "4096"]
    ) as srv:
        yield srv


@pytest.fixture
def http(server: ServerProcess) -> httpx.Client:
    return server.client


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own."""
    return f"t-{uuid.uuid4().hex[:12]}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    inner: dict[str, Any] = body["error"]
    return inner


# --- SPEC §4 over HTTP -----------------------------------------------------------------


def test_set_and_get_answer_the_envelopes_with_etags(http: httpx.Client, ns: str) -> None:
    put = http.put(f"/v1/kv/custom/{ns}/cursors/feed", content=b'{"b": 1.50, "a": [1E5, -0]}')
    stored = b'{"a":[1E5,-0],"b":1.50}'
    assert put.status_code == 200
    assert put.headers["etag"] == '"1"'
    assert put.text == (
        f'{{"operation":"set","scope":"custom","namespace":"{ns}","key":"cursors/feed",'
        f'"version":1,"hash":"{sha(stored)}","created":true}}'
    )
    got = http.get(f"/v1/kv/custom/{ns}/cursors/feed")
    assert got.headers["etag"] == '"1"'
    assert got.text == (
        f'{{"operation":"get","scope":"custom","namespace":"{ns}","key":"cursors/feed",'
        f'"found":true,"version":1,"hash":"{sha(stored)}","value":{stored.decode()}}}'
    )


def test_missing_keys_defaults_and_required(http: httpx.Client, ns: str) -> None:
    missing = http.get(f"/v1/kv/custom/{ns}/nope")
    assert missing.status_code == 200 and missing.json()["found"] is False
    assert "etag" not in missing.headers
    with_default = http.get(f"/v1/kv/custom/{ns}/nope", params={"default": '{"x": 1.0}'})
    assert with_default.text.endswith('"found":false,"value":{"x":1.0}}')
    required = http.get(f"/v1/kv/custom/{ns}/nope", params={"required": "true"})
    assert required.status_code == 404
    assert (
        error(required)["kind"] == "not_found" and '"nope" not found' in error(required)["message"]
    )


def test_if_match_is_412_and_expected_version_is_409(http: httpx.Client, ns: str) -> None:
    url = f"/v1/kv/custom/{ns}/k"
    assert http.put(url, content=b"1", headers={"if-none-match": "*"}).status_code == 200
    ok = http.put(url, content=b"2", headers={"if-match": '"1"'})
    assert (ok.status_code, ok.headers["etag"]) == (200, '"2"')
    stale = http.put(url, content=b"3", headers={"if-match": '"1"'})
    assert stale.status_code == 412
    assert error(stale) | {"message": ""} == {
        "kind": "precondition_failed",
        "message": "",
        "index": 0,
        "currentVersion": 2,
    }
    assert http.put(url, content=b"3", headers={"if-none-match": "*"}).status_code == 412
    body_guard = http.put(url, content=b"3", params={"expected_version": 1})
    assert body_guard.status_code == 409 and error(body_guard)["currentVersion"] == 2
    assert http.delete(url, headers={"if-match": '"1"'}).status_code == 412
    assert http.delete(url, params={"expected_version": 7}).status_code == 409
    got = http.get(url).json()
    assert (got["version"], got["value"]) == (2, 2)  # every failed write left version 2
    assert http.delete(url, headers={"if-match": 'W/"2"'}).json()["deleted"] is True
    assert http.delete(url).json()["deleted"] is False


def test_bad_input_is_400_or_422_with_a_message(http: httpx.Client, ns: str) -> None:
    dots = http.put(f"/v1/kv/custom/{ns}/a/%2E%2E/b", content=b"1")
    assert dots.status_code == 400 and error(dots)["kind"] == "invalid_reference"
    assert error(dots)["message"] == 'invalid key "a/../b": must not contain a ".." segment'
    odd = http.get(f"/v1/kv/custom/{ns}/a%5Cb")
    assert odd.status_code == 400 and "invalid key" in error(odd)["message"]
    scope = http.get(f"/v1/kv/Global/{ns}/k")
    assert scope.status_code == 400 and "invalid scope" in error(scope)["message"]
    value = http.put(f"/v1/kv/custom/{ns}/k", content=b"{bad")
    assert value.status_code == 422 and error(value)["kind"] == "invalid_value"
    assert "invalid JSON" in error(value)["message"]
    two = http.put(f"/v1/kv/custom/{ns}/k", content=b"1 2")
    assert two.status_code == 422 and "more than one JSON value" in error(two)["message"]
    malformed = http.post(f"/v1/diff/custom/{ns}/k", content=b'{"value": ', headers=JSON)
    assert malformed.status_code == 400
    assert error(malformed)["kind"] == "invalid_request"
    assert "request body is not valid JSON" in error(malformed)["message"]
    unknown = http.post(f"/v1/diff/custom/{ns}/k", json={"value": 1, "velue": 2})
    assert unknown.status_code == 400 and "velue" in error(unknown)["message"]
    limit = http.get(f"/v1/kv/custom/{ns}", params={"limit": "-1"})
    assert limit.status_code == 400 and "limit" in error(limit)["message"]
    slash = http.get(f"/v1/kv/custom/{ns}%2Fother/k")
    assert slash.status_code == 400 and "namespace" in error(slash)["message"]
    assert not http.get(f"/v1/kv/custom/{ns}/k").json()["found"]


def test_binary_values_keep_their_content_type(http: httpx.Client, ns: str) -> None:
    data = bytes(range(256))
    put = http.put(
        f"/v1/kv/custom/{ns}/files/blob", content=data, headers={"content-type": "image/png"}
    )
    assert put.json()["hash"] == sha(data)
    got = http.get(f"/v1/kv/custom/{ns}/files/blob").json()
    assert got["contentType"] == "image/png" and got["encoding"] == "base64"
    import base64

    assert base64.b64decode(got["value"]) == data


def test_list_pages_by_prefix(http: httpx.Client, ns: str) -> None:
    for i in range(5):
        http.put(f"/v1/kv/custom/{ns}/k/{i}", content=str(i).encode())
    http.put(f"/v1/kv/custom/{ns}/other", content=b"0")
    page = http.get(f"/v1/kv/custom/{ns}", params={"prefix": "k/", "limit": 2}).json()
    assert [e["key"] for e in page["entries"]] == ["k/0", "k/1"]
    rest = http.get(
        f"/v1/kv/custom/{ns}", params={"prefix": "k/", "after": "k/1", "include_values": "true"}
    ).json()
    assert [(e["key"], e["value"]) for e in rest["entries"]] == [("k/2", 2), ("k/3", 3), ("k/4", 4)]
    assert http.get(f"/v1/kv/custom/{ns}-empty").text.endswith('"entries":[]}')


# --- SPEC §5 over HTTP -----------------------------------------------------------------


def test_diff_update_rollback_history(http: httpx.Client, ns: str) -> None:
    base = f"custom/{ns}"
    first = http.post(f"/v1/diff/{base}/snap", json={"value": {"count": 1}}).json()
    assert (first["changed"], first["version"]) == (True, 1)
    same = http.post(
        f"/v1/diff/{base}/snap", content=b'{"value": {"count" : 1}}', headers=JSON
    ).json()
    assert (same["changed"], same["version"]) == (False, 1)
    dry = http.post(f"/v1/diff/{base}/snap", json={"value": 2, "update": False}).json()
    assert (dry["changed"], dry["version"]) == (True, 1)
    jq = http.post(f"/v1/update/{base}/n", json={"jq": ".n += 1", "default": {"n": 41}})
    assert jq.headers["etag"] == '"1"' and jq.json()["value"] == {"n": 42}
    merged = http.post(f"/v1/update/{base}/n", json={"merge": {"m": True}}).json()
    assert merged["value"] == {"m": True, "n": 42}
    patched = http.post(
        f"/v1/update/{base}/n", json={"patch": [{"op": "remove", "path": "/m"}]}
    ).json()
    assert (patched["version"], patched["value"]) == (3, {"n": 42})
    back = http.post(f"/v1/rollback/{base}/n", json={"version": 2}).json()
    assert (back["operation"], back["version"], back["value"]) == (
        "rollback",
        4,
        {"m": True, "n": 42},
    )
    history = http.get(f"/v1/history/{base}/n", params={"include_values": "1"}).json()
    assert [v["version"] for v in history["versions"]] == [4, 3, 2, 1]
    assert history["versions"][-1]["value"] == {"n": 42}
    guarded = http.post(f"/v1/update/{base}/n", json={"jq": "."}, headers={"if-match": '"1"'})
    assert guarded.status_code == 412


def test_a_json_patch_keeps_the_literals_of_its_values(http: httpx.Client, ns: str) -> None:
    """``patch`` values went through floats (``1.2345678901234567``); a merge kept them."""
    base = f"custom/{ns}"
    literal = "1.2345678901234567890123"
    for field, transform in (
        ("patch", f'[{{"op": "add", "path": "/v", "value": {literal}}}]'),
        ("merge", f'{{"v": {literal}}}'),
    ):
        body = f'{{"{field}": {transform}, "default": {{"kept": 1.50}}}}'
        done = http.post(f"/v1/update/{base}/{field}", content=body, headers=JSON)
        assert done.status_code == 200, done.text
        got = http.get(f"/v1/kv/{base}/{field}")
        assert got.text.endswith(f'"value":{{"kept":1.50,"v":{literal}}}}}'), got.text


def test_transactions_are_all_or_nothing(http: httpx.Client, ns: str) -> None:
    url = f"/v1/txn/custom/{ns}"
    ok = http.post(
        url,
        json={
            "ops": [
                {"op": "set", "key": "a", "value": 1},
                {"op": "set", "key": "b", "value": "x", "create_only": True},
            ]
        },
    ).json()
    assert [r["version"] for r in ok["results"]] == [1, 1]
    failed = http.post(
        url,
        json={
            "ops": [
                {"op": "set", "key": "a", "value": 2},
                {"op": "delete", "key": "b", "expected_version": 5},
            ]
        },
    )
    assert failed.status_code == 409 and error(failed)["index"] == 1
    assert http.get(f"/v1/kv/custom/{ns}/a").json()["value"] == 1  # nothing was written


def test_leases_and_fenced_writes(http: httpx.Client, ns: str) -> None:
    name = f"job-{ns}"
    first = http.post("/v1/leases/acquire", json={"name": name, "ttl": 30, "holder": "a"}).json()
    assert (first["holder"], first["token"]) == ("a", 1)
    taken = http.post("/v1/leases/acquire", json={"name": name, "ttl": 30, "holder": "b"})
    assert taken.status_code == 409
    renewed = http.post(
        "/v1/leases/renew", json={"name": name, "ttl": 60, "holder": "a", "token": 1}
    ).json()
    assert renewed["token"] == 1 and renewed["expiresAt"] > first["expiresAt"]
    fenced = {"lease": name, "token": 1}
    assert http.put(f"/v1/kv/custom/{ns}/out", content=b"1", params=fenced).status_code == 200
    released = http.post("/v1/leases/release", json={"name": name, "holder": "a", "token": 1})
    assert released.json()["released"] is True
    second = http.post("/v1/leases/acquire", json={"name": name, "ttl": 30, "holder": "b"}).json()
    assert second["token"] == 2
    stale = http.put(f"/v1/kv/custom/{ns}/out", content=b"2", params=fenced)
    assert stale.status_code == 409 and error(stale)["kind"] == "fencing"
    assert http.get(f"/v1/leases/{name}").json()["holder"] == "b"
    assert http.get(f"/v1/leases/never-{ns}").status_code == 404


def test_watch_long_poll(server: ServerProcess, http: httpx.Client, ns: str) -> None:
    idle = http.get(f"/v1/watch/custom/{ns}", params={"key": "k", "timeout": "0.1"}).json()
    assert idle["timedOut"] is True and idle["events"] == []
    writer = later(0.3, lambda: httpx.put(f"{server.url}/v1/kv/custom/{ns}/k", content=b"7"))
    started = time.monotonic()
    woke = http.get(
        f"/v1/watch/custom/{ns}", params={"key": "k", "timeout": "20", "include_values": "1"}
    ).json()
    writer.join()
    assert time.monotonic() - started < 10
    assert [(e["key"], e["event"], e["version"], e["value"]) for e in woke["events"]] == [
        ("k", "created", 1, 7)
    ]


def test_watch_as_server_sent_events(server: ServerProcess, http: httpx.Client, ns: str) -> None:
    def writes() -> None:
        with httpx.Client(base_url=server.url) as other:
            other.put(f"/v1/kv/custom/{ns}/p/a", content=b"1")
            other.put(f"/v1/kv/custom/{ns}/p/a", content=b"2")

    events: list[tuple[str, dict[str, Any]]] = []
    with http.stream(
        "GET", f"/v1/events/custom/{ns}", params={"prefix": "p/", "timeout": "20"}
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        writer = later(0.3, writes)
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if sum(e["version"] for _, e in events) >= 2:
                    break
        writer.join()
    versions = [(kind, data["key"], data["version"]) for kind, data in events]
    # the two writes may arrive as two events or coalesced into one (SPEC §5 watch)
    assert versions in ([("created", "p/a", 1), ("updated", "p/a", 2)], [("created", "p/a", 2)])


# --- the server itself -----------------------------------------------------------------


def test_metrics_in_prometheus_format(http: httpx.Client, ns: str) -> None:
    http.put(f"/v1/kv/custom/{ns}/m", content=b"1")
    http.put(f"/v1/kv/custom/{ns}/m", content=b"1", params={"expected_version": 9})
    text = http.get("/metrics").text
    assert "# TYPE statebox_http_requests_total counter" in text
    route = "/v1/kv/{scope}/{namespace}/{key:path}"
    counted = rf'route="{re.escape(route)}",method="PUT",status="409"\}} \d+'
    assert re.search(r"statebox_http_requests_total\{" + counted, text)
    assert f'statebox_http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}}' in text
    conflicts = re.search(r"^statebox_conflicts_total (\d+)$", text, re.M)
    assert conflicts and int(conflicts.group(1)) >= 1
    assert "statebox_backend_errors_total" in text
    assert ns not in text  # labels are route templates: no namespace or key leaks


def test_healthz_docs_and_unknown_routes(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"ok": True}
    page = http.get("/docs")
    assert page.headers["content-type"].startswith("text/html") and "openapi.json" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text)  # self-contained: no CDN
    nowhere = http.get("/v2/nothing")
    assert nowhere.status_code == 404 and error(nowhere)["kind"] == "no_route"
    assert http.patch("/healthz").status_code == 405


def test_openapi_lists_exactly_the_routes(http: httpx.Client) -> None:
    from statebox.server import create_app

    schema = http.get("/openapi.json").json()
    documented = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    }
    app = create_app("memory://")
    served = {
        (method, re.sub(r"\{(\w+):path\}", r"{\1}", route.path))
        for route in app.routes
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD"
    }
    assert documented == served


def test_body_over_the_limit_by_content_length(http: httpx.Client, ns: str) -> None:
    refused = http.put(f"/v1/kv/custom/{ns}/big", content=b'"' + b"x" * 5000 + b'"')
    assert refused.status_code == 413 and error(refused)["kind"] == "value_too_large"
    assert "more than 4096 bytes" in error(refused)["message"]


def test_chunked_body_over_the_limit_is_refused_before_it_ends(
    server: ServerProcess, ns: str
) -> None:
    """The client sends 8 KiB of a body that never ends; the server answers 413 anyway:
    it stopped reading at the limit instead of waiting for (and buffering) the rest."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            f"PUT /v1/kv/custom/{ns}/big HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 1024
        for _ in range(8):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        # no terminating chunk: the body is still open
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert not httpx.get(f"{server.url}/v1/kv/custom/{ns}/big").json()["found"]


def test_client_clock_and_reset_need_test_mode(http: httpx.Client, ns: str) -> None:
    before = time.time()
    http.put(f"/v1/kv/custom/{ns}/k", content=b"1", headers={"x-statebox-now": "0"})
    entry = http.get(f"/v1/entries/custom/{ns}/k").json()["entry"]
    assert entry["updatedAt"] >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before - 60))
    assert http.post("/v1/_test/reset").status_code == 404
    assert http.get(f"/v1/kv/custom/{ns}/k").json()["found"]


def test_reset_empties_a_sqlite_store_and_refuses_stores_it_cannot_empty(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'state.db'}", test_mode=True) as server:
        http = server.client
        http.put("/v1/kv/custom/ns/k", content=b"1")
        assert http.put("/v1/kv/custom/ns/k", content=b"2").json()["version"] == 2
        assert http.post("/v1/_test/reset").status_code == 200
        assert not http.get("/v1/kv/custom/ns/k").json()["found"]
        # A new file and a new writer: versions start again, and writes still land.
        assert http.put("/v1/kv/custom/ns/k", content=b"3").json()["version"] == 1
        assert http.get("/v1/kv/custom/ns/k").json()["value"] == 3
    with running_server(f"file://{tmp_path / 'files'}", test_mode=True) as server:
        answer = server.client.post("/v1/_test/reset")
        assert answer.status_code == 400
        assert "memory:// or sqlite://" in answer.json()["error"]["message"]


def test_writer_context_travels_in_headers(http: httpx.Client, ns: str) -> None:
    headers = {
        "x-statebox-dag": "n%C3%A4chtlich",
        "x-statebox-run-id": "run-7",
        "x-statebox-step": "load",
        "x-statebox-attempt-id": "2",
    }
    http.put(f"/v1/kv/custom/{ns}/k", content=b"1", headers=headers)
    http.post(f"/v1/apply/custom/{ns}", json={"ops": [{"op": "set", "key": "k", "value": 2}]},
              headers=headers)  # fmt: skip
    versions = http.get(f"/v1/history/custom/{ns}/k").json()["versions"]
    assert versions[0]["updatedBy"] == {
        "dagName": "nächtlich",
        "dagRunId": "run-7",
        "attemptId": "2",
        "stepName": "load",
    }
    # the engine's own context has no attempt id
    assert versions[1]["updatedBy"] == {
        "dagName": "nächtlich",
        "dagRunId": "run-7",
        "stepName": "load",
    }


def test_entries_api_carries_whole_entries(http: httpx.Client, ns: str) -> None:
    applied = http.post(
        f"/v1/apply/custom/{ns}",
        content=b'{"ops": [{"op": "set", "key": "k", "value": {"x": 1.50}, "ttl": 60.5}]}',
        headers=JSON,
    ).json()
    (result,) = applied["results"]
    assert result["previous"] is None
    current = result["current"]
    assert current["value"] == {"x": 1.5} and current["hash"] == sha(b'{"x":1.50}')
    assert current["expiresAt"] > current["updatedAt"]
    assert http.get(f"/v1/entries/custom/{ns}/k").json()["entry"] == current
    assert http.get(f"/v1/entries/custom/{ns}/missing").status_code == 404
    scanned = http.get(f"/v1/entries/custom/{ns}").json()["entries"]
    assert [e["key"] for e in scanned] == ["k"] and "value" not in scanned[0]
    records = http.get(f"/v1/records/custom/{ns}/k", params={"version": 1}).json()["records"]
    assert [r["version"] for r in records] == [1]
    token = http.get(f"/v1/changes/custom/{ns}").json()["token"]
    waited = http.get(f"/v1/changes/custom/{ns}", params={"after": token, "timeout": "0.05"})
    assert waited.json() == {"token": token}


def test_purge_route(http: httpx.Client, ns: str) -> None:
    assert http.post("/v1/purge", json={"limit": 10}).json()["operation"] == "purge"
    assert http.post("/v1/purge", json={"limit": 0}).status_code == 400


def test_module_entry_point_names_the_port(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'x.db'}") as other:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", other.url)
        assert other.client.get("/healthz").status_code == 200


def test_statebox_serve_command(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'cli.db'}", via_cli=True) as served:
        assert served.client.put("/v1/kv/global/_/k", content=b"1").status_code == 200
    with running_server(f"sqlite:///{tmp_path / 'cli.db'}") as again:  # the data stayed
        assert again.client.get("/v1/kv/global/_/k").json()["value"] == 1


def test_docs_name_every_route_and_only_real_ones() -> None:
    from statebox.server import create_app

    docs = (Path(__file__).resolve().parent.parent / "docs" / "http.md").read_text()

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    mentioned = {
        (method, shape(path))
        for method, path in re.findall(r"`(GET|PUT|POST|DELETE) (/[^` ?]*)", docs)
    }
    from statebox.server import ServerConfig

    served = {
        (method, shape(route.path))
        for route in create_app("memory://", ServerConfig(test_mode=True)).routes
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD"
    }
    assert mentioned <= served, mentioned - served
    assert {r for r in served if r[1].startswith("/v1/")} <= mentioned, served - mentioned
