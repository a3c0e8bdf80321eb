"""What a face adds to ``statebox serve`` without the server importing it (issue 17):
an :class:`~statebox.web.Extension` — routers (a route may answer errors in its own
API's body: ``errors_as``), more HTTP ports on the same app, services run for the app's
lifetime with a :class:`~statebox.web.Host` (a Caller for a token, authenticated as a
bearer token is), secret keyspaces declared at start-up, notices — and the
``statebox.serve_extensions`` entry points that bring one to ``statebox serve``.

Everything runs for real: the app of ``create_app`` served by uvicorn on loopback
sockets in a thread, and ``statebox serve`` subprocesses finding a test extension
through an entry point (a ``.dist-info`` directory on ``PYTHONPATH``, as an installed
distribution would have). Also ``dapr-api-token``, accepted as the bearer token.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from starlette.responses import JSONResponse, Response

from statebox import open_store
from statebox.core.errors import (
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    StateboxError,
    UnauthenticatedError,
)
from statebox.core.model import Keyspace
from statebox.server.app import create_app
from statebox.server.auth import load_tokens
from statebox.server.config import ServerConfig
from statebox.server.main import serve
from statebox.web import EXTENSION_GROUP, Extension, Host, RequestView, Router
from statebox.web.extension import Service

from .backends import new_secret_key
from .server_util import ROOT, free_port, running_server

PROBE = Keyspace("custom", "probe")
VAULT = Keyspace("custom", "probe-vault")
SECRET = "probe-Pa55w0rd-91d3"
WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = f"""
tokens:
  - name: writer
    sha256: {hashlib.sha256(WRITER.encode()).hexdigest()}
    grants:
      - {{access: write, scope: custom, namespace: "probe*"}}
  - name: reader
    secret: {READER}
    grants:
      - {{access: read, scope: custom, namespace: "probe*"}}
"""


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATEBOX_SECRET_NAMESPACES", raising=False)
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)


# --- the extension ---------------------------------------------------------------------


def probe_errors(exc: StateboxError, message: str) -> Response:
    """Another API's error body."""
    body = {"errorCode": f"PROBE_{exc.kind.upper()}", "message": message}
    return JSONResponse(body, status_code=exc.http_status)


class KeyPath(msgspec.Struct):
    key: str


def probe_router() -> Router:
    router = Router("probe")

    @router.get("/v1.0/probe/{key}", summary="a probe", path_params=KeyPath, errors_as=probe_errors)
    async def probe_get(call: RequestView) -> Response:
        key = call.request.path_params["key"]
        call.authorize("read", PROBE)
        got = await call.read(
            lambda: call.reader().get(key, scope=PROBE.scope, namespace=PROBE.namespace)
        )
        if not got.found:
            raise NotFoundError(f"no probe {key}")
        assert got.stored is not None
        return Response(got.stored.data, media_type="application/json")

    @router.get("/v1.0/probe-leak", summary="an error naming the store", errors_as=probe_errors)
    async def probe_leak(call: RequestView) -> Response:
        raise InvalidRequestError(f"trouble in {call.reader().backend.url}")

    @router.get("/v1.0/probe-crash", summary="an unexpected error", errors_as=probe_errors)
    async def probe_crash(call: RequestView) -> Response:
        raise RuntimeError("boom")

    @router.get("/v1.0/probe-plain/{key}", summary="statebox's errors", path_params=KeyPath)
    async def probe_plain(call: RequestView) -> Response:
        raise NotFoundError(f"no plain probe {call.request.path_params['key']}")

    return router


class Recorder:
    """What the service saw, from inside the server."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.refusals: dict[str, str] = {}
        self.max_body_bytes = 0


def probe_service(record: Recorder) -> Service:
    @asynccontextmanager
    async def service(host: Host) -> AsyncIterator[None]:
        record.events.append("enter")
        record.max_body_bytes = host.max_body_bytes
        for name, token in (("none", None), ("unknown", "no-such-token-at-all")):
            try:
                host.caller(token)
            except UnauthenticatedError as exc:
                record.refusals[name] = exc.message
        reader = host.caller(READER)
        try:
            reader.authorize("write", PROBE)
        except PermissionDeniedError as exc:
            record.refusals["reader-write"] = exc.message
        try:
            reader.authorize_reveal(VAULT, "the probe")
        except PermissionDeniedError as exc:
            record.refusals["reader-reveal"] = exc.message
        if reader.secret(VAULT):
            record.events.append("vault-secret")
        writer = host.caller(WRITER)
        writer.authorize("write", PROBE)
        await writer.write(
            lambda: writer.store().set(
                "from-service", {"by": "service"}, scope=PROBE.scope, namespace=PROBE.namespace
            )
        )
        try:
            yield
        finally:
            # Exited before the store is closed: the engine still answers.
            got = await reader.read(
                lambda: reader.reader().get(
                    "from-service", scope=PROBE.scope, namespace=PROBE.namespace
                )
            )
            record.events.append("exit" if got.found else "exit-without-store")

    return service


def probe_extension(record: Recorder, http_ports: tuple[int, ...] = ()) -> Extension:
    return Extension(
        name="probe",
        routers=[probe_router()],
        http_ports=http_ports,
        services=[probe_service(record)],
        secret_keyspaces=[VAULT],
        notices=["probe: a notice"],
    )


# --- an app served in this process ------------------------------------------------------


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextmanager
def serving(app: Any, sockets: int = 1) -> Iterator[list[str]]:
    """``app`` served by uvicorn on ``sockets`` loopback sockets (a thread); the URLs."""
    bound = [_listener() for _ in range(sockets)]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": bound}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in bound]
    finally:
        server.should_exit = True
        thread.join(20)
        for sock in bound:
            sock.close()


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(TOKENS)
    return path


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_an_extension_in_the_app(tmp_path: Path, tokens_file: Path) -> None:
    path = tmp_path / "state.db"
    record = Recorder()
    config = ServerConfig(tokens=load_tokens(str(tokens_file)), max_body_bytes=12345)
    app = create_app(f"sqlite:///{path}", config, extensions=[probe_extension(record)])
    with serving(app, sockets=2) as (url, extra), httpx.Client(timeout=30) as client:
        # Started: the vault declared secret before the service ran, which wrote as
        # its token's principal.
        assert record.events == ["enter", "vault-secret"]
        assert record.max_body_bytes == 12345
        assert set(record.refusals) == {"none", "unknown", "reader-write", "reader-reveal"}
        assert "reveal" in record.refusals["reader-reveal"]
        got = client.get(f"{url}/v1/kv/custom/probe/from-service", headers=bearer(READER))
        assert got.status_code == 200, got.text
        assert got.json()["value"] == {"by": "service"}

        # The extension's route, on both ports of the same app.
        for base in (url, extra):
            probe = client.get(f"{base}/v1.0/probe/from-service", headers=bearer(READER))
            assert probe.status_code == 200 and probe.json() == {"by": "service"}

        # Its errors in its own body: a missing entry, and the authentication failures.
        missing = client.get(f"{url}/v1.0/probe/nothing", headers=bearer(READER))
        assert missing.status_code == 404
        assert missing.json() == {"errorCode": "PROBE_NOT_FOUND", "message": "no probe nothing"}
        anonymous = client.get(f"{url}/v1.0/probe/from-service")
        assert anonymous.status_code == 401
        assert anonymous.json()["errorCode"] == "PROBE_UNAUTHENTICATED"
        wrong = client.get(f"{url}/v1.0/probe/x", headers=bearer("not-a-token-we-know"))
        assert wrong.status_code == 401 and wrong.json()["errorCode"] == "PROBE_UNAUTHENTICATED"

        # A message naming the store is withheld there too, with a request id.
        leak = client.get(f"{url}/v1.0/probe-leak", headers=bearer(READER))
        assert leak.status_code == 400 and leak.json()["errorCode"] == "PROBE_INVALID_REQUEST"
        assert str(path) not in leak.text and "state.db" not in leak.text
        request_id = leak.headers["x-request-id"]
        assert request_id in leak.json()["message"]
        crash = client.get(f"{url}/v1.0/probe-crash", headers=bearer(READER))
        assert crash.status_code == 500 and crash.json()["errorCode"] == "PROBE_ERROR"
        assert "boom" not in crash.text and crash.headers["x-request-id"] in crash.text

        # A route without errors_as answers statebox's own error body.
        plain = client.get(f"{url}/v1.0/probe-plain/k", headers=bearer(READER))
        assert plain.status_code == 404
        assert plain.json() == {"error": {"kind": "not_found", "message": "no plain probe k"}}
        plain_401 = client.get(f"{url}/v1.0/probe-plain/k")
        assert plain_401.json()["error"]["kind"] == "unauthenticated"

        # The declared keyspace seals and masks.
        put = client.put(
            f"{url}/v1/kv/custom/probe-vault/pw", json={"value": SECRET}, headers=bearer(WRITER)
        )
        assert put.status_code == 200, put.text
        shown = client.get(f"{url}/v1/kv/custom/probe-vault/pw", headers=bearer(READER))
        assert shown.status_code == 200 and SECRET not in shown.text
    assert record.events == ["enter", "vault-secret", "exit"]
    with open_store(f"sqlite:///{path}") as store:  # the service wrote as its token's name
        written = store.get("from-service", scope=PROBE.scope, namespace=PROBE.namespace)
        assert written.updated_by is not None and written.updated_by.principal == "writer"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"from-service" in stored  # the control: the inspection sees plaintext
    assert SECRET.encode() not in stored


def test_dapr_api_token_is_the_bearer_token(tmp_path: Path, tokens_file: Path) -> None:
    config = ServerConfig(tokens=load_tokens(str(tokens_file)))
    app = create_app(f"sqlite:///{tmp_path / 'state.db'}", config)
    with serving(app) as (url,), httpx.Client(base_url=url, timeout=30) as client:
        route = "/v1/kv/custom/probe/k"
        assert (
            client.put(route, json={"n": 1}, headers={"dapr-api-token": WRITER}).status_code == 200
        )
        got = client.get(route, headers={"dapr-api-token": READER})
        assert got.status_code == 200 and got.json()["value"] == {"n": 1}
        refused = client.get(route, headers={"dapr-api-token": "not-a-token-we-know"})
        assert refused.status_code == 401 and refused.json()["error"]["kind"] == "unauthenticated"
        # The reader's grants are the reader's: no write.
        denied = client.put(route, json={"n": 2}, headers={"dapr-api-token": READER})
        assert denied.status_code == 403
        # An Authorization header wins: a bad bearer token is not saved by a good one.
        both = client.get(
            route, headers={**bearer("not-a-token-we-know"), "dapr-api-token": READER}
        )
        assert both.status_code == 401
        assert client.get(route, headers={"dapr-api-token": ""}).status_code == 401


def test_without_extensions_the_app_is_as_before(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'state.db'}")
    with serving(app) as (url,):
        assert httpx.get(f"{url}/v1.0/probe/x").status_code == 404


def test_a_port_that_cannot_be_bound_is_named(tmp_path: Path) -> None:
    failed: list[BaseException] = []

    def run(port: int) -> None:
        extension = Extension(name="probe", http_ports=[port])
        try:
            serve(f"sqlite:///{tmp_path / 'state.db'}", port=0, extensions=[extension])
        except BaseException as exc:
            failed.append(exc)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        # In a thread: were the port not refused, serve() would serve (and the test fail).
        thread = threading.Thread(target=run, args=(port,), daemon=True)
        thread.start()
        thread.join(20)
    assert not thread.is_alive(), "serve() started despite the taken port"
    assert len(failed) == 1 and isinstance(failed[0], ConfigurationError)
    assert f"127.0.0.1:{port} (the statebox probe HTTP API's port)" in str(failed[0])


def test_the_group_name_is_the_one_the_options_module_reads() -> None:
    from statebox.server.options import EXTENSION_GROUP as READ_BY_OPTIONS

    assert READ_BY_OPTIONS == EXTENSION_GROUP == "statebox.serve_extensions"


# --- through an entry point: `statebox serve` subprocesses -----------------------------

PROBE_MODULE = '''
"""A statebox serve extension for the tests."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager


def add_options(parser):
    parser.add_argument("--probe-port", type=int, default=None)
    parser.add_argument("--probe-record", default=None)
    parser.add_argument("--probe-fail-start", action="store_true")


def extension(args):
    if args.probe_record is None:
        return None
    from starlette.responses import JSONResponse

    from statebox.core.errors import ConfigurationError
    from statebox.core.model import Keyspace
    from statebox.web import Extension, Router

    router = Router("probe")

    @router.get("/v1.0/probe", summary="the probe")
    async def probe(call):
        vault = Keyspace("custom", "probe-vault")
        return JSONResponse({{"probe": True, "secret": call.secret(vault)}})

    def note(event):
        with open(args.probe_record, "a") as out:
            out.write(event + "\\n")

    @asynccontextmanager
    async def service(host):
        if args.probe_fail_start:
            raise ConfigurationError("the probe service cannot start: told to fail")
        caller = host.caller({token!r})
        up = lambda: caller.store().set("up", True, scope="custom", namespace="probe")
        await caller.write(up)
        note("enter")
        try:
            yield
        finally:
            note("exit")

    return Extension(
        name="probe",
        routers=[router],
        http_ports=[] if args.probe_port is None else [args.probe_port],
        services=[service],
        secret_keyspaces=[Keyspace("custom", "probe-vault")],
        notices=["statebox probe: a notice for the operator"],
        listening=["statebox probe: listening line"],
    )
'''


def distribution(site: Path, name: str, module: str, text: str) -> None:
    """An installed distribution (as pip leaves one) naming ``module`` in the group."""
    (site / f"{module}.py").write_text(text)
    info = site / f"{module}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[{EXTENSION_GROUP}]\n{name} = {module}\n")


@pytest.fixture
def probe_site(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    distribution(site, "probe", "statebox_probe_ext", PROBE_MODULE.format(token=WRITER))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def wait_for_line(log: Path, marker: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {marker!r} in {log.read_text(errors='replace')}")


def test_statebox_serve_loads_an_extension_from_its_entry_point(
    tmp_path: Path, tokens_file: Path, probe_site: dict[str, str]
) -> None:
    record = tmp_path / "record.txt"
    path = tmp_path / "state.db"
    extra = free_port()
    args = ["--probe-port", str(extra), "--probe-record", str(record)]
    with running_server(
        f"sqlite:///{path}", via_cli=True, tokens=tokens_file, args=args, env=probe_site
    ) as server:
        line = wait_for_line(server.log, "statebox probe HTTP API listening on")
        assert line == f"statebox probe HTTP API listening on http://127.0.0.1:{extra}"
        wait_for_line(server.log, "statebox probe: listening line")
        assert "statebox probe: a notice for the operator" in server.log_text()
        assert record.read_text() == "enter\n"
        for base in (server.url, f"http://127.0.0.1:{extra}"):
            got = httpx.get(f"{base}/v1.0/probe", headers=bearer(READER), timeout=30)
            assert got.status_code == 200 and got.json() == {"probe": True, "secret": True}
            assert httpx.get(f"{base}/v1.0/probe", timeout=30).status_code == 401
        written = httpx.get(f"{server.url}/v1/kv/custom/probe/up", headers=bearer(READER))
        assert written.json()["value"] is True
        server.proc.send_signal(signal.SIGTERM)
        # A graceful stop: uvicorn raises the signal again once it has shut down.
        assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)
    assert record.read_text() == "enter\nexit\n"


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_its_options_are_in_serve_help(probe_site: dict[str, str]) -> None:
    for command in (["statebox.cli", "serve", "--help"], ["statebox.server", "--help"]):
        done = run_cli(command, probe_site)
        assert done.returncode == 0, done.stderr
        assert "--probe-port" in done.stdout and "--probe-fail-start" in done.stdout


def test_a_service_that_cannot_start_stops_serve(
    tmp_path: Path, probe_site: dict[str, str]
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    args = ["--port", "0", "--probe-record", str(tmp_path / "r"), "--probe-fail-start"]
    done = run_cli(["statebox.cli", "serve", "--store", store, *args], probe_site)
    assert done.returncode == 2, done.stdout + done.stderr
    # The CLI's own line (uvicorn has logged the traceback before it).
    assert "Error: the probe service cannot start: told to fail" in done.stderr.splitlines()


def test_a_broken_extension_is_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    distribution(site, "broken", "statebox_broken_ext", "import no_such_module_here\n")
    env = {"PYTHONPATH": str(site)}
    for command in (["statebox.cli", "serve", "--help"], ["statebox.server", "--port", "0"]):
        done = run_cli(command, env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert (
            "the statebox serve extension of entry point broken = statebox_broken_ext "
            "(statebox.serve_extensions) cannot be loaded: ModuleNotFoundError"
        ) in done.stderr
        assert "Traceback" not in done.stderr


def test_an_extension_without_its_functions_is_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    distribution(site, "empty", "statebox_empty_ext", "def add_options(parser):\n    pass\n")
    done = run_cli(["statebox.cli", "serve", "--help"], {"PYTHONPATH": str(site)})
    assert done.returncode == 2
    assert "entry point empty = statebox_empty_ext" in done.stderr
    assert "has no extension function" in done.stderr


def test_the_options_module_imports_no_starlette() -> None:
    """``statebox --help`` builds serve's parser from it: no HTTP stack for that."""
    code = "import sys, statebox.server.options; print('starlette' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
