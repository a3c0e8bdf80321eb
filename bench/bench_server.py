"""The statebox server beside Redis and etcd: 8 concurrent clients doing gets and sets.

All three run on this machine, on loopback ports, started here as the benchmark's own
setup: ``python -m statebox.server`` over a SQLite file (one server process; once with
the default ``synchronous=FULL``, an fsync per commit, and once with ``NORMAL``, which
survives a crash of the process but not of the machine), ``redis-server`` with
persistence off, and ``etcd`` (which fsyncs its log, batching concurrent writes) with a
temporary data directory. Each client is a
process of its own with one keep-alive connection and the thinnest client possible — a
few lines of HTTP/1.1 for statebox and etcd (its JSON gateway, ``/v3/kv/range`` and
``/v3/kv/put``), of RESP for Redis — so the rows measure the servers, not client
libraries. Every client does the same work on every system: GETS_EACH gets over 100
pre-written keys, then SETS_EACH sets of its own keys. Throughput is all operations over
the wall time from the first start to the last end; latencies are per operation.
"""

from __future__ import annotations

import base64
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .common import Row, Section, percentile

CLIENTS = 8
GETS_EACH = 2_500
SETS_EACH = 500
KEYS = 100
VALUE = b'{"etag":"abc","items":[1,2,3],"last_id":123456}'
GET_TARGET = 3_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the thinnest clients ----------------------------------------------------------------


class Http:
    """HTTP/1.1 with one keep-alive connection; answers (status, body)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"127.0.0.1:{port}".encode()
        self.buffer = b""

    def request(self, method: bytes, path: bytes, body: bytes = b"") -> tuple[int, bytes]:
        self.sock.sendall(
            b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (method, path, self.host, len(body), body)
        )
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return int(lines[0].split()[1]), rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        return data


class Resp:
    """Redis's protocol, for GET and SET only."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def command(self, *parts: bytes) -> bytes | None:
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(payload)
        line = self._line()
        if line[:1] == b"$":
            size = int(line[1:])
            if size < 0:
                return None
            while len(self.buffer) < size + 2:
                self.buffer += self.sock.recv(65536)
            data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
            return data
        if line[:1] == b"-":
            raise RuntimeError(line.decode())
        return line

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line


# --- one client per system -------------------------------------------------------------

Op = Callable[[int], None]


def statebox_ops(port: int, client: int) -> tuple[Op, Op]:
    http = Http(port)

    def get(i: int) -> None:
        status, _ = http.request(b"GET", b"/v1/kv/global/bench/k/%d" % (i % KEYS))
        assert status == 200, status

    def put(i: int) -> None:
        path = b"/v1/kv/global/bench/c%d/%d" % (client, i % KEYS)
        status, body = http.request(b"PUT", path, VALUE)
        assert status == 200, (status, body)

    return get, put


def etcd_ops(port: int, client: int) -> tuple[Op, Op]:
    http = Http(port)
    ranges = [
        json.dumps({"key": base64.b64encode(b"k/%d" % i).decode()}).encode() for i in range(KEYS)
    ]
    value = base64.b64encode(VALUE).decode()
    puts = [
        json.dumps(
            {"key": base64.b64encode(b"c%d/%d" % (client, i)).decode(), "value": value}
        ).encode()
        for i in range(KEYS)
    ]

    def get(i: int) -> None:
        status, body = http.request(b"POST", b"/v3/kv/range", ranges[i % KEYS])
        assert status == 200 and b'"kvs"' in body, (status, body)

    def put(i: int) -> None:
        status, body = http.request(b"POST", b"/v3/kv/put", puts[i % KEYS])
        assert status == 200, (status, body)

    return get, put


def redis_ops(port: int, client: int) -> tuple[Op, Op]:
    resp = Resp(port)

    def get(i: int) -> None:
        assert resp.command(b"GET", b"k/%d" % (i % KEYS)) == VALUE

    def put(i: int) -> None:
        resp.command(b"SET", b"c%d/%d" % (client, i % KEYS), VALUE)

    return get, put


MAKERS: dict[str, Callable[[int, int], tuple[Op, Op]]] = {
    "statebox": statebox_ops,
    "etcd": etcd_ops,
    "redis": redis_ops,
}


def client_main(system: str, port: int, client: int, barrier: Any, out: Any) -> None:
    get, put = MAKERS[system](port, client)
    get(0)  # connected and warm
    results: dict[str, Any] = {}
    for phase, op, count in (("get", get, GETS_EACH), ("set", put, SETS_EACH)):
        barrier.wait()
        latencies = []
        started = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            op(i)
            latencies.append(time.perf_counter() - t)
        results[phase] = (started, time.perf_counter(), latencies)
    out.put(results)


def measure(system: str, port: int) -> dict[str, tuple[float, float, float]]:
    """ops/s, p50 ms, p99 ms for each phase."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(CLIENTS)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=client_main, args=(system, port, c, barrier, out))
        for c in range(CLIENTS)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    summary = {}
    for phase in ("get", "set"):
        start = min(r[phase][0] for r in results)
        end = max(r[phase][1] for r in results)
        samples = [s for r in results for s in r[phase][2]]
        summary[phase] = (
            len(samples) / (end - start),
            percentile(samples, 50) * 1000,
            percentile(samples, 99) * 1000,
        )
    return summary


# --- the servers -------------------------------------------------------------------------


def _wait(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within 30 s")


@contextmanager
def process(command: list[str], **options: Any) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, **options)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: apt-get install -y {package}")
    return path


@contextmanager
def statebox_server(workdir: Path, synchronous: str = "FULL") -> Iterator[int]:
    store = f"sqlite:///{workdir / 'server.db'}?synchronous={synchronous}"
    command = [sys.executable, "-m", "statebox.server", "--store", store, "--port", "0"]
    command += ["--no-access-log", "--log-level", "warning"]
    with process(command, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        port = int(line.split("listening on http://127.0.0.1:", 1)[1].split()[0])
        http = Http(port)
        for i in range(KEYS):  # the keys the gets read
            assert http.request(b"PUT", b"/v1/kv/global/bench/k/%d" % i, VALUE)[0] == 200
        yield port


@contextmanager
def redis_server(workdir: Path) -> Iterator[int]:
    port = free_port()
    command = [need("redis-server", "redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    with process(command, stdout=subprocess.DEVNULL) as proc:
        _wait(lambda: Resp(port).command(b"PING") == b"+PONG", "redis-server", proc)
        resp = Resp(port)
        for i in range(KEYS):
            resp.command(b"SET", b"k/%d" % i, VALUE)
        yield port


@contextmanager
def etcd_server(workdir: Path) -> Iterator[int]:
    port, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    command = [need("etcd", "etcd-server"), "--name", "bench", "--data-dir", str(workdir / "etcd")]
    command += ["--listen-client-urls", client_url, "--advertise-client-urls", client_url]
    command += ["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url]
    command += ["--initial-cluster", f"bench={peer_url}", "--log-level", "error"]
    with process(command, stdout=subprocess.DEVNULL) as proc:
        _wait(lambda: Http(port).request(b"GET", b"/health")[0] == 200, "etcd", proc)
        http = Http(port)
        for i in range(KEYS):
            key = base64.b64encode(b"k/%d" % i).decode()
            body = json.dumps({"key": key, "value": base64.b64encode(VALUE).decode()})
            assert http.request(b"POST", b"/v3/kv/put", body.encode())[0] == 200
        yield port


# --- the table ---------------------------------------------------------------------------


def _versus(name: str, ours: tuple[float, float, float], theirs: tuple[float, float, float],
            etcd: bool) -> list[Row]:  # fmt: skip
    rate, p50, p99 = ours
    base_rate, base_p50, base_p99 = theirs
    faster = ("> etcd", rate > base_rate) if etcd else ("", None)
    if name.startswith("gets") and not etcd:
        faster = (f">= {GET_TARGET:,.0f}/s", rate >= GET_TARGET)
    sooner = ("< etcd", p50 < base_p50) if etcd else ("", None)
    tail = ("< etcd", p99 < base_p99) if etcd else ("", None)
    return [
        Row(name, "ops/s", rate, base_rate, *faster),
        Row("  p50 latency", "ms", p50, base_p50, *sooner),
        Row("  p99 latency", "ms", p99, base_p99, *tail),
    ]


def run(workdir: Path) -> list[Section]:
    setups: list[tuple[str, Callable[[Path], Any]]] = [
        ("statebox", statebox_server),
        ("statebox-normal", lambda d: statebox_server(d, "NORMAL")),
        ("etcd", etcd_server),
        ("redis", redis_server),
    ]
    results = {}
    for name, server in setups:
        with tempfile.TemporaryDirectory(dir=workdir) as own, server(Path(own)) as port:
            results[name] = measure(name.split("-")[0], port)
    sections = []
    for baseline in ("etcd", "redis"):
        theirs, etcd = results[baseline], baseline == "etcd"
        rows = _versus(f"gets, {CLIENTS} clients", results["statebox"]["get"], theirs["get"], etcd)
        rows += _versus(
            f"sets, {CLIENTS} clients (fsync/commit)",
            results["statebox"]["set"],
            theirs["set"],
            etcd,
        )
        rows += _versus(
            f"sets, {CLIENTS} clients (sync=NORMAL)",
            results["statebox-normal"]["set"],
            theirs["set"],
            etcd,
        )
        sections.append(
            Section(
                f"statebox server over SQLite, {CLIENTS} client processes, "
                f"{GETS_EACH} gets then {SETS_EACH} sets each",
                baseline,
                rows,
            )
        )
    return sections


if __name__ == "__main__":
    from .common import print_sections

    os.environ.setdefault("PYTHONHASHSEED", "0")
    print_sections(run(Path(tempfile.mkdtemp())))
