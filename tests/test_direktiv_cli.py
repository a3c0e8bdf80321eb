"""The two forms behind one command line: ``statebox run`` / ``validate`` / ``runs`` /
``schedule`` tell a Direktiv workflow (``states:``) from a DAG (``steps:``) by the file,
``--input`` gives a workflow its instance input as Direktiv wraps it, and a stop signal
aborts an instance. Real executables on real SQLite files."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from statebox.runner.forms import detect_form

STATEBOX = Path(sys.executable).parent / "statebox"

#: A workflow whose output is its input: one noop state.
ECHO = """
states:
- id: echo
  type: noop
"""

DAG = """
steps:
  - id: a
    run: echo hi
"""


class Cli:
    def __init__(self, root: Path) -> None:
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEBOX_", "DAG_"))}
        env["STATEBOX_STORE"] = f"sqlite:///{root / 'state.db'}"
        env["STATEBOX_HOME"] = str(root / "home")
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env

    def __call__(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(STATEBOX), *args],
            cwd=self.root,
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=120,
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    def write(self, name: str, text: str | bytes) -> str:
        path = self.root / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return name

    def output(self, *args: str, stdin: bytes | None = None) -> Any:
        """Run ECHO with ``args``; the instance's final data."""
        run_id = str(uuid.uuid4())
        done = self("run", self.write("echo.yaml", ECHO), "--run-id", run_id, *args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        record = json.loads(self("runs", "show", run_id).stdout)
        assert record["status"] == "succeeded"
        return record["output"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


# -- the form, from the file ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("states:\n- id: a\n  type: noop\n", "direktiv"),
        ("{states: [{id: a, type: noop}]}\n", "direktiv"),  # flow style
        ("description: x\nstates: []\n", "direktiv"),
        ("steps:\n  - id: a\n    run: 'true'\n", "dagu"),
        ("states: []\nsteps: []\n", "dagu"),  # both: the DAG loader says what is wrong
        ("name: x\n", "dagu"),
        ("- states\n", "dagu"),  # no mapping
        ("states: [a\n", "dagu"),  # a syntax error: the DAG loader reports it
        ("states: []\n---\nsteps: []\n", "dagu"),  # two documents
        ("", "dagu"),
    ],
)
def test_the_form_is_read_from_the_top_level_keys(tmp_path: Path, text: str, form: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert detect_form(str(path)) == form


def test_a_file_that_cannot_be_read_is_left_to_the_dag_loader(tmp_path: Path) -> None:
    assert detect_form(str(tmp_path / "missing.yaml")) == "dagu"
    (tmp_path / "latin1.yaml").write_bytes(b"states: [\xe9]\n")
    assert detect_form(str(tmp_path / "latin1.yaml")) == "dagu"


def test_the_forms_module_loads_nothing_until_called() -> None:
    """``statebox get`` must stay fast: the runner's commands are entry points, and the
    form's detection loads neither YAML nor the Direktiv engine on import."""
    code = (
        "import sys, statebox.runner.forms\n"
        "heavy = [m for m in sys.modules if m == 'yaml' or m.startswith("
        "('statebox.runner.direktiv', 'statebox.runner.executor', 'jsonschema'))]\n"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- --input ----------------------------------------------------------------------------


def test_without_input_the_data_is_an_empty_object(cli: Cli) -> None:
    assert cli.output() == {}


def test_an_object_is_the_data_as_it_is(cli: Cli) -> None:
    assert cli.output("--input", '{"name": "Ada", "n": [1, 2.5]}') == {
        "name": "Ada",
        "n": [1, 2.5],
    }


@pytest.mark.parametrize("value", [[1, 2], "text", 7, None, True])
def test_other_json_is_wrapped_in_input(cli: Cli, value: Any) -> None:
    assert cli.output("--input", json.dumps(value)) == {"input": value}


def test_input_from_a_file_and_from_standard_input(cli: Cli) -> None:
    cli.write("in.json", '{"from": "file"}')
    assert cli.output("--input", "@in.json") == {"from": "file"}
    assert cli.output("--input", "-", stdin=b'{"from": "stdin"}') == {"from": "stdin"}


@pytest.mark.parametrize(
    "data",
    [b"hello world", b"\x00\xff\xfe binary", b"NaN", b'{"a": Infinity}', b"", b"{1: 2}"],
)
def test_bytes_that_are_not_json_are_base64_in_input(cli: Cli, data: bytes) -> None:
    """As Direktiv wraps an input its JSON decoder refuses (Go's: no NaN, no Infinity)."""
    cli.write("raw.bin", data)
    assert cli.output("--input", "@raw.bin") == {"input": base64.b64encode(data).decode()}
    assert cli.output("--input", "-", stdin=data) == {"input": base64.b64encode(data).decode()}


def test_input_problems_exit_2(cli: Cli) -> None:
    echo = cli.write("echo.yaml", ECHO)
    missing = cli("run", echo, "--input", "@nope.json")
    assert missing.returncode == 2 and "nope.json" in missing.stderr
    deep = cli("run", echo, "--input", "[" * 300 + "]" * 300)
    assert deep.returncode == 2 and "--input" in deep.stderr


def test_input_over_the_binary_limit_is_refused_naming_it(cli: Cli) -> None:
    echo = cli.write("echo.yaml", ECHO)
    with open(cli.root / "huge.bin", "wb") as f:
        f.truncate(32 * 1_048_576 + 1)  # one byte over the store's binary value limit
    done = cli("run", echo, "--input", "@huge.bin")
    assert done.returncode == 2
    assert '--input: file "huge.bin" is larger than 33554432 bytes' in done.stderr
    assert json.loads(cli("runs").stdout)["runs"] == []  # it did not run


def test_read_input_is_bounded_for_each_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from statebox.core.errors import InvalidValueError
    from statebox.runner.cmd_run import read_input

    (tmp_path / "in.json").write_bytes(b'{"n": 12345}')
    assert read_input(f"@{tmp_path / 'in.json'}", limit=12) == {"n": 12345}
    for source in ("@" + str(tmp_path / "in.json"), "-", '{"n": 123456}'):
        stdin = io.TextIOWrapper(io.BytesIO(b'{"n": 123456}'))
        monkeypatch.setattr(sys, "stdin", stdin)
        with pytest.raises(InvalidValueError, match="larger than 11 bytes"):
            read_input(source, limit=11)


def test_params_and_input_belong_to_one_form_each(cli: Cli) -> None:
    echo = cli.write("echo.yaml", ECHO)
    dag = cli.write("dag.yaml", DAG)
    params = cli("run", echo, "A=1")
    assert params.returncode == 2
    assert "Direktiv workflow" in params.stderr and "--input" in params.stderr
    given = cli("run", dag, "--input", "{}")
    assert given.returncode == 2
    assert "DAG" in given.stderr and "--input" in given.stderr
    assert json.loads(cli("runs").stdout)["runs"] == []  # neither ran


def test_a_missing_file_exits_3(cli: Cli) -> None:
    done = cli("run", "nope.yaml")
    assert done.returncode == 3 and "nope.yaml" in done.stderr


# -- one run record, one list -------------------------------------------------------------


def test_runs_lists_both_forms_and_shows_a_workflows_steps(cli: Cli) -> None:
    assert cli("run", cli.write("dag.yaml", DAG)).returncode == 0
    wf = cli.write(
        "wf.yaml",
        """
        states:
        - id: first
          type: noop
          log: 'starting with jq(.n)'
          transform: 'jq(.n += 1)'
          transition: second
        - id: second
          type: noop
        """,
    )
    done = cli("run", wf, "--input", '{"n": 1}', "--run-id", "wf-run-1")
    assert done.returncode == 0, done.stderr
    assert "step first" in done.stdout and "step second" in done.stdout  # the display
    runs = json.loads(cli("runs").stdout)["runs"]
    assert sorted((r["dag"], r["status"]) for r in runs) == [
        ("dag", "succeeded"),
        ("wf", "succeeded"),
    ]
    record = json.loads(cli("runs", "show", "wf-run-1").stdout)
    assert record["input"] == {"n": 1} and record["output"] == {"n": 2}
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("first", "succeeded"),
        ("second", "succeeded"),
    ]
    assert "starting with 1" in cli("runs", "log", "wf-run-1", "first").stdout


@pytest.mark.parametrize("ending", ["succeeded", "failed"])
def test_an_oversized_input_still_gets_a_final_record(cli: Cli, ending: str) -> None:
    """600 KB of input (and so of output): the record keeps neither (each would take
    most of the store's 1 MiB value limit), says so, and is final."""
    wf = cli.write(
        "big.yaml",
        """
        states:
        - id: echo
          type: noop
        """
        if ending == "succeeded"
        else """
        states:
        - id: echo
          type: error
          error: my.error
          message: too big
        """,
    )
    cli.write("big.json", json.dumps({"blob": "a" * 600_000}))
    done = cli("run", wf, "--input", "@big.json", "--run-id", "big-1")
    assert done.returncode == (0 if ending == "succeeded" else 1), done.stderr
    shown = cli("runs", "show", "big-1")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == ending and record["finished_at"]
    for what in ("input", "output"):
        assert isinstance(record[what], str) and "more than the 65536" in record[what]
    assert json.loads(cli("runs").stdout)["runs"][0]["status"] == ending


def test_a_failed_instance_exits_1_with_its_error(cli: Cli) -> None:
    wf = cli.write(
        "fail.yaml",
        """
        states:
        - id: boom
          type: error
          error: my.error
          message: 'it broke: %s'
          args: ['jq(.why)']
        """,
    )
    done = cli("run", wf, "--input", '{"why": "because"}', "--run-id", "fail-1")
    assert done.returncode == 1
    record = json.loads(cli("runs", "show", "fail-1").stdout)
    assert record["status"] == "failed"
    assert record["error"] == "my.error: it broke: because"


def test_sigterm_aborts_an_instance(cli: Cli) -> None:
    wf = cli.write(
        "wait.yaml",
        """
        states:
        - id: wait
          type: delay
          duration: PT60S
        """,
    )
    proc = subprocess.Popen(
        [str(STATEBOX), "run", wf, "--run-id", "wait-1"],
        cwd=cli.root,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the delay state has started
        if "step wait running" in line:
            break
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 1
    assert time.monotonic() - started < 20
    assert json.loads(cli("runs", "show", "wait-1").stdout)["status"] == "aborted"


# -- validate, either form ------------------------------------------------------------------


def test_validate_checks_each_file_by_its_form(cli: Cli) -> None:
    good_dag = cli.write("dag.yaml", DAG)
    good_wf = cli.write("echo.yaml", ECHO)
    bad_dag = cli.write("bad-dag.yaml", "steps:\n  - id: a\n    runn: x\n")
    bad_wf = cli.write("bad-wf.yaml", "states:\n- id: a\n  type: noop\n  transition: b\n")
    done = cli("validate", good_dag, bad_wf, good_wf, bad_dag)
    assert done.returncode == 2
    assert done.stdout == "dag.yaml: ok\necho.yaml: ok\n"
    errors = done.stderr.splitlines()
    assert any(e.startswith("bad-wf.yaml:4:") and '"b"' in e for e in errors), errors
    assert any(e.startswith("bad-dag.yaml:3:") and "runn" in e for e in errors), errors


# -- schedule -------------------------------------------------------------------------------

SCHEDULED = """
start:
  type: scheduled
  cron: "* * * * * *"
states:
- id: get
  type: getter
  variables:
  - {key: ticks, scope: namespace}
  transform: 'jq(.var.ticks += 1)'
  transition: set
- id: set
  type: setter
  variables:
  - {key: ticks, scope: namespace, value: 'jq(.var.ticks)'}
"""


def test_schedule_runs_a_scheduled_workflow_beside_dags(cli: Cli) -> None:
    flows = cli.root / "flows"
    flows.mkdir()
    (flows / "ticker.yaml").write_text(textwrap.dedent(SCHEDULED).lstrip("\n"))
    (flows / "plain.yaml").write_text(textwrap.dedent(ECHO).lstrip("\n"))  # not scheduled
    proc = subprocess.Popen(
        [str(STATEBOX), "schedule", str(flows)],
        cwd=cli.root,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ran = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "succeeded" in line:
                ran.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ran.wait(30), (lines, proc.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    reader.join(5)
    assert code == 0
    assert lines[0].startswith("statebox schedule: 1 DAG(s): ticker (* * * * * *)"), lines
    ticks = json.loads(cli("get", "ticks", "--scope", "global").stdout)["value"]
    assert isinstance(ticks, int) and ticks >= 1
    runs = json.loads(cli("runs", "--dag", "ticker").stdout)["runs"]
    assert len(runs) == ticks and {r["status"] for r in runs} == {"succeeded"}


def test_schedule_with_nothing_scheduled_names_both_forms(cli: Cli) -> None:
    flows = cli.root / "flows"
    flows.mkdir()
    (flows / "plain.yaml").write_text(textwrap.dedent(ECHO).lstrip("\n"))
    done = cli("schedule", str(flows))
    assert done.returncode == 2
    assert "no DAG or workflow" in done.stderr and "has a schedule" in done.stderr
