"""Run records are shared: every machine that shares a PostgreSQL store or a server sees
the same runs (issue #14, "Run records").

A "machine" here is a process with its own working directory, ``HOME`` and
``STATEBOX_HOME``, so nothing local (a default SQLite file, a log directory) can carry a
run from one to the other: only the store can. One machine runs a small DAG with
``statebox run`` (a state step, then a ``run`` step whose own ``statebox`` calls reach
the store through the ``STATEBOX_STORE`` the runner gives it); another lists the run
with ``statebox runs``, ``runs show`` and ``runs log``. Through a real ``statebox
serve`` too, with a tokens file: a token without a grant on the reserved ``statebox``
scope is refused clearly, one with read on it sees the runs. And retention: a run of a
DAG with a tiny ``hist_retention_days`` is gone from every machine once it expires.
Real subprocesses, a real PostgreSQL, a real server; nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statebox.core.errors import NotFoundError, PermissionDeniedError

from .pg import fresh_schema_url
from .server_util import ServerProcess, running_server
from .test_cli import environment_without_context

STATEBOX = str(Path(sys.executable).parent / "statebox")

DAG = """\
name: shared
steps:
  - id: bump
    action: state.update
    output: COUNT
    with:
      key: counter
      jq: ". + 1"
      default: 0
  - id: hello
    run: |
      echo "hi from run ${COUNT.value}"
      statebox get counter --required >&2
      statebox set greeting '"set by the step"' >&2
    depends: bump
"""

RUNNER_SECRET = "runner-secret-0123456789"
WORKER_SECRET = "worker-secret-0123456789"
VIEWER_SECRET = "viewer-secret-0123456789"

TOKENS = f"""\
tokens:
  - name: runner
    secret: {RUNNER_SECRET}
    grants:
      - {{access: write}}
  - name: worker
    secret: {WORKER_SECRET}
    grants:
      - {{access: write, scope: dag, namespace: "*"}}
      - {{access: write, scope: root_dag, namespace: "*"}}
      - {{access: write, scope: run, namespace: "*"}}
      - {{access: write, scope: global, namespace: "*"}}
  - name: viewer
    secret: {VIEWER_SECRET}
    grants:
      - {{access: read, scope: statebox, namespace: "*"}}
"""


@dataclass
class Machine:
    """A process environment of its own: working directory, HOME, STATEBOX_HOME."""

    name: str
    cwd: Path
    env: dict[str, str]

    def statebox(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if token is not None:
            env["STATEBOX_TOKEN"] = token
        return subprocess.run(
            [STATEBOX, *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def json(self, *args: str, token: str | None = None) -> Any:
        done = self.statebox(*args, token=token)
        assert done.returncode == 0, f"{self.name}: statebox {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = environment_without_context(tmp_path_factory)
    env.pop("STATEBOX_TOKEN", None)
    return env


def machine(tmp_path: Path, name: str, base_env: dict[str, str], **env: str) -> Machine:
    root = tmp_path / name
    for sub in ("work", "home", "statebox-home"):
        (root / sub).mkdir(parents=True)
    return Machine(
        name,
        root / "work",
        {
            **base_env,
            "HOME": str(root / "home"),
            "STATEBOX_HOME": str(root / "statebox-home"),
            **env,
        },
    )


@pytest.fixture
def runner_machine(tmp_path: Path, base_env: dict[str, str]) -> Machine:
    """The machine that runs the DAG; its DAG file is in its own directory. It has no
    STATEBOX_STORE: the store is given with ``--store``, so a ``run`` step's own
    ``statebox`` calls reach it only through the STATEBOX_STORE the runner gives them."""
    m = machine(tmp_path, "runner", base_env)
    (m.cwd / "shared.yaml").write_text(DAG)
    return m


def run_dag(m: Machine, store: str, *, token: str | None = None, file: str = "shared.yaml") -> str:
    """``statebox run`` on ``m`` with ``--store``; the run id it printed."""
    done = m.statebox("run", file, "--store", store, token=token)
    assert done.returncode == 0, done.stdout + done.stderr
    started = [line.split() for line in done.stdout.splitlines() if line.endswith(" running")]
    run_id: str = started[0][3]  # "HH:MM:SS run DAG RUN_ID running"
    return run_id


def check_seen(viewer: Machine, run_id: str, *, token: str | None = None) -> None:
    """``viewer`` (its store from STATEBOX_STORE) sees the run, its steps, their output,
    and what the ``run`` step's own ``statebox`` calls did to the store."""
    runs = viewer.json("runs", token=token)["runs"]
    assert [(r["run_id"], r["dag"], r["status"]) for r in runs] == [(run_id, "shared", "succeeded")]
    assert runs[0]["finished_at"] is not None and runs[0]["duration"] >= 0

    shown = viewer.json("runs", "show", run_id, token=token)
    assert shown["run_id"] == run_id and shown["status"] == "succeeded"
    steps = {s["name"]: s for s in shown["steps"]}
    assert [s["name"] for s in shown["steps"]] == ["bump", "hello"]
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in steps.values())
    assert steps["hello"]["exit_code"] == 0
    assert json.loads(steps["bump"]["output"])["value"] == 1

    log = viewer.statebox("runs", "log", run_id, "hello", token=token)
    assert log.returncode == 0, log.stderr
    assert log.stdout == "hi from run 1\n"
    err = viewer.statebox("runs", "log", run_id, "hello", "--stderr", token=token)
    assert err.returncode == 0, err.stderr
    got, written = (json.loads(line) for line in err.stdout.splitlines())
    # The step's own CLI calls reached the same store, in the DAG's scope.
    assert (got["scope"], got["namespace"], got["key"], got["value"]) == (
        "dag",
        "shared",
        "counter",
        1,
    )
    assert (written["key"], written["version"]) == ("greeting", 1)
    bump = viewer.statebox("runs", "log", run_id, "bump", token=token)
    assert json.loads(bump.stdout)["operation"] == "update"


def check_greeting(viewer: Machine, run_id: str, *, token: str | None = None) -> None:
    """What the ``run`` step's ``statebox set`` wrote, with the run context the runner
    gave it, is in the shared store."""
    greeting = viewer.json("get", "greeting", "--dag", "shared", "--required", token=token)
    assert greeting["value"] == "set by the step"
    (version,) = viewer.json("history", "greeting", "--dag", "shared", token=token)["versions"]
    by = version["updatedBy"]
    assert (by["dagName"], by["dagRunId"], by["stepName"]) == ("shared", run_id, "hello")


# -- PostgreSQL ------------------------------------------------------------------------------


def test_a_run_on_a_postgres_store_is_seen_from_another_machine(
    tmp_path: Path, pg_server: str, base_env: dict[str, str], runner_machine: Machine
) -> None:
    with fresh_schema_url(pg_server) as url:
        run_id = run_dag(runner_machine, url)
        viewer = machine(tmp_path, "viewer", base_env, STATEBOX_STORE=url)
        check_seen(viewer, run_id)
        check_greeting(viewer, run_id)
        # Not a local copy: the viewer's own default store has no runs.
        alone = viewer.json("runs", "--store", f"sqlite:///{viewer.cwd / 'alone.db'}")
        assert alone == {"runs": []}


# -- a server --------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(f"sqlite:///{tmp_path / 'server.db'}", via_cli=True) as s:
        assert s.url.startswith("http://127.0.0.1:")
        yield s


def test_a_run_through_a_server_is_seen_from_another_machine(
    tmp_path: Path, server: ServerProcess, base_env: dict[str, str], runner_machine: Machine
) -> None:
    run_id = run_dag(runner_machine, server.url)
    viewer = machine(tmp_path, "viewer", base_env, STATEBOX_STORE=server.url)
    check_seen(viewer, run_id)
    check_greeting(viewer, run_id)


def test_a_token_sees_runs_only_with_a_grant_on_the_statebox_scope(
    tmp_path: Path, base_env: dict[str, str], runner_machine: Machine
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(TOKENS)
    with running_server(
        f"sqlite:///{tmp_path / 'server.db'}", via_cli=True, tokens=tokens
    ) as server:
        # A token with every grant but the statebox scope cannot even start a run: the
        # record could not be kept. It says so, and runs no step.
        refused = runner_machine.statebox(
            "run", "shared.yaml", "--store", server.url, token=WORKER_SECRET
        )
        assert refused.returncode == PermissionDeniedError.exit_code, refused.stderr
        assert 'token "worker" has no write grant on scope "statebox"' in refused.stderr

        run_id = run_dag(runner_machine, server.url, token=RUNNER_SECRET)
        viewer = machine(tmp_path, "viewer", base_env, STATEBOX_STORE=server.url)

        denied = viewer.statebox("runs", token=WORKER_SECRET)
        assert denied.returncode == PermissionDeniedError.exit_code == 1, denied.stderr
        assert denied.stdout == ""
        assert (
            'token "worker" has no read grant on scope "statebox", namespace "runs"'
            in denied.stderr
        )
        for args in (("runs", "show", run_id), ("runs", "log", run_id, "hello")):
            other = viewer.statebox(*args, token=WORKER_SECRET)
            assert other.returncode == PermissionDeniedError.exit_code, other.stderr
            assert 'no read grant on scope "statebox"' in other.stderr
        anonymous = viewer.statebox("runs")
        assert anonymous.returncode == PermissionDeniedError.exit_code
        assert "bearer token" in anonymous.stderr

        check_seen(viewer, run_id, token=VIEWER_SECRET)
        check_greeting(viewer, run_id, token=RUNNER_SECRET)
        # The refused run bumped nothing: the counter is the one run's.
        counter = viewer.json("get", "counter", "--dag", "shared", token=RUNNER_SECRET)
        assert counter["value"] == 1
        # Read on statebox is not read on the DAG's state.
        state = viewer.statebox("get", "counter", "--dag", "shared", token=VIEWER_SECRET)
        assert state.returncode == PermissionDeniedError.exit_code


# -- retention -------------------------------------------------------------------------------

SHORT_LIVED = """\
name: short-lived
hist_retention_days: 0.00002
steps:
  - id: hello
    run: echo short
"""


def test_expired_runs_are_gone_from_every_machine(
    tmp_path: Path, server: ServerProcess, base_env: dict[str, str], runner_machine: Machine
) -> None:
    (runner_machine.cwd / "short-lived.yaml").write_text(SHORT_LIVED)
    kept = run_dag(runner_machine, server.url)
    short = run_dag(runner_machine, server.url, file="short-lived.yaml")
    ended = time.monotonic()
    viewer = machine(tmp_path, "viewer", base_env, STATEBOX_STORE=server.url)
    ttl = 0.00002 * 86400  # 1.728 s after the run's last save
    time.sleep(max(0.0, ended + ttl + 0.3 - time.monotonic()))

    runs = viewer.json("runs")["runs"]
    assert [r["run_id"] for r in runs] == [kept]
    gone = viewer.statebox("runs", "show", short)
    assert gone.returncode == NotFoundError.exit_code == 3
    assert short in gone.stderr
    no_log = viewer.statebox("runs", "log", short, "hello")
    assert no_log.returncode == NotFoundError.exit_code
    # The log entry itself expired too, not only the record that leads to it.
    logs = viewer.json("list", "--scope", "statebox", "--namespace", "logs")
    keys = [e["key"] for e in logs["entries"]]
    assert keys and all(k.startswith(kept + "/") for k in keys), keys
    assert runner_machine.statebox("runs", "--store", server.url).returncode == 0


def test_the_server_keeps_no_run_of_a_machine_that_does_not_share_it(
    tmp_path: Path, server: ServerProcess, base_env: dict[str, str], runner_machine: Machine
) -> None:
    """The control: a run on the runner machine's own default store is not seen by a
    machine on the server (so the tests above prove sharing, not a common file)."""
    local = runner_machine.statebox("run", "shared.yaml")
    assert local.returncode == 0, local.stderr
    assert runner_machine.json("runs")["runs"]  # on its own default SQLite store
    viewer = machine(tmp_path, "viewer", base_env, STATEBOX_STORE=server.url)
    assert viewer.json("runs") == {"runs": []}
