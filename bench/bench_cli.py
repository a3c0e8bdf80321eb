"""Start-up of the ``statebox`` command: a cold ``statebox get`` against ``python -c pass``.

A workflow may call the CLI at every step, so the cost that matters is a fresh process:
interpreter start, imports, opening the SQLite store, one read, one line of output.
Each sample is a new process; the commands are interleaved (so a noisy neighbour
slows all of them alike) and the median of 20 is reported. Target: at most 2.5x the bare
interpreter.

Two reference rows (no target) show the floor any argparse + SQLite + JSON command line
pays on this machine: importing those three stdlib modules, and that plus building and
running one tiny argparse parser (its gettext look-ups import ``locale``).

Both sides run with bytecode caches, as an installed package has them (pip compiles
``.pyc`` files at install time): if the environment disables writing them
(``PYTHONDONTWRITEBYTECODE``), the caches go to a private ``PYTHONPYCACHEPREFIX`` under
the work directory, filled by warm-up runs that are not measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .common import Row, Section, median

RUNS = 20
TARGET_RATIO = 2.5
_STDLIB = "import argparse, json, sqlite3"
_PARSE = "; p = argparse.ArgumentParser(); p.add_argument('--x'); p.parse_args(['--x', '1'])"


def _statebox_command() -> list[str]:
    script = Path(sys.executable).with_name("statebox")
    if script.exists():
        return [str(script)]  # the console script users run
    return [sys.executable, "-m", "statebox.cli"]


def _environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(workdir / "pycache"))
    env["STATEBOX_STORE"] = f"sqlite:///{workdir / 'state.db'}"
    env["STATEBOX_DAG"] = "bench"
    return env


def _run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(workdir: Path) -> list[Section]:
    env = _environment(workdir)
    statebox = _statebox_command()
    commands = {
        "pass": [sys.executable, "-c", "pass"],
        "stdlib": [sys.executable, "-c", _STDLIB],
        "parse": [sys.executable, "-c", _STDLIB + _PARSE],
        "missing": [*statebox, "get", "cursors/missing"],
        "existing": [*statebox, "get", "cursors/feed"],
    }
    subprocess.run(
        [*statebox, "set", "cursors/feed", '{"last_id": 123}'],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for argv in commands.values():  # warm-up: bytecode caches, page cache
        for _ in range(2):
            _run(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(RUNS):
        for name, argv in commands.items():
            samples[name].append(_run(argv, env))
    bare = median(samples["pass"]) * 1000
    rows = [
        Row(f"{label}, median of {RUNS}", "ms", median(samples[name]) * 1000, bare)
        for name, label in (
            ("stdlib", f"floor: python -c '{_STDLIB}'"),
            ("parse", "floor: the same + one tiny argparse parse"),
        )
    ]
    for name, label in (("missing", "missing key"), ("existing", "existing key")):
        ms = median(samples[name]) * 1000
        rows.append(
            Row(
                f"cold `statebox get` ({label}), median of {RUNS}",
                "ms",
                ms,
                bare,
                target=f"<= {TARGET_RATIO}x",
                met=ms <= TARGET_RATIO * bare,
            )
        )
    return [Section("CLI start-up", "python -c pass, same interpreter", rows)]
