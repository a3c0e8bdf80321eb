"""Stopping a run: SIGTERM / SIGINT to ``statebox run`` (a real subprocess), and the
``stop`` event of :func:`statebox.runner.executor.run_dag`. The running steps' process
groups are killed, no further step starts, ``handler_on.abort`` then ``handler_on.exit``
run, the run is recorded ``aborted`` (a sub-DAG's run too), and the run scope is empty.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from statebox.runner.executor import RunOptions, run_dag
from statebox.runner.loader import load_dag
from statebox.runner.records import RunRecord, RunRecords

from .test_runner_run import STATEBOX, Env, _gone, cli_env, env, run_scope_keys, step

__all__ = ["cli_env", "env"]  # fixtures, used by name

LONG_RUN = """
    name: stoppable
    handler_on:
      success:
        run: echo success >> handled
      abort:
        run: echo abort >> handled
      exit:
        run: echo exit >> handled
    steps:
      - id: scratch
        action: state.set
        with: {scope: run, key: scratch, value: 1}
      - id: long
        run: |
          echo $$ > long.pid
          sleep 30 &
          echo $! > grandchild.pid
          wait
        depends: scratch
      - id: never
        run: touch never-ran
        depends: long
"""


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def _pids(env: Env) -> list[int]:
    return [int((env.dir / f"{n}.pid").read_text()) for n in ("long", "grandchild")]


def _all_gone(pids: list[int], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _check_aborted(env: Env, record: RunRecord) -> None:
    assert record.status == "aborted"
    assert step(record, "scratch").status == "succeeded"
    assert step(record, "long").status == "aborted"
    assert step(record, "never").status == "not_started"
    assert not (env.dir / "never-ran").exists()
    assert (env.dir / "handled").read_text().splitlines() == ["abort", "exit"]
    assert step(record, "onAbort").status == "succeeded"
    assert step(record, "onExit").status == "succeeded"
    assert record.finished_at is not None
    assert run_scope_keys(env, record.run_id) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_statebox_run_stops_the_run(env: Env, signum: int) -> None:
    env.write("stoppable.yaml", LONG_RUN)
    proc = subprocess.Popen(
        [STATEBOX, "run", "stoppable.yaml"],
        cwd=env.dir,
        env=env.cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(env.dir / "grandchild.pid")
        pids = _pids(env)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - sent < 5  # no waiting out the 30 s sleep
    assert proc.returncode == 1, err
    assert _all_gone(pids)
    [record] = env.records()
    _check_aborted(env, record)
    assert f"run stoppable {record.run_id} aborted" in out


def test_the_stop_event_stops_an_in_process_run(env: Env) -> None:
    env.write("stoppable.yaml", LONG_RUN)
    dag = load_dag(str(env.dir / "stoppable.yaml"))
    stop = threading.Event()
    result: list[RunRecord] = []

    def run() -> None:
        with env.store() as store:
            result.append(run_dag(dag, store, RunOptions(store_url=env.url), stop=stop))

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for(env.dir / "grandchild.pid")
    pids = _pids(env)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert _all_gone(pids)
    _check_aborted(env, result[0])


def test_stop_interrupts_a_retry_wait_and_a_sub_dag(env: Env) -> None:
    env.write(
        "parent.yaml",
        """
        name: parent
        steps:
          - id: flaky
            run: exit 4
            retry_policy: {limit: 3, interval_sec: 60, exit_code: [4]}
          - id: child
            action: dag.run
            with: {dag: child}
        """,
    )
    env.write(
        "child.yaml",
        """
        name: child
        steps:
          - id: mark
            action: state.set
            with: {scope: run, key: k, value: 1}
          - id: wait
            run: echo $$ > long.pid; sleep 30 & echo $! > grandchild.pid; wait
            depends: mark
        """,
    )
    dag = load_dag(str(env.dir / "parent.yaml"))
    stop = threading.Event()
    result: list[RunRecord] = []

    def run() -> None:
        with env.store() as store:
            result.append(run_dag(dag, store, RunOptions(store_url=env.url), stop=stop))

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for(env.dir / "grandchild.pid")
    pids = _pids(env)
    started = time.monotonic()
    stop.set()
    thread.join(timeout=30)
    assert time.monotonic() - started < 5
    assert _all_gone(pids)
    [record] = result
    assert record.status == "aborted"
    assert step(record, "flaky").status == "aborted"
    assert step(record, "child").status == "aborted"
    child_id = step(record, "child").child_run_id
    assert child_id is not None
    with env.store() as store:
        child = RunRecords(store).get(child_id)
    assert child.status == "aborted"
    assert step(child, "wait").status == "aborted"
    assert run_scope_keys(env, child_id) == []
