"""Connections and request heads are bounded (issue #12 §3, SPEC §8).

Real servers on loopback ports and raw sockets: a slowloris client is closed after
``--header-timeout``, a request head over ``--max-header-bytes`` is refused with 431
before more of it is buffered, an idle kept-alive connection is closed after
``--idle-timeout``, and a server at ``--max-connections`` (or at its file limit) refuses
new connections cleanly with 503, logs why, and keeps serving.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server_util import ROOT, ServerProcess, running_server
from .watch_load import proc_status

GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def _addr(server: ServerProcess) -> tuple[str, int]:
    return "127.0.0.1", int(server.url.rsplit(":", 1)[1])


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    args = ["--header-timeout", "1", "--idle-timeout", "1"]
    with running_server(f"sqlite:///{tmp_path / 'state.db'}", args=args) as srv:
        yield srv


def test_a_slowloris_client_is_closed(server: ServerProcess) -> None:
    with (
        socket.create_connection(_addr(server)) as slow,
        socket.create_connection(_addr(server)) as silent,
    ):
        started = time.monotonic()
        slow.sendall(GET)
        for _ in range(5):  # a header line now and then, never the end of the head
            time.sleep(0.3)
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        answer = _read_until_closed(slow, timeout=5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"--header-timeout" in answer
        assert time.monotonic() - started < 3
        # A connection that never sends anything is closed too.
        assert _read_until_closed(silent, timeout=5).startswith(b"HTTP/1.1 408 ")
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_an_oversized_request_head_is_refused_with_431(server: ServerProcess) -> None:
    fits = httpx.get(f"{server.url}/healthz", headers={"x-fill": "a" * 60_000})
    assert fits.status_code == 200
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200
        # On a kept-alive connection too, and whatever the route.
        refused = client.get("/v1/kv/custom/n/k", headers={"x-fill": "a" * 70_000})
        assert refused.status_code == 431
        error = refused.json()["error"]
        assert error["kind"] == "headers_too_large" and "65536" in error["message"]
    # A head that never ends is cut off at the limit, not buffered: the server stays small.
    _, rss_before = proc_status(server.proc.pid)
    with socket.create_connection(_addr(server)) as huge:
        huge.sendall(GET + b"X-Huge: ")
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:
                huge.sendall(b"a" * 1024 * 1024)
                sent += 1024 * 1024
        except OSError:  # the server closed the connection
            pass
        assert sent < 8 * 1024 * 1024, "the server kept reading an endless request head"
        assert _read_until_closed(huge, timeout=5).startswith(b"HTTP/1.1 431 ")
    _, rss_after = proc_status(server.proc.pid)
    assert rss_after - rss_before < 32 * 1024, (rss_before, rss_after)


def test_an_idle_connection_is_closed(server: ServerProcess) -> None:
    with socket.create_connection(_addr(server)) as idle:
        idle.sendall(GET + b"\r\n")
        idle.settimeout(5)
        assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert _read_until_closed(idle, timeout=5) == b""  # closed, nothing more sent
        assert time.monotonic() - started < 3


def test_a_full_server_refuses_new_connections_cleanly(tmp_path: Path) -> None:
    args = ["--max-connections", "20", "--header-timeout", "2"]
    with running_server(f"sqlite:///{tmp_path / 'state.db'}", args=args) as server:
        held = [socket.create_connection(_addr(server)) for _ in range(20)]
        try:
            time.sleep(0.2)
            with socket.create_connection(_addr(server)) as extra:
                answer = _read_until_closed(extra, timeout=5)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert b"--max-connections" in answer
            # The held connections time out (they never sent a head): then it serves.
            deadline = time.monotonic() + 10
            while True:
                try:
                    status = httpx.get(f"{server.url}/healthz").status_code
                except httpx.TransportError:
                    status = 0
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert status == 200
        finally:
            for sock in held:
                sock.close()
        log = server.log_text()
        assert "refusing new connections" in log and "--max-connections" in log


def _start_with_file_limit(store: str, limit: int, args: list[str]) -> subprocess.Popen[str]:
    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.Popen(
        [sys.executable, "-m", "statebox.server", "--store", store, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        preexec_fn=lower_limit,
    )


@pytest.mark.slow
def test_at_the_common_file_limit_idle_sockets_do_not_lock_everyone_out(
    tmp_path: Path,
) -> None:
    args = ["--no-access-log", "--log-level", "warning", "--header-timeout", "2"]
    proc = _start_with_file_limit(f"sqlite:///{tmp_path / 'state.db'}", 1024, args)
    output: list[str] = []
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
                output.append(line)
                if "listening on " in line:
                    url = line.split("listening on ", 1)[1].split()[0]
        assert url, "".join(output)
        port = int(url.rsplit(":", 1)[1])
        idle = []
        for _ in range(1100):  # more idle sockets than the server has file descriptors
            idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.5)
        # A new client is told at once that the server is full, instead of hanging.
        with socket.create_connection(("127.0.0.1", port)) as extra:
            assert _read_until_closed(extra, timeout=5).startswith(b"HTTP/1.1 503 ")
        for sock in idle:
            sock.close()
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=10)
        output.append(rest)
    log = "".join(output)
    assert "the file limit (ulimit -n) is 1024" in log, log
    assert "refusing new connections" in log, log
    assert "Too many open files" not in log, log
