"""The runner review's fixes: a sub-DAG that calls itself fails at once (and nesting has a
limit), a stop reaches every level of a run tree at once, no process of a step outlives
``statebox run`` (even one that ignores SIGTERM), positional params after ``KEY=VALUE``,
Dagu keys that change no result are warnings, a DAG's ``timeout_sec``, one ``running``
line per attempt of a sub-DAG step, one wording for an unexpected error and one
timestamp form, and leases released when the run that holds them ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from statebox.core.clock import format_timestamp
from statebox.core.errors import ConflictError
from statebox.runner import _schedule_runs
from statebox.runner._context import describe, now_iso, resolve_params
from statebox.runner.display import make_display
from statebox.runner.executor import MAX_SUB_DAG_DEPTH, RunOptions, run_dag
from statebox.runner.loader import load_dag
from statebox.runner.records import RunRecord

from .test_runner_run import STATEBOX, Env, _gone, cli_env, env, step

__all__ = ["cli_env", "env"]  # fixtures, used by name


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def _gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _by_dag(env: Env) -> dict[str, list[RunRecord]]:
    runs: dict[str, list[RunRecord]] = {}
    for record in env.records():
        runs.setdefault(record.dag, []).append(record)
    return runs


# -- 1. sub-DAGs that call themselves; a stop reaches every level at once -----------------


def test_a_sub_dag_that_calls_itself_fails_at_once_with_exit_2(env: Env) -> None:
    env.write("p2.yaml", "steps:\n  - id: call\n    action: dag.run\n    with: {dag: p2self}\n")
    env.write("p2self.yaml", "steps:\n  - id: again\n    action: dag.run\n    with: {dag: p2self}")
    done = env.cli("run", "p2.yaml", timeout=30)  # without the check: never ends
    assert done.returncode == 1, done.stderr
    runs = _by_dag(env)
    assert len(runs["p2"]) == 1 and len(runs["p2self"]) == 1  # no third run started
    again = step(runs["p2self"][0], "again")
    assert again.status == "failed"
    assert again.exit_code == 2
    assert again.error == 'sub-DAG "p2self" calls itself: p2 → p2self → p2self'
    assert step(runs["p2"][0], "call").status == "failed"


def test_mutual_recursion_fails_naming_the_chain(env: Env) -> None:
    env.write("a.yaml", "steps:\n  - id: to_b\n    action: dag.run\n    with: {dag: b}\n")
    env.write("b.yaml", "steps:\n  - id: to_a\n    call: a\n")
    done = env.cli("run", "a.yaml", timeout=30)
    assert done.returncode == 1, done.stderr
    runs = _by_dag(env)
    assert len(runs["a"]) == 1 and len(runs["b"]) == 1
    to_a = step(runs["b"][0], "to_a")
    assert (to_a.status, to_a.exit_code) == ("failed", 2)
    assert to_a.error == 'sub-DAG "a" calls itself: a → b → a'


def test_sub_dags_nest_at_most_32_deep(env: Env) -> None:
    last = MAX_SUB_DAG_DEPTH + 1
    for i in range(last):
        env.write(f"d{i}.yaml", f"steps:\n  - id: next\n    call: d{i + 1}\n")
    env.write(f"d{last}.yaml", "steps:\n  - id: leaf\n    run: 'true'\n")
    record = env.run("d0.yaml")
    assert record.status == "failed"
    runs = _by_dag(env)
    assert f"d{last}" not in runs  # the 33rd level was refused
    deepest = step(runs[f"d{MAX_SUB_DAG_DEPTH}"][0], "next")
    assert deepest.exit_code == 2
    assert deepest.error is not None
    assert deepest.error.startswith("sub-DAGs nest deeper than 32 levels: d0 → d1 → ")
    assert deepest.error.endswith(f"d{MAX_SUB_DAG_DEPTH} → d{last}")


def test_sigterm_stops_a_parent_whose_child_sleeps(env: Env) -> None:
    env.write("parent.yaml", "steps:\n  - id: child\n    call: sleeper\n")
    env.write("sleeper.yaml", "steps:\n  - id: nap\n    run: echo $$ > nap.pid; sleep 30\n")
    proc = subprocess.Popen(
        [STATEBOX, "run", "parent.yaml"],
        cwd=env.dir,
        env=env.cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(env.dir / "nap.pid")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - sent < 3
    assert proc.returncode == 1
    runs = _by_dag(env)
    assert [r.status for r in runs["parent"]] == ["aborted"]
    assert [r.status for r in runs["sleeper"]] == ["aborted"]


def test_a_stop_reaches_every_level_at_once(env: Env) -> None:
    # Without the shared stop each level noticed its parent's stop at its loop's next
    # poll (every 0.1 s), one level after the other. Each level starts its sub-DAG half
    # a poll after its parent did, so that those polls do not line up: ~1 s for 20.
    levels = 20
    for i in range(levels):
        env.write(
            f"n{i}.yaml",
            f"steps:\n  - id: wait\n    run: sleep 0.05\n"
            f"  - id: next\n    call: n{i + 1}\n    depends: wait\n",
        )
    env.write(f"n{levels}.yaml", "steps:\n  - id: nap\n    run: echo $$ > nap.pid; sleep 30\n")
    dag = load_dag(str(env.dir / "n0.yaml"))
    stop = threading.Event()
    records: list[RunRecord] = []
    with env.store() as store:

        def run() -> None:
            records.append(run_dag(dag, store, RunOptions(store_url=env.url), stop=stop))

        thread = threading.Thread(target=run)
        thread.start()
        _wait_for(env.dir / "nap.pid")
        sent = time.monotonic()
        stop.set()
        thread.join(20)
        took = time.monotonic() - sent
    assert not thread.is_alive()
    assert records[0].status == "aborted"
    assert took < 0.6, took


# -- 2. no process of a step outlives statebox run -----------------------------------------

STUBBORN = """
    steps:
      - id: stubborn
        run: sh -c 'trap "" TERM; echo $$ > stubborn.pid; sleep 60' & wait
{extra}"""


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def test_a_process_that_ignores_sigterm_dies_before_statebox_run_exits(env: Env) -> None:
    env.write("stubborn.yaml", STUBBORN.format(extra=""))
    proc = subprocess.Popen(
        [STATEBOX, "run", "stubborn.yaml"],
        cwd=env.dir,
        env=env.cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid = 0
    try:
        _wait_for(env.dir / "stubborn.pid")
        pid = int((env.dir / "stubborn.pid").read_text())
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert _gone_within(pid, 2), "the SIGTERM-ignoring process outlived statebox run"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid:
            _kill(pid)


def test_a_timed_out_process_that_ignores_sigterm_dies_before_statebox_run_exits(
    env: Env,
) -> None:
    env.write("stubborn.yaml", STUBBORN.format(extra="        timeout_sec: 1\n"))
    pid = 0
    try:
        done = env.cli("run", "stubborn.yaml", timeout=30)
        pid = int((env.dir / "stubborn.pid").read_text())
        assert done.returncode == 1
        assert _gone_within(pid, 2), "the SIGTERM-ignoring process outlived statebox run"
        [record] = env.records()
        assert step(record, "stubborn").exit_code == 124
    finally:
        if pid:
            _kill(pid)


# -- 3. positional params after KEY=VALUE -----------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [["K=v", "x", "y"], ["x", "K=v", "y"], ["x", "y", "K=v"]],
    ids=["named-first", "named-between", "named-last"],
)
def test_positional_params_count_among_positional_ones_only(env: Env, given: list[str]) -> None:
    declared: list[tuple[str | None, str]] = [(None, "a"), (None, "b"), ("K", "dflt")]
    assert resolve_params(declared, given) == [(None, "x"), (None, "y"), ("K", "v")]
    env.write(
        "p.yaml",
        """
        params: "a b K=dflt"
        steps:
          - id: show
            run: echo "$1 $2 $3 $K"
            output: SHOWN
        """,
    )
    record = env.run("p.yaml", *given)
    assert step(record, "show").output == "x y v v"


def test_a_positional_param_never_replaces_one_given_by_name() -> None:
    assert resolve_params([], ["K=v", "x"]) == [("K", "v"), (None, "x")]
    assert resolve_params([("K", "d")], ["x", "K=v"]) == [("K", "v"), (None, "x")]
    assert resolve_params([("K", "d"), (None, "b")], ["K=v", "x"]) == [("K", "v"), (None, "x")]


# -- 4. Dagu keys: warnings for those that change no result; DAG timeout_sec ---------------


def test_keys_that_change_no_result_are_warnings(env: Env) -> None:
    env.write(
        "quiet.yaml",
        """
        delay_sec: 2
        restart_wait_sec: 5
        steps:
          - id: a
            run: echo hi
            signal_on_stop: SIGINT
            stdout: /tmp/a.out
            stderr: /tmp/a.err
          - id: b
            run: echo ho
            signalOnStop: SIGINT
        """,
    )
    done = env.cli("validate", "quiet.yaml")
    assert done.returncode == 0, done.stderr
    for key in ("delay_sec", "restart_wait_sec", "signal_on_stop", "stdout", "stderr"):
        assert f"warning: {key} in " in done.stderr
    assert done.stderr.count("is not used by statebox's runner") == 6


@pytest.mark.parametrize(
    "text",
    [
        "container: alpine\nsteps:\n  - run: 'true'\n",
        "retry_policy: {limit: 2}\nsteps:\n  - run: 'true'\n",
        "steps:\n  - run: 'true'\n    foreach: [1, 2]\n",
        "steps:\n  - run: 'true'\n    container: alpine\n",
    ],
    ids=["dag-container", "dag-retry_policy", "step-foreach", "step-container"],
)
def test_keys_whose_absence_changes_results_stay_errors(env: Env, text: str) -> None:
    env.write("loud.yaml", text)
    done = env.cli("validate", "loud.yaml")
    assert done.returncode == 2
    assert "a Dagu key that statebox's runner does not support" in done.stderr


def test_the_dag_timeout_stops_the_run_and_fails_it(env: Env) -> None:
    env.write(
        "slow.yaml",
        """
        timeout_sec: 1
        handler_on:
          failure:
            run: echo failed > handled
        steps:
          - id: nap
            run: sleep 30
          - id: after
            run: 'true'
            depends: nap
        """,
    )
    started = time.monotonic()
    record = env.run("slow.yaml")
    assert time.monotonic() - started < 5
    assert record.status == "failed"
    assert record.error == "the run timed out after 1 s"
    assert step(record, "nap").status == "aborted"
    assert step(record, "after").status == "not_started"
    assert (env.dir / "handled").read_text() == "failed\n"


def test_a_dag_timeout_of_0_is_no_limit(env: Env) -> None:
    env.write("zero.yaml", "timeout_sec: 0\nsteps:\n  - id: a\n    run: 'true'\n")
    assert load_dag(str(env.dir / "zero.yaml")).timeout_sec is None
    assert env.run("zero.yaml").status == "succeeded"


# -- 5. one "running" line per attempt of a sub-DAG step ------------------------------------


def test_a_sub_dag_step_is_shown_running_once(env: Env) -> None:
    env.write("top.yaml", "steps:\n  - id: sub\n    call: leaf\n")
    env.write("leaf.yaml", "steps:\n  - id: x\n    run: 'true'\n")
    out = io.StringIO()
    display = make_display(out)
    record = env.run("top.yaml", display=display)
    display.close()
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines.count("step sub running") == 1, lines
    assert step(record, "sub").child_run_id is not None


# -- 6. one wording for an unexpected error, one timestamp form ----------------------------


def test_an_unexpected_error_is_worded_once() -> None:
    assert describe(ValueError("boom")) == "unexpected ValueError: boom"
    assert describe(OSError("disk")) == "disk"


def test_timestamps_are_the_stores_form(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = 1_767_225_600_120_000_000  # 2026-01-01T00:00:00.12Z
    monkeypatch.setattr(time, "time_ns", lambda: moment)
    assert now_iso() == format_timestamp(moment) == "2026-01-01T00:00:00.12Z"
    _schedule_runs._print_line("hello")
    assert capsys.readouterr().out == "2026-01-01T00:00:00.12Z hello\n"


# -- 7. leases released when the run ends ----------------------------------------------------


def test_leases_the_run_holds_are_released_when_it_ends(env: Env) -> None:
    env.write(
        "locker.yaml",
        """
        steps:
          - id: take
            action: lease.acquire
            with: {name: nightly, ttl: 3600}
          - id: other
            action: lease.acquire
            with: {name: kept-by-another, ttl: 3600}
        """,
    )
    with env.store() as store:
        store.acquire_lease("kept-by-another", 3600, holder="someone-else")
    record = env.run("locker.yaml")
    assert step(record, "take").status == "succeeded"
    assert step(record, "other").status == "failed"  # another holder's lease is live
    with env.store() as store:
        taken = store.acquire_lease("nightly", 60, holder="next-run")  # no ConflictError
        assert taken.holder == "next-run"
        with pytest.raises(ConflictError):  # not the run's to release
            store.acquire_lease("kept-by-another", 60, holder="next-run")
