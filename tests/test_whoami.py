"""``GET /v1/whoami`` (issue #18): the calling token's name and grants, so the web page
offers only what the token may do. 401 without a valid token on a server with tokens;
a server without tokens answers the anonymous caller, who may do anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server_util import ServerProcess, running_server

WRITER = "writer-secret-0123456789"
READER = "reader-secret-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("whoami")
    tokens = directory / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "name": "feed-worker",
                        "secret": WRITER,
                        "grants": [
                            {"access": "write", "scope": "dag", "namespace": "feed-*"},
                            {"access": "write", "scope": "lease", "namespace": "feed-*"},
                            {
                                "access": "read",
                                "scope": "custom",
                                "namespace": "creds",
                                "reveal": True,
                            },
                        ],
                    },
                    {"name": "dashboards", "secret": READER, "grants": [{"access": "read"}]},
                ]
            }
        )
    )
    with running_server(f"sqlite:///{directory / 'state.db'}", tokens=tokens) as srv:
        yield srv


def whoami(server: ServerProcess, secret: str | None) -> httpx.Response:
    headers = {} if secret is None else {"authorization": f"Bearer {secret}"}
    return httpx.get(f"{server.url}/v1/whoami", headers=headers, timeout=30)


def test_a_token_is_told_its_name_and_grants(server: ServerProcess) -> None:
    answer = whoami(server, WRITER)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {
        "name": "feed-worker",
        "anonymous": False,
        "grants": [
            {"access": "write", "scope": "dag", "namespace": "feed-*", "reveal": False},
            {"access": "write", "scope": "lease", "namespace": "feed-*", "reveal": False},
            {"access": "read", "scope": "custom", "namespace": "creds", "reveal": True},
        ],
    }
    # scope and namespace default to "*" in the tokens file: shown as such.
    assert whoami(server, READER).json() == {
        "name": "dashboards",
        "anonymous": False,
        "grants": [{"access": "read", "scope": "*", "namespace": "*", "reveal": False}],
    }


@pytest.mark.parametrize("secret", [None, "not-a-token-0123456789"])
def test_without_a_valid_token_it_is_401(server: ServerProcess, secret: str | None) -> None:
    answer = whoami(server, secret)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["kind"] == "unauthenticated"
    assert "grants" not in answer.text


def test_a_server_without_tokens_answers_the_anonymous_caller(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'state.db'}") as srv:
        answer = whoami(srv, None)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "name": "",
            "anonymous": True,
            "grants": [{"access": "write", "scope": "*", "namespace": "*", "reveal": True}],
        }


def test_the_openapi_document_describes_the_route(server: ServerProcess) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    operation = document["paths"]["/v1/whoami"]["get"]
    assert "401" in operation["responses"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/WhoamiResult")
    model = document["components"]["schemas"]["WhoamiResult"]
    assert set(model["properties"]) == {"name", "anonymous", "grants"}
