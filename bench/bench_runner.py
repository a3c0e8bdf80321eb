"""Runner overhead per step (issue #14): what ``statebox run`` adds to each step.

Two 200-step chains, each run in-process through the runner (``run_dag``) on a SQLite
store, beside the same work done bare in the same run:

- state steps (``state.set`` of a small value, then ``state.get`` of it, alternating):
  baseline = the same 200 engine calls on the same kind of store. Runner time per step =
  (the chain - the bare calls) / 200. Target: at most 1 ms.
- ``run: "true"`` steps: baseline = 200 bare ``sh -c true`` spawns (``subprocess.run``).
  Target: a step costs at most 1 ms more than the bare spawn.

Each side runs three times, interleaved; the median is reported. The runner's time
includes what it must do per step: rendering references, the step's environment, its
log files, and saving the run record after the step.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .common import Row, Section, median

STEPS = 200
ROUNDS = 3
TARGET_MS = 1.0


def _state_chain(path: Path) -> None:
    lines = ["name: bench-state", "type: chain", "steps:"]
    for i in range(STEPS):
        if i % 2 == 0:
            lines += [
                f"  - id: s{i}",
                "    action: state.set",
                f"    with: {{key: k/{i}, value: {{n: {i}}}}}",
            ]
        else:
            lines += [f"  - id: s{i}", "    action: state.get", f"    with: {{key: k/{i - 1}}}"]
    path.write_text("\n".join(lines) + "\n")


def _run_chain(path: Path) -> None:
    lines = ["name: bench-run", "type: chain", "steps:"]
    for i in range(STEPS):
        lines += [f"  - id: r{i}", '    run: "true"']
    path.write_text("\n".join(lines) + "\n")


def _time_dag(dag_file: Path, url: str, logs: Path) -> float:
    from statebox import open_store
    from statebox.runner.executor import RunOptions, run_dag
    from statebox.runner.loader import load_dag

    dag = load_dag(str(dag_file))
    with open_store(url) as store:
        start = time.perf_counter()
        record = run_dag(dag, store, RunOptions(store_url=url, log_dir=str(logs)))
        seconds = time.perf_counter() - start
    if record.status != "succeeded":
        raise RuntimeError(f"{dag_file.name}: the run ended {record.status}")
    return seconds


def _time_engine(url: str) -> float:
    from statebox import RunContext, open_store

    with open_store(url, context=RunContext(dag="bench-bare", run_id="bare")) as store:
        start = time.perf_counter()
        for i in range(STEPS):
            if i % 2 == 0:
                store.set(f"k/{i}", {"n": i})
            else:
                store.get(f"k/{i - 1}")
        return time.perf_counter() - start


def _time_spawns() -> float:
    start = time.perf_counter()
    for _ in range(STEPS):
        subprocess.run(["sh", "-c", "true"], check=True)
    return time.perf_counter() - start


def run(workdir: Path) -> list[Section]:
    url = f"sqlite:///{workdir / 'state.db'}"
    state_file, run_file = workdir / "state-chain.yaml", workdir / "run-chain.yaml"
    _state_chain(state_file)
    _run_chain(run_file)
    samples: dict[str, list[float]] = {"state": [], "engine": [], "run": [], "spawn": []}
    _time_dag(state_file, url, workdir / "logs")  # warm-up: imports, the database file
    for round_ in range(ROUNDS):
        order = ["state", "engine", "run", "spawn"]
        if round_ % 2:
            order.reverse()
        for side in order:
            if side == "state":
                seconds = _time_dag(state_file, url, workdir / "logs")
            elif side == "engine":
                seconds = _time_engine(url)
            elif side == "run":
                seconds = _time_dag(run_file, url, workdir / "logs")
            else:
                seconds = _time_spawns()
            samples[side].append(seconds * 1000 / STEPS)
    state, engine = median(samples["state"]), median(samples["engine"])
    run_step, spawn = median(samples["run"]), median(samples["spawn"])
    rows = [
        Row(f"state step in a {STEPS}-step chain, per step", "ms", state, engine),
        Row(
            "  runner time per state step (chain - bare engine call)",
            "ms",
            state - engine,
            target=f"<= {TARGET_MS} ms",
            met=state - engine <= TARGET_MS,
        ),
        Row(f'`run: "true"` step in a {STEPS}-step chain, per step', "ms", run_step, spawn),
        Row(
            "  runner time per run step (chain - bare sh -c true)",
            "ms",
            run_step - spawn,
            target=f"<= {TARGET_MS} ms",
            met=run_step - spawn <= TARGET_MS,
        ),
    ]
    return [
        Section(
            "Runner overhead per step (SQLite store)",
            "the same engine calls / sh -c true spawns, bare, in the same run",
            rows,
        )
    ]
