"""A request body must arrive whole within ``--body-timeout`` (issue #12 §3).

A client that sends its head at once and then its body a byte every few hundred
milliseconds is answered 408 and closed at the bound, and what it sent is not written;
a body sent in time, and a kept-alive connection idle between requests, are not
affected.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from .server_util import ServerProcess, running_server

BODY_TIMEOUT = 1.0


def _addr(server: ServerProcess) -> tuple[str, int]:
    return "127.0.0.1", int(server.url.rsplit(":", 1)[1])


def _trickle(sock: socket.socket, body: bytes, every: float, give_up: float) -> float:
    """Send ``body`` a byte each ``every`` seconds until the server closes the
    connection or answers, or ``give_up`` seconds pass; the seconds it took."""
    started = time.monotonic()
    sock.setblocking(False)
    try:
        for byte in body:
            if time.monotonic() - started > give_up:
                break
            try:
                if sock.recv(1, socket.MSG_PEEK):  # an answer, or
                    break
                break  # b"": the server closed
            except BlockingIOError:
                pass  # nothing yet: keep going
            except OSError:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            time.sleep(every)
    finally:
        sock.setblocking(True)
    return time.monotonic() - started


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("slow-body") / "state.db"
    args = ["--body-timeout", str(BODY_TIMEOUT), "--header-timeout", "5"]
    with running_server(f"sqlite:///{db}", args=args) as srv:
        yield srv


def _put_head(key: str, framing: bytes) -> bytes:
    return (
        (
            f"PUT /v1/kv/global/_/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        + framing
        + b"\r\n"
    )


@pytest.mark.parametrize(
    ("key", "framing", "body"),
    [
        ("sized", b"Content-Length: 40\r\n", b'"' + b"x" * 38 + b'"'),
        ("chunked", b"Transfer-Encoding: chunked\r\n", b"1\r\nx\r\n" * 40),
    ],
)
def test_a_trickled_body_is_answered_408_and_closed_at_the_bound(
    server: ServerProcess, key: str, framing: bytes, body: bytes
) -> None:
    with socket.create_connection(_addr(server)) as sock:
        sock.sendall(_put_head(key, framing))
        took = _trickle(sock, body, every=0.25, give_up=4 * BODY_TIMEOUT)
        answer = _read_until_closed(sock, timeout=5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"--body-timeout" in answer
    assert b"connection: close" in answer.lower()
    assert BODY_TIMEOUT * 0.8 < took < BODY_TIMEOUT + 1.5
    assert server.client.get(f"/v1/kv/global/_/{key}").json()["found"] is False
    assert server.client.get("/healthz").status_code == 200


def test_bodies_in_time_and_idle_keep_alive_connections_are_not_affected(
    server: ServerProcess,
) -> None:
    with socket.create_connection(_addr(server)) as sock:
        sock.settimeout(5)
        for round_ in range(2):
            # a body in two parts, well within the bound
            sock.sendall(_put_head("prompt", b"Content-Length: 9\r\n") + b'"pro')
            time.sleep(BODY_TIMEOUT / 3)
            sock.sendall(b'mpt" ')
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            if round_ == 0:  # idle for longer than the body bound, between requests
                time.sleep(BODY_TIMEOUT * 1.5)
    assert server.client.get("/v1/kv/global/_/prompt").json()["value"] == "prompt"


def test_every_operation_documents_the_connection_level_refusals(
    server: ServerProcess,
) -> None:
    document = server.client.get("/openapi.json").json()
    # what the connection limits really answer: a slow body (408), a huge head (431)
    with socket.create_connection(_addr(server)) as sock:
        sock.sendall(_put_head("doc", b"Content-Length: 10\r\n"))
        slow = _read_until_closed(sock, timeout=5)
    with socket.create_connection(_addr(server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n")
        big = _read_until_closed(sock, timeout=5)
    answers = {}
    for raw in (slow, big):
        head, body = raw.split(b"\r\n\r\n", 1)
        status = head.split(b" ", 2)[1].decode()
        assert b"content-type: application/json" in head.lower()
        assert set(json.loads(body)["error"]) >= {"kind", "message"}
        answers[status] = body
    assert set(answers) == {"408", "431"}
    for template, methods in document["paths"].items():
        for method, operation in methods.items():
            for status in ("408", "431", "503"):
                documented = operation["responses"].get(status)
                assert documented is not None, f"{method} {template}: no {status}"
                content = documented["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}


def test_refusals_quote_what_was_sent_as_json_not_python(server: ServerProcess) -> None:
    response = server.client.get("/healthz", headers={"Host": "evil.example"})
    assert response.status_code == 421
    message = response.json()["error"]["message"]
    assert '("evil.example")' in message, message
    response = server.client.put(
        "/v1/kv/global/_/k", content=b"a=1", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert 'Content-Type "text/plain"' in response.json()["error"]["message"]
