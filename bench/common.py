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
    "ops_per_second",
    "percentile",
    "print_sections",
    "run_processes",
    "sb_cas_worker",
    "timed",
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


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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
