"""The ``/var`` endpoint (runner/direktiv/varserver.py) over real loopback HTTP, on a
real SQLite file store: Direktiv's sidecar protocol, and the bounds that keep a
function from stalling or outliving its action."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from statebox import StateStore, open_store
from statebox.runner.direktiv.variables import Variables
from statebox.runner.direktiv.varserver import var_endpoint


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as s:
        yield s


@pytest.fixture
def variables(store: StateStore) -> Variables:
    return Variables(store, workflow="wf", instance_id="i1")


def call(
    base: str,
    method: str = "GET",
    *,
    aid: str | None = "a1",
    scope: str | None = "instance",
    key: str | None = "x",
    body: bytes | None = None,
    content_type: str | None = None,
    path: str = "/var",
) -> tuple[int, bytes, str]:
    query = {n: v for n, v in (("aid", aid), ("scope", scope), ("key", key)) if v is not None}
    request = urllib.request.Request(f"{base}{path}?{urlencode(query)}", data=body, method=method)
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def raw(base: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything answered until the server closes."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def connect(base: str) -> socket.socket:
    url = urlsplit(base)
    return socket.create_connection((url.hostname, url.port), timeout=5)


def test_a_get_guards_the_post_that_follows(tmp_path: Path, store: StateStore) -> None:
    """Two actions of two instances (two endpoints, real client threads) GET a counter,
    then POST it plus one at once: one lands, the other is answered 409 with a message
    and writes nothing — no lost update (a GET used to set no guard)."""
    seed = Variables(store, workflow="wf", instance_id="seed")
    seed.write_raw([("workflow", "count", b"0", "text/plain")])
    barrier = threading.Barrier(2)
    answers: list[tuple[int, bytes]] = []

    def client(n: int) -> None:
        with open_store(f"sqlite:///{tmp_path / 'state.db'}") as own:
            v = Variables(own, workflow="wf", instance_id=f"i{n}")
            with var_endpoint("a1", v) as base:
                status, body, _ = call(base, scope="workflow", key="count")
                assert status == 200
                barrier.wait(timeout=10)
                new = str(int(body) + 1).encode()
                status, body, _ = call(
                    base, "POST", scope="workflow", key="count", body=new, content_type="text/plain"
                )
                answers.append((status, body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in answers) == [200, 409], answers
    refused = next(body for status, body in answers if status == 409)
    assert b"count" in refused
    assert seed.read_raw("workflow", "count") == (b"1", "text/plain")


def test_post_then_get_round_trips_bytes_and_content_type(variables: Variables) -> None:
    with var_endpoint("a1", variables) as base:
        assert urlsplit(base).hostname == "127.0.0.1"
        assert call(base)[0] == 404
        data = bytes(range(256))
        status, body, _ = call(base, "POST", body=data, content_type="image/png")
        assert (status, body) == (200, b"")
        assert call(base) == (200, data, "image/png")
        assert (
            call(base, "POST", key="tf", scope="workflow", body=b"state", content_type="")[0] == 200
        )
        assert call(base, key="tf", scope="workflow") == (200, b"state", "application/octet-stream")
    assert variables.read_raw("instance", "x") == (data, "image/png")
    assert variables.get("workflow", "tf") == "c3RhdGU="  # not JSON: the getter's base64


def test_a_json_body_is_a_json_entry(variables: Variables) -> None:
    with var_endpoint("a1", variables) as base:
        assert call(base, "POST", body=b'{"n": 1}', content_type="application/json")[0] == 200
        status, body, _ = call(
            base, "POST", key="y", body=b"{oops", content_type="application/json"
        )
        assert status == 400 and b"not JSON" in body
        assert call(base) == (200, b'{"n":1}', "application/json")
    assert variables.get("instance", "x") == {"n": 1}
    assert variables.read_raw("instance", "y") is None


def test_a_json_entry_set_by_a_setter_reads_as_its_text(variables: Variables) -> None:
    variables.write([variables.plan_set("namespace", "cfg", [1, "two"])])
    with var_endpoint("a1", variables) as base:
        assert call(base, scope="namespace", key="cfg") == (200, b'[1,"two"]', "application/json")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"aid": "someone-else"}, 404),
        ({"aid": None}, 404),
        ({"scope": "system"}, 400),
        ({"scope": "global"}, 400),
        ({"scope": None}, 400),
        ({"key": "has space"}, 400),
        ({"key": "../x"}, 400),
        ({"key": "abc\n"}, 400),  # ?key=abc%0A: a name is matched whole
        ({"key": None}, 400),
        ({"path": "/vars"}, 404),
        ({"path": "/var/x"}, 404),
    ],
)
def test_bad_requests(variables: Variables, kwargs: dict[str, Any], status: int) -> None:
    with var_endpoint("a1", variables) as base:
        assert call(base, **kwargs)[0] == status
        assert call(base, "POST", body=b"v", **kwargs)[0] == status
    assert variables.read_raw("instance", "x") is None


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_are_not_allowed(variables: Variables, method: str) -> None:
    with var_endpoint("a1", variables) as base:
        status, _, _ = call(base, method, body=b"v" if method in ("PUT", "PATCH") else None)
        assert status == 405
    assert variables.read_raw("instance", "x") is None


def test_a_body_over_the_limit_is_refused_before_it_is_read(variables: Variables) -> None:
    with var_endpoint("a1", variables, max_body=100) as base:
        assert call(base, "POST", body=b"x" * 100)[0] == 200
        head = (
            b"POST /var?aid=a1&scope=instance&key=big HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        # Only the headers are sent: the answer comes without waiting for the gigabyte.
        assert raw(base, head).startswith(b"HTTP/1.0 413")
    assert variables.read_raw("instance", "big") is None


def test_the_default_limit_is_the_stores_binary_limit(store: StateStore) -> None:
    variables = Variables(store, workflow="wf", instance_id="i1")
    with var_endpoint("a1", variables) as base:
        head = (
            b"POST /var?aid=a1&scope=instance&key=big HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\n\r\n" % (store.binary_limit + 1)
        )
        assert raw(base, head).startswith(b"HTTP/1.0 413")


@pytest.mark.parametrize(
    "head",
    [
        b"POST /var?aid=a1&scope=instance&key=x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /var?aid=a1&scope=instance&key=x HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ],
)
def test_a_post_needs_a_content_length(variables: Variables, head: bytes) -> None:
    with var_endpoint("a1", variables) as base:
        assert raw(base, head).startswith(b"HTTP/1.0 411")
    assert variables.read_raw("instance", "x") is None


def test_a_slow_client_stalls_neither_others_nor_itself_forever(variables: Variables) -> None:
    with var_endpoint("a1", variables, timeout=1.0) as base:
        slow = connect(base)
        slow.sendall(b"POST /var?aid=a1&scope=instance&key=x HTTP/1.1\r\nContent-Le")
        started = time.monotonic()
        assert call(base, "POST", key="y", body=b"fast")[0] == 200
        assert time.monotonic() - started < 0.9  # not behind the slow one
        # The slow connection is cut once its time is up, although it never finished.
        slow.settimeout(5)
        assert slow.recv(100) == b""
        assert time.monotonic() - started < 4
        slow.close()
        # A client that drips its body byte by byte is cut as well.
        drip = connect(base)
        drip.sendall(
            b"POST /var?aid=a1&scope=instance&key=z HTTP/1.1\r\nContent-Length: 100\r\n\r\n"
        )
        started = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(100):
                drip.sendall(b"z")
                time.sleep(0.05)
                if time.monotonic() - started > 4:
                    raise AssertionError("still connected")
            raise AssertionError("the whole body went through")
        drip.close()
    assert variables.read_raw("instance", "x") is None
    assert variables.read_raw("instance", "z") is None


def test_connections_beyond_the_limit_are_answered_busy(variables: Variables) -> None:
    with var_endpoint("a1", variables, max_connections=2, timeout=5) as base:
        idle = [connect(base), connect(base)]
        time.sleep(0.1)
        assert raw(base, b"GET /var?aid=a1&scope=instance&key=x HTTP/1.0\r\n\r\n").startswith(
            b"HTTP/1.0 503"
        )
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 5
        while call(base)[0] != 404:  # the slots come back once the idle ones are gone
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_the_endpoint_closes_at_once_and_nothing_lands_after(variables: Variables) -> None:
    with var_endpoint("a1", variables, timeout=60) as base:
        pending = connect(base)
        pending.sendall(
            b"POST /var?aid=a1&scope=instance&key=late HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
        )
        time.sleep(0.1)
        started = time.monotonic()
    assert time.monotonic() - started < 2  # not held up by the connection still open
    try:
        pending.sendall(b"late")
        pending.settimeout(5)
        assert pending.recv(100) == b""
    except OSError:
        pass
    pending.close()
    assert variables.read_raw("instance", "late") is None
    with pytest.raises(OSError):
        connect(base).close()


def test_a_write_over_a_newer_version_is_a_conflict(store: StateStore) -> None:
    mine = Variables(store, workflow="wf", instance_id="i1")
    other = Variables(store, workflow="wf", instance_id="i2")
    other.write([other.plan_set("workflow", "count", 1)])
    assert mine.get("workflow", "count") == 1  # the instance's guard: version read
    other.write([other.plan_set("workflow", "count", 2)])
    with var_endpoint("a1", mine) as base:
        status, body, _ = call(base, "POST", scope="workflow", key="count", body=b"3")
        assert status == 409
        assert b"count" in body
    assert other.get("workflow", "count") == 2


def test_concurrent_posts_all_land(variables: Variables) -> None:
    with var_endpoint("a1", variables) as base:
        results: list[int] = []

        def post(i: int) -> None:
            results.append(call(base, "POST", key=f"k{i}", body=str(i).encode())[0])

        threads = [threading.Thread(target=post, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(results) == [200] * 12
    assert [variables.get("instance", f"k{i}") for i in range(12)] == list(range(12))
