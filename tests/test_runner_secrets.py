"""Secrets in the Dagu form's runs (issue #16): a run's masker keeps the secret values it
read out of its record, its logs and its display, and a state action gives a step the
real value only when it asks (``with: {reveal: true}``).

Real runs on a SQLite store whose ``dag/*`` and ``root_dag/*`` keyspaces are secret
(sealed under a key from ``STATEBOX_SECRET_KEY``): through the real ``statebox``
executable, and through :func:`statebox.runner.executor.run_dag` in-process. What is
checked: the store's files byte for byte, ``statebox runs show`` / ``runs log`` /
``runs``, the step log files, and what ``statebox run`` printed.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from statebox import RunContext, StateStore, open_store
from statebox.backends.sealing.keyring import generate_key
from statebox.runner.display import PlainDisplay
from statebox.runner.executor import RunOptions, run_dag
from statebox.runner.loader import load_dag
from statebox.runner.records import RunRecord, RunRecords

from .test_cli import CONTEXT_VARIABLES, environment_without_context

pytest.importorskip("cryptography")

STATEBOX = str(Path(sys.executable).parent / "statebox")
SECRET = "tok-SECRET-456"
VALUE = {"user": "svc", "password": SECRET}


class SecretEnv:
    """A directory of DAG files and a SQLite store whose ``dag/*`` and ``root_dag/*``
    keyspaces are secret."""

    def __init__(self, path: Path, base_env: dict[str, str]) -> None:
        self.dir = path
        self.home = path / "home"
        self.url = f"sqlite:///{path / 'state.db'}"
        self.env = {
            **base_env,
            "STATEBOX_STORE": self.url,
            "STATEBOX_HOME": str(self.home),
            "STATEBOX_SECRET_NAMESPACES": "dag/*, root_dag/*",
            "STATEBOX_SECRET_KEY": generate_key(),
        }

    def write(self, name: str, text: str) -> Path:
        file = self.dir / name
        file.write_text(textwrap.dedent(text).lstrip())
        return file

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STATEBOX, *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    @contextmanager
    def store(self, **context: str) -> Iterator[StateStore]:
        with open_store(self.url, context=RunContext(**context)) as store:
            yield store

    def run(self, name: str, **options: Any) -> RunRecord:
        dag = load_dag(str(self.dir / name))
        with self.store() as store:
            return run_dag(dag, store, RunOptions(store_url=self.url, **options))

    def stored_bytes(self) -> bytes:
        """Every byte of the SQLite store: the database, its WAL and shared memory."""
        return b"".join(p.read_bytes() for p in sorted(self.dir.glob("state.db*")))

    def saved(self, run_id: str) -> Any:
        """The run record as saved in the store (its JSON, read back)."""
        with self.store() as store:
            got = store.get(run_id, scope="statebox", namespace="runs")
        assert got.found
        return got.value

    def log_files(self, run_id: str) -> dict[str, str]:
        folder = self.home / "runs" / run_id
        return {p.name: p.read_text() for p in folder.iterdir() if p.suffix in (".out", ".err")}


@pytest.fixture
def env(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> SecretEnv:
    made = SecretEnv(tmp_path, environment_without_context(tmp_path_factory))
    # In-process runs read this process's environment, as the CLI reads its own.
    for name in CONTEXT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("PATH", "STATEBOX_HOME", "STATEBOX_SECRET_NAMESPACES", "STATEBOX_SECRET_KEY"):
        monkeypatch.setenv(name, made.env[name])
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
    return made


def seed(env: SecretEnv, dag: str, key: str = "tok", value: Any = VALUE) -> None:
    done = env.cli("set", key, json.dumps(value), "--scope", "dag", "--namespace", dag)
    assert done.returncode == 0, done.stderr


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, text


READER = """
    name: reader
    steps:
      - id: TOK
        action: state.get
        with: {key: tok, reveal: true}
        output: TOK
      - id: use
        run: |
          printf '%s' "${TOK.value.password}" > revealed.txt
          echo "pw=${TOK.value.password}"
          echo "to stderr ${TOK.value.password}" >&2
        output: OUT
        depends: TOK
      - id: PLAIN
        action: state.get
        with: {key: tok}
        output: PLAIN
      - id: use_plain
        run: printf '%s' "${PLAIN.value}" > masked.txt
        depends: PLAIN
      - id: fails
        run: |
          echo "cannot log in as ${TOK.value.password}" >&2
          exit 3
        continue_on: {failure: true}
        depends: TOK
"""


def test_reveal_gives_the_step_the_value_and_nothing_recorded_holds_it(env: SecretEnv) -> None:
    seed(env, "reader")
    env.write("reader.yaml", READER)
    ran = env.cli("run", "reader.yaml")
    assert ran.returncode == 0, ran.stderr
    # The step that asked got the real value; the one that did not got the mask.
    assert (env.dir / "revealed.txt").read_text() == SECRET
    assert (env.dir / "masked.txt").read_text() == "***"
    listed = env.cli("runs")
    run_id = json.loads(listed.stdout)["runs"][0]["run_id"]
    shown = env.cli("runs", "show", run_id)
    logs = [env.cli("runs", "log", run_id, "use", *extra).stdout for extra in ((), ("--stderr",))]
    no_secret(ran.stdout, ran.stderr, listed.stdout, shown.stdout, *logs)
    no_secret(*env.log_files(run_id).values())
    assert SECRET.encode() not in env.stored_bytes()
    record = json.loads(shown.stdout)
    steps = {s["name"]: s for s in record["steps"]}
    # The revealing action's recorded output is the masked line, as without reveal.
    tok = json.loads(steps["TOK"]["output"])
    assert (tok["value"], tok["masked"]) == ("***", True)
    assert steps["TOK"]["output"] == steps["PLAIN"]["output"]
    assert steps["use"]["output"] == "pw=***"
    assert logs == ["pw=***\n", "to stderr ***\n"]
    assert steps["fails"]["status"] == "failed"
    assert steps["fails"]["error"] == "exit code 3: cannot log in as ***"
    saved = env.saved(run_id)  # what runs show printed is what the store holds
    assert [(s["output"], s["error"]) for s in saved["steps"]] == [
        (s["output"], s["error"]) for s in record["steps"]
    ]


def test_without_reveal_the_step_gets_the_mask(env: SecretEnv) -> None:
    seed(env, "plain", "tok", SECRET)
    env.write(
        "plain.yaml",
        """
        name: plain
        steps:
          - id: TOK
            action: state.get
            with: {key: tok, reveal: false}
            output: TOK
          - run: printf '%s|%s' "${TOK.value}" "${TOK.masked}" > got.txt
            depends: TOK
        """,
    )
    record = env.run("plain.yaml")
    assert record.status == "succeeded"
    assert (env.dir / "got.txt").read_text() == "***|true"


def test_reveal_must_be_true_or_false_and_only_where_values_are_printed(env: SecretEnv) -> None:
    seed(env, "bad")
    env.write(
        "bad.yaml",
        """
        name: bad
        steps:
          - id: TOK
            action: state.get
            with: {key: tok, reveal: maybe}
        """,
    )
    record = env.run("bad.yaml")
    assert (record.steps[0].exit_code, record.steps[0].error) == (
        2,
        'invalid with.reveal "maybe": must be true or false',
    )
    env.write(
        "set.yaml",
        """
        name: set
        steps:
          - action: state.set
            with: {key: k, value: 1, reveal: true}
        """,
    )
    checked = env.cli("validate", "set.yaml")
    assert checked.returncode == 2
    assert "unknown field with.reveal for state.set" in checked.stderr


def test_a_sub_dag_shares_the_masker_and_the_display_is_masked(env: SecretEnv) -> None:
    seed(env, "parent")
    env.write(
        "parent.yaml",
        """
        name: parent
        steps:
          - id: child
            action: dag.run
            with: {dag: child}
            output: CHILD
          - id: after
            run: echo "child said ${CHILD.outputs.PW}"
            output: AFTER
            depends: child
          - id: complain
            run: |
              echo "refused ${CHILD.outputs.PW}" >&2
              exit 1
            continue_on: {failure: true}
            depends: child
        """,
    )
    env.write(
        "child.yaml",
        """
        name: child
        steps:
          - id: read
            action: state.get
            with: {scope: root_dag, key: tok, reveal: true}
            output: TOK
          - id: say
            run: |
              echo "${TOK.value.password}"
              echo "oops ${TOK.value.password}" >&2
              exit 1
            continue_on: {failure: true}
            output: PW
            depends: read
        """,
    )
    with env.store() as store:
        store.set("tok", VALUE, scope="root_dag", namespace="parent")
    shown = io.StringIO()
    record = env.run("parent.yaml", display=PlainDisplay(shown))
    assert record.status == "partially_succeeded"
    # The run's own record (what run_dag returns) holds what its steps saw...
    assert next(s for s in record.steps if s.name == "after").output == f"child said {SECRET}"
    # ... what it saved, the child's record and the display do not.
    child_id = next(s for s in record.steps if s.name == "child").child_run_id
    assert child_id is not None
    saved = json.dumps([env.saved(record.run_id), env.saved(child_id)])
    no_secret(saved, shown.getvalue())
    assert "child said ***" in saved
    assert "oops ***" in saved  # the child's failed step's error
    assert "refused ***" in shown.getvalue()  # a failed step's message, on the display
    assert SECRET.encode() not in env.stored_bytes()


def test_a_value_written_to_a_secret_keyspace_is_masked_from_then_on(env: SecretEnv) -> None:
    env.write(
        "mint.yaml",
        """
        name: mint
        steps:
          - id: make
            run: echo gen-TOKEN-789
            output: NEW
          - id: keep
            action: state.set
            with: {key: minted, value: {token: "${NEW}"}}
            depends: make
          - id: later
            run: echo "minted ${NEW}"
            depends: keep
        """,
    )
    record = env.run("mint.yaml")
    assert record.status == "succeeded"
    saved = json.dumps(env.saved(record.run_id))
    assert "gen-TOKEN-789" not in saved
    assert '"output": "***"' in saved
    with env.store() as store:
        assert RunRecords(store).log(record.run_id, "later") == "minted ***\n"
        assert store.get("minted", scope="dag", namespace="mint").value == {
            "token": "gen-TOKEN-789"
        }


def test_a_run_that_reads_no_secret_records_its_values(env: SecretEnv) -> None:
    with env.store() as store:
        store.set("k", {"password": SECRET}, scope="global")  # not secret: not masked
    env.write(
        "open.yaml",
        """
        name: open
        steps:
          - id: K
            action: state.get
            with: {scope: global, key: k}
            output: K
          - run: echo "${K.value.password}"
            output: OUT
            depends: K
        """,
    )
    record = env.run("open.yaml")
    saved = env.saved(record.run_id)
    assert [s["output"] for s in saved["steps"]][1] == SECRET
