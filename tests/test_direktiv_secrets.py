"""Secrets in the Direktiv form's runs (issue #16): a getter, an action's ``files:`` or a
``/var`` GET of a secret variable gives the instance the real value (Direktiv has no
masking: variables are data), and the instance's masker keeps it out of the run record
(its input and output, each visit's output and error), the states' logs and the
display. A value a setter writes to a secret variable, and an action's ``secrets:``,
are masked too.

Real runs on a SQLite store whose ``dag/*`` keyspaces (workflow variables) are secret,
sealed under a key from ``STATEBOX_SECRET_KEY``: through the real ``statebox``
executable and in-process (:func:`statebox.runner.forms.run_any`).
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from statebox.runner.display import PlainDisplay
from statebox.runner.executor import RunOptions
from statebox.runner.forms import load_any, run_any
from statebox.runner.records import RunRecord

from .test_runner_secrets import SECRET, SecretEnv, env, no_secret

__all__ = ["env"]  # the fixture, shared with the Dagu form's tests

pytest.importorskip("cryptography")

A3 = """
functions:
- id: echo
  cmd: 'cat | tee "$PROOF"; echo " seen" >&2; cat "$PROOF" >&2'
states:
- id: set
  type: setter
  variables:
  - {key: pw, scope: workflow, value: tok-SECRET-456}
  transition: get
- id: get
  type: getter
  variables:
  - {key: pw, scope: workflow}
  transition: call
- id: call
  type: action
  action:
    function: echo
    input: 'jq(.var.pw)'
  transition: keep
- id: keep
  type: setter
  log: 'jq("kept " + .return)'
  variables:
  - {key: copy, scope: workflow, value: 'jq(.return)'}
"""


def run_in_process(env: SecretEnv, name: str, **options: Any) -> tuple[RunRecord, str]:
    flow = load_any(str(env.dir / name))
    shown = io.StringIO()
    with env.store() as store:
        record = run_any(
            flow, store, RunOptions(store_url=env.url, display=PlainDisplay(shown), **options)
        )
    return record, shown.getvalue()


def test_getter_action_setter_flow_has_the_value_and_the_record_is_masked(
    env: SecretEnv,
) -> None:
    """The review's repro: a setter and a getter of a secret workflow variable, then an
    action (a ``cmd`` echoing it) and a setter of its result."""
    env.write("wf.yaml", A3)
    proof = env.dir / "proof.txt"
    env.env["PROOF"] = str(proof)
    ran = env.cli("run", "wf.yaml")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # The instance had the real value: the function got it, the setter wrote it.
    assert proof.read_text() == json.dumps(SECRET)
    copy = env.cli("get", "copy", "--scope", "dag", "--namespace", "wf", "--reveal")
    assert json.loads(copy.stdout)["value"] == SECRET
    run_id = json.loads(env.cli("runs").stdout)["runs"][0]["run_id"]
    shown = env.cli("runs", "show", run_id)
    logs = [env.cli("runs", "log", run_id, state).stdout for state in ("call", "keep")]
    no_secret(ran.stdout, ran.stderr, shown.stdout, *logs)
    assert SECRET.encode() not in env.stored_bytes()
    record = json.loads(shown.stdout)
    assert record["output"] == {"var": {"pw": "***"}, "return": "***"}
    assert {s["name"]: s["output"] for s in record["steps"]}["call"] == '"***"'
    assert logs == [' seen\n"***"\n', "kept ***\n"]


def test_a_getter_gives_the_value_and_errors_and_the_display_are_masked(
    env: SecretEnv,
) -> None:
    with env.store() as store:
        store.set("pw", {"password": SECRET}, scope="dag", namespace="err")
    env.write(
        "err.yaml",
        """
        states:
        - id: get
          type: getter
          variables:
          - {key: pw, scope: workflow}
          transition: say
        - id: say
          type: noop
          log: 'jq(.var.pw.password)'
          transition: fail
        - id: fail
          type: error
          error: login.refused
          message: 'refused: %v'
          args: ['jq(.var.pw.password)']
        """,
    )
    record, shown = run_in_process(env, "err.yaml")
    # What the engine returns is the instance's own: the data held the value.
    assert record.output == {"var": {"pw": {"password": SECRET}}}
    assert record.status == "failed"
    saved = env.saved(record.run_id)
    no_secret(json.dumps(saved), shown)
    assert saved["error"] == "login.refused: refused: ***"
    assert saved["output"] == {"var": {"pw": "***"}}
    assert "step say running ***" in shown
    assert "login.refused: refused: ***" in shown


@pytest.mark.parametrize("how", ["files", "var"])
def test_files_and_var_reads_of_a_secret_variable_are_masked(env: SecretEnv, how: str) -> None:
    """No getter: the function reads the variable itself, from the file ``files:``
    wrote or through its ``/var`` endpoint; its result holds the value."""
    with env.store() as store:
        store.set("pw", SECRET, scope="dag", namespace="peek")
    get = (
        "import os, urllib.request as u; "
        "print(u.urlopen(os.environ['STATEBOX_VAR_URL'] + '/var?aid=' + "
        "os.environ['STATEBOX_ACTION_ID'] + '&scope=workflow&key=pw').read().decode())"
    )
    command = "cat pw" if how == "files" else f"{sys.executable} -c {json.dumps(get)}"
    files = "    files: [{key: pw, scope: workflow}]\n" if how == "files" else ""
    env.write(
        "peek.yaml",
        "functions:\n"
        f"- id: peek\n  cmd: {json.dumps(command + ' | tee /dev/stderr')}\n"
        "states:\n- id: call\n  type: action\n  action:\n    function: peek\n" + files,
    )
    record, shown = run_in_process(env, "peek.yaml")
    assert record.status == "succeeded", record.error
    assert record.output["return"] == SECRET
    saved = env.saved(record.run_id)
    no_secret(json.dumps(saved), shown, env.cli("runs", "log", record.run_id, "call").stdout)
    assert saved["output"]["return"] == "***"


def test_written_values_and_action_secrets_are_masked(
    env: SecretEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "env-TOKEN-321")
    env.write(
        "write.yaml",
        """
        functions:
        - id: echo
          cmd: cat
        states:
        - id: keep
          type: setter
          variables:
          - {key: given, scope: workflow, value: 'jq(.pw)'}
          transition: call
        - id: call
          type: action
          action:
            function: echo
            secrets: [MY_API_TOKEN]
            input: 'jq(.secrets)'
        """,
    )
    record, _ = run_in_process(env, "write.yaml", input={"pw": "input-SECRET-1"})
    assert record.status == "succeeded", record.error
    assert record.output["return"] == {"MY_API_TOKEN": "env-TOKEN-321"}
    saved = json.dumps(env.saved(record.run_id))
    assert "input-SECRET-1" not in saved and "env-TOKEN-321" not in saved
    assert json.loads(saved)["input"] == {"pw": "***"}
