"""Keyspaces over HTTP (issue #13, item 6): a token lists only the namespaces it may read,
pages stay full and correct while filtering, and deleting a keyspace needs a write grant
on it. In process (Starlette's test client) over a memory store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from statebox import RunContext, StateStore
from statebox.backends.memory import MemoryBackend
from statebox.server import routes_keyspaces
from statebox.server.app import create_app
from statebox.server.auth import TokenRegistry
from statebox.server.config import ServerConfig

ADMIN = "admin-secret-0123456789"
TEAM = "team-secret-0123456789"  # reads custom/team-*, writes custom/team-a only
NOBODY = "nobody-secret-0123456789"  # a grant on nothing that exists

#: The custom namespaces; dag/x and global/_ besides. The team token may read the
#: "team-*" ones only, which come after ten it may not read: a page has to look past them.
NAMESPACES = [f"other-{i}" for i in range(10)] + [f"team-{i}" for i in range(10)] + ["team-a"]


@pytest.fixture
def backend() -> MemoryBackend:
    backend = MemoryBackend()
    store = StateStore(backend, context=RunContext(dag="x"))
    for namespace in NAMESPACES:
        store.set("k", 1, scope="custom", namespace=namespace)
    store.set("k", 1, scope="custom", namespace="team-a")  # same key again: one entry
    store.set("j", 1, scope="custom", namespace="team-a")
    store.set("k", 1, scope="global")
    store.set("k", 1)
    return backend


@pytest.fixture
def app_client(backend: MemoryBackend) -> Iterator[TestClient]:
    tokens = TokenRegistry.from_data(
        {
            "tokens": [
                {"name": "admin", "secret": ADMIN, "grants": [{"access": "write"}]},
                {
                    "name": "team",
                    "secret": TEAM,
                    "grants": [
                        {"access": "read", "scope": "custom", "namespace": "team-*"},
                        {"access": "write", "scope": "custom", "namespace": "team-a"},
                    ],
                },
                {
                    "name": "nobody",
                    "secret": NOBODY,
                    "grants": [{"access": "write", "scope": "custom", "namespace": "none"}],
                },
            ]
        },
        "test",
    )
    app = create_app(backend, ServerConfig(tokens=tokens, purge_interval=0))
    with TestClient(app, base_url="http://localhost") as client:
        yield client


def _get(client: TestClient, secret: str, **params: Any) -> Any:
    response = client.get(
        "/v1/keyspaces", params=params, headers={"authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _names(body: Any) -> list[str]:
    return [f"{k['scope']}/{k['namespace']}" for k in body["keyspaces"]]


def _all_pages(client: TestClient, secret: str, limit: int) -> list[str]:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        body = _get(client, secret, **params)
        assert len(body["keyspaces"]) == limit or "next" not in body  # never a short page
        seen += _names(body)
        if "next" not in body:
            return seen
        assert body["next"] == seen[-1]  # the last one shown: never a hidden one
        params["after"] = body["next"]


def test_an_unrestricted_token_sees_every_keyspace(app_client: TestClient) -> None:
    body = _get(app_client, ADMIN)
    assert _names(body) == [
        *(f"custom/{n}" for n in NAMESPACES),
        "dag/x",
        "global/_",
    ]
    team_a = body["keyspaces"][NAMESPACES.index("team-a")]
    assert team_a["entries"] == 2


def test_a_token_sees_only_the_namespaces_it_may_read(app_client: TestClient) -> None:
    expected = [f"custom/team-{i}" for i in range(10)] + ["custom/team-a"]
    assert _names(_get(app_client, TEAM)) == expected
    assert _names(_get(app_client, NOBODY)) == []


@pytest.mark.parametrize("limit", [1, 3, 4, 11, 50])
def test_pages_are_full_and_complete_while_filtering(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(routes_keyspaces, "_ROUND", 2)  # many small rounds per page
    expected = [f"custom/team-{i}" for i in range(10)] + ["custom/team-a"]
    assert _all_pages(app_client, TEAM, limit) == expected
    assert _all_pages(app_client, ADMIN, limit) == _names(_get(app_client, ADMIN))


def test_scope_filter_and_bad_parameters(app_client: TestClient) -> None:
    assert _names(_get(app_client, ADMIN, scope="global")) == ["global/_"]
    assert _get(app_client, ADMIN, scope="global")["scope"] == "global"
    auth = {"authorization": f"Bearer {ADMIN}"}
    for params in ({"scope": "lease"}, {"after": "custom"}, {"limit": "-1"}, {"limit": "x"}):
        response = app_client.get("/v1/keyspaces", params=params, headers=auth)
        assert response.status_code == 400, (params, response.text)


def test_deleting_a_keyspace_needs_a_write_grant_on_it(
    app_client: TestClient, backend: MemoryBackend
) -> None:
    team = {"authorization": f"Bearer {TEAM}"}
    refused = app_client.delete("/v1/kv/custom/team-0", headers=team)  # read grant only
    assert refused.status_code == 403
    assert refused.json()["error"]["kind"] == "permission_denied"
    done = app_client.delete("/v1/kv/custom/team-a", headers=team)
    assert done.status_code == 200
    assert done.json() == {
        "operation": "deleteKeyspace",
        "scope": "custom",
        "namespace": "team-a",
        "deleted": 2,
    }
    store = StateStore(backend)
    assert store.get("k", scope="custom", namespace="team-0").found  # untouched
    assert list(store.list(scope="custom", namespace="team-a").entries) == []
    # the deletions were recorded with the token's name as principal
    last = store.history("k", scope="custom", namespace="team-a").versions[0]
    assert last.deleted and last.updated_by.principal == "team"
