"""State and lease steps (``statebox.runner.actions``), on real SQLite stores.

Each action's output is compared byte for byte with what the real ``statebox`` executable
prints (a subprocess) for the same operation: reads on the same store, writes on two
stores brought to the same state. Exit codes are the CLI's (4 conflict, 3 not found,
2 bad input); rendered strings (``"7"``, ``"true"``) are read as Dagu's ``with`` gives
them; writes record the step's run context; concurrent ``state.update`` steps lose no
increment; lease steps hold their leases as the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from statebox import RunContext, StateStore, open_store
from statebox.core.model import UpdatedBy
from statebox.runner.action_fields import ACTION_FIELDS, ACTIONS, DAG_RUN, REQUIRED_FIELDS
from statebox.runner.actions import ActionResult, run_action

STATEBOX = Path(sys.executable).parent / "statebox"
DAG = "feed-sync"
RUN = "run-1"
CONTEXT = RunContext(dag=DAG, root_dag="nightly", run_id=RUN, step="save")
#: The variables through which a subprocess would pick up a run context or a store.
CONTEXT_VARIABLES = (
    "STATEBOX_STORE",
    "STATEBOX_HOME",
    "STATEBOX_DAG",
    "STATEBOX_ROOT_DAG",
    "STATEBOX_RUN_ID",
    "STATEBOX_STEP",
    "DAG_NAME",
    "DAG_RUN_ID",
    "DAG_RUN_STEP_NAME",
    "AIRFLOW_CTX_DAG_ID",
    "AIRFLOW_CTX_DAG_RUN_ID",
    "AIRFLOW_CTX_TASK_ID",
    "GITHUB_WORKFLOW",
    "GITHUB_RUN_ID",
    "GITHUB_JOB",
)


def open_sqlite(path: Path, context: RunContext = CONTEXT) -> StateStore:
    return open_store(f"sqlite:///{path}", context=context)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with open_sqlite(tmp_path / "state.db") as s:
        yield s


def act(store: StateStore, action: str, fields: dict[str, Any] | str) -> ActionResult:
    """Run an action; ``fields`` may be the ``with`` block as YAML text."""
    given = yaml.safe_load(fields) if isinstance(fields, str) else fields
    return run_action(store, action, given, holder=RUN)


def ok(store: StateStore, action: str, fields: dict[str, Any] | str) -> str:
    result = act(store, action, fields)
    assert result.exit_code == 0, result
    assert result.error is None
    assert "\n" not in result.output
    return result.output


def failed(store: StateStore, action: str, fields: dict[str, Any], code: int, *words: str) -> str:
    result = act(store, action, fields)
    assert result.exit_code == code, result
    assert result.output == ""
    assert result.error is not None
    for word in words:
        assert word in result.error, (word, result.error)
    # The runner's words, never Python's: no reprs, no type names.
    for python in ("'", "<class", "None", "Traceback"):
        assert python not in result.error, result.error
    return result.error


class Cli:
    """The real ``statebox`` executable on one store, acting as DAG ``feed-sync``."""

    def __init__(self, db: Path, home: Path) -> None:
        self.url = f"sqlite:///{db}"
        env = {k: v for k, v in os.environ.items() if k not in CONTEXT_VARIABLES}
        env["STATEBOX_HOME"] = str(home)
        self.env = env

    def run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(STATEBOX), *args, "--store", self.url, "--dag", DAG],
            input=stdin,
            env=self.env,
            capture_output=True,
            timeout=60,
        )

    def line(self, *args: str, stdin: bytes = b"") -> str:
        proc = self.run(*args, stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout.decode("utf-8")
        assert text.endswith("\n") and text.count("\n") == 1, text
        return text[:-1]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(tmp_path / "cli.db", home)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- the CLI's bytes -------------------------------------------------------------------


def test_writes_print_what_the_cli_prints(tmp_path: Path, cli: Cli) -> None:
    """The same writes from the same state, one store per face: identical lines."""
    feed = {"last_id": 123, "note": "né €", "ratio": 1.5, "tags": ["a", "b"], "none": None}
    steps: list[tuple[str, str, list[str]]] = [
        # (action, with as YAML, the same operation on the command line)
        (
            "state.set",
            "{key: cursors/feed, value: {last_id: 123, note: né €, ratio: 1.5, "
            "tags: [a, b], none: null}}",
            ["set", "cursors/feed", dumps(feed)],
        ),
        (
            "state.set",
            "{key: cursors/feed, value: {last_id: 124}, expected_version: '1'}",
            ["set", "cursors/feed", '{"last_id": 124}', "--expected-version", "1"],
        ),
        (
            "state.set",
            "{key: locks/x, value: me, create_only: 'true'}",
            ["set", "locks/x", '"me"', "--create-only"],
        ),
        (
            "state.diff",
            "{key: snapshots/api, value: {count: 3}}",
            ["diff", "snapshots/api", '{"count": 3}'],
        ),
        (
            "state.diff",
            "{key: snapshots/api, value: {count: 3}}",
            ["diff", "snapshots/api", '{"count": 3}'],
        ),
        (
            "state.diff",
            "{key: snapshots/api, value: {count: 4}, update: 'false'}",
            ["diff", "snapshots/api", '{"count": 4}', "--no-update"],
        ),
        (
            "state.update",
            "{key: counters/runs, jq: '.n += 1', default: {n: 0}}",
            ["update", "counters/runs", "--jq", ".n += 1", "--default", '{"n": 0}'],
        ),
        (
            "state.update",
            "{key: counters/runs, merge: {enabled: false, n: null}}",
            ["update", "counters/runs", "--merge", '{"enabled": false, "n": null}'],
        ),
        (
            "state.update",
            "{key: counters/runs, patch: [{op: add, path: /tags, value: [x]}]}",
            [
                "update",
                "counters/runs",
                "--patch",
                '[{"op": "add", "path": "/tags", "value": ["x"]}]',
            ],
        ),
        (
            "state.rollback",
            "{key: cursors/feed, to_version: '1'}",
            ["rollback", "cursors/feed", "--to-version", "1"],
        ),
        (
            "state.txn",
            "{ops: [{op: set, key: a, value: 1, create_only: true}, "
            "{op: set, key: b, value: [1, 2]}, {op: delete, key: locks/x}]}",
            [
                "txn",
                '[{"op": "set", "key": "a", "value": 1, "create_only": true}, '
                '{"op": "set", "key": "b", "value": [1, 2]}, {"op": "delete", "key": "locks/x"}]',
            ],
        ),
        (
            "state.set",
            "{key: shared/x, value: 1, scope: custom, namespace: pipeline-v1}",
            ["set", "shared/x", "1", "--scope", "custom", "--namespace", "pipeline-v1"],
        ),
        (
            "state.delete",
            "{key: cursors/feed, expected_version: 3}",
            ["delete", "cursors/feed", "--expected-version", "3"],
        ),
        ("state.delete", "{key: cursors/feed}", ["delete", "cursors/feed"]),
    ]
    context = RunContext(dag=DAG)  # the CLI's context: --dag only
    with open_sqlite(tmp_path / "runner.db", context) as store:
        for action, fields, argv in steps:
            assert ok(store, action, fields) == cli.line(*argv), (action, fields)


def test_reads_print_what_the_cli_prints(tmp_path: Path, cli: Cli) -> None:
    """get, list and history of one store, by both faces: identical lines."""
    with open_sqlite(tmp_path / "cli.db") as store:
        ok(store, "state.set", {"key": "cursors/feed", "value": {"last_id": 1}})
        ok(store, "state.set", {"key": "cursors/feed", "value": {"last_id": 2}})
        ok(store, "state.set", {"key": "cursors/other", "value": "x"})
        ok(store, "state.set", {"key": "config", "value": [1.25, "ü"]})
        reads: list[tuple[str, dict[str, Any], list[str]]] = [
            ("state.get", {"key": "cursors/feed"}, ["get", "cursors/feed"]),
            (
                "state.get",
                {"key": "cursors/feed", "version": "1"},
                ["get", "cursors/feed", "--version", "1"],
            ),
            (
                "state.get",
                {"key": "missing", "default": {"last_id": 0}},
                ["get", "missing", "--default", '{"last_id": 0}'],
            ),
            ("state.get", {"key": "missing"}, ["get", "missing"]),
            ("state.list", {}, ["list"]),
            (
                "state.list",
                {"prefix": "cursors/", "limit": "1", "include_values": "true"},
                ["list", "cursors/", "--limit", "1", "--include-values"],
            ),
            ("state.list", {"after": "cursors/feed"}, ["list", "--after", "cursors/feed"]),
            (
                "state.history",
                {"key": "cursors/feed", "include_values": True},
                ["history", "cursors/feed", "--include-values"],
            ),
            (
                "state.history",
                {"key": "cursors/feed", "limit": 1},
                ["history", "cursors/feed", "--limit", "1"],
            ),
        ]
        for action, fields, argv in reads:
            assert ok(store, action, fields) == cli.line(*argv), (action, fields)


def test_failures_exit_as_the_cli_does(store: StateStore, cli: Cli) -> None:
    """The same errors give the same exit codes in both faces."""
    ok(store, "state.set", {"key": "k", "value": 1})
    assert cli.run("set", "k", "1").returncode == 0
    cases: list[tuple[str, dict[str, Any], list[str], int]] = [
        (
            "state.set",
            {"key": "k", "value": 2, "expected_version": "7"},
            ["set", "k", "2", "--expected-version", "7"],
            4,
        ),
        (
            "state.set",
            {"key": "k", "value": 2, "create_only": True},
            ["set", "k", "2", "--create-only"],
            4,
        ),
        ("state.get", {"key": "nope", "required": "true"}, ["get", "nope", "--required"], 3),
        (
            "state.rollback",
            {"key": "k", "to_version": 9},
            ["rollback", "k", "--to-version", "9"],
            3,
        ),
        (
            "state.set",
            {"key": "k", "value": 2, "expected_version": "x"},
            ["set", "k", "2", "--expected-version", "x"],
            2,
        ),
        ("state.get", {"key": "a//b"}, ["get", "a//b"], 2),
        ("state.update", {"key": "k", "jq": "[1, 2][]"}, ["update", "k", "--jq", "[1, 2][]"], 2),
    ]
    for action, fields, argv, code in cases:
        assert act(store, action, fields).exit_code == code, (action, fields)
        assert cli.run(*argv).returncode == code, argv


# --- exit codes and messages -----------------------------------------------------------


def test_a_stale_expected_version_is_a_conflict_that_writes_nothing(store: StateStore) -> None:
    ok(store, "state.set", {"key": "counters/jobs", "value": {"count": 1}})
    ok(store, "state.set", {"key": "counters/jobs", "value": {"count": 2}})
    error = failed(
        store,
        "state.set",
        {"key": "counters/jobs", "value": {"count": 9}, "expected_version": 1},
        4,
    )
    assert "counters/jobs" in error
    got = json.loads(ok(store, "state.get", {"key": "counters/jobs"}))
    assert got["version"] == 2 and got["value"] == {"count": 2}
    # 0: only when the key does not exist.
    failed(store, "state.set", {"key": "counters/jobs", "value": 1, "expected_version": "0"}, 4)
    assert json.loads(ok(store, "state.set", {"key": "new", "value": 1, "expected_version": "0"}))[
        "created"
    ]
    # Every guarded write: delete, diff, update, rollback.
    failed(store, "state.delete", {"key": "counters/jobs", "expected_version": "1"}, 4)
    failed(store, "state.diff", {"key": "counters/jobs", "value": 5, "expected_version": "1"}, 4)
    failed(store, "state.update", {"key": "counters/jobs", "jq": ".", "expected_version": "1"}, 4)
    failed(
        store, "state.rollback", {"key": "counters/jobs", "to_version": 1, "expected_version": 1}, 4
    )
    assert json.loads(ok(store, "state.get", {"key": "counters/jobs"}))["version"] == 2


def test_create_only_on_an_existing_key_is_a_conflict(store: StateStore) -> None:
    ok(store, "state.set", {"key": "locks/export", "value": "first", "create_only": "true"})
    failed(store, "state.set", {"key": "locks/export", "value": "second", "create_only": "true"}, 4)
    # "false" means false: the write goes through.
    ok(store, "state.set", {"key": "locks/export", "value": "third", "create_only": "false"})
    assert json.loads(ok(store, "state.get", {"key": "locks/export"}))["value"] == "third"


def test_required_missing_is_not_found(store: StateStore) -> None:
    failed(store, "state.get", {"key": "counters/jobs", "required": True}, 3, '"counters/jobs"')
    failed(store, "state.get", {"key": "counters/jobs", "required": "true", "default": 0}, 3)
    # "false": found false, with the default.
    got = json.loads(
        ok(store, "state.get", {"key": "counters/jobs", "required": "false", "default": 0})
    )
    assert got["found"] is False and got["value"] == 0
    ok(store, "state.set", {"key": "k", "value": 1})
    failed(store, "state.get", {"key": "k", "version": "5", "required": "true"}, 3, "version 5")
    failed(store, "state.rollback", {"key": "k", "to_version": "5"}, 3, "version 5")
    failed(store, "lease.renew", {"name": "never", "ttl": 5}, 3, '"never"')


@pytest.mark.parametrize(
    ("action", "fields", "words"),
    [
        (
            "state.set",
            {"key": "k", "value": 1, "expected_version": "x"},
            ["with.expected_version", '"x"'],
        ),
        (
            "state.set",
            {"key": "k", "value": 1, "expected_version": "-1"},
            ["with.expected_version"],
        ),
        (
            "state.set",
            {"key": "k", "value": 1, "expected_version": 1.5},
            ["with.expected_version", "1.5"],
        ),
        (
            "state.set",
            {"key": "k", "value": 1, "expected_version": True},
            ["with.expected_version"],
        ),
        (
            "state.set",
            {"key": "k", "value": 1, "expected_version": " 7"},
            ["with.expected_version"],
        ),
        (
            "state.set",
            {"key": "k", "value": 1, "create_only": "yes"},
            ["with.create_only", '"yes"'],
        ),
        ("state.set", {"key": "k", "value": 1, "create_only": 1}, ["with.create_only"]),
        ("state.set", {"key": "k", "value": 1, "ttl": "soon"}, ["with.ttl", '"soon"']),
        ("state.set", {"key": "k", "value": 1, "ttl": 0}, ["with.ttl"]),
        ("state.set", {"key": "k", "value": 1, "fencing": "nocolon"}, ["with.fencing"]),
        ("state.set", {"key": 123, "value": 1}, ["with.key", "123", "a number"]),
        ("state.set", {"key": "a//b", "value": 1}, ["with.key", '"a//b"']),
        ("state.get", {"key": "k", "required": "True "}, ["with.required"]),
        ("state.get", {"key": "k", "version": "0"}, ["with.version"]),
        ("state.diff", {"key": "k", "value": 1, "update": "no"}, ["with.update"]),
        ("state.list", {"limit": "-1"}, ["with.limit"]),
        ("state.list", {"limit": "ten"}, ["with.limit"]),
        ("state.list", {"include_values": "1"}, ["with.include_values"]),
        ("state.list", {"prefix": ["a"]}, ["with.prefix", "an array"]),
        ("state.list", {"after": "a//b"}, ["with.after"]),
        ("state.history", {"key": "k", "limit": 2.0}, ["with.limit"]),
        ("state.rollback", {"key": "k", "to_version": "v1"}, ["with.to_version"]),
        ("state.update", {"key": "k"}, ["with.jq", "with.merge", "with.patch"]),
        ("state.update", {"key": "k", "jq": ".", "merge": {}}, ["with.jq"]),
        ("state.update", {"key": "k", "patch": "not json"}, ["with.patch"]),
        ("state.update", {"key": "k", "patch": {"op": "add"}}, ["with.patch", "an object"]),
        ("state.txn", {"ops": {"op": "set"}}, ["with.ops", "an object"]),
        (
            "state.txn",
            {"ops": [{"op": "put", "key": "a"}]},
            ["with.ops", "transaction operation 0"],
        ),
        (
            "state.txn",
            {"ops": [{"op": "set", "key": "a", "value": 1, "expected_version": "x"}]},
            ["with.ops[0].expected_version"],
        ),
        (
            "state.txn",
            {"ops": [{"op": "set", "key": "a", "value": 1, "create_only": "maybe"}]},
            ["with.ops[0].create_only"],
        ),
        ("state.get", {"key": "k", "scope": "custom"}, ["with.namespace"]),
        ("state.get", {"key": "k", "scope": "planet"}, ["with.scope", '"planet"']),
        ("state.get", {"key": "k", "scope": "dag", "namespace": "a/b"}, ["with.namespace"]),
        ("lease.acquire", {"name": "", "ttl": 5}, ["with.name"]),
        ("lease.acquire", {"name": "L", "ttl": "-3"}, ["with.ttl"]),
        ("lease.renew", {"name": "L", "ttl": 5, "token": "0"}, ["with.token"]),
    ],
)
def test_bad_fields_exit_2_naming_the_field(
    store: StateStore, action: str, fields: dict[str, Any], words: list[str]
) -> None:
    failed(store, action, fields, 2, *words)
    assert json.loads(ok(store, "state.list", {}))["entries"] == []  # nothing written


def test_unknown_fields_and_actions_exit_2_with_a_suggestion(store: StateStore) -> None:
    error = failed(store, "state.set", {"key": "k", "value": 1, "expected_versoin": 1}, 2)
    assert "with.expected_versoin" in error and "did you mean with.expected_version?" in error
    error = failed(store, "state.rollback", {"key": "k", "to-version": 1}, 2)
    assert "did you mean with.to_version?" in error
    # A field of another action is unknown here (diff has no fencing, get no value).
    failed(store, "state.diff", {"key": "k", "value": 1, "fencing": "L:1"}, 2, "with.fencing")
    failed(store, "state.get", {"key": "k", "value": 1}, 2, "with.value")
    failed(store, "lease.acquire", {"name": "L", "ttl": 5, "holder": "me"}, 2, "with.holder")
    error = failed(store, "state.gett", {"key": "k"}, 2, '"state.gett"')
    assert "did you mean state.get?" in error
    failed(store, "state.fetch", {}, 2, "unknown action")
    failed(store, DAG_RUN, {"dag": "child"}, 2, DAG_RUN)
    # Required fields.
    failed(store, "state.set", {"key": "k"}, 2, "with.value")
    failed(store, "state.get", {}, 2, "with.key")
    failed(store, "state.rollback", {"key": "k"}, 2, "with.to_version")
    failed(store, "lease.acquire", {"name": "L"}, 2, "with.ttl")
    failed(store, "state.txn", {}, 2, "with.ops")
    # A with that is no mapping.
    failed(store, "state.get", ["key"], 2, "with")  # type: ignore[arg-type]


def test_action_tables_agree() -> None:
    """Every action the loader accepts runs here (dag.run is the executor's), and each
    required field is one the action takes."""
    assert ACTIONS == set(ACTION_FIELDS) == set(REQUIRED_FIELDS)
    for action, required in REQUIRED_FIELDS.items():
        assert required <= ACTION_FIELDS[action], action
    for action in ACTIONS - {DAG_RUN}:
        result = run_action(None, action, {"no_such_field": 1}, holder=RUN)  # type: ignore[arg-type]
        assert result.exit_code == 2 and "with.no_such_field" in str(result.error)


# --- Dagu's strings --------------------------------------------------------------------


def test_rendered_strings_are_read_as_integers_and_booleans(store: StateStore) -> None:
    """A reference renders to text: ``"7"`` is 7, ``"true"`` is true, as Dagu reads them."""
    for i in range(7):
        ok(store, "state.set", {"key": "counters/jobs", "value": {"count": i}})
    # The seed's optimistic write: expected_version: "${STATE.version}".
    state = json.loads(ok(store, "state.get", {"key": "counters/jobs", "required": "true"}))
    assert state["version"] == 7
    written = ok(
        store,
        "state.set",
        f"""
        key: counters/jobs
        expected_version: "{state["version"]}"
        value:
          count: "8"
        """,
    )
    assert json.loads(written)["version"] == 8
    # Strings stay strings in values (Dagu keeps no JSON type for "${X}").
    assert json.loads(ok(store, "state.get", {"key": "counters/jobs"}))["value"] == {"count": "8"}
    assert json.loads(ok(store, "state.get", {"key": "counters/jobs", "version": "7"}))[
        "value"
    ] == {"count": 6}
    listed = json.loads(ok(store, "state.list", {"limit": "1", "include_values": "true"}))
    assert listed["entries"][0]["value"] == {"count": "8"}
    history = json.loads(ok(store, "state.history", {"key": "counters/jobs", "limit": "2"}))
    assert [v["version"] for v in history["versions"]] == [8, 7]
    diff = json.loads(
        ok(store, "state.diff", {"key": "counters/jobs", "value": 0, "update": "false"})
    )
    assert diff["changed"] is True and diff["version"] == 8
    rolled = json.loads(ok(store, "state.rollback", {"key": "counters/jobs", "to_version": "1"}))
    assert rolled["version"] == 9 and rolled["value"] == {"count": 0}
    expiring = json.loads(ok(store, "state.set", {"key": "tmp", "value": 1, "ttl": "1.5"}))
    assert expiring["version"] == 1
    assert "expiresAt" in json.loads(ok(store, "state.get", {"key": "tmp"}))
    # A null field is no field (YAML ``expected_version: ~``).
    ok(store, "state.set", {"key": "tmp", "value": 2, "expected_version": None, "ttl": None})


def test_txn_reads_rendered_strings_and_json_text(store: StateStore) -> None:
    ok(store, "state.set", {"key": "a", "value": 1})
    out = json.loads(
        ok(
            store,
            "state.txn",
            """
            ops:
              - {op: set, key: a, value: 2, expected_version: "1"}
              - {op: set, key: b, value: x, create_only: "true"}
            """,
        )
    )
    assert [r["version"] for r in out["results"]] == [2, 1]
    # ops as JSON text: a previous step's output, rendered.
    ops = (
        '[{"op": "delete", "key": "b", "expected_version": 1}, '
        '{"op": "set", "key": "c", "value": 1.50}]'
    )
    out = json.loads(ok(store, "state.txn", {"ops": ops}))
    assert out["results"][0]["deleted"] is True
    assert json.loads(ok(store, "state.get", {"key": "c"}))["value"] == 1.50
    # A failed guard: exit 4, nothing written, the operation named.
    error = failed(
        store,
        "state.txn",
        {
            "ops": [
                {"op": "set", "key": "d", "value": 1},
                {"op": "delete", "key": "a", "expected_version": "1"},
            ]
        },
        4,
        "transaction operation 1",
        '"a"',
    )
    assert "nothing was written" in error
    assert json.loads(ok(store, "state.get", {"key": "d"}))["found"] is False


# --- the run context -------------------------------------------------------------------


def test_writes_record_the_steps_run_context(store: StateStore) -> None:
    step = store.with_context(
        RunContext(dag=DAG, root_dag="nightly", run_id="run-7", step="save_cursor")
    )
    ok(step, "state.set", {"key": "cursors/feed", "value": {"last_id": 1}})
    ok(step, "state.update", {"key": "cursors/feed", "merge": {"last_id": 2}})
    ok(step, "state.diff", {"key": "cursors/feed", "value": {"last_id": 3}})
    ok(step, "state.rollback", {"key": "cursors/feed", "to_version": 1})
    ok(step, "state.txn", {"ops": [{"op": "set", "key": "cursors/feed", "value": 5}]})
    ok(step, "state.delete", {"key": "cursors/feed"})
    versions = store.history("cursors/feed", scope="dag", namespace=DAG).versions
    assert len(versions) == 6
    expected = UpdatedBy(dag_name=DAG, dag_run_id="run-7", step_name="save_cursor")
    assert {v.updated_by for v in versions} == {expected}
    # The same through the history action's own output.
    history = json.loads(ok(step, "state.history", {"key": "cursors/feed", "limit": 1}))
    assert history["versions"][0]["updatedBy"] == {
        "dagName": DAG,
        "dagRunId": "run-7",
        "stepName": "save_cursor",
    }
    assert history["versions"][0]["deleted"] is True


def test_scopes_default_from_the_run_context(store: StateStore) -> None:
    for scope, namespace in (("dag", DAG), ("root_dag", "nightly"), ("run", RUN), ("global", "_")):
        out = json.loads(ok(store, "state.set", {"key": "k", "value": scope, "scope": scope}))
        assert (out["scope"], out["namespace"]) == (scope, namespace)
    out = json.loads(ok(store, "state.get", {"key": "k", "scope": "dag", "namespace": "upstream"}))
    assert (out["namespace"], out["found"]) == ("upstream", False)
    out = json.loads(
        ok(store, "state.set", {"key": "k", "value": 1, "scope": "custom", "namespace": "feed-v1"})
    )
    assert (out["scope"], out["namespace"]) == ("custom", "feed-v1")


# --- concurrency -----------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-backend", "store-per-run"])
def test_concurrent_updates_from_8_runs_lose_nothing(tmp_path: Path, shared: bool) -> None:
    """8 runs increment one counter with state.update at once: every step succeeds and
    the counter ends exact."""
    db = tmp_path / "state.db"
    runs, rounds = 8, 5
    results: list[ActionResult] = []
    lock = threading.Lock()
    start = threading.Barrier(runs)
    with open_sqlite(db) as base:

        def run(index: int) -> None:
            context = RunContext(dag=DAG, root_dag=DAG, run_id=f"run-{index}", step="inc")
            own = base.with_context(context) if shared else open_sqlite(db, context)
            try:
                start.wait()
                for _ in range(rounds):
                    result = run_action(
                        own,
                        "state.update",
                        {"key": "counters/runs", "jq": ".n += 1", "default": {"n": 0}},
                        holder=context.run_id or "",
                    )
                    with lock:
                        results.append(result)
            finally:
                if not shared:
                    own.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.exit_code for r in results] == [0] * runs * rounds, [r.error for r in results]
        final = json.loads(ok(base, "state.get", {"key": "counters/runs"}))
        assert final["value"] == {"n": runs * rounds}
        assert final["version"] == runs * rounds
        written = sorted(json.loads(r.output)["value"]["n"] for r in results)
        assert written == list(range(1, runs * rounds + 1))  # each increment seen once


def _optimistic_round(base: StateStore, runs: list[int]) -> dict[int, int]:
    """One round of the seed's read-then-guarded-write steps, the runs in parallel (all
    read before any writes): run → the set step's exit code."""
    barrier = threading.Barrier(len(runs))
    outcome: dict[int, int] = {}

    def run(index: int) -> None:
        step = base.with_context(RunContext(dag=DAG, run_id=f"run-{index}", step="save"))
        state = json.loads(ok(step, "state.get", {"key": "counters/jobs", "required": "true"}))
        barrier.wait()
        result = run_action(
            step,
            "state.set",
            {
                "key": "counters/jobs",
                "expected_version": str(state["version"]),
                "value": {"count": state["value"]["count"] + 1},
            },
            holder=f"run-{index}",
        )
        outcome[index] = result.exit_code

    threads = [threading.Thread(target=run, args=(i,)) for i in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def test_optimistic_get_then_set_from_8_runs_conflicts_or_increments(tmp_path: Path) -> None:
    """The seed's get required + set expected_version, 8 runs at once: a run either
    increments once or fails with exit 4 having written nothing; rerunning the failed
    ones ends at exactly 8."""
    with open_sqlite(tmp_path / "state.db") as base:
        ok(base, "state.set", {"key": "counters/jobs", "value": {"count": 0}})
        pending = list(range(8))
        conflicts = 0
        while pending:
            outcome = _optimistic_round(base, pending)
            assert set(outcome.values()) <= {0, 4}, outcome
            assert list(outcome.values()).count(0) == 1  # one wins each round
            pending = [i for i, code in outcome.items() if code == 4]
            conflicts += len(pending)
        assert conflicts == 7 + 6 + 5 + 4 + 3 + 2 + 1
        final = json.loads(ok(base, "state.get", {"key": "counters/jobs"}))
        assert final["value"] == {"count": 8}
        assert final["version"] == 9


# --- leases ----------------------------------------------------------------------------


def test_lease_steps_hold_the_lease_as_the_run(store: StateStore) -> None:
    acquired = json.loads(ok(store, "lease.acquire", {"name": "nightly-import", "ttl": "30"}))
    assert acquired["operation"] == "lease" and acquired["action"] == "acquire"
    assert (acquired["holder"], acquired["token"]) == (RUN, 1)
    # Another run cannot take it while it is live: a conflict.
    other = store.with_context(RunContext(dag=DAG, run_id="run-2", step="lock"))
    result = run_action(
        other, "lease.acquire", {"name": "nightly-import", "ttl": 30}, holder="run-2"
    )
    assert result.exit_code == 4 and RUN in str(result.error)
    # Nor renew it (no token: the lease on that name, which is not run-2's).
    result = run_action(other, "lease.renew", {"name": "nightly-import", "ttl": 30}, holder="run-2")
    assert result.exit_code == 4, result
    # Its own run renews it by name alone, or with the token as rendered text.
    renewed = json.loads(ok(store, "lease.renew", {"name": "nightly-import", "ttl": 60}))
    assert (renewed["action"], renewed["holder"], renewed["token"]) == ("renew", RUN, 1)
    assert renewed["expiresAt"] > acquired["expiresAt"]
    again = json.loads(
        ok(store, "lease.renew", {"name": "nightly-import", "ttl": "60", "token": "1"})
    )
    assert again["token"] == 1
    failed(store, "lease.renew", {"name": "nightly-import", "ttl": 60, "token": 2}, 4)
    # Writes fenced by it: LEASE:TOKEN as rendered text, or {lease, token}.
    ok(store, "state.set", {"key": "cursors/feed", "value": 1, "fencing": "nightly-import:1"})
    ok(
        store,
        "state.update",
        {
            "key": "cursors/feed",
            "jq": ". + 1",
            "fencing": {"lease": "nightly-import", "token": "1"},
        },
    )
    # Another run's release is not a release of ours.
    released = run_action(other, "lease.release", {"name": "nightly-import"}, holder="run-2")
    assert released.exit_code == 0 and json.loads(released.output)["released"] is False
    done = json.loads(ok(store, "lease.release", {"name": "nightly-import"}))
    assert (done["action"], done["holder"], done["released"]) == ("release", RUN, True)
    # Now run-2 takes it (token 2), and writes fenced by token 1 are refused.
    taken = run_action(
        other, "lease.acquire", {"name": "nightly-import", "ttl": 30}, holder="run-2"
    )
    assert taken.exit_code == 0 and json.loads(taken.output)["token"] == 2
    failed(
        store, "state.set", {"key": "cursors/feed", "value": 9, "fencing": "nightly-import:1"}, 4
    )
    failed(
        store,
        "state.txn",
        {"ops": [{"op": "set", "key": "x", "value": 1}], "fencing": "nightly-import:1"},
        4,
    )
    failed(
        store,
        "state.txn",
        {"ops": [{"op": "set", "key": "x", "value": 1, "fencing": "nightly-import:1"}]},
        4,
    )
    assert json.loads(ok(store, "state.get", {"key": "cursors/feed"}))["value"] == 2
    failed(store, "lease.release", {"name": "never-taken"}, 3, '"never-taken"')


def test_yaml_values_json_has_no_type_for_are_named(store: StateStore) -> None:
    """An unquoted date in a DAG file is YAML's, not JSON's: exit 2, naming where."""
    failed(store, "state.set", "{key: 2024-01-01, value: 1}", 2, "with.key", "a YAML date")
    failed(store, "state.set", "{key: k, value: {day: 2024-01-02}}", 2, "with.value.day", "quote")
    failed(store, "state.update", "{key: k, jq: ., default: [2024-01-02]}", 2, "with.default[0]")
    failed(
        store,
        "state.txn",
        "{ops: [{op: set, key: a, value: {at: 2024-01-01T10:00:00Z}}]}",
        2,
        "with.ops[0].value.at",
        "a YAML timestamp",
    )
    # Quoted, it is a string.
    out = json.loads(ok(store, "state.set", "{key: k, value: {day: '2024-01-02'}}"))
    assert out["created"] is True
