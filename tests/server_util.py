"""Real statebox servers for the tests: ``python -m statebox.server`` in subprocesses.

Each server binds port 0 on 127.0.0.1 and prints the URL it listens on; nothing is
mocked. The conformance suite runs through two shared servers per test session
(``--test-mode``, one over ``memory://`` and one over a SQLite file, whose writes take
the group-commit path): before each test the server is emptied with
``POST /v1/_test/reset``, so every test starts from an empty store, as on the other
backends, at the cost of one request instead of a process start. Test mode also makes
the server honour ``X-Statebox-Now``, so the suite's manual clock drives TTL and leases.

Also two small helpers the server tests and others share: :func:`free_port` (a loopback
port nothing listens on) and :func:`later` (an action run on a thread after a delay).
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "LOGS",
    "ServerProcess",
    "free_port",
    "http_sqlite_url",
    "http_url",
    "later",
    "running_server",
    "shared_test_server",
    "start_server",
]


def free_port() -> int:
    """A loopback port that was free a moment ago (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` in another thread after ``seconds`` (join the thread returned)."""

    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        """A keep-alive client for the test's own requests to this server."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30)
        return self._client

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def reset(self) -> None:
        response = self.client.post("/v1/_test/reset")
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_server(
    store_url: str,
    *,
    test_mode: bool = False,
    tokens: Path | None = None,
    access_log: bool = False,
    via_cli: bool = False,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> ServerProcess:
    """Start a server over ``store_url`` (``python -m statebox.server``, or ``statebox
    serve`` with ``via_cli``); returns once it listens."""
    command = [
        sys.executable,
        "-m",
        *(["statebox.cli", "serve"] if via_cli else ["statebox.server"]),
        "--store",
        store_url,
        "--port",
        "0",
        *([] if access_log else ["--no-access-log", "--log-level", "warning"]),
        *(["--test-mode"] if test_mode else []),
        *(["--tokens", str(tokens)] if tokens is not None else []),
        *args,
    ]
    log = _new_log()
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].split()[0]
                # uvicorn's access log goes to stdout: keep draining it into the log file,
                # or a full pipe would stall the server.
                threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
                return ServerProcess(proc, url, log)
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(f"statebox server did not start: {log.read_text(errors='replace')}")


def _drain(stream: IO[str], log: Path) -> None:
    with log.open("a") as out:
        for line in stream:
            out.write(line)
            out.flush()


class _Logs:
    """Where the servers' logs go. Under pytest, a directory of the session's basetemp
    (``tests/conftest.py`` sets it), so a run leaves nothing in the temp dir besides
    pytest's own, and the logs of a failed run stay there to read. Tests read a log
    after stopping its server, so a log outlives its process; outside pytest (a bench
    script) each log is deleted when the interpreter exits."""

    directory: Path | None = None


LOGS = _Logs()


def _new_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="statebox-server-", suffix=".log", dir=LOGS.directory)
    os.close(fd)  # the server gets its own handle; keeping this one would leak it
    log = Path(name)
    if LOGS.directory is None:
        atexit.register(log.unlink, missing_ok=True)
    return log


@contextmanager
def running_server(store_url: str, **options: object) -> Iterator[ServerProcess]:
    server = start_server(store_url, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


_shared: dict[str, ServerProcess] = {}


def shared_test_server(config: pytest.Config, store: str = "memory") -> ServerProcess:
    """The session's test-mode server over ``memory://``, or over a SQLite file with
    ``store="sqlite"`` (started on first use)."""
    server = _shared.get(store)
    if server is None or not server.alive:
        url = "memory://"
        if store == "sqlite":
            directory = Path(tempfile.mkdtemp(prefix="statebox-http-sqlite-"))
            config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
            url = f"sqlite:///{directory / 'state.db'}"
        server = _shared[store] = start_server(url, test_mode=True)
        config.add_cleanup(server.stop)
    return server


@contextmanager
def http_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """``BACKENDS["http"]``: the shared ``memory://`` server, emptied for this test."""
    server = shared_test_server(request.config)
    server.reset()
    yield server.url


@contextmanager
def http_sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """``BACKENDS["http-sqlite"]``: the shared server over SQLite (its writes go through
    group commit), emptied for this test."""
    server = shared_test_server(request.config, "sqlite")
    server.reset()
    yield server.url
