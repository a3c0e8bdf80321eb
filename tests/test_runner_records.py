"""Run records and step logs (statebox.runner.records) and ``statebox runs``: saved in the
store's reserved scope ``statebox``, on real SQLite and ``file://`` stores, read back by
the command line in a subprocess."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox import (
    CorruptEntryError,
    InvalidReferenceError,
    ManualClock,
    NotFoundError,
    RunContext,
    StateStore,
    open_store,
)
from statebox.core.clock import format_timestamp, parse_timestamp
from statebox.core.model import validate_key
from statebox.runner.records import (
    MAX_LOG_BYTES,
    MAX_SEGMENT,
    RunRecord,
    RunRecords,
    StepRecord,
    key_segment,
    log_key,
    retention_ttl,
)

from .test_cli import BIN, environment_without_context

STATEBOX = str(BIN / "statebox")
START = parse_timestamp("2026-05-25T10:00:00Z")


@pytest.fixture(params=["sqlite", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return f"file://{tmp_path / 'dag-state'}"


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with open_store(url, context=RunContext(dag="runner")) as s:
        yield s


def make_record(
    run_id: str,
    dag: str = "feed-sync",
    *,
    second: int = 0,
    status: str = "succeeded",
) -> RunRecord:
    def at(offset: float) -> str:
        return format_timestamp(START + int((second + offset) * 1e9))

    started = at(0)
    return RunRecord(
        run_id=run_id,
        dag=dag,
        root_dag=dag,
        root_run_id=run_id,
        parent_run_id=None,
        file=f"/dags/{dag}.yaml",
        params=["2026-05-25", "REGION=eu"],
        status=status,
        started_at=started,
        finished_at=at(3.5),
        steps=[
            StepRecord(
                name="fetch feed",
                id="fetch",
                status="succeeded",
                attempts=2,
                started_at=started,
                finished_at=at(1.25),
                exit_code=0,
                output='{"items":[1,2]}',
            ),
            StepRecord(
                name="save",
                id=None,
                status="failed",
                attempts=1,
                started_at=started,
                finished_at=at(3),
                exit_code=4,
                error="conflict: version 3 expected, 4 found",
            ),
            StepRecord(name="notify", id="notify", status="aborted"),
        ],
        error=None,
    )


# --- records ---------------------------------------------------------------------------


def test_a_record_round_trips(store: StateStore) -> None:
    records = RunRecords(store)
    record = make_record("0197-a")
    records.save(record)
    assert records.get("0197-a") == record
    assert RunRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    record.status, record.steps[2].status = "running", "running"
    records.save(record)  # saved again as the run goes on: replaced
    assert records.get("0197-a").steps[2].status == "running"
    assert record.duration() == 3.5
    assert record.steps[0].duration() == 1.25
    assert record.step("fetch") is record.steps[0]
    assert record.step("fetch feed") is record.steps[0]
    assert record.step("save") is record.steps[1]
    assert record.step("nope") is None


def test_records_live_in_the_reserved_scope_and_keep_no_history(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))
    records.save(make_record("0197-a", status="failed"))
    got = store.get("0197-a", scope="statebox", namespace="runs")
    assert got.value["status"] == "failed"
    assert store.history("0197-a", scope="statebox", namespace="runs").versions == []
    assert [(k.scope, k.namespace) for k in store.keyspaces().keyspaces] == [("statebox", "runs")]


def test_records_and_logs_saved_with_a_ttl_expire_from_each_save(url: str) -> None:
    clock = ManualClock()
    with open_store(url, context=RunContext(dag="runner"), clock=clock) as s:
        records = RunRecords(s)
        records.save(make_record("0197-a"), ttl=60)
        records.save_log("0197-a", "save", "saved\n", ttl=60)
        records.save(make_record("0197-b", "other"))  # no ttl: kept for good
        records.save_log("0197-b", "save", "kept\n")
        clock.advance(50)
        records.save(make_record("0197-a", status="failed"), ttl=60)  # a later save: 60 s more
        clock.advance(50)  # 100 s after the first save, 50 after the last
        assert records.get("0197-a").status == "failed"
        assert records.log("0197-a", "save") == ""  # the log's 60 s have passed
        assert not s.get(
            log_key("0197-a", "save", "stdout"), scope="statebox", namespace="logs"
        ).found
        clock.advance(11)
        assert [r.run_id for r in records.list()] == ["0197-b"]
        with pytest.raises(NotFoundError, match='no run "0197-a"'):
            records.get("0197-a")
        with pytest.raises(NotFoundError, match='no run "0197-a"'):
            records.log("0197-a", "save")
        clock.advance(100 * 365 * 86400)
        assert records.log("0197-b", "save") == "kept\n"


def test_retention_days_as_a_ttl() -> None:
    assert retention_ttl(30) == 30 * 86400
    assert retention_ttl(0.00002) == pytest.approx(1.728)
    assert retention_ttl(1e-12) == 0.001  # the store's ttl is never 0: at once, nearly
    assert retention_ttl(1e9) == retention_ttl(float("inf")) == 100 * 365 * 86400


def test_an_unknown_run_is_not_found_by_its_id(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match='no run "missing-run"'):
        RunRecords(store).get("missing-run")


def test_runs_are_listed_newest_first_and_filtered_by_dag(store: StateStore) -> None:
    records = RunRecords(store)
    # saved out of order; one with a run id that does not sort by time
    records.save(make_record("0197-b", second=2))
    records.save(make_record("0197-a", second=1))
    records.save(make_record("zz-manual", "other", second=-3600))
    records.save(make_record("0197-c", "other", second=3))
    assert [r.run_id for r in records.list()] == ["0197-c", "0197-b", "0197-a", "zz-manual"]
    assert [r.run_id for r in records.list(dag="feed-sync")] == ["0197-b", "0197-a"]
    assert [r.run_id for r in records.list(dag="other", limit=1)] == ["0197-c"]
    assert [r.run_id for r in records.list(limit=2)] == ["0197-c", "0197-b"]
    assert records.list(dag="none") == []


def test_a_malformed_record_is_corrupt_and_left_out_of_listings(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))
    store.set("0197-bad", {"run_id": "0197-bad", "steps": 3}, scope="statebox", namespace="runs")
    with pytest.raises(CorruptEntryError, match="malformed run record"):
        records.get("0197-bad")
    assert [r.run_id for r in records.list()] == ["0197-a"]
    with pytest.raises(CorruptEntryError, match="attempts must be an integer"):
        StepRecord.from_json({"name": "s", "attempts": "2"})


def test_a_record_too_big_for_the_store_is_saved_with_its_outputs_cut(store: StateStore) -> None:
    records = RunRecords(store)
    record = make_record("0197-big")
    for step in record.steps:
        step.output = "x" * 600_000  # three outputs: far over the 1 MiB value limit
    record.steps[1].error = "<" * 300_000  # each "<" is six bytes in the stored JSON
    records.save(record)
    saved = records.get("0197-big")
    assert saved.status == record.status
    for step in saved.steps:
        assert step.output is not None and step.output.startswith("xxx")
        assert "more characters cut to fit the run record" in step.output
    assert record.steps[0].output == "x" * 600_000  # the caller's record is untouched


# --- logs ------------------------------------------------------------------------------


def test_logs_round_trip_by_step_id_or_name(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))
    records.save_log("0197-a", "fetch feed", "line 1\nline 2\n")
    records.save_log("0197-a", "fetch feed", "warning\n", stream="stderr")
    records.save_log("0197-a", "save", "saved\n")
    assert records.log("0197-a", "fetch") == "line 1\nline 2\n"
    assert records.log("0197-a", "fetch feed") == "line 1\nline 2\n"
    assert records.log("0197-a", "fetch", stream="stderr") == "warning\n"
    assert records.log("0197-a", "save") == "saved\n"
    assert records.log("0197-a", "save", stream="stderr") == ""  # printed nothing
    assert records.log("0197-a", "notify") == ""  # never ran
    got = store.get(log_key("0197-a", "fetch feed", "stdout"), scope="statebox", namespace="logs")
    assert got.value == {
        "run_id": "0197-a",
        "step": "fetch feed",
        "stream": "stdout",
        "cut": 0,
        "text": "line 1\nline 2\n",
    }


def test_an_action_steps_log_is_its_output(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))  # fetch has an output and no log
    assert records.log("0197-a", "fetch") == '{"items":[1,2]}'
    assert records.log("0197-a", "fetch", stream="stderr") == ""


def test_an_unknown_step_or_stream_is_refused_naming_it(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))
    with pytest.raises(NotFoundError, match='run "0197-a" \\(feed-sync\\) has no step "nope"'):
        records.log("0197-a", "nope")
    with pytest.raises(NotFoundError, match='no run "0197-x"'):
        records.log("0197-x", "fetch")
    with pytest.raises(InvalidReferenceError, match='invalid log stream "both"'):
        records.save_log("0197-a", "fetch", "x", stream="both")


def test_a_log_is_cut_to_its_tail_with_a_marker(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))
    big = "".join(f"line {i:07d}\n" for i in range(120_000))  # 1.56 MB
    records.save_log("0197-a", "fetch", big)
    kept = records.log("0197-a", "fetch")
    marker, _, rest = kept.partition("\n")
    assert marker.startswith("[statebox: ") and "bytes cut from the start" in marker
    assert big.endswith(rest) and rest.endswith("line 0119999\n")
    assert len(rest.encode()) <= MAX_LOG_BYTES
    cut = int(marker.split()[1])
    assert cut + len(rest.encode()) == len(big.encode())


def test_a_log_of_escapes_is_cut_to_fit_the_stores_value_limit(store: StateStore) -> None:
    records = RunRecords(store)
    records.save(make_record("0197-a"))
    text = "é<&>\x01" * 100_000 + "END"  # grows several times over as JSON
    records.save_log("0197-a", "fetch", text, stream="stderr")
    kept = records.log("0197-a", "fetch", stream="stderr")
    marker, _, rest = kept.partition("\n")
    assert "bytes cut from the start" in marker
    assert text.endswith(rest) and rest.endswith("END") and len(rest) > 10_000


@pytest.mark.parametrize(
    "name",
    [
        "load feed",
        "a/b/c",
        ".",
        "..",
        "%2F",
        " padded ",
        "tab\tand\nnewline",
        "back\\slash",
        "x~y",
        "é" * 100,
        "long " * 60,
    ],
)
def test_odd_step_names_and_run_ids_make_valid_keys(store: StateStore, name: str) -> None:
    records = RunRecords(store)
    record = make_record(name)
    record.steps[1].name = name
    records.save(record)
    records.save_log(name, name, f"log of {name}")
    assert records.get(name).run_id == name
    assert records.log(name, name) == f"log of {name}"
    assert [r.run_id for r in records.list()] == [name]


@given(st.text())
def test_key_segments_are_single_valid_segments(text: str) -> None:
    segment = key_segment(text)
    assert "/" not in segment
    assert validate_key(segment) == segment  # valid, and nothing trimmed
    assert len(segment.encode()) <= MAX_SEGMENT
    assert validate_key(log_key(text, text, "stderr")).count("/") == 2


@given(st.text(max_size=80), st.text(max_size=80))
def test_different_names_make_different_segments(a: str, b: str) -> None:
    if a != b:
        assert key_segment(a) != key_segment(b)


# --- statebox runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return environment_without_context(tmp_path_factory)


def runs(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STATEBOX, "--store", url, "runs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def saved_runs(url: str) -> None:
    with open_store(url, context=RunContext()) as s:
        records = RunRecords(s)
        records.save(make_record("0197-a", second=1))
        records.save(make_record("0197-b", "other", second=2))
        running = make_record("0197-c", second=3, status="running")
        running.finished_at = None
        records.save(running)
        records.save_log("0197-a", "fetch feed", "héllo\nno newline at the end")
        records.save_log("0197-a", "save", "oops\n", stream="stderr")


def test_runs_lists_newest_first_as_json(url: str, cli_env: dict[str, str]) -> None:
    saved_runs(url)
    done = runs(url, cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "runs": [
            {
                "run_id": "0197-c",
                "dag": "feed-sync",
                "status": "running",
                "started_at": "2026-05-25T10:00:03Z",
                "finished_at": None,
                "duration": None,
            },
            {
                "run_id": "0197-b",
                "dag": "other",
                "status": "succeeded",
                "started_at": "2026-05-25T10:00:02Z",
                "finished_at": "2026-05-25T10:00:05.5Z",
                "duration": 3.5,
            },
            {
                "run_id": "0197-a",
                "dag": "feed-sync",
                "status": "succeeded",
                "started_at": "2026-05-25T10:00:01Z",
                "finished_at": "2026-05-25T10:00:04.5Z",
                "duration": 3.5,
            },
        ]
    }
    assert done.stdout.count("\n") == 1
    filtered = runs(url, cli_env, "--dag", "feed-sync", "--limit", "1")
    assert [r["run_id"] for r in json.loads(filtered.stdout)["runs"]] == ["0197-c"]
    table = runs(url, cli_env, "--format", "table", "--dag", "feed-sync")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["RUN_ID", "DAG", "STATUS", "STARTED_AT", "FINISHED_AT", "DURATION"]
    assert lines[1].split() == ["0197-c", "feed-sync", "running", "2026-05-25T10:00:03Z"]
    assert lines[2].split()[0::5] == ["0197-a", "3.5s"]
    assert json.loads(runs(url, cli_env, "--dag", "none").stdout) == {"runs": []}
    bad = runs(url, cli_env, "--limit", "-1")
    assert bad.returncode == 2 and "--limit" in bad.stderr


def test_runs_show_prints_the_record(url: str, cli_env: dict[str, str]) -> None:
    saved_runs(url)
    done = runs(url, cli_env, "show", "0197-a")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["status"], shown["duration"], shown["params"]) == (
        "succeeded",
        3.5,
        ["2026-05-25", "REGION=eu"],
    )
    fetch, save, notify = shown["steps"]
    assert fetch == {
        "name": "fetch feed",
        "id": "fetch",
        "status": "succeeded",
        "attempts": 2,
        "started_at": "2026-05-25T10:00:01Z",
        "finished_at": "2026-05-25T10:00:02.25Z",
        "duration": 1.25,
        "exit_code": 0,
        "output": '{"items":[1,2]}',
        "error": None,
        "child_run_id": None,
    }
    assert (save["status"], save["exit_code"], save["error"]) == (
        "failed",
        4,
        "conflict: version 3 expected, 4 found",
    )
    assert (notify["status"], notify["attempts"], notify["duration"]) == ("aborted", 0, None)
    table = runs(url, cli_env, "show", "0197-a", "--format", "table").stdout
    assert "status         succeeded" in table
    assert "steps:" in table
    step_lines = table.split("steps:\n", 1)[1].splitlines()
    assert step_lines[0].split()[:4] == ["STEP", "ID", "STATUS", "ATTEMPTS"]
    assert step_lines[1].split()[:5] == ["fetch", "feed", "fetch", "succeeded", "2"]


def test_runs_log_prints_the_log_raw(url: str, cli_env: dict[str, str]) -> None:
    saved_runs(url)
    by_id = runs(url, cli_env, "log", "0197-a", "fetch")
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == "héllo\nno newline at the end"
    assert runs(url, cli_env, "log", "0197-a", "fetch feed").stdout == by_id.stdout
    assert runs(url, cli_env, "log", "0197-a", "save", "--stderr").stdout == "oops\n"
    assert runs(url, cli_env, "log", "0197-a", "save").stdout == ""


def test_unknown_runs_and_steps_exit_3_naming_them(url: str, cli_env: dict[str, str]) -> None:
    saved_runs(url)
    show = runs(url, cli_env, "show", "0197-zz")
    assert (show.returncode, show.stdout) == (3, "")
    assert show.stderr == 'Error: no run "0197-zz" in this store\n'
    log = runs(url, cli_env, "log", "0197-zz", "fetch")
    assert log.returncode == 3 and '"0197-zz"' in log.stderr
    step = runs(url, cli_env, "log", "0197-a", "nope")
    assert step.returncode == 3
    assert step.stderr == 'Error: run "0197-a" (feed-sync) has no step "nope"\n'
    usage = runs(url, cli_env, "show")
    assert usage.returncode == 2 and "RUN_ID" in usage.stderr
