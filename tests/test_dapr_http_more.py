"""Dapr's HTTP API on a real ``statebox serve`` beyond state (docs/dapr.md): tokens and
grants, secrets, the object-store binding, the second port, statebox's own API, CLI and
watch on what Dapr wrote, ``/openapi.json``, and components statebox does not serve.
The server: tests/dapr_http_support.py; the state routes: tests/test_dapr_http.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .dapr_http_support import (
    ADMIN,
    APP,
    BLIND,
    OTHER,
    PUBSUB_YAML,
    Dapr,
    assert_dapr_error,
    binding,
    components,
    start_dapr,
)
from .server_util import running_server
from .test_atlan_api import new_secret_key


@pytest.fixture(scope="module")
def dapr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dapr]:
    yield from start_dapr(tmp_path_factory)


# --- tokens and grants ---------------------------------------------------------------------


def test_tokens(dapr: Dapr) -> None:
    assert dapr.save({"key": "guarded", "value": 1}).status_code == 204
    url = f"{dapr.server.url}/v1.0/state/statestore/guarded"
    assert httpx.get(url, headers={"dapr-api-token": ADMIN}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert_dapr_error(httpx.get(url), 401, "ERR_UNAUTHENTICATED")
    wrong = httpx.get(url, headers={"dapr-api-token": "not-a-token"})
    assert_dapr_error(wrong, 401, "ERR_UNAUTHENTICATED")
    other = httpx.get(url, headers={"dapr-api-token": OTHER})
    body = assert_dapr_error(other, 403, "ERR_PERMISSION_DENIED")
    assert "dapr-statestore" in body["message"]
    save = httpx.post(
        f"{dapr.server.url}/v1.0/state/statestore",
        json=[{"key": "guarded", "value": 2}],
        headers={"dapr-api-token": OTHER},
    )
    assert_dapr_error(save, 403, "ERR_PERMISSION_DENIED")
    assert dapr.get("guarded").content == b"1"


# --- secrets -----------------------------------------------------------------------------


def test_secrets_need_the_reveal_grant(dapr: Dapr) -> None:
    put = dapr.client.put(
        "/v1/kv/custom/dapr-secretstore/db-creds", json={"username": "app", "password": "pw"}
    )
    assert put.status_code == 200, put.text
    assert dapr.client.put("/v1/kv/custom/dapr-secretstore/api-key", json="k-123").status_code
    got = dapr.client.get("/v1.0/secrets/secretstore/db-creds")
    assert got.status_code == 200, got.text
    assert got.json() == {"username": "app", "password": "pw"}
    assert dapr.client.get("/v1.0/secrets/secretstore/api-key").json() == {"api-key": "k-123"}
    bulk = dapr.client.get("/v1.0/secrets/secretstore/bulk")
    assert bulk.status_code == 200, bulk.text
    assert bulk.json() == {
        "api-key": {"api-key": "k-123"},
        "db-creds": {"username": "app", "password": "pw"},
    }
    assert_dapr_error(
        dapr.client.get("/v1.0/secrets/nostore/db-creds"), 401, "ERR_SECRET_STORE_NOT_FOUND"
    )  # 401, as Dapr answers an unknown secret store
    assert_dapr_error(dapr.client.get("/v1.0/secrets/secretstore/nothing"), 500, "ERR_SECRET_GET")
    blind = {"dapr-api-token": BLIND}
    url = f"{dapr.server.url}/v1.0/secrets/secretstore/db-creds"
    assert_dapr_error(httpx.get(url, headers=blind), 403, "ERR_PERMISSION_DENIED")
    bulk_url = f"{dapr.server.url}/v1.0/secrets/secretstore/bulk"
    assert_dapr_error(httpx.get(bulk_url, headers=blind), 403, "ERR_PERMISSION_DENIED")
    # The secret store's keyspace is secret: statebox's own answers mask it.
    masked = httpx.get(f"{dapr.server.url}/v1/kv/custom/dapr-secretstore/db-creds", headers=blind)
    assert masked.status_code == 200 and masked.json()["value"] == "***"


# --- the object-store binding --------------------------------------------------------------


def test_object_store_binding(dapr: Dapr) -> None:
    path = "persistent-artifacts/apps/demo/workflows/wf-1/config.json"
    created = binding(dapr, "create", {"status": "running"}, key=path)
    assert created.status_code in (200, 204), created.text
    got = binding(dapr, "get", key=path)
    assert got.status_code == 200, got.text
    assert json.loads(got.content) == {"status": "running"}

    assert binding(dapr, "create", "plain text", fileName="notes.txt").status_code in (200, 204)
    assert binding(dapr, "get", fileName="notes.txt").content == b"plain text"

    listed = binding(dapr, "list")
    assert listed.status_code == 200, listed.text
    assert {path, "notes.txt"} <= set(json.loads(listed.content))

    assert binding(dapr, "delete", key="notes.txt").status_code in (200, 204)
    assert_dapr_error(binding(dapr, "get", key="notes.txt"), 500, "ERR_INVOKE_OUTPUT_BINDING")
    assert_dapr_error(
        dapr.client.post("/v1.0/bindings/nobinding", json={"operation": "get"}),
        500,
        "ERR_INVOKE_OUTPUT_BINDING",
    )


# --- the second port -----------------------------------------------------------------------


def test_dapr_http_port_serves_the_same_api(dapr: Dapr) -> None:
    assert dapr.save({"key": "both-ports", "value": {"p": 1}}).status_code == 204
    with httpx.Client(base_url=dapr.dapr_url, headers={"dapr-api-token": ADMIN}) as second:
        assert second.get("/v1.0/healthz/outbound").status_code == 204
        got = second.get("/v1.0/state/statestore/both-ports")
        assert got.status_code == 200 and json.loads(got.content) == {"p": 1}
        saved = second.post("/v1.0/state/statestore", json=[{"key": "both-ports", "value": 2}])
        assert saved.status_code == 204
    assert dapr.get("both-ports").content == b"2"


# --- statebox on the same entries --------------------------------------------------------


def test_the_cli_sees_what_dapr_wrote_and_the_reverse(dapr: Dapr) -> None:
    assert dapr.save({"key": "shared", "value": {"v": 1}}).status_code == 204
    assert dapr.save({"key": "shared", "value": {"v": 2}}).status_code == 204
    where = ["--scope", "custom", "--namespace", "dapr-statestore"]
    got = dapr.cli("get", *where, f"{APP}shared")
    assert got.returncode == 0, got.stderr
    shown = json.loads(got.stdout)
    assert shown["value"] == {"v": 2} and shown["version"] == 2
    history = dapr.cli("history", *where, "--include-values", f"{APP}shared")
    assert history.returncode == 0, history.stderr
    versions = json.loads(history.stdout)["versions"]
    assert [v["value"] for v in versions] == [{"v": 2}, {"v": 1}]

    wrote = dapr.cli("set", *where, f"{APP}from-cli", '{"by": "cli"}')
    assert wrote.returncode == 0, wrote.stderr
    got_dapr = dapr.get("from-cli")
    assert got_dapr.status_code == 200 and json.loads(got_dapr.content) == {"by": "cli"}
    assert got_dapr.headers["etag"] == "1"

    listed = dapr.cli("keyspaces", "--scope", "custom")
    assert listed.returncode == 0, listed.stderr
    assert "dapr-statestore" in listed.stdout


def test_a_statebox_watch_sees_what_dapr_writes(dapr: Dapr) -> None:
    """What a sidecar cannot give: a long poll on the Dapr key, woken by a Dapr write."""
    import threading

    assert dapr.save({"key": "watched", "value": 1}).status_code == 204
    answers: list[httpx.Response] = []
    params = {"key": f"{APP}watched", "after_version": "1", "timeout": "20"}
    polling = threading.Thread(
        target=lambda: answers.append(
            dapr.client.get("/v1/watch/custom/dapr-statestore", params=params)
        )
    )
    polling.start()
    try:
        polling.join(0.5)
        assert not answers  # waiting: nothing changed past version 1 yet
        assert dapr.save({"key": "watched", "value": 2}).status_code == 204
        polling.join(20)
    finally:
        polling.join(20)
    assert answers and answers[0].status_code == 200, answers
    answer = answers[0].json()
    assert answer["timedOut"] is False, answer
    [event] = answer["events"]
    assert (event["key"], event["event"], event["version"]) == (f"{APP}watched", "updated", 2)


def test_openapi_documents_the_dapr_routes(dapr: Dapr) -> None:
    paths = dapr.client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1.0/healthz",
        "/v1.0/healthz/outbound",
        "/v1.0/metadata",
        "/v1.0/state/{store}",
        "/v1.0/state/{store}/{key}",
        "/v1.0/state/{store}/bulk",
        "/v1.0/state/{store}/transaction",
        "/v1.0/secrets/{store}/bulk",
        "/v1.0/secrets/{store}/{key}",
        "/v1.0/bindings/{name}",
    ):
        assert path in paths, path


# --- components statebox does not serve ----------------------------------------------------


def test_an_unserved_component_is_named_at_start_and_in_answers(tmp_path: Path) -> None:
    folder = components(tmp_path, ("pubsub.yaml", PUBSUB_YAML))
    with running_server(
        f"sqlite:///{tmp_path / 'x.db'}",
        via_cli=True,
        env={"STATEBOX_SECRET_KEY": new_secret_key()},
        args=["--dapr-components", str(folder)],
    ) as server:
        log = server.log_text()
        assert "eventbus" in log and "pubsub.redis" in log, log
        assert "connectionString" in log and "statestore" in log, log
        assert "./local/dapr/statestore.db" not in log
        response = httpx.get(f"{server.url}/v1.0/state/eventbus/k")
        body = response.json()
        assert response.status_code >= 400 and body["errorCode"].startswith("ERR_"), body
        assert "eventbus" in body["message"] and "does not serve" in body["message"], body
        names = {c["name"] for c in httpx.get(f"{server.url}/v1.0/metadata").json()["components"]}
        assert "eventbus" not in names and "statestore" in names
