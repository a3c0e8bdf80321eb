"""The real Atlan SDK, both generations, unmodified, against ``statebox serve``.

Each generation runs in its own environment, made from the package registry by
``scripts/sdk-envs`` (``.cache/sdk-envs/atlan-2.8``: atlan-application-sdk 2.8.x and dapr;
``.cache/sdk-envs/atlan-3``: 3.x), through the programs beside this file
(``atlan28_client.py``, ``atlan3_client.py``), which call only the SDK's own API. The
server is a real ``statebox serve`` subprocess over a SQLite file with a folder of Dapr
component files (the seed's ``statestore.yaml`` unchanged, the object-store binding and
secret stores the SDKs name), serving the Dapr HTTP API on ``--dapr-http-port`` and the
gRPC API on ``--dapr-grpc-port``. What the SDKs wrote is then read back through statebox
itself (``statebox get`` / ``history`` / ``set`` subprocesses on the same file, scope
``custom``, namespace ``dapr-NAME``), and what statebox wrote is read by the SDKs.

Run with ``scripts/sdk-tests`` (its own CI step); the default suite deselects these
(tests/sdk/conftest.py). A missing environment fails, it never skips.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from statebox.dapr.components import load_components
from statebox.dapr.keys import KeyMapper

from ..server_util import ServerProcess, free_port, start_server

pytestmark = pytest.mark.sdk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ENVS = Path(os.environ.get("STATEBOX_SDK_ENVS", ROOT / ".cache" / "sdk-envs"))
APP = "sbapp"  # ATLAN_APPLICATION_NAME
APP_ID = "statebox"  # --dapr-app-id (the default): Dapr's key prefix APPID||
TOKEN = "sdk-test-token-0123456789abcdef"
SDK_TIMEOUT = 300

#: The seed's components/statestore.yaml, unchanged.
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

#: The other components the SDKs name: the object-store binding ``objectstore`` (2.8's
#: state, both generations' credential configs), the secret store ``secretstore`` and the
#: deployment secret store (2.8's get_deployment_secret).
OTHER_COMPONENTS = {
    "objectstore.yaml": """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: objectstore
spec:
  type: bindings.localstorage
  version: v1
  metadata:
  - name: rootPath
    value: {objects}
""",
    "secretstore.yaml": """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: secretstore
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: ./local/dapr/secrets.json
""",
    "deployment-secret-store.yaml": """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: deployment-secret-store
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: ./local/dapr/deployment-secrets.json
""",
}

#: Environment variables the SDK subprocesses do not inherit from the test's own.
PRIVATE_PREFIXES = ("STATEBOX_", "DAPR_", "ATLAN_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


def sdk_python(generation: str) -> Path:
    python = ENVS / f"atlan-{generation}" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no Atlan SDK {generation} environment at {python}: run scripts/sdk-envs")
    return python


def workflow_object(state_id: str) -> str:
    """The object the 2.8 SDK keeps a WORKFLOWS state in (build_state_store_path)."""
    return f"persistent-artifacts/apps/{APP}/workflows/{state_id}/config.json"


def credentials_object(guid: str) -> str:
    return f"persistent-artifacts/apps/{APP}/credentials/{guid}/config.json"


@dataclass
class DaprServer:
    """A ``statebox serve`` with the Dapr API, and statebox's CLI on the same store."""

    process: ServerProcess
    db: Path
    components: Path
    http_port: int
    grpc_port: int
    env: dict[str, str]
    work: Path
    token: str | None = None
    runs: list[str] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.db}"

    # --- statebox's own view --------------------------------------------------------

    def cli(self, *args: str) -> dict[str, Any]:
        command = [sys.executable, "-m", "statebox.cli", "--store", self.store_url, *args]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def get(self, namespace: str, key: str, *extra: str) -> dict[str, Any]:
        return self.cli("get", "--scope", "custom", "--namespace", namespace, *extra, key)

    def history(self, namespace: str, key: str) -> list[dict[str, Any]]:
        """Every kept version, oldest first, with its value (revealed)."""
        result = self.cli(
            "history",
            "--scope",
            "custom",
            "--namespace",
            namespace,
            "--include-values",
            "--reveal",
            "--limit",
            "0",
            key,
        )
        return list(reversed(result["versions"]))

    def set(self, namespace: str, key: str, value: Any) -> dict[str, Any]:
        return self.cli(
            "set", "--scope", "custom", "--namespace", namespace, key, json.dumps(value)
        )

    def state_key(self, dapr_key: str) -> str:
        """The statebox key of a Dapr state key of ``statestore`` (KeyMapper)."""
        component = load_components(self.components).served["statestore"]
        return KeyMapper(component, APP_ID).stored_key(dapr_key)

    def stored_bytes(self) -> bytes:
        """Every byte of the SQLite store (the database, its WAL and shared memory)."""
        return b"".join(
            path.read_bytes()
            for path in self.db.parent.iterdir()
            if path.name.startswith(self.db.name)
        )

    # --- the SDKs -------------------------------------------------------------------

    def run_sdk(
        self,
        generation: str,
        *args: str,
        deployment: str = "statebox-test",
        token: str | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Run the SDK program of ``generation`` ("2.8" or "3") with ``args``; its JSON
        (``token``: send this Dapr API token instead of the server's; ``check=False``:
        answer a failure's JSON instead of failing)."""
        program = HERE / ("atlan28_client.py" if generation == "2.8" else "atlan3_client.py")
        run = f"{generation}-{len(self.runs)}"
        self.runs.append(run)
        cwd = self.work / f"sdk-{run}"  # the SDK writes ./local/... under its cwd
        cwd.mkdir(parents=True)
        out = cwd / "result.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_PREFIXES)}
        env.update(
            DAPR_HTTP_PORT=str(self.http_port),
            DAPR_GRPC_PORT=str(self.grpc_port),
            DAPR_COMPONENTS_PATH=str(self.components),
            ATLAN_APPLICATION_NAME=APP,
            ATLAN_DEPLOYMENT_NAME=deployment,
            ATLAN_TEMPORARY_PATH=str(cwd / "tmp") + "/",
            # The 2.8 SDK would also ship its own logs to the object store every 10 s.
            ATLAN_ENABLE_OBSERVABILITY_DAPR_SINK="false",
            DAPR_HEALTH_TIMEOUT="30",
        )
        if token or self.token:
            env["DAPR_API_TOKEN"] = token or self.token or ""
        started = time.monotonic()
        done = subprocess.run(
            [str(sdk_python(generation)), str(program), *args, "--out", str(out)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=SDK_TIMEOUT,
        )
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        print(
            f"atlan-sdk {generation} {' '.join(args)}: exit {done.returncode} in "
            f"{time.monotonic() - started:.1f} s"
        )
        if check and (done.returncode != 0 or "error" in result or not result):
            raise AssertionError(
                f"the Atlan SDK {generation} program failed ({' '.join(args)}): "
                f"{result.get('error')}\n--- its stderr (tail):\n{done.stderr[-4000:]}\n"
                f"--- its stdout (tail):\n{done.stdout[-2000:]}\n"
                f"--- the server's log (tail):\n{self.process.log_text()[-3000:]}"
            )
        return result


def _wait_ready(server: DaprServer, timeout: float = 30.0) -> None:
    """The Dapr ports answer: GET /v1.0/healthz on the HTTP port, a TCP accept on gRPC."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"http://127.0.0.1:{server.http_port}/v1.0/healthz", timeout=2)
            with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=2):
                pass
            if answer.status_code == 204:
                return
            last = answer.status_code
        except (OSError, httpx.TransportError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(
        f"statebox's Dapr ports did not answer: {last}\n{server.process.log_text()}"
    )


def _secret_key(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "statebox.cli", "secrets", "keygen"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def dapr_server(directory: Path, *, tokens: bool) -> Iterator[DaprServer]:
    """``statebox serve --dapr-components DIR --dapr-http-port P --dapr-grpc-port G`` over
    a SQLite file in ``directory``; with ``tokens``, one token (sent by the 2.8 SDK as
    ``dapr-api-token``) that may write and reveal the ``custom/dapr-*`` keyspaces."""
    components = directory / "components"
    components.mkdir(parents=True)
    (components / "statestore.yaml").write_text(STATESTORE_YAML)
    for name, text in OTHER_COMPONENTS.items():
        (components / name).write_text(text.format(objects=directory / "objects"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEBOX_")}
    env["STATEBOX_HOME"] = str(directory / "home")
    env["STATEBOX_SECRET_KEY"] = _secret_key(env)
    tokens_file = None
    if tokens:
        tokens_file = directory / "tokens.yaml"
        grant = {"access": "write", "scope": "custom", "namespace": "dapr-*", "reveal": True}
        tokens_file.write_text(
            json.dumps({"tokens": [{"name": "atlan-app", "secret": TOKEN, "grants": [grant]}]})
        )
    http_port, grpc_port = free_port(), free_port()
    db = directory / "state.db"
    process = start_server(
        f"sqlite:///{db}",
        via_cli=True,
        tokens=tokens_file,
        env=env,
        args=[
            "--dapr-components",
            str(components),
            "--dapr-http-port",
            str(http_port),
            "--dapr-grpc-port",
            str(grpc_port),
            "--history-limit",
            "64",
        ],
    )
    server = DaprServer(
        process,
        db,
        components,
        http_port,
        grpc_port,
        env,
        directory,
        token=TOKEN if tokens else None,
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        process.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprServer]:
    """A server without tokens (a loopback server: the 3.x SDK sends no Dapr token)."""
    with dapr_server(tmp_path_factory.mktemp("dapr-open"), tokens=False) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprServer]:
    """A server with a tokens file: the 2.8 SDK sends DAPR_API_TOKEN as dapr-api-token."""
    with dapr_server(tmp_path_factory.mktemp("dapr-tokens"), tokens=True) as server:
        yield server


# --- the 2.8 generation: StateStore over the object-store binding, gRPC --------------


def test_sdk28_state_and_credentials_over_grpc_with_a_token(token_server: DaprServer) -> None:
    """StateStore.save_state_object / save_state / get_state (WORKFLOWS) and
    SecretStore.save_secret / get_credentials (CREDENTIALS) of the 2.8 SDK, over gRPC
    with dapr-api-token: the values, their history and their secrecy in statebox."""
    server = token_server
    state_id = "wf-28-" + uuid.uuid4().hex[:8]
    result = server.run_sdk("2.8", "roundtrip", "--id", state_id, deployment="local")

    expected = {
        "workflow_id": state_id,
        "status": "done",
        "progress": 75,
        "args": {"n": 1},
        "output_path": "/data/out",
    }
    assert result["workflow"] == expected
    assert result["second_merge"] == expected
    assert result["missing"] == {}  # a state never saved: get_state's empty dict

    # statebox's view: the object is the entry, each write a version.
    got = server.get("dapr-objectstore", workflow_object(state_id))
    assert got["found"] and got["value"] == expected
    assert got["version"] == 4  # save_state_object, save_state x2, save_state_object
    values = [v["value"] for v in server.history("dapr-objectstore", workflow_object(state_id))]
    assert [(v["status"], v["progress"]) for v in values] == [
        ("running", 0),
        ("running", 75),
        ("done", 75),
        ("done", 75),
    ]
    assert "output_path" in values[3] and "output_path" not in values[2]

    # Credentials: saved by the SDK as CREDENTIALS state, in the -credentials keyspace.
    config = {"host": "db.example.com", "port": 5432, "username": "app", "password": "pw-sdk28"}
    guid = result["credential_guid"]
    assert result["credentials"] == config
    assert result["credential_state"] == config
    masked = server.get("dapr-objectstore-credentials", credentials_object(guid))
    assert masked["found"] and masked.get("masked") is True and masked["value"] == "***"
    revealed = server.get("dapr-objectstore-credentials", credentials_object(guid), "--reveal")
    assert revealed["value"] == config
    assert not server.get("dapr-objectstore", credentials_object(guid))["found"]

    # Outside local deployments get_credentials also asks the secret store (GetSecret
    # on "secretstore", key = the GUID) and get_deployment_secret reads the metadata
    # (GetMetadata) and then the deployment secret store.
    server.set("dapr-secretstore", guid, {"password": "pw-from-secretstore"})
    server.set(
        "dapr-deployment-secret-store",
        "ATLAN_DEPLOYMENT_SECRETS",
        {"deployment_name": "statebox-e2e"},
    )
    fetched = server.run_sdk(
        "2.8", "credentials", "--guid", guid, "--deployment-key", "deployment_name"
    )
    assert fetched["credentials"] == {**config, "password": "pw-from-secretstore"}
    assert fetched["deployment_secret"] == "statebox-e2e"


def test_sdk28_with_a_wrong_token_writes_nothing(token_server: DaprServer) -> None:
    """The dapr-api-token the 2.8 SDK sends is checked as statebox's bearer token."""
    server = token_server
    state_id = "wf-denied-" + uuid.uuid4().hex[:8]
    result = server.run_sdk(
        "2.8",
        "save-field",
        "--id",
        state_id,
        "--key",
        "k",
        "--value",
        "1",
        token="not-a-token-of-this-server-0123",
        check=False,
    )
    assert "UNAUTHENTICATED" in result.get("error", ""), result
    assert not server.get("dapr-objectstore", workflow_object(state_id))["found"]


def test_sdk28_credentials_are_not_plaintext_in_the_store(open_server: DaprServer) -> None:
    """What the SDK saves as CREDENTIALS, and the secret stores' values, are sealed in
    the SQLite file; an ordinary workflow state is not (the scan can see plain values)."""
    server = open_server
    state_id = "wf-plain-" + uuid.uuid4().hex[:8]
    result = server.run_sdk("2.8", "roundtrip", "--id", state_id, deployment="local")
    guid = result["credential_guid"]
    secret = "pw-secretstore-" + uuid.uuid4().hex
    server.set("dapr-secretstore", guid, {"password": secret})
    stored = server.stored_bytes()
    assert state_id.encode() in stored, "the scan finds no plain value: it proves nothing"
    in_clear = [
        text
        for text in ("pw-sdk28", "db.example.com", secret)  # the SDK's config; a secret
        if text.encode() in stored
    ]
    assert in_clear == [], f"in clear in the SQLite file: {in_clear}"


def test_sdk28_reads_what_statebox_wrote(open_server: DaprServer) -> None:
    """A state written with ``statebox set`` is get_state's answer; save_state merges
    into it, and statebox sees the merge as the next version."""
    server = open_server
    state_id = "wf-rev-" + uuid.uuid4().hex[:8]
    server.set("dapr-objectstore", workflow_object(state_id), {"from": "statebox", "n": 3})
    assert server.run_sdk("2.8", "get", "--id", state_id)["state"] == {
        "from": "statebox",
        "n": 3,
    }
    server.run_sdk("2.8", "save-field", "--id", state_id, "--key", "step", "--value", '"load"')
    got = server.get("dapr-objectstore", workflow_object(state_id))
    assert got["version"] == 2
    assert got["value"] == {"from": "statebox", "n": 3, "step": "load"}


def test_sdk28_twenty_concurrent_save_state_calls(open_server: DaprServer) -> None:
    """20 workers save_state one field each of one state at the same moment. The 2.8
    SDK reads the object, sets its field and writes the whole object back, unguarded (no
    etag goes through the binding), so on a real Dapr the writers overwrite each other;
    statebox cannot refuse those writes either. What statebox adds: every one of the 20
    writes is a version in the key's history, so no field is lost from the store."""
    server = open_server
    state_id = "wf-race-" + uuid.uuid4().hex[:8]
    count = 20
    result = server.run_sdk("2.8", "concurrent", "--id", state_id, "--count", str(count))
    assert result["failed_calls"] == [], result["failed_calls"]
    assert result["calls"] == count
    survived = len(result["survived"])
    print(
        f"atlan-sdk 2.8, {count} concurrent save_state calls against statebox: "
        f"{survived} of {count} fields survive in the current value "
        f"(lost: {', '.join(result['lost']) or 'none'})"
    )
    assert survived >= 1
    fields = {f"field{i:02d}": i for i in range(count)}
    current = server.get("dapr-objectstore", workflow_object(state_id))
    assert current["value"] == result["state"]
    assert current["version"] == count  # every save_state's write is one version
    history = server.history("dapr-objectstore", workflow_object(state_id))
    assert len(history) == count
    kept: dict[str, Any] = {}
    for version in history:
        kept.update(version["value"])
    assert kept == fields  # each field is in some version: history lost none of them
    print(f"statebox history of {workflow_object(state_id)}: {len(history)} versions")


# --- the 3.x generation: AppContext state over the Dapr HTTP API --------------------


def test_sdk3_state_over_http(open_server: DaprServer) -> None:
    """AppContext.save_state / load_state on the DaprStateStore the 3.x SDK wires at
    start-up, and DaprStateStore.delete: POST / GET / DELETE /v1.0/state/statestore."""
    server = open_server
    run = "run-" + uuid.uuid4().hex[:8]
    result = server.run_sdk("3", "state", "--app", APP, "--run", run)
    assert result["sidecar_ready"] is True  # its start-up wait saw GET /v1.0/healthz 204
    assert result["first"] == {"step": 1, "status": "running"}
    second = {"step": 2, "status": "done", "tables": ["a", "b"], "ratio": 0.5}
    assert result["second"] == second
    assert result["missing"] is None
    assert result["before_delete"] == {"temporary": True}
    assert result["deleted"] is True
    assert result["after_delete"] is None

    key = server.state_key(f"{APP}:{run}:progress")
    got = server.get("dapr-statestore", key)
    assert got["found"] and got["value"] == second and got["version"] == 2
    assert [v["value"] for v in server.history("dapr-statestore", key)] == [
        {"step": 1, "status": "running"},
        second,
    ]
    scratch = server.state_key(f"{APP}:{run}:scratch")
    assert not server.get("dapr-statestore", scratch)["found"]
    assert any(v.get("deleted") for v in server.history("dapr-statestore", scratch))


def test_sdk3_reads_what_statebox_wrote(open_server: DaprServer) -> None:
    server = open_server
    run = "run-" + uuid.uuid4().hex[:8]
    value = {"from": "statebox", "cursor": 41}
    server.set("dapr-statestore", server.state_key(f"{APP}:{run}:cursor"), value)
    result = server.run_sdk("3", "read", "--app", APP, "--run", run, "--key", "cursor")
    assert result["value"] == value


def test_sdk3_credentials_over_http(open_server: DaprServer) -> None:
    """The 3.x CredentialResolver: a platform GUID (its config from the object-store
    binding, POST /v1.0/bindings/objectstore; its secrets from GET
    /v1.0/secrets/secretstore/GUID) and a named credential (the secret store alone),
    all written with ``statebox set``."""
    server = open_server
    guid = "cred-" + uuid.uuid4().hex
    config = {"host": "warehouse.example.com", "port": 443, "username": "svc"}
    server.set("dapr-objectstore-credentials", credentials_object(guid), config)
    server.set("dapr-secretstore", guid, {"password": "pw-guid-3"})
    server.set("dapr-secretstore", "db-basic", {"username": "u3", "password": "p3"})
    result = server.run_sdk("3", "credentials", "--guid", guid, "--name", "db-basic")
    assert result["by_guid"] == {**config, "password": "pw-guid-3"}
    assert result["named"] == {"type": "BasicCredential", "username": "u3", "password": "p3"}
    assert result["secret"] == {"username": "u3", "password": "p3"}


def test_credentials_saved_by_sdk28_resolve_in_sdk3(open_server: DaprServer) -> None:
    """Both generations on one statebox: a credential the 2.8 SDK saved (save_secret, over
    gRPC) is what the 3.x SDK's CredentialResolver answers for its GUID (over HTTP). The
    secret store holds nothing for that GUID: statebox's ERR_SECRET_GET must read as
    "absent" to the SDK (it is, after its transport's own retries of a 500, as on Dapr)."""
    server = open_server
    saved = server.run_sdk(
        "2.8", "roundtrip", "--id", "wf-x-" + uuid.uuid4().hex[:8], deployment="local"
    )
    guid = saved["credential_guid"]
    server.set("dapr-secretstore", "db-basic", {"username": "u3", "password": "p3"})
    result = server.run_sdk("3", "credentials", "--guid", guid, "--name", "db-basic")
    assert result["by_guid"] == saved["credentials"]
