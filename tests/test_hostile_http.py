"""No web page can drive the server (issue #12 §2; etcd's CVE-2018-1098 and -1099).

Real servers in subprocesses on loopback ports, driven with the requests a hostile page
makes a browser send: a cross-site POST with ``Content-Type: text/plain`` (no CORS
preflight) and an ``Origin`` of its own, and DNS rebinding (a name of the attacker's that
now resolves to 127.0.0.1, sent as ``Host``). Each is refused before it runs; what the
server's own page, the test clients and a listed origin send still works.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from .server_util import ServerProcess, running_server

EVIL = "https://evil.example"
TEXT = {"content-type": "text/plain"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A default server: loopback, no tokens — what a developer runs on a laptop."""
    with running_server("memory://") as srv:
        yield srv


@pytest.fixture(scope="module")
def open_server() -> Iterator[ServerProcess]:
    """A server whose operator allowed one more name and one web origin."""
    args = ["--allow-host", "state.internal", "--allow-origin", "https://app.example"]
    with running_server("memory://", args=args) as srv:
        yield srv


@pytest.fixture
def ns() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def kind(response: httpx.Response) -> str:
    return str(response.json()["error"]["kind"])


def message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


def port_of(server: ServerProcess) -> int:
    port = urlsplit(server.url).port
    assert port is not None
    return port


# --- the cross-site POST (CVE-2018-1098) -------------------------------------------------


def test_a_text_plain_post_from_a_page_runs_nothing(server: ServerProcess, ns: str) -> None:
    http = server.client
    http.put(f"/v1/kv/custom/{ns}/victim", json={"n": 1}).raise_for_status()
    # What <form enctype="text/plain"> or fetch(..., {mode: "no-cors"}) sends: each of
    # these ran on the old server, none asked the browser for a preflight.
    attacks = {
        "update": (f"/v1/update/custom/{ns}/victim", b'{"merge": {"owned": true}}'),
        "txn": (f"/v1/txn/custom/{ns}", b'{"ops": [{"op": "delete", "key": "victim"}]}'),
        "lease": ("/v1/leases/acquire", b'{"name": "' + ns.encode() + b'", "ttl": 3153600000}'),
        "purge": ("/v1/purge", b'{"limit": 1000}'),
    }
    for name, (path, body) in attacks.items():
        answer = http.post(path, content=body, headers=TEXT)
        assert answer.status_code == 415, (name, answer.text)
        assert kind(answer) == "unsupported_media_type"
        assert "text/plain" in message(answer) and "application/json" in message(answer)
    # The forms' other two types are refused alike, and a POST body with no type at all.
    form = http.post(
        f"/v1/update/custom/{ns}/victim",
        content=b"merge=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    multipart = http.post(f"/v1/update/custom/{ns}/victim", files={"merge": b"{}"})
    untyped = http.post(f"/v1/update/custom/{ns}/victim", content=b'{"merge": {"x": 1}}')
    assert [form.status_code, multipart.status_code, untyped.status_code] == [415] * 3
    assert "no Content-Type" in message(untyped)
    # Nothing ran: the entry is unchanged and the lease was never taken.
    after = http.get(f"/v1/kv/custom/{ns}/victim").json()
    assert (after["version"], after["value"]) == (1, {"n": 1})
    assert http.get(f"/v1/leases/{ns}").status_code == 404
    # The same operation sent as JSON (httpx's json=, the remote store) works.
    ok = http.post(f"/v1/update/custom/{ns}/victim", json={"merge": {"x": 1}})
    assert ok.status_code == 200 and ok.json()["value"] == {"n": 1, "x": 1}
    typed = http.post(
        f"/v1/update/custom/{ns}/victim",
        content=b'{"merge": {"y": 2}}',
        headers={"content-type": "application/merge-patch+json; charset=utf-8"},
    )
    assert typed.status_code == 200


def test_a_foreign_origin_is_refused_whatever_it_sends(server: ServerProcess, ns: str) -> None:
    http = server.client
    evil = {"origin": EVIL}
    write = http.put(f"/v1/kv/custom/{ns}/k", json=1, headers=evil)
    assert write.status_code == 403 and kind(write) == "permission_denied"
    assert "evil.example" in message(write) and "--allow-origin" in message(write)
    read = http.get(f"/v1/kv/custom/{ns}", headers=evil)  # a fetch() that wants to read
    assert read.status_code == 403
    sandboxed = http.post("/v1/purge", json={}, headers={"origin": "null"})
    assert sandboxed.status_code == 403
    # a preflight from it gets no CORS answer either
    preflight = http.options(
        f"/v1/kv/custom/{ns}/k", headers={**evil, "access-control-request-method": "PUT"}
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert http.get(f"/v1/kv/custom/{ns}/k").json()["found"] is False


def test_put_and_delete_bodies_of_form_types_are_refused(server: ServerProcess, ns: str) -> None:
    http = server.client
    text = http.put(f"/v1/kv/custom/{ns}/k", content=b"hello", headers=TEXT)
    assert text.status_code == 415 and "octet-stream" in message(text)
    gone = http.request("DELETE", f"/v1/kv/custom/{ns}/k", content=b"x=1", headers=TEXT)
    assert gone.status_code == 415
    # Binary values keep their own types, and a PUT body with no type is JSON, as before.
    blob = http.put(
        f"/v1/kv/custom/{ns}/b", content=b"\x00\x01", headers={"content-type": "image/png"}
    )
    assert blob.status_code == 200
    assert http.get(f"/v1/kv/custom/{ns}/b").json()["contentType"] == "image/png"
    assert http.put(f"/v1/kv/custom/{ns}/j", content=b'{"a": 1}').status_code == 200


# --- DNS rebinding (CVE-2018-1099) ---------------------------------------------------------


def test_a_rebound_host_name_reads_nothing(server: ServerProcess, ns: str) -> None:
    http = server.client
    http.put(f"/v1/kv/custom/{ns}/secret", json="s3cret").raise_for_status()
    port = port_of(server)
    for host in ("rebind.evil.example", f"rebind.evil.example:{port}", "localhost.evil.example"):
        answer = http.get(
            f"/v1/kv/custom/{ns}", params={"include_values": "1"}, headers={"host": host}
        )
        assert answer.status_code == 421, (host, answer.text)
        assert kind(answer) == "misdirected_request"
        assert "s3cret" not in answer.text and "secret" not in answer.text.replace(
            "Host header", ""
        )
        assert "--allow-host" in message(answer)
        write = http.put(f"/v1/kv/custom/{ns}/k", json=1, headers={"host": host})
        assert write.status_code == 421
    assert http.get(f"/v1/kv/custom/{ns}/k").json()["found"] is False


def test_loopback_names_and_literal_addresses_are_answered(server: ServerProcess) -> None:
    http = server.client
    port = port_of(server)
    for host in (
        f"127.0.0.1:{port}",
        "127.0.0.1",
        f"localhost:{port}",
        "LOCALHOST.",
        f"app.localhost:{port}",
        f"[::1]:{port}",
        f"10.1.2.3:{port}",  # a literal address is the server's own page, never rebound
    ):
        assert http.get("/healthz", headers={"host": host}).status_code == 200, host
    for host in (f"localhost:{port}x", "[::1", "user@localhost"):
        assert http.get("/healthz", headers={"host": host}).status_code == 421, host


# --- what must keep working ---------------------------------------------------------------


def test_the_servers_own_page_can_write(server: ServerProcess, ns: str) -> None:
    """/docs posts JSON with its own origin, as browsers send it on a same-origin POST."""
    http = server.client
    own = server.url  # http://127.0.0.1:PORT
    assert http.get("/docs", headers={"origin": own}).status_code == 200
    assert http.get("/openapi.json").status_code == 200
    put = http.put(f"/v1/kv/custom/{ns}/k", json=1, headers={"origin": own})
    assert put.status_code == 200
    posted = http.post(f"/v1/update/custom/{ns}/k", json={"jq": ". + 1"}, headers={"origin": own})
    assert posted.status_code == 200 and posted.json()["value"] == 2
    # the same origin under another port is another origin
    other = f"http://127.0.0.1:{port_of(server) + 1}"
    assert http.put(f"/v1/kv/custom/{ns}/k", json=1, headers={"origin": other}).status_code == 403


def test_listed_hosts_and_origins_are_served_with_cors(open_server: ServerProcess, ns: str) -> None:
    http = open_server.client
    port = port_of(open_server)
    internal = {"host": f"state.internal:{port}"}
    assert http.get("/healthz", headers=internal).status_code == 200
    assert http.get("/healthz", headers={"host": "other.internal"}).status_code == 421
    app = {"origin": "https://app.example"}
    preflight = http.options(
        f"/v1/kv/custom/{ns}/k",
        headers={
            **app,
            "access-control-request-method": "PUT",
            "access-control-request-headers": "authorization, content-type, if-match",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers
    put = http.put(f"/v1/kv/custom/{ns}/k", json=1, headers=app)
    assert put.status_code == 200
    assert put.headers["access-control-allow-origin"] == "https://app.example"  # never "*"
    assert "origin" in put.headers["vary"].lower()
    assert "etag" in put.headers["access-control-expose-headers"].lower()
    # A listed origin still sends JSON: a text/plain body is refused from it as well.
    assert (
        http.post(f"/v1/update/custom/{ns}/k", content=b"{}", headers={**app, **TEXT}).status_code
        == 415
    )
    refused = http.put(f"/v1/kv/custom/{ns}/k", json=2, headers={"origin": EVIL})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
