"""Capabilities, not class checks (issue #13, item 4).

A backend declares what it can do (``Backend.capabilities``) and the server reads only
that: no module of a face imports a concrete backend, a backend that declares nothing
is served correctly (the careful way), a capability that cannot be kept fails when the
class is defined. How many versions a key keeps is the store's policy (the server's
``--history-limit``), never a field a client sends. The 401 and 412 answers come from
the one error tree.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import inspect
import json
import pkgutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from starlette.testclient import TestClient

import statebox.cli
import statebox.server
from statebox import open_store
from statebox.backends.base import Backend, Capabilities, Entry, group_commit_of
from statebox.backends.memory import MemoryBackend
from statebox.backends.sqlite import SqliteBackend
from statebox.core import errors
from statebox.core.clock import ManualClock
from statebox.core.model import Keyspace
from statebox.server.app import create_app
from statebox.server.config import ServerConfig
from statebox.server.main import serve
from statebox.server.state import ServerState

from .server_util import ServerProcess, running_server

SRC = Path(statebox.server.__file__).resolve().parent.parent
#: The backend modules a face may import: the factory and the contract.
CONTRACT_MODULES = {"statebox.backends", "statebox.backends.base"}
FACES = ("server", "cli")
LOOPBACK = "http://127.0.0.1"  # a Host name the server answers to


def _face_modules() -> Iterator[tuple[str, ast.Module]]:
    for face in FACES:
        for path in sorted((SRC / face).rglob("*.py")):
            dotted = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
            yield dotted, ast.parse(path.read_text(), str(path))


def _imported(module: str, tree: ast.Module) -> Iterator[str]:
    """Every module ``tree`` imports, absolute (``from ..backends.sqlite import X``
    inside ``statebox.server.state`` is ``statebox.backends.sqlite``)."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            # ``from ..backends import sqlite`` imports a module too
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module that is not a package
        return False


def test_no_face_imports_a_concrete_backend() -> None:
    found = [
        (module, name)
        for module, tree in _face_modules()
        for name in _imported(module, tree)
        if name.startswith("statebox.backends.")
        and name not in CONTRACT_MODULES
        and _is_module(name)  # ``from ..backends import open_backend`` is a function
    ]
    assert found == []


def test_the_import_check_sees_a_concrete_backend() -> None:
    """The check above would fail on the imports the server had before capabilities."""
    tree = ast.parse("from ..backends.memory import MemoryBackend\nfrom ..backends import sqlite\n")
    names = set(_imported("statebox.server.state", tree))
    assert {"statebox.backends.memory", "statebox.backends.sqlite"} <= names


def test_no_face_tests_a_backend_class() -> None:
    """No ``isinstance(x, SomethingBackend)`` in a face: only the abstract ``Backend``
    (to tell an open backend from a URL) may be named."""
    checks = []
    for module, tree in _face_modules():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass", "type")
            ):
                named = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                named |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                checks += [(module, n) for n in named if n.endswith("Backend") and n != "Backend"]
    assert checks == []


def test_no_face_defines_an_error_class() -> None:
    """Every error kind a face answers with is in statebox.core.errors (401 and 412 too)."""
    outside = []
    for face in (statebox.server, statebox.cli):
        for info in pkgutil.iter_modules(face.__path__, f"{face.__name__}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, errors.StateboxError) and cls.__module__ == info.name:
                    outside.append(f"{info.name}.{name}")
    assert outside == []


# -- the capabilities the built-in backends declare --------------------------------------


def test_each_backend_declares_what_the_server_uses(tmp_path: Path) -> None:
    memory, sqlite = MemoryBackend.capabilities, SqliteBackend.capabilities
    assert memory.inline_reads and memory.test_reset and memory.store_wide_changes
    assert not memory.group_commit and not memory.durable
    assert sqlite.inline_reads and sqlite.group_commit and sqlite.test_reset
    assert sqlite.store_wide_changes
    assert Capabilities() == Capabilities(
        cross_process=True,
        cross_machine=False,
        durable=True,
        inline_reads=False,
        group_commit=False,
        test_reset=False,
        store_wide_changes=False,
        own_history_limit=False,
    )
    backend = SqliteBackend(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert group_commit_of(backend) is backend
    finally:
        backend.close()
    assert group_commit_of(MemoryBackend()) is None


def test_a_capability_the_class_cannot_keep_fails_at_definition() -> None:
    with pytest.raises(TypeError, match="group_commit but lacks write_together"):

        class NoGroup(MemoryBackend):
            capabilities: ClassVar[Capabilities] = Capabilities(group_commit=True)

    class NoReset(Backend):  # abstract, never built: only its class statement runs
        capabilities: ClassVar[Capabilities] = Capabilities()

    with pytest.raises(TypeError, match="test_reset but has no reset"):

        class NoReset2(NoReset):
            capabilities: ClassVar[Capabilities] = Capabilities(test_reset=True)


# -- a backend that declares nothing, through the server ---------------------------------


class _Plain(MemoryBackend):
    """A memory store that declares no capability: the server must not read it inline,
    group its writes, reset it or watch it store-wide. It records where it was called."""

    capabilities: ClassVar[Capabilities] = Capabilities(cross_process=False, durable=False)

    def __init__(self) -> None:
        super().__init__("memory://")
        self.on_loop: list[bool] = []

    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
        self.on_loop.append(_on_event_loop())
        return super().get(keyspace, key, now)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_a_backend_without_capabilities_is_served_the_careful_way() -> None:
    backend = _Plain()
    state = ServerState("memory://", backend, ServerConfig(test_mode=True), ManualClock())
    assert state.writer is None and not state.inline_reads
    app = create_app(backend, ServerConfig(test_mode=True))
    with TestClient(app, base_url=LOOPBACK) as http:
        assert http.put("/v1/kv/custom/n/k", content=b"1").status_code == 200
        assert http.put("/v1/kv/custom/n/k", content=b"2").json()["version"] == 2
        assert http.get("/v1/kv/custom/n/k").json()["value"] == 2
        stale = http.put("/v1/kv/custom/n/k", content=b"3", headers={"if-match": '"1"'})
        assert stale.status_code == 412
        assert stale.json()["error"]["kind"] == "precondition_failed"
        # a watch through the per-keyspace change tokens (no store-wide waiter), woken
        # by a write well before its 10 s timeout
        woke: list[list[int]] = []

        def watch() -> None:
            answer = http.get(
                "/v1/watch/custom/n", params={"key": "k", "after_version": 2, "timeout": 10}
            )
            woke.append([event["version"] for event in answer.json()["events"]])

        started = time.monotonic()
        waiter = threading.Thread(target=watch)
        waiter.start()
        time.sleep(0.3)  # the watch is waiting by now (were it not, it would still see 3)
        http.put("/v1/kv/custom/n/k", content=b"4")
        waiter.join(15)
        assert woke == [[3]] and time.monotonic() - started < 5
        refused = http.post("/v1/_test/reset")
        assert refused.status_code == 400 and "can be emptied" in refused.text
        assert http.get("/v1/kv/custom/n/k").json()["value"] == 4  # not emptied
    assert backend.on_loop and not any(backend.on_loop)  # every read on a worker thread


def test_a_memory_backend_is_read_on_the_loop_and_reset() -> None:
    """The same requests, on a backend that declares inline reads and reset."""

    class Recording(MemoryBackend):
        calls: ClassVar[list[bool]] = []

        def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
            # (not the sealing layer's look-up in the store's registry of secret
            # keyspaces, made by the write that first touches a keyspace, on its thread)
            if keyspace != ("statebox", "secret-keyspaces"):
                self.calls.append(_on_event_loop())
            return super().get(keyspace, key, now)

    app = create_app(Recording(), ServerConfig(test_mode=True))
    with TestClient(app, base_url=LOOPBACK) as http:
        http.put("/v1/kv/custom/n/k", content=b"1")
        assert http.get("/v1/kv/custom/n/k").status_code == 200
        assert http.post("/v1/_test/reset").status_code == 200
        assert http.get("/v1/kv/custom/n/k").json()["found"] is False
    assert Recording.calls and all(Recording.calls)


# -- history is the store's policy -------------------------------------------------------

WRITER = "writer-secret-0123456789abc"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("capabilities")
    tokens = root / "tokens.json"
    tokens.write_text(
        json.dumps({"tokens": [{"name": "w", "secret": WRITER, "grants": [{"access": "write"}]}]})
    )
    with running_server(
        f"sqlite:///{root / 'state.db'}", tokens=tokens, args=["--history-limit", "3"]
    ) as srv:
        yield srv


def test_apply_refuses_a_history_limit_field(server: ServerProcess) -> None:
    auth = {"authorization": f"Bearer {WRITER}"}
    url = "/v1/apply/custom/raw"
    ops = [{"op": "set", "key": "k", "value": 1}]
    for _ in range(4):
        assert server.client.post(url, json={"ops": ops}, headers=auth).status_code == 200
    erase = server.client.post(url, json={"ops": ops, "history_limit": 0}, headers=auth)
    assert erase.status_code == 400
    assert erase.json()["error"]["kind"] == "invalid_request"
    assert "history_limit" in erase.json()["error"]["message"]
    records = server.client.get("/v1/records/custom/raw/k", headers=auth).json()["records"]
    assert [r["version"] for r in records] == [4, 3, 2]  # the server's 3, untouched


@pytest.mark.parametrize("asked", [0, 50])
def test_the_remote_store_keeps_the_servers_history_limit(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, asked: int
) -> None:
    monkeypatch.setenv("STATEBOX_TOKEN", WRITER)
    with open_store(server.url, history_limit=asked) as remote:
        assert remote.backend.capabilities.own_history_limit
        space = {"scope": "custom", "namespace": f"remote-{asked}"}
        for i in range(1, 7):
            remote.set("k", i, **space)  # type: ignore[arg-type]
        kept = remote.history("k", **space).versions  # type: ignore[arg-type]
        assert [v.version for v in kept] == [6, 5, 4]


def test_the_remote_store_reports_401_as_unauthenticated(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEBOX_TOKEN", "not-a-token-of-this-server")
    with (
        open_store(server.url) as remote,
        pytest.raises(errors.UnauthenticatedError, match="invalid bearer token"),
    ):
        remote.get("k", scope="custom", namespace="x")


def test_a_negative_history_limit_is_refused_before_serving() -> None:
    with pytest.raises(errors.ConfigurationError, match="history limit -1"):
        serve("memory://", history_limit=-1, port=0)


# -- 401 and 412 in the one tree ---------------------------------------------------------


def test_401_and_412_are_kinds_of_the_tree() -> None:
    assert issubclass(errors.UnauthenticatedError, errors.PermissionDeniedError)
    assert errors.UnauthenticatedError.http_status == 401
    assert errors.error_class("unauthenticated") is errors.UnauthenticatedError
    conflict = errors.ConflictError("stale", index=2, current_version=7)
    failed = conflict.as_precondition_failed()
    assert (type(failed), failed.kind, failed.http_status) == (
        errors.PreconditionFailedError,
        "precondition_failed",
        412,
    )
    assert isinstance(failed, errors.ConflictError)  # handled wherever a conflict is
    assert errors.error_class("precondition_failed") is errors.PreconditionFailedError
    assert (failed.index, failed.current_version, failed.message) == (2, 7, "stale")
    assert conflict.http_status == errors.ConflictError.http_status == 409  # unchanged
