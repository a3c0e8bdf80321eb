"""The Direktiv loader (``statebox.runner.direktiv.loader``): Direktiv v0.10 workflow
files read into the runner's model, and every problem of a file reported at once with
its file, line and column; ISO 8601 durations (``statebox.runner.direktiv.durations``).

The bad workflows are a table: each YAML text carries a ``¶`` where the problem must be
reported (the mark is removed before the file is written), and a fragment of the
message. Every entry is also checked to be the *only* problem of its file, so that a
check that fires elsewhere (or twice) is caught.
"""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox.core.errors import NotFoundError
from statebox.runner.direktiv._parse_workflow import parse
from statebox.runner.direktiv.durations import parse_duration
from statebox.runner.direktiv.loader import (
    DagFileError,
    Problem,
    check_workflow_files,
    load_workflow,
)
from statebox.runner.direktiv.model import (
    DEFAULT_ACTION_TIMEOUT_SEC,
    Action,
    Catch,
    Condition,
    FileSpec,
    Function,
    GetVar,
    Retries,
    SetVar,
)

MARK = "¶"


def write(directory: Path, text: str, name: str = "flow.yaml") -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)


def marked(text: str) -> tuple[str, int, int]:
    """``text`` without its mark, and the mark's line and column (1-based)."""
    text = textwrap.dedent(text).lstrip("\n")
    at = text.index(MARK)
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return text.replace(MARK, "", 1), line, column


def problems_of(directory: Path, text: str) -> list[Problem]:
    return check_workflow_files([write(directory, text)], warn=lambda _: None)


# -- a full valid workflow ------------------------------------------------------------------

FULL = """
direktiv_api: workflow/v1
url: https://example.com/ignored
description: every state type
functions:
- id: echo
  type: knative-workflow
  image: direktiv/echo
  cmd: cat
- id: remote
  url: http://127.0.0.1:9/fn
start:
  type: scheduled
  state: get
  cron: "*/5 * * * *"
timeouts:
  interrupt: PT1H
  kill: PT2H
states:
- id: first
  type: noop
  transition: get
- id: get
  type: getter
  log: 'jq(.)'
  variables:
  - key: counter
    scope: workflow
  - key: uuid
    scope: system
    as: id
  - key: 'jq(.name)'
    scope: namespace
  transition: set
- id: set
  type: setter
  metadata: {by: 'jq(.who)'}
  variables:
  - key: counter
    scope: workflow
    value: 'jq(.var.counter + 1)'
  - key: note
    scope: instance
    value: hello
    mimeType: text/plain; charset=utf-8
  - key: gone
    scope: namespace
  transition: sw
- id: sw
  type: switch
  conditions:
  - condition: 'jq(.var.counter > 3)'
    transition: act
    transform: 'jq({a: 1})'
  - condition: 'jq(.x)'
  defaultTransition: wait
  defaultTransform: '.'
- id: wait
  type: delay
  duration: PT1M30.5S
  transition: act
- id: act
  type: action
  timeout: PT30S
  async: true
  action:
    function: echo
    input: {data: 'jq(.)', n: 1}
    secrets: [token]
    retries:
      max_attempts: 3
      codes: ["direktiv.*", ".*timeout"]
      delay: PT1S
      multiplier: 2
    files:
    - key: data
      scope: workflow
      type: tar.gz
      as: dir
      permissions: "0755"
    - key: plain
  catch:
  - error: "direktiv.*"
    transition: fail
  - error: "*"
  transition: each
- id: each
  type: foreach
  array: 'jq([.a])'
  action:
    function: remote
    retries: {max_attempts: 1, codes: ["*"]}
  transition: par
- id: par
  type: parallel
  mode: or
  actions:
  - function: echo
  - function: remote
    input: 'jq(.a)'
  transition: check
- id: check
  type: validate
  subject: 'jq(.return)'
  schema:
    type: object
    required: [a]
  transition: fail
- id: fail
  type: error
  error: my.error
  message: 'failed: %s'
  args: ['jq(.error.code)']
"""


def test_a_full_workflow_with_every_state_type_loads_to_its_model(tmp_path: Path) -> None:
    path = write(tmp_path, FULL, "every-type.yaml")
    warnings: list[str] = []
    wf = load_workflow(path, warn=warnings.append)
    assert warnings == []
    assert wf.name == "every-type"
    assert wf.path == path
    assert wf.description == "every state type"
    assert wf.direktiv_api == "workflow/v1"
    assert wf.start == "get"
    assert wf.schedule == ("*/5 * * * *",)
    assert (wf.interrupt_sec, wf.kill_sec) == (3600.0, 7200.0)
    assert [s.type for s in wf.states] == [
        "noop", "getter", "setter", "switch", "delay", "action", "foreach", "parallel",
        "validate", "error",
    ]  # fmt: skip
    assert wf.functions["echo"] == Function(
        "echo", "cat", None, "knative-workflow", "direktiv/echo", wf.functions["echo"].where
    )
    assert wf.functions["remote"].url == "http://127.0.0.1:9/fn"
    assert wf.functions["remote"].where is not None
    assert wf.functions["remote"].where.line == 9

    first, get, set_, sw, wait, act, each, par, check, fail = wf.states
    assert first.transition == "get" and first.where is not None and first.where.line == 19
    assert get.log == "jq(.)"
    getters = [v for v in get.variables if isinstance(v, GetVar)]
    assert len(getters) == len(get.variables)
    assert [(v.key, v.scope, v.as_) for v in getters] == [
        ("counter", "workflow", None),
        ("uuid", "system", "id"),
        ("jq(.name)", "namespace", None),
    ]
    assert set_.metadata == {"by": "jq(.who)"}
    setters = [v for v in set_.variables if isinstance(v, SetVar)]
    assert len(setters) == len(set_.variables)
    assert [(v.key, v.scope, v.value, v.mime_type) for v in setters] == [
        ("counter", "workflow", "jq(.var.counter + 1)", None),
        ("note", "instance", "hello", "text/plain; charset=utf-8"),
        ("gone", "namespace", None, None),
    ]
    assert [(c.condition, c.transform, c.transition) for c in sw.conditions] == [
        ("jq(.var.counter > 3)", "jq({a: 1})", "act"),
        ("jq(.x)", None, None),
    ]
    assert all(isinstance(c, Condition) for c in sw.conditions)
    assert sw.default_transition == "wait"
    assert sw.default_transform is None  # "." is no transform
    assert wait.duration_sec == 90.5
    assert act.timeout_sec == 30.0 and act.async_ is True
    assert act.action is not None
    assert act.action == Action(
        "echo",
        {"data": "jq(.)", "n": 1},
        ("token",),
        Retries(3, ("direktiv.*", ".*timeout"), 1.0, 2.0),
        (
            FileSpec("data", "workflow", "dir", "tar.gz", 0o755, act.action.files[0].where),
            FileSpec("plain", "namespace", None, "plain", None, act.action.files[1].where),
        ),
        act.action.where,
    )
    assert [(c.error, c.transition) for c in act.catch] == [("direktiv.*", "fail"), ("*", None)]
    assert all(isinstance(c, Catch) for c in act.catch)
    assert each.array == "jq([.a])"
    assert each.action is not None and each.action.function == "remote"
    # No delay given: Direktiv waits 5 s between attempts (action-helpers.go retryDelay).
    assert each.action.retries == Retries(1, ("*",), 5.0, 1.0)
    assert each.timeout_sec == DEFAULT_ACTION_TIMEOUT_SEC
    assert par.mode == "or"
    assert [(a.function, a.input) for a in par.actions] == [("echo", None), ("remote", "jq(.a)")]
    assert check.subject == "jq(.return)"
    assert check.schema == {"type": "object", "required": ["a"]}
    assert (fail.error, fail.message, fail.args) == ("my.error", "failed: %s", ("jq(.error.code)",))
    assert fail.transition is None
    assert wf.state("sw") is sw


def test_the_first_state_starts_a_workflow_without_start(tmp_path: Path) -> None:
    wf = load_workflow(
        write(
            tmp_path,
            """
            states:
            - id: b
              type: noop
              transition: a
            - id: a
              type: noop
            """,
        )
    )
    assert wf.start == "b"
    assert wf.schedule == ()
    assert wf.functions == {}
    assert [s.mode for s in wf.states] == ["and", "and"]


def test_a_default_start_may_name_its_state(tmp_path: Path) -> None:
    text = (
        "start: {type: default, state: a}\nstates:\n- {id: b, type: noop}\n- {id: a, type: noop}\n"
    )
    assert load_workflow(write(tmp_path, text)).start == "a"


def test_a_key_in_another_case_is_read_with_a_warning(tmp_path: Path) -> None:
    # Go's JSON decoder matches keys without regard for case; Direktiv reads this file.
    text = """
    states:
    - id: s
      type: switch
      conditions: [{condition: 'jq(true)'}]
      DefaultTransition: t
    - id: t
      type: noop
    """
    warnings: list[str] = []
    wf = load_workflow(write(tmp_path, text), warn=warnings.append)
    assert wf.states[0].default_transition == "t"
    assert len(warnings) == 1
    assert ":5:3: warning:" in warnings[0] and "defaultTransition" in warnings[0]


def test_no_file_is_not_found_and_bad_files_raise_with_every_problem(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_workflow(str(tmp_path / "missing.yaml"))
    path = write(tmp_path, "states:\n- id: a\n  type: nope\n- id: 2\n  type: noop\n")
    with pytest.raises(DagFileError) as caught:
        load_workflow(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:3:9: unknown state type")
    assert lines[1].startswith(f"{path}:4:7: invalid state id")
    (tmp_path / "latin1.yaml").write_bytes(b"states: \xff\n")
    assert "not UTF-8" in str(check_workflow_files([str(tmp_path / "latin1.yaml")])[0])


def test_check_workflow_files_reports_each_file_in_order(tmp_path: Path) -> None:
    good = write(tmp_path, "states:\n- {id: a, type: noop}\n", "good.yaml")
    bad = write(tmp_path, "states: [\n", "bad.yaml")
    problems = check_workflow_files([good, str(tmp_path / "none.yaml"), bad])
    assert [p.where.file for p in problems] == [str(tmp_path / "none.yaml"), bad]
    assert "invalid YAML" in problems[1].message


# -- every kind of invalid file, at its place -----------------------------------------------

BAD: list[tuple[str, str]] = [
    ("states: [\n¶", "invalid YAML"),
    ("¶", "empty file"),
    ("¶description: x\n", "the workflow has no states"),
    ("states: ¶[]\n", "states must not be empty"),
    ("¶[1, 2]\n", "the workflow must be a mapping"),
    ("states:\n- {id: a, type: noop}\n¶stats: 1\n", 'unknown key "stats" in the workflow'),
    ("direktiv_api: ¶service/v1\nstates:\n- {id: a, type: noop}\n", "write workflow/v1"),
    ("states:\n- {id: a, type: noop}\n---\n¶states: []\n", "a second YAML document"),
    # states: ids, types, keys
    ("states:\n- {id: ¶a b, type: noop}\n", 'invalid state id "a b"'),
    ("states:\n- {id: ¶a-, type: noop}\n", 'invalid state id "a-"'),
    ("states:\n- ¶{type: noop}\n", "a state needs id:"),
    ("states:\n- ¶{id: a}\n", "a state needs type:"),
    ("states:\n- {id: a, type: ¶getr}\n", 'unknown state type "getr"; did you mean "getter"?'),
    ("states:\n- {id: a, type: ¶generateEvent}\n", "cloud events"),
    ("states:\n- ¶a\n", "each state must be a mapping"),
    ("states:\n- {id: a, type: noop}\n- ¶{id: a, type: noop}\n", 'state id "a" is used twice'),
    ("states:\n- {id: a, type: noop, ¶transitoin: a}\n", 'did you mean "transition"?'),
    ("states:\n- {id: a, type: noop, ¶duration: PT1S}\n", 'unknown key "duration" in a noop'),
    (
        "functions:\n- {id: f, cmd: 'true'}\n"
        "states:\n- {id: a, type: action, action: {function: f}, ¶bogus: 1}\n",
        'unknown key "bogus" in an action state',
    ),
    # transitions
    ("states:\n- {id: a, type: noop, transition: ¶b}\n", 'transition names no state: "b"'),
    (
        "states:\n- id: a\n  type: noop\n  catch:\n  - {error: '*', transition: ¶x}\n",
        'catch transition names no state: "x"',
    ),
    ("start: {type: default, state: ¶zz}\nstates:\n- {id: a, type: noop}\n", "start.state"),
    ("states:\n- id: a\n  type: noop\n  catch:\n  - ¶{transition: a}\n", "needs error:"),
    ("states:\n- id: a\n  type: noop\n  catch:\n  - {error: ¶'(x'}\n", "not a valid pattern"),
    # "*" is ".*" only alone (engine.go): "*.execution" does not compile, so it is refused
    # here rather than matching nothing at run time.
    (
        "states:\n- id: a\n  type: noop\n  catch:\n  - {error: ¶'*.execution'}\n",
        'catch error "*.execution" is not a valid pattern',
    ),
    (
        "functions:\n- {id: f, type: knative-workflow, image: x, cmd: 'true'}\nstates:\n"
        "- id: a\n  type: action\n  action:\n    function: f\n"
        "    retries: {max_attempts: 1, codes: [¶'*.execution']}\n",
        '"*.execution" is not a valid pattern',
    ),
    # A name is matched whole: no trailing newline slips through (Python's "$" would).
    ('states:\n- {id: ¶"a\\n", type: noop}\n', "invalid state id"),
    (
        'states:\n- id: a\n  type: getter\n  variables:\n  - {key: ¶"abc\\n", scope: instance}\n',
        "invalid variable name",
    ),
    # getter and setter
    ("states:\n- ¶{id: a, type: getter}\n", 'getter state "a" needs variables:'),
    ("states:\n- {id: a, type: getter, variables: ¶[]}\n", "variables must not be empty"),
    ("states:\n- id: a\n  type: getter\n  variables:\n  - ¶{key: x}\n", "needs scope:"),
    ("states:\n- id: a\n  type: getter\n  variables:\n  - ¶{scope: instance}\n", "needs key:"),
    (
        "states:\n- id: a\n  type: getter\n  variables:\n  - {key: x, scope: ¶global}\n",
        'scope must be "instance", "workflow", "namespace" or "system"',
    ),
    (
        "states:\n- id: a\n  type: getter\n  variables:\n  - {key: x, scope: ¶file}\n",
        "scope file is not supported",
    ),
    (
        "states:\n- id: a\n  type: getter\n  variables:\n  - {key: ¶tarce, scope: system}\n",
        'unknown system variable "tarce"',
    ),
    (
        "states:\n- id: a\n  type: getter\n  variables:\n  - {key: ¶1x, scope: instance}\n",
        'invalid variable name "1x"',
    ),
    (
        "states:\n- id: a\n  type: getter\n  variables:\n  - {key: ¶5, scope: instance}\n",
        "key must be a variable's name",
    ),
    (
        "states:\n- id: a\n  type: setter\n  variables:\n  - {key: x, scope: ¶system, value: 1}\n",
        "scope system is read-only",
    ),
    (
        "states:\n- id: a\n  type: setter\n  variables:\n  - {key: x, scope: ¶thread}\n",
        "scope thread is not supported",
    ),
    (
        "states:\n- id: a\n  type: setter\n  variables:\n  - {key: x, scope: instance, ¶as: y}\n",
        'unknown key "as" in a setter\'s variable',
    ),
    (
        "states:\n- id: a\n  type: setter\n  variables:\n"
        "  - {key: x, scope: instance, value: 1, mimeType: ¶text}\n",
        'mimeType "text" is not a MIME type',
    ),
    (
        "states:\n- id: a\n  type: setter\n  variables:\n"
        "  - {key: x, scope: instance, value: ¶''}\n",
        'value must not be ""',
    ),
    # expressions
    ("states:\n- {id: a, type: noop, log: ¶'jq(.a'}\n", "without its closing bracket"),
    (
        "states:\n- {id: a, type: noop, transform: {x: ¶'js(return 1)'}}\n",
        "js(...) is not supported",
    ),
    (
        "states:\n- id: a\n  type: setter\n  variables:\n"
        "  - {key: x, scope: instance, value: ¶'jq((.a)'}\n",
        "missing bracket",
    ),
    # switch
    ("states:\n- ¶{id: a, type: switch}\n", "needs conditions:"),
    ("states:\n- id: a\n  type: switch\n  conditions:\n  - ¶{transition: a}\n", "needs condition:"),
    (
        "states:\n- id: a\n  type: switch\n  conditions: [{condition: 'jq(1)'}]\n"
        "  defaultTransition: ¶b\n",
        'defaultTransition names no state: "b"',
    ),
    (
        "states:\n- id: a\n  type: switch\n  conditions:\n  - {condition: x, transition: ¶b}\n",
        'condition transition names no state: "b"',
    ),
    # actions and functions
    ("states:\n- ¶{id: a, type: action}\n", "needs action:"),
    ("states:\n- {id: a, type: action, action: ¶{input: 1}}\n", "needs function:"),
    (
        "states:\n- {id: a, type: action, action: {function: ¶f}}\n",
        'action function "f" is not one of the workflow\'s functions',
    ),
    (
        "functions:\n- ¶{id: f, type: knative-workflow, image: direktiv/bash}\n"
        "states:\n- {id: a, type: action, action: {function: f}}\n",
        'function "f" has image:; statebox runs functions locally: give cmd: (a shell command)'
        " or url: (an HTTP endpoint speaking Direktiv's function protocol)",
    ),
    (
        "functions:\n- ¶{id: f, type: knative-namespace}\nstates:\n- {id: a, type: noop}\n",
        "has type: knative-namespace",
    ),
    (
        "functions:\n- ¶{id: f, type: subflow, workflow: w}\nstates:\n- {id: a, type: noop}\n",
        "is a subflow",
    ),
    (
        "functions:\n- {id: f, cmd: x, ¶url: 'http://a'}\nstates:\n- {id: a, type: noop}\n",
        "both cmd: and url:",
    ),
    (
        "functions:\n- {id: f, url: ¶'ftp://a'}\nstates:\n- {id: a, type: noop}\n",
        "http:// or https://",
    ),
    ("functions:\n- ¶{cmd: x}\nstates:\n- {id: a, type: noop}\n", "a function needs id:"),
    (
        "functions:\n- {id: ¶_f, cmd: x}\nstates:\n- {id: a, type: noop}\n",
        'invalid function id "_f"',
    ),
    (
        "functions:\n- {id: f, cmd: x, type: ¶knative}\nstates:\n- {id: a, type: noop}\n",
        "function type must be",
    ),
    (
        "functions:\n- {id: f, cmd: x}\n- ¶{id: f, cmd: y}\nstates:\n- {id: a, type: noop}\n",
        'function id "f" is used twice',
    ),
    (
        "functions:\n- {id: f, cmd: x, ¶imag: y}\nstates:\n- {id: a, type: noop}\n",
        'did you mean "image"?',
    ),
    # retries and files
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    retries: {max_attempts: ¶0, codes: ['*']}\n",
        "retries.max_attempts must be 1 or more",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    retries: ¶{max_attempts: 2}\n",
        "retries needs codes:",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    retries: {max_attempts: 2, codes: ['*'], delay: ¶5s}\n",
        "retries.delay: invalid ISO 8601 duration",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    files: [{key: k, type: ¶zip}]\n",
        'files type must be "plain", "base64", "tar" or "tar.gz"',
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    files: [{key: k, permissions: ¶'0789'}]\n",
        "files permissions must be octal digits",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    files: [{key: ¶'jq(.k)'}]\n",
        "expressions are not supported here",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    files: [{key: k, as: ¶../up}]\n",
        "must be a plain file name",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  action:\n"
        "    function: f\n    files: [{key: k, scope: ¶system}]\n",
        "files scope must be",
    ),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- id: a\n  type: action\n  timeout: ¶30\n"
        "  action: {function: f}\n",
        "timeout: invalid ISO 8601 duration",
    ),
    # foreach, parallel
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- ¶{id: a, type: foreach, action: {function: f}}\n",
        "needs array:",
    ),
    ("states:\n- ¶{id: a, type: foreach, array: 'jq(.)'}\n", "needs action:"),
    ("states:\n- ¶{id: a, type: parallel}\n", "needs actions:"),
    (
        "functions: [{id: f, cmd: x}]\nstates:\n- {id: a, type: parallel, mode: ¶xor, "
        "actions: [{function: f}]}\n",
        'mode must be "and" or "or"',
    ),
    # delay, error, validate
    ("states:\n- ¶{id: a, type: delay}\n", "needs duration:"),
    ("states:\n- {id: a, type: delay, duration: ¶PT1.5M}\n", "invalid ISO 8601 duration"),
    ("states:\n- ¶{id: a, type: error, message: m}\n", 'error state "a" needs error:'),
    ("states:\n- ¶{id: a, type: error, error: e}\n", "needs message:"),
    ("states:\n- ¶{id: a, type: validate}\n", "needs schema:"),
    ("states:\n- id: a\n  type: validate\n  schema: ¶[1]\n", "schema must be a JSON Schema"),
    (
        "states:\n- id: a\n  type: validate\n  schema:\n    type: ¶12\n",
        "schema is not a valid JSON Schema",
    ),
    (
        "states:\n- id: a\n  type: validate\n  schema: {type: object, required: ¶yes}\n",
        "schema is not a valid JSON Schema",
    ),
    # start and timeouts
    ("start: ¶{state: a}\nstates:\n- {id: a, type: noop}\n", "start needs type:"),
    ("start: {type: ¶event}\nstates:\n- {id: a, type: noop}\n", "cloud events"),
    ("start: {type: ¶sheduled}\nstates:\n- {id: a, type: noop}\n", 'did you mean "scheduled"?'),
    ("start: ¶{type: scheduled}\nstates:\n- {id: a, type: noop}\n", "needs cron:"),
    (
        "start: {type: scheduled, cron: ¶'61 * * * *'}\nstates:\n- {id: a, type: noop}\n",
        "invalid cron",
    ),
    ("start: {type: default, ¶cron: '* * * * *'}\nstates:\n- {id: a, type: noop}\n", "cron is for"),
    ("timeouts: {interrupt: ¶1h}\nstates:\n- {id: a, type: noop}\n", "timeouts.interrupt"),
    ("timeouts: {¶kil: PT1S}\nstates:\n- {id: a, type: noop}\n", 'did you mean "kill"?'),
]


@pytest.mark.parametrize(("text", "fragment"), BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_each_kind_of_invalid_file_is_refused_at_its_place(
    tmp_path: Path, text: str, fragment: str
) -> None:
    clean, line, column = marked(text)
    problems = problems_of(tmp_path, clean)
    assert len(problems) == 1, problems
    assert fragment in problems[0].message, problems[0]
    assert (problems[0].where.line, problems[0].where.column) == (line, column), problems[0]
    assert str(problems[0]).startswith(f"{tmp_path / 'flow.yaml'}:{line}:{column}: ")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = """
    functions:
    - {id: f, image: x}
    states:
    - {id: a b, type: noop}
    - {id: c, type: getr}
    - {id: d, type: noop, transition: zz}
    - {id: e, type: delay, duration: 5s}
    - {id: g, type: action, action: {function: f}}
    extra: 1
    """
    problems = problems_of(tmp_path, text)
    assert [p.where.line for p in problems] == [2, 4, 5, 6, 7, 9]
    assert problems == sorted(problems, key=lambda p: (p.where.line, p.where.column))
    # The refused function is not reported again where an action names it.
    assert not any("is not one of" in p.message for p in problems)


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT5S", 5.0),
        ("PT1M30S", 90.0),
        ("PT0.5S", 0.5),
        ("P1D", 86400.0),
        ("P2W", 14 * 86400.0),
        ("PT1H", 3600.0),
        ("P1DT1H1M1S", 86400.0 + 3661.0),
        ("P1Y", 365 * 86400.0),
        ("P1M", 30 * 86400.0),
        ("PT1M", 60.0),
        ("P", 0.0),  # as Go's senseyeio/duration reads it
        ("PT", 0.0),
    ],
)
def test_iso_8601_durations_read_as_direktiv_reads_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "5s", "pt5s", "PT5", "P1H", "PT1D", "PT-1S", " PT1S", "PT1.5M", "P1.5D", "PT1S "]
)
def test_anything_else_is_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid ISO 8601 duration .* e\.g\. PT30S"):
        parse_duration(text)


_PARTS = ("Y", "M", "W", "D", "H", "M", "S")
_SECONDS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 10**6)), min_size=7, max_size=7))
def test_a_duration_is_the_sum_of_its_parts(parts: list[int | None]) -> None:
    date = "".join(f"{n}{u}" for n, u in zip(parts[:4], _PARTS[:4], strict=True) if n is not None)
    time = "".join(f"{n}{u}" for n, u in zip(parts[4:], _PARTS[4:], strict=True) if n is not None)
    text = "P" + date + ("T" + time if time else "")
    expected = sum(n * s for n, s in zip(parts, _SECONDS, strict=True) if n is not None)
    assert parse_duration(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="PTYMWDHS0123456789.-", max_size=12))
def test_parse_duration_returns_or_raises_value_error_only(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration(text) >= 0


# -- robustness -----------------------------------------------------------------------------

_FRAGMENTS = [
    "states:\n",
    "- id: a\n",
    "  type: noop\n",
    "  type: getter\n",
    "  variables:\n",
    "  - key: 'jq(.a'\n",
    "    scope: system\n",
    "  transition: b\n",
    "functions: [{id: f, image: x}]\n",
    "start: {type: scheduled, cron: x}\n",
    "  action: {function: f, files: [{key: k, permissions: 9}]}\n",
    "&a [*a]\n",
    "  schema: {type: 1}\n",
    ": :\n",
    "\t",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12))
def test_any_text_gives_a_workflow_or_placed_problems_never_an_exception(
    fragments: list[str],
) -> None:
    wf, problems = parse("x.yaml", "".join(fragments), lambda _: None)
    assert (wf is None) == bool(problems)
    for problem in problems:
        assert problem.where.file == "x.yaml" and problem.where.line >= 1


# -- attacks --------------------------------------------------------------------------------

ALIAS_BOMB = """
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
states:
- id: s
  type: noop
  log: *i
"""


def test_an_alias_bomb_is_refused_without_being_expanded(tmp_path: Path) -> None:
    # 10**9 strings once expanded: reading the log's tree would never finish.
    problems = problems_of(tmp_path, ALIAS_BOMB)
    assert len(problems) == 1
    assert "more than 200000 values once its aliases are expanded" in problems[0].message
    assert problems[0].where.line == 1


def test_a_recursive_alias_and_deep_nesting_are_problems_not_crashes(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "states:\n- id: s\n  type: noop\n  log: &r [*r]\n")
    assert len(problems) == 1 and "recursive alias" in problems[0].message
    deep = "states:\n- {id: s, type: noop, log: " + "[" * 5000 + "]" * 5000 + "}\n"
    problems = problems_of(tmp_path, deep)
    assert len(problems) == 1 and "invalid YAML" in problems[0].message


def test_a_realistic_large_workflow_stays_under_the_value_limit(tmp_path: Path) -> None:
    states = "".join(
        f"- id: s{i}\n  type: noop\n  transform: {{a: 'jq(.a)', b: [1, 2, 3]}}\n"
        f"  transition: s{i + 1}\n"
        for i in range(2000)
    )
    wf = load_workflow(write(tmp_path, "states:\n" + states + "- {id: s2000, type: noop}\n"))
    assert len(wf.states) == 2001


def test_every_system_key_the_runner_gives_is_valid(tmp_path: Path) -> None:
    """The loader takes each system key :class:`Variables` answers: ``trace`` (empty,
    statebox has no tracing) was refused as unknown."""
    keys = "".join(
        f"  - {{key: {k}, scope: system}}\n" for k in ("instance", "uuid", "epoch", "trace")
    )
    text = f"states:\n- id: a\n  type: getter\n  variables:\n{keys}"
    assert problems_of(tmp_path, text) == []
