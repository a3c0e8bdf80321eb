"""Shared helpers of the benchmarks: timing, percentiles, and the comparison table."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Row",
    "Section",
    "interleaved",
    "latencies_ms",
    "median",
    "ops_per_second",
    "percentile",
    "print_sections",
    "run_processes",
    "sb_cas_worker",
]


@dataclass
class Row:
    """One workload measured on statebox and on its raw baseline, in the same run."""

    workload: str
    unit: str  # "ops/s", "ms", ...
    statebox: float
    baseline: float | None = None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.statebox / self.baseline


@dataclass
class Section:
    title: str
    baseline_name: str
    rows: list[Row]


def ops_per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def interleaved(
    count: int,
    statebox_side: Callable[[range], object],
    baseline_side: Callable[[range], object],
    block: int,
) -> tuple[float, float]:
    """ops/s of statebox and of its baseline over ``count`` operations each, run in
    alternating blocks of ``block`` (the side that goes first alternating too), so both
    meet the same load of a shared, noisy machine. A side does the operations whose
    indexes it is given."""
    seconds = [0.0, 0.0]
    sides = [statebox_side, baseline_side]
    for turn, low in enumerate(range(0, count, block)):
        indexes = range(low, min(count, low + block))
        for side in (0, 1) if turn % 2 == 0 else (1, 0):
            start = time.perf_counter()
            sides[side](indexes)
            seconds[side] += time.perf_counter() - start
    return ops_per_second(count, seconds[0]), ops_per_second(count, seconds[1])


def latencies_ms(fn: Callable[[str], object], keys: list[str]) -> list[float]:
    """The milliseconds each ``fn(key)`` took, in order."""
    samples = []
    for key in keys:
        start = time.perf_counter()
        fn(key)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def print_sections(sections: list[Section]) -> None:
    for section in sections:
        print(f"\n## {section.title}  (baseline: {section.baseline_name})\n")
        header = ("workload", "unit", "statebox", "baseline", "ratio", "target", "met")
        rows = [
            (
                r.workload,
                r.unit,
                _fmt(r.statebox),
                _fmt(r.baseline),
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
                r.target or "-",
                {True: "yes", False: "NO", None: "-"}[r.met],
            )
            for r in section.rows
        ]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
        print(line)
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in rows:
            print(
                "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            )


def sb_cas_worker(url: str, count: int) -> None:
    """``count`` read, compare-and-set, retry increments of one key (a spawned process)."""
    from statebox import ConflictError, RunContext, open_store

    with open_store(url, context=RunContext(dag="bench", run_id="1", step="s")) as store:
        done = 0
        while done < count:
            cur = store.get("counter")
            try:
                store.set("counter", (cur.value or 0) + 1, expected_version=cur.version)
                done += 1
            except ConflictError:
                pass


def run_processes(processes: int, each: int, target: Callable[[str, int], None], arg: str) -> float:
    """Seconds for ``processes`` spawned ``target(arg, each)`` to all finish."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(arg, each)) for _ in range(processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - start
