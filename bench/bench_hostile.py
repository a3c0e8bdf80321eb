"""Issue #12's figures for hostile requests, against a real server on loopback.

Each attack gets a fresh ``python -m statebox.server`` over a SQLite file in the work
directory (so its memory figures are its own), a few warm-up requests, then the attack
from this process while a thread asks ``/healthz`` every 10 ms on its own keep-alive
connection:

- **copy bomb**: the 1.1 KB JSON patch of the issue (add ``/a``, then copy ``/a`` into
  ``/a/-`` 23 times: 2**23 elements if it ran). Targets from the issue: refused in under
  a second, the server's RSS (peak, ``VmHWM``) growing by less than 100 MB, ``/healthz``
  answering throughout (read here as: every probe answered 200, none slower than 1 s).
- **string copies**: one 500 KB string copied 4,000 times in one patch (2 GB if it ran);
  the same targets as the bomb.
- **100,000-op transaction**: ``POST /v1/txn`` with 100,000 sets (the limit is
  ``--max-txn-ops``, 128). The issue gives no time for it: the rows show the time to
  the 400 and the server's growth; ``/healthz`` must answer throughout, as above.
- **largest allowed transaction**: 128 sets, each a float array as large as fits in the
  default 48 MiB body limit (383 KiB each: floats take the slow, exact-literal path of
  the value parser); it commits. Target from the issue: ``/healthz`` p99 under 100 ms.

With ``STATEBOX_BENCH_BASE=DIR`` (another tree's ``src/``, e.g. the previous release),
the same attacks also run on a server started with ``PYTHONPATH=DIR``: the baseline
column. The copy bomb and the string copies took 30-60 s there each, with 1.2 GB and
6 GB of peak memory; those two base runs are skipped unless
``STATEBOX_BENCH_BASE_SLOW=1``. No attack waits longer than ``ATTACK_TIMEOUT`` for its
answer (a figure at that value means "no answer by then").

    .venv/bin/python -m bench.run hostile
    STATEBOX_BENCH_BASE=/tmp/statebox-base/src .venv/bin/python -m bench.run hostile
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.server_util import ServerProcess, running_server

from statebox.server.options import DEFAULT_MAX_BODY_BYTES

from .common import Row, Section, percentile

#: The longest an attack's request is waited for, in seconds.
ATTACK_TIMEOUT = 60.0
PROBE_INTERVAL = 0.01
TXN_LIMIT = 128  # the default --max-txn-ops
BASE_ENV = "STATEBOX_BENCH_BASE"
BASE_SLOW_ENV = "STATEBOX_BENCH_BASE_SLOW"


@dataclass
class Attack:
    name: str
    route: str
    body: bytes
    expected: int  # the status the defended server answers
    slow_before: bool  # took a minute or more on the code before issue #12
    detail: str = ""  # for the section's title
    #: The issue's targets of the copy bomb (refused in under 1 s, RSS growth under
    #: 100 MB) apply to this attack; the others only show these figures.
    bomb_targets: bool = False


@dataclass
class Outcome:
    status: int | None  # None: no answer within ATTACK_TIMEOUT
    seconds: float
    rss_growth_mb: float  # VmHWM after minus VmHWM before
    health_ms: list[float] = field(default_factory=list)
    health_failed: int = 0  # probes not answered 200 (or still waiting at the end)

    @property
    def health_max(self) -> float:
        return max(self.health_ms, default=float("nan"))


# --- the attacks -------------------------------------------------------------------------


def copy_bomb() -> Attack:
    ops: list[dict[str, object]] = [{"op": "add", "path": "/a", "value": [1]}]
    ops += [{"op": "copy", "from": "/a", "path": "/a/-"}] * 23
    body = json.dumps({"patch": ops, "default": {}}).encode()
    assert len(body) < 1200, len(body)
    return Attack(
        "copy bomb",
        "/v1/update/global/_/bomb",
        body,
        413,
        True,
        "add /a, copy /a into /a/- 23x",
        True,
    )


def string_copies() -> Attack:
    ops: list[dict[str, object]] = [{"op": "add", "path": "/s", "value": "x" * 500_000}]
    ops += [{"op": "copy", "from": "/s", "path": f"/c{i}"} for i in range(4000)]
    body = json.dumps({"patch": ops, "default": {}}).encode()
    detail = "a 500 KB string copied 4,000 times"
    return Attack("string copies", "/v1/update/global/_/strings", body, 413, True, detail, True)


def huge_transaction() -> Attack:
    ops = [{"op": "set", "key": f"k{i}", "value": i} for i in range(100_000)]
    body = json.dumps({"ops": ops}).encode()
    detail = "100,000 sets, --max-txn-ops is 128"
    return Attack("100,000-op transaction", "/v1/txn/global/huge", body, 400, False, detail)


def largest_transaction() -> Attack:
    """128 sets of float arrays, the body just under the default --max-body-bytes."""
    wrapper = len('{"op":"set","key":"k000","value":},')
    each = (DEFAULT_MAX_BODY_BYTES - 1024) // TXN_LIMIT - wrapper
    rnd = random.Random(12)
    values = []
    for _ in range(4):  # four distinct arrays, reused: building 128 costs the bench seconds
        values.append("[" + ",".join(f"{rnd.random():.6f}" for _ in range(each // 9)) + "]")
    ops = ",".join(
        f'{{"op":"set","key":"k{i:03d}","value":{values[i % 4]}}}' for i in range(TXN_LIMIT)
    )
    body = f'{{"ops":[{ops}]}}'.encode()
    assert len(body) <= DEFAULT_MAX_BODY_BYTES, len(body)
    detail = (
        f"{TXN_LIMIT} sets of {each // 1024} KiB float arrays, "
        f"the default --max-body-bytes {DEFAULT_MAX_BODY_BYTES // 2**20} MiB"
    )
    return Attack("largest allowed transaction", "/v1/txn/global/big", body, 200, False, detail)


# --- measuring -----------------------------------------------------------------------------


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


class _Http:
    """One keep-alive HTTP/1.1 connection; answers the status (bodies have a length)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        status = int(self.file.readline().split()[1])
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        self.file.read(length)
        return status

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class _HealthProbe(threading.Thread):
    """``GET /healthz`` every 10 ms; keeps each latency (ms) and counts failures. A
    probe still waiting when stopped counts as failed, its wait so far as its latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.failed = 0
        self.started_at: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        http = _Http(self.port, ATTACK_TIMEOUT * 2)
        try:
            while not self.done.is_set():
                self.started_at = time.perf_counter()
                try:
                    status = http.request("GET", "/healthz")
                except OSError:
                    status = 0
                self.latencies.append((time.perf_counter() - self.started_at) * 1000)
                self.started_at = None
                self.failed += status != 200
                if status == 0:
                    return
                time.sleep(PROBE_INTERVAL)
        finally:
            http.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=2.0)
        pending = self.started_at
        if self.is_alive() and pending is not None:
            self.latencies.append((time.perf_counter() - pending) * 1000)
            self.failed += 1


def _attack(server: ServerProcess, attack: Attack) -> Outcome:
    port = int(server.url.rsplit(":", 1)[1])
    warm = _Http(port, 10)
    try:  # the first requests import and allocate what every later one reuses
        assert warm.request("PUT", "/v1/kv/global/_/warm", b'{"a":[1,2.5,"x"]}') == 200
        assert warm.request("POST", "/v1/txn/global/_", b'{"ops":[]}') in (200, 400)
        assert warm.request("GET", "/healthz") == 200
    finally:
        warm.close()
    pid = server.proc.pid
    peak_before = _peak_kib(pid)
    probe = _HealthProbe(port)
    probe.start()
    time.sleep(0.2)
    http = _Http(port, ATTACK_TIMEOUT)
    started = time.perf_counter()
    status: int | None
    try:
        status = http.request("POST", attack.route, attack.body)
    except TimeoutError:
        status = None
    finally:
        seconds = time.perf_counter() - started
        http.close()
    time.sleep(0.2)  # a few probes after the answer
    probe.stop()
    growth = (_peak_kib(pid) - peak_before) * 1024 / 1e6  # KiB -> MB
    return Outcome(status, seconds, growth, probe.latencies, probe.failed)


def measure(attack: Attack, workdir: Path, pythonpath: str | None) -> Outcome:
    tag = "base" if pythonpath else "new"
    db = workdir / f"{attack.name.replace(' ', '-').replace(',', '')}-{tag}.db"
    env = {"PYTHONPATH": pythonpath} if pythonpath else None
    with running_server(f"sqlite:///{db}", env=env) as server:
        try:
            return _attack(server, attack)
        except (OSError, AssertionError, ValueError) as exc:
            raise RuntimeError(f"{attack.name}: {exc!r}; server log:\n{server.log_text()}") from exc


# --- the table -----------------------------------------------------------------------------


def _rows(attack: Attack, new: Outcome, old: Outcome | None) -> list[Row]:
    def figure(pick: Callable[[Outcome], float]) -> tuple[float, float | None]:
        return pick(new), None if old is None else pick(old)

    answered = f"answered {new.status}" if new.status is not None else "no answer"
    if attack.expected == 200:
        rows = [Row(f"commit ({answered})", "s", *figure(lambda o: o.seconds))]
        p50, p99 = (
            figure(lambda o: percentile(o.health_ms, 50)),
            figure(lambda o: percentile(o.health_ms, 99)),
        )
        rows += [
            Row("  /healthz p50", "ms", *p50),
            Row("  /healthz p99", "ms", *p99, "< 100 ms", p99[0] < 100 and new.health_failed == 0),
        ]
    else:
        seconds = figure(lambda o: o.seconds)
        growth = figure(lambda o: o.rss_growth_mb)
        refused = new.status == attack.expected
        if attack.bomb_targets:
            rows = [
                Row(f"time to refusal ({answered})", "s", *seconds, "< 1 s",
                    refused and seconds[0] < 1),
                Row("  server RSS growth (peak)", "MB", *growth, "< 100 MB", growth[0] < 100),
            ]  # fmt: skip
        else:
            rows = [
                Row(f"time to refusal ({answered})", "s", *seconds, f"answered {attack.expected}",
                    refused),
                Row("  server RSS growth (peak)", "MB", *growth),
            ]  # fmt: skip
        rows.append(Row("  /healthz p99", "ms", *figure(lambda o: percentile(o.health_ms, 99))))
    maximum = figure(lambda o: o.health_max)
    rows.append(
        Row(
            "  /healthz max",
            "ms",
            *maximum,
            "" if attack.expected == 200 else "< 1,000 ms",
            None if attack.expected == 200 else maximum[0] < 1000 and new.health_failed == 0,
        )
    )
    rows.append(
        Row(
            "  /healthz probes not answered 200",
            "count",
            *figure(lambda o: o.health_failed),
            "0",
            new.health_failed == 0,
        )
    )
    return rows


def run(workdir: Path) -> list[Section]:
    base = os.environ.get(BASE_ENV)
    base_slow = os.environ.get(BASE_SLOW_ENV) == "1"
    sections = []
    for make in (copy_bomb, string_copies, huge_transaction, largest_transaction):
        attack = make()
        new = measure(attack, workdir, None)
        old = None
        note = "targets only"
        if base and (base_slow or not attack.slow_before):
            old = measure(attack, workdir, base)
            note = f"{base}" + (
                f", answered {old.status}"
                if old.status is not None
                else f", no answer within {ATTACK_TIMEOUT:.0f} s"
            )
        elif base:
            note = f"targets only (base run skipped: {BASE_SLOW_ENV}=1 runs it)"
        size = len(attack.body)
        shown = f"{size / 2**20:.3g} MiB" if size > 2**20 else f"{size:,} B"
        sections.append(
            Section(
                f"hostile: {attack.name} ({attack.detail}; {shown} body), server over SQLite",
                note,
                _rows(attack, new, old),
            )
        )
    return sections


if __name__ == "__main__":
    import tempfile

    from .common import print_sections

    with tempfile.TemporaryDirectory() as tmp:
        print_sections(run(Path(tmp)))
