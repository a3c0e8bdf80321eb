"""``statebox run`` and :func:`statebox.runner.executor.run_dag`: the seed's DAGs run
unchanged, steps run as a graph (in parallel, outputs to transitive dependants only,
failures abort dependants unless ``continue_on`` says otherwise), retries, timeouts that
kill the process group, handlers, sub-DAGs sharing ``root_dag`` state, the steps'
environment, the run scope's purge, exit codes, and no lost update under 8 concurrent
runs. Real SQLite files, real subprocesses, the real ``statebox`` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from statebox import ManualClock, NotFoundError, RunContext, StateStore, open_store
from statebox.runner.cmd_run import absolute_store_url
from statebox.runner.executor import RunOptions, new_run_id, resolve_params, run_dag
from statebox.runner.loader import load_dag
from statebox.runner.records import RunRecord, RunRecords, StepRecord

from .test_cli import CONTEXT_VARIABLES, environment_without_context

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STATEBOX = str(BIN / "statebox")


class Env:
    """A directory of DAG files, a SQLite store, and ways to run them."""

    def __init__(self, path: Path, cli_env: dict[str, str]) -> None:
        self.dir = path
        self.url = f"sqlite:///{path / 'state.db'}"
        self.cli_env = {**cli_env, "STATEBOX_STORE": self.url}

    def write(self, name: str, text: str) -> Path:
        file = self.dir / name
        file.write_text(textwrap.dedent(text).lstrip())
        return file

    @contextmanager
    def store(self, **context: str) -> Iterator[StateStore]:
        with open_store(self.url, context=RunContext(**context)) as store:
            yield store

    def run(self, name: str, *params: str, **options: Any) -> RunRecord:
        dag = load_dag(str(self.dir / name))
        with self.store() as store:
            return run_dag(dag, store, RunOptions(store_url=self.url, params=params, **options))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STATEBOX, *args],
            cwd=self.dir,
            env=self.cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def records(self) -> list[RunRecord]:
        with self.store() as store:
            return RunRecords(store).list()


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return environment_without_context(tmp_path_factory)


@pytest.fixture
def env(tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Env:
    # In-process runs give their steps this process's environment: the same as the CLI's.
    for name in CONTEXT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", cli_env["PATH"])
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    return Env(tmp_path, cli_env)


def step(record: RunRecord, name: str) -> StepRecord:
    for item in record.steps:
        if name in (item.name, item.id):
            return item
    raise AssertionError(f"no step {name} in {[s.name for s in record.steps]}")


def statuses(record: RunRecord) -> dict[str, str]:
    return {s.name: s.status for s in record.steps}


def run_scope_keys(env: Env, run_id: str) -> list[str]:
    with env.store() as store:
        return [e.key for e in store.list(scope="run", namespace=run_id).entries]


# -- run ids and params --------------------------------------------------------------------


def test_run_ids_are_uuid7_time_ordered_and_unique() -> None:
    ids = [new_run_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for run_id in ids[:5]:
        parts = run_id.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12]
        assert parts[2][0] == "7" and parts[3][0] in "89ab"
    first_ms = int(ids[0].replace("-", "")[:12], 16)
    assert abs(first_ms - time.time() * 1000) < 60_000


def test_params_as_dagu_takes_them() -> None:
    declared = [("REGION", "us"), (None, "first"), ("LIMIT", "10")]
    assert resolve_params(declared, []) == declared
    assert resolve_params(declared, ["LIMIT=5", "NEW=x"]) == [
        ("REGION", "us"),
        (None, "first"),
        ("LIMIT", "5"),
        ("NEW", "x"),
    ]
    # A positional value replaces the param at its position, keeping the name.
    assert resolve_params(declared, ["eu", "second", "20", "extra"]) == [
        ("REGION", "eu"),
        (None, "second"),
        ("LIMIT", "20"),
        (None, "extra"),
    ]
    assert resolve_params([], ["a=b=c", "not-a-name=1"]) == [("a", "b=c"), (None, "not-a-name=1")]


# -- the seed's examples --------------------------------------------------------------------


def test_feed_sync_example_carries_the_cursor_across_runs(env: Env) -> None:
    shutil.copy(ROOT / "examples" / "feed-sync.yaml", env.dir / "feed-sync.yaml")
    shutil.copy(ROOT / "examples" / "fetch-feed", env.dir / "fetch-feed")
    first = env.cli("run", "feed-sync.yaml")
    assert first.returncode == 0, first.stderr + first.stdout
    with env.store(dag="feed-sync") as store:
        assert store.get("cursors/feed").value == {"last_id": "3"}
    assert json.loads((env.dir / "result.json").read_text())["after"] == 0

    second = env.cli("run", "feed-sync.yaml")
    assert second.returncode == 0, second.stderr + second.stdout
    result = json.loads((env.dir / "result.json").read_text())
    assert result["after"] == 3  # fetched after the cursor the first run saved
    with env.store(dag="feed-sync") as store:
        entry = store.get("cursors/feed")
        assert entry.value == {"last_id": "6"}
        assert entry.version == 2
        assert entry.updated_by is not None and entry.updated_by.step_name == "save_cursor"
    runs = env.records()
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert runs[0].run_id > runs[1].run_id  # newest first, ids time-ordered


def test_on_a_file_store_the_runner_writes_what_dagu_writes(env: Env) -> None:
    shutil.copy(ROOT / "examples" / "feed-sync.yaml", env.dir / "feed-sync.yaml")
    shutil.copy(ROOT / "examples" / "fetch-feed", env.dir / "fetch-feed")
    state_dir = env.dir / "dag-state"
    url = f"file://{state_dir}"
    dag = load_dag(str(env.dir / "feed-sync.yaml"))
    with open_store(url) as store:
        record = run_dag(dag, store, RunOptions(store_url=url))
        assert record.status == "succeeded"
        assert RunRecords(store).get(record.run_id).status == "succeeded"
    # Dagu's directory holds the cursor only: run records live in statebox's own
    # sub-directory, the run scope is gone.
    files = sorted(p.relative_to(state_dir / "v1") for p in (state_dir / "v1").rglob("*"))
    assert [f.parts[0] for f in files if f.suffix == ".json"] == ["dag"]
    assert not [f for f in files if f.parts[0] != "dag"]
    [cursor] = [f for f in files if f.suffix == ".json"]
    written = json.loads((state_dir / "v1" / cursor).read_text())
    assert (written["scope"], written["namespace"], written["key"]) == (
        "dag",
        "feed-sync",
        "cursors/feed",
    )
    assert written["value"] == {"last_id": "3"}
    assert written["updated_by"] == {
        "dag_name": "feed-sync",
        "dag_run_id": record.run_id,
        "step_name": "save_cursor",
    }


CHANGE_DETECTION = """
    name: snapshots
    params:
      - COUNT: "1"
    steps:
      - id: check_snapshot
        action: state.diff
        output: DIFF
        with:
          key: snapshots/feed
          value:
            count: "${COUNT}"
      - id: notify_if_changed
        run: echo "changed to ${DIFF.current.count}" >> notified.txt
        depends: check_snapshot
        preconditions:
          - condition: "${DIFF.changed}"
            expected: "true"
"""


def test_change_detection_notifies_only_when_the_data_changed(env: Env) -> None:
    env.write("snapshots.yaml", CHANGE_DETECTION)
    first = env.run("snapshots.yaml")
    assert statuses(first) == {"check_snapshot": "succeeded", "notify_if_changed": "succeeded"}
    same = env.run("snapshots.yaml", "COUNT=1")
    assert statuses(same) == {"check_snapshot": "succeeded", "notify_if_changed": "skipped"}
    assert same.status == "succeeded"
    changed = env.run("snapshots.yaml", "COUNT=2")
    assert step(changed, "notify_if_changed").status == "succeeded"
    assert (env.dir / "notified.txt").read_text().splitlines() == [
        "changed to 1",
        "changed to 2",
    ]


# -- the graph ------------------------------------------------------------------------------


def test_independent_steps_run_in_parallel(env: Env) -> None:
    env.write(
        "parallel.yaml",
        """
        steps:
          - id: a
            run: sleep 0.5
          - id: b
            run: sleep 0.5
          - id: after
            run: "true"
            depends: [a, b]
        """,
    )
    start = time.monotonic()
    record = env.run("parallel.yaml")
    elapsed = time.monotonic() - start
    assert record.status == "succeeded"
    a, b, after = step(record, "a"), step(record, "b"), step(record, "after")
    assert a.started_at and b.started_at and a.finished_at and b.finished_at and after.started_at
    assert a.started_at < b.finished_at and b.started_at < a.finished_at  # they overlapped
    assert after.started_at >= max(a.finished_at, b.finished_at)
    assert elapsed < 0.9 + 0.5  # generous: both slept at once (a chain needs 1.0 s)


def test_max_active_steps_bounds_the_parallelism(env: Env) -> None:
    env.write(
        "serial.yaml",
        """
        max_active_steps: 1
        steps:
          - id: a
            run: sleep 0.2
          - id: b
            run: sleep 0.2
        """,
    )
    record = env.run("serial.yaml")
    a, b = step(record, "a"), step(record, "b")
    assert a.finished_at and b.started_at and a.finished_at <= b.started_at


def test_outputs_reach_transitive_dependants_only(env: Env) -> None:
    env.write(
        "outputs.yaml",
        """
        steps:
          - id: a
            run: echo "  from-a  "
            output: A
          - id: b
            run: echo "b saw ${A}"
            output: B
            depends: a
          - id: c
            run: printf '%s|%s|%s' "${A}" "$A" "${B}"
            output: C
            depends: b
          - id: sibling
            run: printf '[%s]' "$A"
            output: S
          - id: later
            run: printf '[%s]' "$A"
            output: L
            depends: sibling
        """,
    )
    record = env.run("outputs.yaml")
    assert record.status == "succeeded"
    assert step(record, "a").output == "from-a"  # whitespace-trimmed
    assert step(record, "b").output == "b saw from-a"
    assert step(record, "c").output == "from-a|from-a|b saw from-a"  # transitive
    assert step(record, "sibling").output == "[]"
    assert step(record, "later").output == "[]"  # a is no dependency of it


def test_a_failed_step_aborts_its_dependants(env: Env) -> None:
    env.write(
        "fail.yaml",
        """
        steps:
          - id: bad
            run: echo "it broke" >&2; exit 3
          - id: dependant
            run: touch dependant-ran
            depends: bad
          - id: further
            run: touch further-ran
            depends: dependant
          - id: independent
            run: "true"
        """,
    )
    record = env.run("fail.yaml")
    assert record.status == "failed"
    assert statuses(record) == {
        "bad": "failed",
        "dependant": "aborted",
        "further": "aborted",
        "independent": "succeeded",
    }
    bad = step(record, "bad")
    assert bad.exit_code == 3 and bad.attempts == 1
    assert bad.error is not None and "exit code 3" in bad.error and "it broke" in bad.error
    assert not (env.dir / "dependant-ran").exists()


@pytest.mark.parametrize(
    ("continue_on", "step_status", "run_status", "dependant"),
    [
        ("continue_on: {failure: true}", "failed", "partially_succeeded", "succeeded"),
        ("continue_on: failed", "failed", "partially_succeeded", "succeeded"),
        ("continue_on: {exit_code: [3]}", "failed", "partially_succeeded", "succeeded"),
        ("continue_on: {exit_code: [4]}", "failed", "failed", "aborted"),
        ('continue_on: {output: ["re:^warn"]}', "failed", "partially_succeeded", "succeeded"),
        ('continue_on: {output: ["nothing"]}', "failed", "failed", "aborted"),
        ("continue_on: {failure: true, mark_success: true}", "succeeded", "succeeded", "succeeded"),
    ],
)
def test_continue_on(
    env: Env, continue_on: str, step_status: str, run_status: str, dependant: str
) -> None:
    env.write(
        "continue.yaml",
        f"""
        steps:
          - id: flaky
            run: echo warning-only; exit 3
            {continue_on}
          - id: next
            run: "true"
            depends: flaky
        """,
    )
    record = env.run("continue.yaml")
    assert statuses(record) == {"flaky": step_status, "next": dependant}
    assert record.status == run_status


@pytest.mark.parametrize(
    ("rule", "dependant"), [("", "skipped"), ("continue_on: skipped", "succeeded")]
)
def test_a_skipped_step_skips_its_dependants(env: Env, rule: str, dependant: str) -> None:
    env.write(
        "skip.yaml",
        f"""
        steps:
          - id: maybe
            run: "true"
            preconditions: "test -e no-such-file"
            {rule}
          - id: next
            run: "true"
            depends: maybe
        """,
    )
    record = env.run("skip.yaml")
    assert statuses(record) == {"maybe": "skipped", "next": dependant}
    assert record.status == "succeeded"


def test_precondition_that_cannot_be_evaluated_fails_the_step(env: Env) -> None:
    env.write(
        "badre.yaml",
        """
        steps:
          - id: a
            run: "true"
            preconditions:
              - condition: "x"
                expected: "re:("
        """,
    )
    record = env.run("badre.yaml")
    assert step(record, "a").status == "failed"
    assert record.status == "failed"


def test_dag_preconditions_unmet_abort_the_run(env: Env) -> None:
    env.write(
        "gated.yaml",
        """
        preconditions:
          - condition: "${GO}"
            expected: "yes"
        params:
          - GO: "no"
        steps:
          - id: a
            run: touch ran
        """,
    )
    record = env.run("gated.yaml")
    assert record.status == "aborted"
    assert statuses(record) == {"a": "not_started"}
    assert not (env.dir / "ran").exists()
    assert env.run("gated.yaml", "GO=yes").status == "succeeded"


# -- retries, repeats, timeouts, outputs --------------------------------------------------


def test_retries_only_the_listed_exit_codes(env: Env) -> None:
    env.write(
        "retry.yaml",
        """
        steps:
          - id: races
            run: |
              n=$(cat n 2>/dev/null || echo 0); n=$((n + 1)); echo $n > n
              [ $n -ge 3 ] || exit 4
            retry_policy: {limit: 5, interval_sec: 0.05, exit_code: [4]}
          - id: broken
            run: echo x >> broken; exit 5
            retry_policy: {limit: 5, exit_code: [4]}
          - id: any_code
            run: echo x >> any; exit 6
            retry_policy: {limit: 2}
        """,
    )
    record = env.run("retry.yaml")
    races = step(record, "races")
    assert (races.status, races.attempts, races.exit_code) == ("succeeded", 3, 0)
    broken = step(record, "broken")
    assert (broken.status, broken.attempts, broken.exit_code) == ("failed", 1, 5)
    any_code = step(record, "any_code")
    assert (any_code.status, any_code.attempts) == ("failed", 3)
    assert (env.dir / "any").read_text().count("x") == 3


def test_a_state_conflict_is_exit_code_4_and_is_retried(env: Env) -> None:
    env.write(
        "conflict.yaml",
        """
        steps:
          - id: guarded
            action: state.set
            with: {key: k, value: 1, expected_version: "7"}
            retry_policy: {limit: 2, exit_code: [4]}
          - id: missing
            action: state.get
            with: {key: nope, required: true}
            retry_policy: {limit: 2, exit_code: [4]}
        """,
    )
    record = env.run("conflict.yaml")
    guarded, missing = step(record, "guarded"), step(record, "missing")
    assert (guarded.status, guarded.exit_code, guarded.attempts) == ("failed", 4, 3)
    assert (missing.status, missing.exit_code, missing.attempts) == ("failed", 3, 1)


def test_repeat_policy(env: Env) -> None:
    env.write(
        "repeat.yaml",
        """
        steps:
          - id: until_three
            run: n=$(cat n 2>/dev/null || echo 0); n=$((n + 1)); echo $n > n; echo $n
            output: N
            repeat_policy:
              repeat: until
              condition: "${N}"
              expected: "3"
              interval_sec: 0.01
          - id: capped
            run: echo x >> capped
            repeat_policy: {repeat: while, exit_code: [0], limit: 4, interval_sec: 0.01}
        """,
    )
    record = env.run("repeat.yaml")
    assert record.status == "succeeded"
    assert step(record, "until_three").output == "3"
    assert (env.dir / "capped").read_text().count("x") == 4


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead, awaiting its reaper


def test_timeout_kills_the_whole_process_group(env: Env) -> None:
    env.write(
        "timeout.yaml",
        """
        steps:
          - id: slow
            run: |
              echo $$ > child.pid
              sleep 30 &
              echo $! > grandchild.pid
              wait
            timeout_sec: 1
        """,
    )
    start = time.monotonic()
    record = env.run("timeout.yaml")
    assert time.monotonic() - start < 10
    slow = step(record, "slow")
    assert slow.status == "failed" and record.status == "failed"
    assert slow.error is not None and "timed out after 1 s" in slow.error
    pids = [int((env.dir / f"{n}.pid").read_text()) for n in ("child", "grandchild")]
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)


def test_output_larger_than_max_output_size_fails_the_step(env: Env) -> None:
    env.write(
        "big.yaml",
        """
        max_output_size: 100
        steps:
          - id: big
            run: head -c 500 /dev/zero | tr '\\0' x
            output: BIG
          - id: uncaptured
            run: head -c 500 /dev/zero | tr '\\0' y
        """,
    )
    record = env.run("big.yaml")
    big = step(record, "big")
    assert big.status == "failed"
    assert big.error is not None and "max_output_size" in big.error
    assert step(record, "uncaptured").status == "succeeded"
    with env.store() as store:
        log = RunRecords(store).log(record.run_id, "uncaptured")
    assert log == "y" * 100  # logs are kept, bounded by max_output_size


def test_stdout_reference_is_the_log_file_and_logs_are_kept(env: Env) -> None:
    env.write(
        "logs.yaml",
        """
        steps:
          - id: talk
            run: echo hello; echo oops >&2
          - id: read
            run: cat "${talk.stdout}"; echo "code ${talk.exit_code}"
            output: READ
            depends: talk
        """,
    )
    record = env.run("logs.yaml")
    assert step(record, "read").output == "hello\ncode 0"
    log_dir = env.dir / "home" / "runs" / record.run_id
    assert (log_dir / "talk.out").read_text() == "hello\n"
    with env.store() as store:
        records = RunRecords(store)
        assert records.log(record.run_id, "talk").strip() == "hello"
        assert records.log(record.run_id, "talk", stream="stderr").strip() == "oops"


def test_script_working_dir_and_shell(env: Env) -> None:
    (env.dir / "sub").mkdir()
    env.write(
        "script.yaml",
        """
        steps:
          - id: script
            working_dir: sub
            script: |
              pwd
              echo "${MSG}"
            output: OUT
          - id: list
            run: ["echo one", "false", "echo never"]
        params:
          - MSG: hi
        """,
    )
    record = env.run("script.yaml")
    assert step(record, "script").output == f"{env.dir / 'sub'}\nhi"
    listed = step(record, "list")
    assert listed.status == "failed" and listed.exit_code == 1
    assert listed.output == "one"


# -- handlers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "ran"),
    [("true", ["success", "exit"]), ("exit 1", ["failure", "exit"])],
)
def test_handlers_run_by_outcome_then_exit(env: Env, command: str, ran: list[str]) -> None:
    env.write(
        "handlers.yaml",
        f"""
        handler_on:
          success:
            run: echo success >> handled
          failure:
            run: echo "failure ${{A}}" >> handled
          abort:
            run: echo abort >> handled
          exit:
            run: echo exit >> handled
        steps:
          - id: a
            run: echo out-a
            output: A
          - id: b
            run: {command}
            depends: a
        """,
    )
    record = env.run("handlers.yaml")
    lines = (env.dir / "handled").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ran
    if "failure" in ran:
        assert lines[0] == "failure out-a"  # handlers see every output
    handled = [s for s in record.steps if s.name.startswith("on")]
    assert [s.name for s in handled] == ["on" + n.capitalize() for n in ran]
    assert all(s.status == "succeeded" for s in handled)


def test_a_failing_exit_handler_fails_the_run(env: Env) -> None:
    env.write(
        "badexit.yaml",
        """
        handler_on:
          exit:
            run: exit 2
        steps:
          - id: a
            run: "true"
        """,
    )
    record = env.run("badexit.yaml")
    assert record.status == "failed"
    assert step(record, "a").status == "succeeded"


# -- the run scope, the run context ------------------------------------------------------


@pytest.mark.parametrize("last", ["true", "exit 1"])
def test_the_run_scope_is_purged_when_the_run_ends(env: Env, last: str) -> None:
    env.write(
        "scratch.yaml",
        f"""
        steps:
          - id: put
            action: state.set
            with: {{scope: run, key: scratch/a, value: {{n: 1}}}}
          - id: put_cli
            run: statebox set scratch/b 2 --scope run
            depends: put
          - id: read
            action: state.list
            output: LISTED
            with: {{scope: run, prefix: scratch/}}
            depends: put_cli
          - id: last
            run: {last}
            depends: read
        """,
    )
    record = env.run("scratch.yaml")
    assert record.status == ("succeeded" if last == "true" else "failed")
    listed = json.loads(step(record, "read").output or "{}")
    assert [e["key"] for e in listed["entries"]] == ["scratch/a", "scratch/b"]
    assert listed["namespace"] == record.run_id
    assert run_scope_keys(env, record.run_id) == []


def test_step_environment_and_statebox_cli_without_flags(env: Env) -> None:
    env.write(
        ".env",
        """
        # comment
        FROM_DOTENV=dot
        export QUOTED="with spaces"
        """,
    )
    env.write(
        "ctx.yaml",
        """
        name: ctx-dag
        dotenv: .env
        params:
          - REGION: us
        env:
          - BASE: base
          - DERIVED: ${BASE}-derived-${FROM_DOTENV}
        steps:
          - id: first
            run: echo one
            output: FIRST
          - id: show
            env:
              - MINE: mine-${FIRST}
            run: >-
              env | grep -E '^(STATEBOX|DAG)_|^(FROM_DOTENV|QUOTED|BASE|DERIVED|REGION|FIRST|MINE)='
              | sort
            output: ENV
            depends: first
          - id: cli
            run: |
              statebox set counters/x '{"n": 5}' > /dev/null && statebox get counters/x
            output: GOT
            depends: show
        """,
    )
    record = env.run("ctx.yaml", "REGION=eu", "pos2")
    assert record.status == "succeeded", record
    lines = (step(record, "show").output or "").splitlines()
    seen = dict(line.split("=", 1) for line in lines)
    assert seen["STATEBOX_DAG"] == seen["DAG_NAME"] == "ctx-dag"
    assert seen["STATEBOX_ROOT_DAG"] == "ctx-dag"
    assert seen["STATEBOX_RUN_ID"] == seen["DAG_RUN_ID"] == record.run_id
    assert seen["STATEBOX_STEP"] == seen["DAG_RUN_STEP_NAME"] == "show"
    assert seen["STATEBOX_STORE"] == env.url
    assert json.loads(seen["DAG_PARAMS_JSON"]) == {"REGION": "eu", "2": "pos2"}
    assert seen["FROM_DOTENV"] == "dot" and seen["QUOTED"] == "with spaces"
    assert seen["DERIVED"] == "base-derived-dot"
    assert seen["REGION"] == "eu" and seen["FIRST"] == "one" and seen["MINE"] == "mine-one"
    got = json.loads(step(record, "cli").output or "{}")
    assert (got["scope"], got["namespace"], got["value"]) == ("dag", "ctx-dag", {"n": 5})
    with env.store() as store:
        written = store.get("counters/x", namespace="ctx-dag")
    assert written.updated_by is not None
    assert written.updated_by.dag_run_id == record.run_id
    assert written.updated_by.step_name == "cli"


def test_state_steps_act_in_the_run_context(env: Env) -> None:
    env.write(
        "context.yaml",
        """
        name: ctxstate
        steps:
          - id: write
            action: state.set
            with: {key: cursor, value: 1}
        """,
    )
    record = env.run("context.yaml")
    with env.store() as store:
        entry = store.get("cursor", namespace="ctxstate")
    assert entry.found and entry.updated_by is not None
    assert entry.updated_by.dag_name == "ctxstate"
    assert entry.updated_by.dag_run_id == record.run_id
    assert entry.updated_by.step_name == "write"


# -- sub-DAGs -------------------------------------------------------------------------------


def test_parent_and_child_share_root_dag_state_but_not_dag_scopes(env: Env) -> None:
    env.write(
        "parent.yaml",
        """
        name: parent
        steps:
          - id: shared
            action: state.set
            with: {scope: root_dag, key: shared, value: from-parent}
          - id: own
            action: state.set
            with: {key: own, value: parent-only}
          - id: child
            action: dag.run
            with:
              dag: child
              params: "X=1 Y=\\"two words\\""
            output: CHILD
            depends: [shared, own]
          - id: legacy
            call: child
            params:
              X: "2"
            output: LEGACY
            depends: child
          - id: after
            run: echo "${CHILD.outputs.SEEN}"
            output: AFTER
            depends: legacy
        """,
    )
    env.write(
        "child.yaml",
        """
        name: child
        params:
          - X: "0"
          - Y: "none"
        steps:
          - id: read_shared
            action: state.get
            output: SHARED
            with: {scope: root_dag, key: shared}
          - id: read_own
            action: state.get
            output: OWN
            with: {key: own}
          - id: seen
            run: echo "${SHARED.value}/${OWN.found}/${X}/${Y}"
            output: SEEN
            depends: [read_shared, read_own]
          - id: mine
            action: state.set
            with: {key: mine, value: child-only}
        """,
    )
    record = env.run("parent.yaml")
    assert record.status == "succeeded", record
    child_line = json.loads(step(record, "child").output or "{}")
    assert child_line["name"] == "child" and child_line["status"] == "succeeded"
    assert child_line["outputs"]["SEEN"] == "from-parent/false/1/two words"
    assert json.loads(step(record, "legacy").output or "{}")["outputs"]["SEEN"] == (
        "from-parent/false/2/none"
    )
    assert step(record, "after").output == "from-parent/false/1/two words"
    child_id = step(record, "child").child_run_id
    assert child_id is not None and child_id == child_line["run_id"]
    with env.store() as store:
        child_record = RunRecords(store).get(child_id)
        assert child_record.dag == "child" and child_record.root_dag == "parent"
        assert child_record.root_run_id == record.run_id
        assert child_record.parent_run_id == record.run_id
        assert store.get("own", namespace="parent").value == "parent-only"
        assert not store.get("own", namespace="child").found
        assert store.get("mine", namespace="child").value == "child-only"
        assert not store.get("mine", namespace="parent").found
    assert run_scope_keys(env, child_id) == []


def test_a_failing_child_fails_its_step(env: Env) -> None:
    env.write(
        "p.yaml",
        """
        steps:
          - id: run_child
            action: dag.run
            with: {dag: c}
          - id: never
            run: "true"
            depends: run_child
        """,
    )
    env.write("c.yaml", "steps:\n  - id: boom\n    run: exit 7\n")
    record = env.run("p.yaml")
    assert statuses(record) == {"run_child": "failed", "never": "aborted"}
    assert record.status == "failed"
    missing = env.write(
        "q.yaml", "steps:\n  - id: nowhere\n    action: dag.run\n    with: {dag: absent}\n"
    )
    assert missing.exists()
    failed = env.run("q.yaml")
    assert step(failed, "nowhere").status == "failed"
    assert "absent" in (step(failed, "nowhere").error or "")


# -- retention ------------------------------------------------------------------------------


def test_records_and_logs_expire_after_hist_retention_days(env: Env) -> None:
    env.write("brief.yaml", "hist_retention_days: 2\nsteps:\n  - id: hello\n    run: echo hi\n")
    env.write("usual.yaml", "steps:\n  - id: hello\n    run: echo hi\n")  # Dagu's 30 days
    clock = ManualClock()
    with open_store(env.url, context=RunContext(), clock=clock) as store:
        options = RunOptions(store_url=env.url)
        brief = run_dag(load_dag(str(env.dir / "brief.yaml")), store, options)
        usual = run_dag(load_dag(str(env.dir / "usual.yaml")), store, options)
        records = RunRecords(store)

        def kept() -> list[tuple[str, str]]:
            logs = store.list(scope="statebox", namespace="logs").entries
            return [(r.run_id, r.dag) for r in records.list()] + [
                (e.key.split("/")[0], "log") for e in logs
            ]

        everything = {(brief.run_id, "brief"), (brief.run_id, "log")}
        everything |= {(usual.run_id, "usual"), (usual.run_id, "log")}
        assert set(kept()) == everything
        assert records.log(brief.run_id, "hello") == "hi\n"
        clock.advance(2 * 86400 - 1)
        assert set(kept()) == everything
        clock.advance(2)
        assert set(kept()) == {(usual.run_id, "usual"), (usual.run_id, "log")}
        with pytest.raises(NotFoundError):
            records.get(brief.run_id)
        clock.advance(28 * 86400 - 2)
        assert records.log(usual.run_id, "hello") == "hi\n"
        clock.advance(2)
        assert kept() == []


# -- the command line -----------------------------------------------------------------------


def test_statebox_run_exit_codes(env: Env) -> None:
    env.write("ok.yaml", 'steps:\n  - id: a\n    run: "true"\n')
    env.write("partial.yaml", "steps:\n  - id: a\n    run: exit 1\n    continue_on: failed\n")
    env.write("bad.yaml", "steps:\n  - id: a\n    run: exit 1\n")
    env.write(
        "aborted.yaml",
        'preconditions: "false"\nsteps:\n  - id: a\n    run: "true"\n',
    )
    env.write("broken.yaml", "steps:\n  - id: a\n    rn: x\n  - id: b\n    depends: nope\n")
    assert env.cli("run", "ok.yaml").returncode == 0
    assert env.cli("run", "partial.yaml").returncode == 0
    assert env.cli("run", "bad.yaml").returncode == 1
    assert env.cli("run", "aborted.yaml").returncode == 1
    broken = env.cli("run", "broken.yaml")
    assert broken.returncode == 2
    problems = broken.stderr.strip().splitlines()
    assert len(problems) >= 2 and all(p.startswith("broken.yaml:") for p in problems)
    assert env.cli("run", "missing.yaml").returncode == 3


def test_a_relative_store_url_reaches_steps_that_run_elsewhere(env: Env) -> None:
    (env.dir / "dags").mkdir()
    env.write(
        "dags/rel.yaml",
        """
        steps:
          - id: put
            action: state.set
            with: {key: k, value: 42}
          - id: read
            run: statebox get k
            output: GOT
            depends: put
        """,
    )
    done = env.cli("--store", "sqlite:///relative.db", "run", "dags/rel.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    with open_store(f"sqlite:///{env.dir / 'relative.db'}") as store:
        [record] = RunRecords(store).list()
    assert json.loads(step(record, "read").output or "{}")["value"] == 42
    assert absolute_store_url("sqlite:///a/b.db?timeout=5") == (
        f"sqlite:///{os.path.abspath('a/b.db')}?timeout=5"
    )
    assert absolute_store_url("sqlite:////abs.db") == "sqlite:////abs.db"
    assert absolute_store_url("postgresql://db/x") == "postgresql://db/x"


def test_statebox_run_warns_of_camel_case_keys(env: Env) -> None:
    env.write(
        "old.yaml",
        """
        steps:
          - id: a
            run: "true"
            retryPolicy: {limit: 1}
        """,
    )
    done = env.cli("run", "old.yaml")
    assert done.returncode == 0
    [warning] = done.stderr.strip().splitlines()
    assert warning.startswith("old.yaml:4:5: warning:") and "retry_policy" in warning


def test_statebox_run_params_and_run_id(env: Env) -> None:
    env.write(
        "echo.yaml",
        """
        params: "first KEY=default"
        steps:
          - id: say
            run: echo "$1 ${KEY} ${params.KEY}"
            output: SAID
        """,
    )
    run_id = new_run_id()
    done = env.cli("run", "echo.yaml", "one", "KEY=given", "--run-id", run_id)
    assert done.returncode == 0, done.stderr
    assert run_id in done.stdout
    with env.store() as store:
        record = RunRecords(store).get(run_id)
    assert record.params == ["one", "KEY=given"]
    assert step(record, "say").output == "one given given"
    again = env.cli("run", "echo.yaml", "--run-id", run_id)
    assert again.returncode == 4 and "already exists" in again.stderr
    invalid = env.cli("run", "echo.yaml", "--run-id", "a/b")
    assert invalid.returncode == 2 and "invalid run id" in invalid.stderr


# -- no lost update under concurrent runs ------------------------------------------------

OPTIMISTIC = """
    name: counter
    steps:
      - id: load
        action: state.get
        output: STATE
        with:
          key: counters/jobs
          required: true
      - id: next
        run: sleep 0.2; echo $(( ${STATE.value.count} + 1 ))
        output: NEXT_COUNT
        depends: load
      - id: save
        action: state.set
        with:
          key: counters/jobs
          expected_version: "${STATE.version}"
          value:
            count: "${NEXT_COUNT}"
        depends: next
"""

UPDATE = """
    name: counter
    steps:
      - id: bump
        action: state.update
        with:
          key: counters/jobs
          jq: ".count += 1"
"""

CLI_UPDATE = """
    name: counter
    steps:
      - id: bump
        run: statebox update counters/jobs --jq '.count += 1' > /dev/null
        retry_policy: {exit_code: [4], limit: 20}
"""

CLI_GUARDED = """
    name: counter
    steps:
      - id: bump
        run: |
          got=$(statebox get counters/jobs --required)
          version=$(echo "$got" | jq -r .version)
          count=$(echo "$got" | jq -r .value.count)
          sleep 0.1
          statebox set counters/jobs "{\\"count\\": $((count + 1))}" \\
            --expected-version "$version" > /dev/null
        retry_policy:
          exit_code: [4]
          limit: 40
          interval_sec: 0.05
          backoff: 1.5
          max_interval_sec: 0.3
"""


def _concurrent_runs(env: Env, dag: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [STATEBOX, "run", dag],
            cwd=env.dir,
            env=env.cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _count(env: Env) -> Any:
    with env.store(dag="counter") as store:
        return store.get("counters/jobs").value["count"]


def test_optimistic_concurrency_loses_no_update(env: Env) -> None:
    env.write("counter.yaml", OPTIMISTIC)
    with env.store(dag="counter") as store:
        store.set("counters/jobs", {"count": 0})
    runs = _concurrent_runs(env, "counter.yaml", 8)
    succeeded = [r for r in runs if r.returncode == 0]
    assert succeeded  # the first writer always wins
    assert all(r.returncode in (0, 1) for r in runs), [r.stderr for r in runs]
    assert int(_count(env)) == len(succeeded)  # each failed run wrote nothing
    failed_records = [r for r in env.records() if r.status == "failed"]
    assert len(failed_records) == 8 - len(succeeded)
    for record in failed_records:
        save = step(record, "save")
        assert (save.status, save.exit_code) == ("failed", 4)
    for _ in range(8 - len(succeeded)):  # rerun each failed one: nothing was lost
        assert env.run("counter.yaml").status == "succeeded"
    assert int(_count(env)) == 8


@pytest.mark.parametrize("dag", [UPDATE, CLI_UPDATE, CLI_GUARDED], ids=["action", "cli", "guarded"])
def test_concurrent_updates_all_succeed(env: Env, dag: str) -> None:
    env.write("counter.yaml", dag)
    with env.store(dag="counter") as store:
        store.set("counters/jobs", {"count": 0})
    runs = _concurrent_runs(env, "counter.yaml", 8)
    assert [r.returncode for r in runs] == [0] * 8, [r.stderr for r in runs]
    assert _count(env) == 8
