"""Issue #19, "idle costs nothing": 50 idle `statebox watch` processes on one SQLite file.

For each way of waiting (backends/_fswait.py, chosen by ``STATEBOX_WATCH_POLL``): inotify
(the default on Linux), the polling fallback that backs off to 40 ms, and — the baseline
— fixed 5 ms polling, what every watcher did before issue #19. Per way: start
:data:`WATCHERS` watchers, wait until each has reported a first change (so all are past
start-up), let them idle :data:`IDLE` seconds and read their CPU time from
/proc/PID/schedstat (nanoseconds; /proc/PID/stat's utime+stime ticks every 10 ms), then
write :data:`CHANGES` values, each carrying the time it was written, and time until each
watcher prints it (the watchers' output is read here with one selector).

Targets from the issue: an idle watcher under 0.2 % of a core; a change within 50 ms.

    .venv/bin/python -m bench.run watch_idle
    .venv/bin/python -m bench.bench_watch_idle --watchers 10 --idle 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from statebox import RunContext, open_store

from .common import Row, Section, median, percentile

WATCHERS = 50
IDLE = 10.0
CHANGES = 20
#: Between two changes, at random (the fallback is back at its idle interval by then).
GAP = (0.3, 0.6)
NAMESPACE = "idle"
POLL_ENV = "STATEBOX_WATCH_POLL"
WAYS = {"inotify": "auto", "fallback (back-off)": "backoff", "5 ms polling": "5ms"}
SRC = str(Path(__file__).resolve().parent.parent / "src")


@dataclass
class Measured:
    cpu_percent: list[float]  # per watcher, of one core
    latency_ms: list[float] = field(default_factory=list)  # every watcher, every change
    missed: int = 0  # changes a watcher did not print within 5 s


def _cpu_seconds(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):  # no schedstat: the 10 ms ticks
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Watchers:
    def __init__(self, url: str, poll: str, count: int) -> None:
        env = {**os.environ, POLL_ENV: poll, "STATEBOX_DAG": NAMESPACE}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "statebox.cli", "--store", url, "watch", "k"]
        self.procs = [
            subprocess.Popen([*argv, "--include-values"], stdout=subprocess.PIPE, env=env)
            for _ in range(count)
        ]
        self.selector = selectors.DefaultSelector()
        self.partial: dict[int, bytes] = {}
        for index, proc in enumerate(self.procs):
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            self.selector.register(proc.stdout, selectors.EVENT_READ, index)

    def values_until(self, wanted: int, deadline: float) -> dict[int, float]:
        """{watcher: monotonic time it printed value ``wanted``} until all or deadline."""
        seen: dict[int, float] = {}
        while len(seen) < len(self.procs) and (left := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(left):
                now = time.monotonic()
                index = key.data
                chunk = os.read(key.fd, 65536)
                lines = (self.partial.pop(index, b"") + chunk).split(b"\n")
                self.partial[index] = lines.pop()
                for line in lines:
                    if json.loads(line).get("value", {}).get("n") == wanted:
                        seen[index] = now
        return seen

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        self.selector.close()


def measure(workdir: Path, poll: str, watchers: int, idle: float, changes: int) -> Measured:
    url = f"sqlite:///{workdir / f'idle-{poll}.db'}"
    context = RunContext(dag=NAMESPACE)
    with open_store(url, context=context) as store:
        store.set("k", {"n": 0, "t": 0})
        group = _Watchers(url, poll, watchers)
        try:
            # Write until every watcher has reported (each takes its baseline on start).
            deadline, n = time.monotonic() + 120, 0
            ready: set[int] = set()
            while len(ready) < watchers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(ready)} of {watchers} watchers started")
                n += 1
                store.set("k", {"n": n, "t": time.monotonic()})
                ready |= set(group.values_until(n, time.monotonic() + 1.0))
            group.values_until(-1, time.monotonic() + 1.0)  # drain, then past the settling
            pids = [proc.pid for proc in group.procs]
            before, started = [_cpu_seconds(pid) for pid in pids], time.monotonic()
            time.sleep(idle)
            after, elapsed = [_cpu_seconds(pid) for pid in pids], time.monotonic() - started
            measured = Measured(
                [100 * (b - a) / elapsed for a, b in zip(before, after, strict=True)]
            )
            for _ in range(changes):
                time.sleep(random.uniform(*GAP))
                n += 1
                written = time.monotonic()
                store.set("k", {"n": n, "t": written})
                seen = group.values_until(n, time.monotonic() + 5.0)
                measured.latency_ms += [(at - written) * 1000 for at in seen.values()]
                measured.missed += watchers - len(seen)
            return measured
        finally:
            group.close()


def _rows(results: dict[str, Measured], watchers: int) -> list[Row]:
    rows: list[Row] = []
    base = results.get("5 ms polling")
    for way, m in results.items():
        is_base = m is base
        per = median(m.cpu_percent)
        total = sum(m.cpu_percent)
        p50 = median(m.latency_ms) if m.latency_ms else float("nan")
        p99 = percentile(m.latency_ms, 99)
        worst = max(m.latency_ms, default=float("nan"))
        b = None if base is None or is_base else base
        cpu_target = "" if is_base else ("< 0.2" if way == "inotify" else "")
        rows += [
            Row(f"{way}: idle CPU per watcher (median)", "% core", per,
                None if b is None else median(b.cpu_percent), cpu_target,
                None if is_base or way != "inotify" else per < 0.2),
            Row(f"  {watchers} idle watchers together", "% core", total,
                None if b is None else sum(b.cpu_percent)),
            Row("  change to every watcher: median", "ms", p50,
                None if b is None else median(b.latency_ms)),
            Row("  p99", "ms", p99, None if b is None else percentile(b.latency_ms, 99)),
            Row("  max", "ms", worst, None if b is None else max(b.latency_ms, default=0.0),
                "" if is_base else "< 50", None if is_base else worst < 50),
            Row("  changes not seen within 5 s", "count", m.missed, None, "0", m.missed == 0),
        ]  # fmt: skip
    return rows


def run(workdir: Path, watchers: int = WATCHERS, idle: float = IDLE,
        changes: int = CHANGES) -> list[Section]:  # fmt: skip
    results = {way: measure(workdir, poll, watchers, idle, changes) for way, poll in WAYS.items()}
    title = (
        f"{watchers} idle `statebox watch` processes on one SQLite file: CPU over {idle:g} s, "
        f"then {changes} changes"
    )
    return [Section(title, "5 ms polling (before #19)", _rows(results, watchers))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=WATCHERS)
    parser.add_argument("--idle", type=float, default=IDLE)
    parser.add_argument("--changes", type=int, default=CHANGES)
    args = parser.parse_args()
    from .common import print_sections

    with tempfile.TemporaryDirectory() as tmp:
        print_sections(run(Path(tmp), args.watchers, args.idle, args.changes))


if __name__ == "__main__":
    main()
