"""Security of the server (SPEC §8): tokens, grants, namespaces that stay apart, binding.

A real server with a real tokens file; the remote store is exercised with
``STATEBOX_TOKEN`` as a worker would set it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statebox import ConfigurationError, PermissionDeniedError, RunContext, open_store
from statebox.server.auth import Access, load_tokens
from statebox.server.main import check_bind, is_loopback

from .server_util import ROOT, ServerProcess, running_server

WRITER_A = "writer-a-secret-0123456789"
READER_A = "reader-a-secret-0123456789"
WRITER_B = "writer-b-secret-0123456789"
ADMIN = "admin-secret-0123456789abc"
JSON = "application/json"

TOKENS_YAML = f"""
tokens:
  - name: writer-a
    sha256: {hashlib.sha256(WRITER_A.encode()).hexdigest()}
    grants:
      - {{access: write, scope: custom, namespace: "a"}}
      - {{access: write, scope: lease, namespace: "job-a*"}}
  - name: reader-a
    secret: {READER_A}
    grants:
      - {{access: read, scope: custom, namespace: a}}
  - name: writer-b
    secret: {WRITER_B}
    grants:
      - {{access: write, scope: custom, namespace: b}}
  - name: admin
    secret: {ADMIN}
    grants:
      - {{access: write}}
"""


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.yaml"
    path.write_text(TOKENS_YAML)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tokens_file: Path) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("secure") / "state.db"
    # access log on: the test below checks that no secret reaches the log
    with running_server(
        f"sqlite:///{db}?synchronous=NORMAL",
        tokens=tokens_file,
        access_log=True,
    ) as srv:
        yield srv


def as_token(server: ServerProcess, secret: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def seeded(server: ServerProcess) -> None:
    with as_token(server, WRITER_B) as b:
        assert b.put("/v1/kv/custom/b/secret-of-b", content=b'"b-only"').status_code == 200
    with as_token(server, WRITER_A) as a:
        assert a.put("/v1/kv/custom/a/mine", content=b"1").status_code == 200


def test_no_token_or_a_wrong_one_is_401(server: ServerProcess) -> None:
    with as_token(server, None) as anonymous:
        missing = anonymous.get("/v1/kv/custom/a/mine")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["kind"] == "unauthenticated"
    with as_token(server, "not-a-token-at-all") as wrong:
        assert wrong.get("/v1/kv/custom/a/mine").status_code == 401
        assert wrong.put("/v1/kv/custom/a/mine", content=b"2").status_code == 401
    with httpx.Client(base_url=server.url, headers={"authorization": f"Basic {WRITER_A}"}) as c:
        assert c.get("/v1/kv/custom/a/mine").status_code == 401
    # what needs no token names no namespace or key
    with as_token(server, None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200


@pytest.mark.usefixtures("seeded")
def test_a_token_never_sees_another_namespace(server: ServerProcess) -> None:
    with as_token(server, WRITER_A) as a:
        attempts = {
            "get": a.get("/v1/kv/custom/b/secret-of-b"),
            "set": a.put("/v1/kv/custom/b/secret-of-b", content=b"1"),
            "delete": a.delete("/v1/kv/custom/b/secret-of-b"),
            "list": a.get("/v1/kv/custom/b"),
            "history": a.get("/v1/history/custom/b/secret-of-b"),
            "diff": a.post("/v1/diff/custom/b/secret-of-b", json={"value": 1}),
            "update": a.post("/v1/update/custom/b/x", json={"jq": "."}),
            "txn": a.post("/v1/txn/custom/b", json={"ops": []}),
            "watch": a.get("/v1/watch/custom/b", params={"prefix": "", "timeout": "0"}),
            "events": a.get("/v1/events/custom/b", params={"prefix": "", "timeout": "0"}),
            "entry": a.get("/v1/entries/custom/b/secret-of-b"),
            "scan": a.get("/v1/entries/custom/b"),
            "records": a.get("/v1/records/custom/b/secret-of-b"),
            "apply": a.post("/v1/apply/custom/b", json={"ops": [{"op": "delete", "key": "x"}]}),
            "changes": a.get("/v1/changes/custom/b"),
            "other scope": a.get("/v1/kv/global/a/k"),
            "purge": a.post("/v1/purge", json={}),
        }
        for name, response in attempts.items():
            assert response.status_code == 403, (name, response.text)
            assert "b-only" not in response.text and "secret-of-b" not in response.text, name
        listing = a.get("/v1/kv/custom/a", params={"include_values": "1"}).json()
        assert [(e["namespace"], e["key"]) for e in listing["entries"]] == [("a", "mine")]
    with as_token(server, WRITER_B) as b:
        assert b.get("/v1/kv/custom/b/secret-of-b").json()["value"] == "b-only"


@pytest.mark.usefixtures("seeded")
def test_no_grant_is_403_whatever_the_request_sent(server: ServerProcess) -> None:
    """The grant is checked before the query or body is read: a caller without one
    learns nothing from validation and never makes the server decode its body."""
    big = b'{"merge": [' + b"1.5," * 200_000 + b"1]}"
    with as_token(server, WRITER_A) as a:
        attempts = {
            "bad query": a.get("/v1/kv/custom/b/k", params={"version": "0"}),
            "unknown field": a.post("/v1/update/custom/b/k", json={"bad": 1}),
            "not JSON": a.post(
                "/v1/update/custom/b/k", content=b'{"nope":1', headers={"content-type": JSON}
            ),
            "big body": a.post(
                "/v1/update/custom/b/k", content=big, headers={"content-type": JSON}
            ),
            "bad txn": a.post("/v1/txn/custom/b", json={"ops": "x"}),
            "bad watch": a.get("/v1/watch/custom/b", params={"timeout": "-1"}),
        }
        for name, response in attempts.items():
            assert response.status_code == 403, (name, response.text)
            assert response.json()["error"]["kind"] == "permission_denied", name
    with as_token(server, READER_A) as reader:
        assert reader.get("/v1/kv/custom/b/k", params={"version": "0"}).status_code == 403
        own = reader.get("/v1/kv/custom/a/mine", params={"version": "0"})
        assert own.status_code == 400 and "?version=" in own.json()["error"]["message"]


@pytest.mark.usefixtures("seeded")
def test_read_grants_do_not_write(server: ServerProcess) -> None:
    with as_token(server, READER_A) as reader:
        assert reader.get("/v1/kv/custom/a/mine").json()["value"] == 1
        refused = reader.put("/v1/kv/custom/a/mine", content=b"2")
        assert refused.status_code == 403
        assert "no write grant" in refused.json()["error"]["message"]
    with as_token(server, ADMIN) as admin:
        assert admin.get("/v1/kv/custom/a/mine").json()["value"] == 1
        assert admin.post("/v1/purge", json={}).status_code == 200


def test_the_principal_is_recorded_and_cannot_be_forged(server: ServerProcess) -> None:
    with as_token(server, WRITER_A) as a:
        a.put(
            "/v1/kv/custom/a/who",
            content=b"1",
            headers={"x-statebox-dag": "nightly", "x-statebox-principal": "admin"},
        )
        (latest,) = a.get("/v1/history/custom/a/who").json()["versions"]
        assert latest["updatedBy"] == {"dagName": "nightly", "principal": "writer-a"}


def test_leases_are_granted_by_name(server: ServerProcess) -> None:
    with as_token(server, WRITER_A) as a:
        ok = a.post("/v1/leases/acquire", json={"name": "job-a1", "ttl": 5, "holder": "h"})
        assert ok.status_code == 200
        other = a.post("/v1/leases/acquire", json={"name": "job-b1", "ttl": 5, "holder": "h"})
        assert other.status_code == 403


def test_the_remote_store_sends_statebox_token(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = RunContext(dag="feed", run_id="r1", step="s")
    monkeypatch.setenv("STATEBOX_TOKEN", WRITER_A)
    with open_store(server.url, context=context) as store:
        assert store.set("via-remote", {"n": 1}, scope="custom", namespace="a").version >= 1
        got = store.get("via-remote", scope="custom", namespace="a")
        assert got.updated_by.principal == "writer-a" and got.updated_by.dag_name == "feed"
        with pytest.raises(PermissionDeniedError, match="no read grant"):
            store.get("secret-of-b", scope="custom", namespace="b")
    monkeypatch.setenv("STATEBOX_TOKEN", "wrong-token-wrong-token")
    with (
        open_store(server.url, context=context) as store,
        pytest.raises(PermissionDeniedError, match="STATEBOX_TOKEN"),
    ):
        store.get("via-remote", scope="custom", namespace="a")
    monkeypatch.delenv("STATEBOX_TOKEN")
    with (
        open_store(server.url, context=context) as store,
        pytest.raises(PermissionDeniedError, match="missing bearer token"),
    ):
        store.get("via-remote", scope="custom", namespace="a")


def test_a_restricted_token_writes_on_and_on(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine purges expired entries now and then after a write; a token that may not
    purge the whole store must not see its writes fail for it (the server purges itself)."""
    monkeypatch.setenv("STATEBOX_TOKEN", WRITER_A)
    with open_store(server.url, context=RunContext(dag="d")) as store:
        for i in range(300):  # past the engine's purge_every (256)
            store.set("many", i, scope="custom", namespace="a")
        assert store.get("many", scope="custom", namespace="a").value == 299


def test_secrets_never_reach_the_log(server: ServerProcess) -> None:
    for secret in (WRITER_A, "a-wrong-secret-that-must-not-be-logged"):
        with as_token(server, secret) as client:
            client.get("/v1/kv/custom/a/mine")
            client.get("/v1/kv/custom/b/secret-of-b")
    log = server.log_text()
    assert "GET /v1/kv/custom/a/mine" in log  # the access log is on...
    assert WRITER_A not in log and "a-wrong-secret" not in log  # ...and holds no secret


# --- the tokens file ---------------------------------------------------------------------


def test_tokens_file_in_json(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "name": "ci",
                        "secret": "s" * 16,
                        "grants": [{"access": "read", "scope": "dag", "namespace": "feed-*"}],
                    }
                ]
            }
        )
    )
    registry = load_tokens(path)
    principal = registry.authenticate("s" * 16)
    assert principal is not None and principal.name == "ci"
    from statebox import Keyspace

    assert principal.can(Access.READ, Keyspace("dag", "feed-sync"))
    assert not principal.can(Access.WRITE, Keyspace("dag", "feed-sync"))
    assert not principal.can(Access.READ, Keyspace("dag", "other"))
    assert registry.authenticate("s" * 15) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens: []", "lists no tokens"),
        ("nothing: here", "list under 'tokens'"),
        ("tokens: [{name: x, secret: short, grants: []}]", "16 characters"),
        ("tokens: [{name: x, sha256: abc, grants: []}]", "64 hexadecimal"),
        ("tokens: [{name: x, grants: []}]", "exactly one of 'secret' and 'sha256'"),
        (f"tokens: [{{name: x, secret: {'s' * 16}, grants: [{{access: admin}}]}}]", "'read' or"),
        (f"tokens: [{{name: x, secret: {'s' * 16}, grants: [{{access: read, ns: a}}]}}]", "ns"),
        (
            f"tokens: [{{name: x, secret: {'s' * 16}, grants: []}}, "
            f"{{name: x, secret: {'t' * 16}, grants: []}}]",
            "duplicate token name",
        ),
        ("tokens: [", "not valid YAML"),
    ],
)
def test_bad_tokens_files_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_tokens(path)


# --- where the server may listen ---------------------------------------------------------


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org"))


def test_a_public_address_needs_tokens_or_insecure() -> None:
    with pytest.raises(ConfigurationError, match="--tokens"):
        check_bind("0.0.0.0", has_tokens=False, insecure=False, test_mode=False)
    check_bind("0.0.0.0", has_tokens=True, insecure=False, test_mode=False)
    check_bind("0.0.0.0", has_tokens=False, insecure=True, test_mode=False)
    with pytest.raises(ConfigurationError, match="test-mode"):
        check_bind("0.0.0.0", has_tokens=True, insecure=True, test_mode=True)


@pytest.mark.parametrize("entry", [["statebox.server"], ["statebox.cli", "serve"]])
def test_serve_refuses_a_public_address_without_tokens(entry: list[str]) -> None:
    """It exits before binding anything, naming the way out."""
    done = subprocess.run(
        [sys.executable, "-m", *entry, "--store", "memory://", "--host", "0.0.0.0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Error: refusing to listen on 0.0.0.0 without --tokens" in done.stderr
    assert "--insecure" in done.stderr and "listening" not in done.stdout


def test_every_answer_says_nosniff_and_refuses_framing(tmp_path: Path) -> None:
    """A JSON answer is never sniffed as HTML, and no other site frames a page of the
    server's (the web page, the docs): on every answer — routed, unrouted, refused
    before routing (413), and the API's own."""
    store = f"sqlite:///{tmp_path / 'x.db'}"
    with (
        running_server(store, args=["--max-body-bytes", "64"]) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        answers = [
            client.get("/healthz"),
            client.get("/docs"),
            client.get("/v1/kv/custom/n/k"),
            client.put("/v1/kv/custom/n/k", json={"a": 1}),
            client.get("/no/such/route"),
            client.put("/v1/kv/custom/n/k", content=b"[" + b"1," * 64 + b"1]"),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 413]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        assert answer.headers["x-frame-options"] == "DENY", answer.request.url
