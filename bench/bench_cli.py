"""Start-up of the ``statebox`` command: a cold ``statebox get`` against the stdlib floor.

A workflow may call the CLI at every step, so the cost that matters is a fresh process:
interpreter start, imports, opening the SQLite store, one read, one line of output.
Each sample is a new process; the commands are interleaved (so a noisy neighbour slows
all of them alike) and the median of 20 is reported.

The baseline is the floor no argparse + SQLite + JSON command line can go under:
``python -c "import argparse, json, sqlite3"``. Target: a cold ``get`` at most 1.5x
that floor. A cold ``set`` is shown beside it without a target: it also normalizes and
hashes the value and waits for its write to reach the disk. Two reference rows
show the bare interpreter and the floor plus building and running one tiny argparse
parser (its gettext look-ups import ``locale``; without a width, its help formatter
imports ``shutil``).

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
TARGET_RATIO = 1.5
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
        "floor": [sys.executable, "-c", _STDLIB],
        "pass": [sys.executable, "-c", "pass"],
        "parse": [sys.executable, "-c", _STDLIB + _PARSE],
        "missing": [*statebox, "get", "cursors/missing"],
        "existing": [*statebox, "get", "cursors/feed"],
        # Same value each time: a new version per sample, the history kept bounded.
        "set": [*statebox, "set", "cursors/feed", '{"last_id": 123}'],
    }
    for argv in commands.values():  # warm-up: bytecode caches, page cache, the entry
        for _ in range(2):
            _run(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(RUNS):
        # Rotate the order, so no command always follows the same one.
        names = list(commands)
        names = names[i % len(names) :] + names[: i % len(names)]
        for name in names:
            samples[name].append(_run(commands[name], env))
    floor = median(samples["floor"]) * 1000
    rows = [
        Row(f"reference: python -c pass, median of {RUNS}", "ms", _ms(samples["pass"]), floor),
        Row(
            f"reference: the floor + one tiny argparse parse, median of {RUNS}",
            "ms",
            _ms(samples["parse"]),
            floor,
        ),
    ]
    for name, label in (("missing", "get, missing key"), ("existing", "get, existing key")):
        ms = _ms(samples[name])
        rows.append(
            Row(
                f"cold `statebox {label}`, median of {RUNS}",
                "ms",
                ms,
                floor,
                target=f"<= {TARGET_RATIO}x",
                met=ms <= TARGET_RATIO * floor,
            )
        )
    rows.append(Row(f"cold `statebox set`, median of {RUNS}", "ms", _ms(samples["set"]), floor))
    baseline = f"python -c '{_STDLIB}', median of {RUNS}: {floor:.1f} ms"
    return [Section("CLI start-up", baseline, rows)]


def _ms(samples: list[float]) -> float:
    return median(samples) * 1000
