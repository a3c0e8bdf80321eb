"""Run the benchmarks and print one comparison table per section.

    .venv/bin/python -m bench.run            # every section
    .venv/bin/python -m bench.run sqlite     # only sections whose name contains "sqlite"
    scripts/bench [names...]                 # the same, setting up .venv first

Each ``bench/bench_<name>.py`` exposes ``run(workdir: Path) -> list[Section]``; it
measures statebox and its raw baseline side by side in the same run. Benchmarks are
never part of the test suite. ``hostile`` and ``watch`` (issue #12's figures) have no
raw baseline: their rows show the targets, and with ``STATEBOX_BENCH_BASE=DIR`` the same
figures of another tree's ``src/`` (the previous release) as the baseline.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from .common import print_sections

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    if not wanted:
        print(f"no benchmark matches {argv}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    # On the project's disk, not /tmp (often tmpfs): fsync must cost what it costs.
    data = HERE / ".data"
    data.mkdir(exist_ok=True)
    for name in wanted:
        module = importlib.import_module(f"bench.bench_{name}")
        with tempfile.TemporaryDirectory(dir=data) as workdir:
            print_sections(module.run(Path(workdir)))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
