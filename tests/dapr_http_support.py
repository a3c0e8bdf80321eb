"""What the Dapr HTTP tests share (tests/test_dapr_http*.py): the components (the seed's
``statestore.yaml`` unchanged, a secret store, an object-store binding), the tokens, a
real ``statebox serve`` subprocess over a SQLite file with a client that sends the admin
token as Dapr's clients do, and the check of Dapr's error body.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server_util import ServerProcess, free_port, running_server
from .test_atlan_api import new_secret_key

# The seed's components/statestore.yaml (shared/seeds/004), unchanged.
STATESTORE_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  version: v1
  type: state.sqlite
  ignoreErrors: true
  metadata:
  # Connection string
  - name: connectionString
    value: "./local/dapr/statestore.db"
"""
SECRETSTORE_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: secretstore
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: ./secrets.json
"""
OBJECTSTORE_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: objectstore
spec:
  type: bindings.localstorage
  version: v1
  metadata:
  - name: rootPath
    value: ./local/tmp
"""
PUBSUB_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: eventbus
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
"""

ADMIN = "dapr-admin-secret-0123456789abcdef"
OTHER = "dapr-other-secret-0123456789abcdef"  # grants on another namespace only
BLIND = "dapr-blind-secret-0123456789abcdef"  # the Dapr keyspaces without reveal
TOKENS = f"""
tokens:
  - name: admin
    secret: {ADMIN}
    grants:
      - {{access: write, scope: "*", namespace: "*", reveal: true}}
  - name: other
    secret: {OTHER}
    grants:
      - {{access: write, scope: custom, namespace: "elsewhere"}}
  - name: blind
    secret: {BLIND}
    grants:
      - {{access: write, scope: custom, namespace: "dapr-*"}}
"""
T0 = 1_900_000_000 * 10**9  # 2030-03-17T17:46:40Z, in nanoseconds
NOW = "X-Statebox-Now"
APP = "statebox||"  # Dapr's default key prefix, with the default --dapr-app-id


def components(where: Path, *extra: tuple[str, str]) -> Path:
    folder = where / "components"
    folder.mkdir()
    (folder / "statestore.yaml").write_text(STATESTORE_YAML)
    (folder / "secretstore.yaml").write_text(SECRETSTORE_YAML)
    (folder / "objectstore.yaml").write_text(OBJECTSTORE_YAML)
    for name, text in extra:
        (folder / name).write_text(text)
    return folder


class Dapr:
    """The server, its Dapr port, and a client that sends the admin token as Dapr's
    clients do (``dapr-api-token``)."""

    def __init__(self, server: ServerProcess, dapr_port: int, db: Path, key: str) -> None:
        self.server = server
        self.dapr_url = f"http://127.0.0.1:{dapr_port}"
        self.db = db
        self.key = key
        self.client = httpx.Client(
            base_url=server.url, timeout=30, headers={"dapr-api-token": ADMIN}
        )

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.db}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "STATEBOX_STORE": self.store_url,
            "STATEBOX_SECRET_KEY": self.key,
        }
        return subprocess.run(
            [sys.executable, "-m", "statebox.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def save(self, *items: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.client.post("/v1.0/state/statestore", json=list(items), **kwargs)

    def get(self, key: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(f"/v1.0/state/statestore/{key}", **kwargs)


def start_dapr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dapr]:
    """A module's server (the body of its ``dapr`` fixture): the three components, the
    tokens, test mode, a Dapr HTTP port."""
    where = tmp_path_factory.mktemp("dapr-http")
    folder = components(where)
    tokens = where / "tokens.yaml"
    tokens.write_text(TOKENS)
    db = where / "x.db"
    port = free_port()
    key = new_secret_key()
    with running_server(
        f"sqlite:///{db}",
        via_cli=True,
        test_mode=True,
        tokens=tokens,
        env={"STATEBOX_SECRET_KEY": key},
        args=["--dapr-components", str(folder), "--dapr-http-port", str(port)],
    ) as server:
        found = Dapr(server, port, db, key)
        yield found
        found.client.close()


def assert_dapr_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"errorCode", "message"}, body
    assert body["errorCode"] == code, body
    assert body["message"], body
    return body


def binding(dapr: Dapr, operation: str, data: Any = None, **metadata: str) -> httpx.Response:
    body: dict[str, Any] = {"operation": operation, "metadata": metadata}
    if data is not None:
        body["data"] = data
    return dapr.client.post("/v1.0/bindings/objectstore", json=body)
