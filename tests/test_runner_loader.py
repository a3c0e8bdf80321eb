"""The DAG loader (``statebox.runner.loader``): Dagu's DAG form read into the runner's
model, and every problem of a file reported at once with its file, line and column.

The bad DAGs are a table: each YAML text carries a ``¶`` where the problem must be
reported (the mark is removed before the file is written), and a fragment of the
message. The seed's example DAGs are written out as YAML and must load unchanged.
"""

from __future__ import annotations

import itertools
import os
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox.core.errors import InvalidRequestError, NotFoundError
from statebox.runner.loader import (
    DagFileError,
    Problem,
    check_files,
    find_sub_dag,
    load_dag,
    parse_param_string,
)
from statebox.runner.model import (
    DEFAULT_HIST_RETENTION_DAYS,
    DEFAULT_MAX_OUTPUT_SIZE,
    ContinueOn,
    Precondition,
    RepeatPolicy,
    RetryPolicy,
)

MARK = "¶"


def write(directory: Path, text: str, name: str = "dag.yaml") -> str:
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


def problems_of(directory: Path, text: str, name: str = "dag.yaml") -> list[Problem]:
    return check_files([write(directory, text, name)], warn=lambda _: None)


# -- every rule: a bad DAG, where the problem is, and what it says --------------------------

BAD: list[tuple[str, str, str]] = [
    (
        "hist_retention_days not a number",
        """
        hist_retention_days: ¶a month
        steps:
          - run: "true"
        """,
        "hist_retention_days must be a number of days, got a string",
    ),
    (
        "hist_retention_days negative",
        """
        hist_retention_days: ¶-1
        steps:
          - run: "true"
        """,
        "hist_retention_days must be 0 or more, got -1",
    ),
    (
        "unknown DAG key, did-you-mean",
        """
        name: x
        ¶stepz: []
        steps:
          - run: "true"
        """,
        'unknown key "stepz" in the DAG; did you mean "steps"?',
    ),
    (
        "unknown step key, did-you-mean",
        """
        steps:
          - id: a
            run: "true"
            ¶retry_polcy: {limit: 2}
        """,
        'unknown key "retry_polcy" in a step; did you mean "retry_policy"?',
    ),
    (
        "unknown key inside retry_policy",
        """
        steps:
          - id: a
            run: "true"
            retry_policy:
              ¶limt: 2
        """,
        'unknown key "limt" in retry_policy; did you mean "limit"?',
    ),
    (
        "unknown key with no close match",
        """
        steps:
          - id: a
            run: "true"
            ¶zzzzzz: 1
        """,
        'unknown key "zzzzzz" in a step',
    ),
    (
        "a Dagu key the runner does not implement",
        """
        ¶container: {image: alpine}
        steps:
          - run: "true"
        """,
        '"container" in the DAG is a Dagu key that statebox\'s runner does not support',
    ),
    (
        "a key Dagu removed",
        """
        steps:
          - run: "true"
            ¶dir: /tmp
        """,
        'use "working_dir"',
    ),
    (
        "timeout_sec as a string",
        """
        steps:
          - id: a
            run: "true"
            timeout_sec: ¶"10"
        """,
        "timeout_sec must be a number of seconds, got a string",
    ),
    (
        "timeout_sec negative",
        """
        steps:
          - id: a
            run: "true"
            timeout_sec: ¶-1
        """,
        "timeout_sec must be 0 or more, got -1",
    ),
    (
        "retry limit not whole",
        """
        steps:
          - id: a
            run: "true"
            retry_policy: {limit: ¶1.5}
        """,
        "retry_policy.limit must be a whole number, got 1.5",
    ),
    (
        "retry backoff not over 1",
        """
        steps:
          - id: a
            run: "true"
            retry_policy: {limit: 2, backoff: ¶0.5}
        """,
        "retry_policy.backoff must be over 1",
    ),
    (
        "retry exit_code not a number",
        """
        steps:
          - id: a
            run: "true"
            retry_policy: {limit: 2, exit_code: [4, ¶four]}
        """,
        "retry_policy.exit_code must be an exit code (a whole number), got a string",
    ),
    (
        "invalid id",
        """
        steps:
          - id: ¶1abc
            run: "true"
        """,
        'invalid step id "1abc": a letter, then letters, digits and _ only',
    ),
    (
        "id with a dash",
        """
        steps:
          - id: ¶load-cursor
            run: "true"
        """,
        'invalid step id "load-cursor"',
    ),
    (
        "id over 40 bytes",
        f"""
        steps:
          - id: ¶{"a" * 41}
            run: "true"
        """,
        "longer than 40 bytes",
    ),
    (
        "reserved id, any case",
        """
        steps:
          - id: ¶Stdout
            run: "true"
        """,
        'invalid step id "Stdout": a reserved word',
    ),
    (
        "duplicate id",
        """
        steps:
          - id: a
            run: "true"
          - id: ¶a
            run: "true"
        """,
        'duplicate step id "a" (first at line 2)',
    ),
    (
        "duplicate name",
        """
        steps:
          - name: Build it
            run: "true"
          - name: ¶Build it
            run: "true"
        """,
        'duplicate step name "Build it" (first at line 2)',
    ),
    (
        "an id that is another step's name",
        """
        steps:
          - name: a
            run: "true"
          - id: ¶a
            name: other
            run: "true"
        """,
        'step id "a" is the name of another step (line 2)',
    ),
    (
        "depends on an unknown step, did-you-mean",
        """
        steps:
          - id: load
            run: "true"
          - id: b
            run: "true"
            depends: ¶lod
        """,
        'step "b" depends on "lod", which is no step\'s id or name; did you mean "load"?',
    ),
    (
        "depends list with one unknown step",
        """
        steps:
          - id: a
            run: "true"
          - id: b
            run: "true"
            depends: [a, ¶c]
        """,
        'depends on "c"',
    ),
    (
        "a two-step cycle",
        """
        steps:
          - id: a
            run: "true"
            ¶depends: b
          - id: b
            run: "true"
            depends: a
        """,
        "dependency cycle: a → b → a",
    ),
    (
        "a step depending on itself",
        """
        steps:
          - id: a
            run: "true"
            ¶depends: [a]
        """,
        "dependency cycle: a → a",
    ),
    (
        "a three-step cycle behind a sound step",
        """
        steps:
          - id: start
            run: "true"
          - id: x
            run: "true"
            ¶depends: [start, z]
          - id: y
            run: "true"
            depends: x
          - id: z
            run: "true"
            depends: y
        """,
        "dependency cycle: x → z → y → x",
    ),
    (
        "unknown action, did-you-mean",
        """
        steps:
          - id: a
            action: ¶state.gte
            with: {key: k}
        """,
        'unknown action "state.gte"; did you mean "state.get"?',
    ),
    (
        "unknown with field, did-you-mean",
        """
        steps:
          - id: a
            action: state.set
            with:
              key: k
              value: 1
              ¶expected_verison: 3
        """,
        'unknown field with.expected_verison for state.set; did you mean "with.expected_version"?',
    ),
    (
        "missing with field",
        """
        steps:
          - id: a
            action: state.set
            with:
              ¶key: k
        """,
        "state.set needs with.value",
    ),
    (
        "an action without with",
        """
        steps:
          - id: a
            action: ¶lease.acquire
        """,
        "lease.acquire needs with.name, with.ttl",
    ),
    (
        "with that is no mapping",
        """
        steps:
          - id: a
            action: state.get
            with: ¶[key]
        """,
        "with must be a mapping, got an array",
    ),
    (
        "run beside action",
        """
        steps:
          - id: a
            action: state.get
            with: {key: k}
            ¶run: echo hi
        """,
        'action and run cannot both be given in step "a"',
    ),
    (
        "run beside command",
        """
        steps:
          - id: a
            run: echo hi
            ¶command: echo hi
        """,
        "run and command cannot both be given",
    ),
    (
        "a step with nothing to do",
        """
        steps:
          - ¶id: a
            output: X
        """,
        'step "a" has nothing to do: give it run or action',
    ),
    (
        "with but no action",
        """
        steps:
          - id: a
            script: echo hi
            ¶with: {key: k}
        """,
        'with needs an action in step "a"',
    ),
    (
        "params without call",
        """
        steps:
          - id: a
            run: "true"
            ¶params: "A=1"
        """,
        "params of a step go with call",
    ),
    (
        "${X.output} of no step",
        """
        steps:
          - id: a
            run: echo ¶${nope.output}
        """,
        '${nope.output} refers to no step: "nope" is no step\'s id or name',
    ),
    (
        "${X.stdout} of no step, did-you-mean",
        """
        steps:
          - id: fetch
            run: "true"
          - id: b
            run: cat ¶${fecth.stdout}
            depends: fetch
        """,
        'refers to no step: "fecth" is no step\'s id or name; did you mean "fetch"?',
    ),
    (
        "${X.stderr} in a with value",
        """
        steps:
          - id: a
            action: state.set
            with:
              key: k
              value: {err: "¶${ghost.stderr}"}
        """,
        "${ghost.stderr} refers to no step",
    ),
    (
        "${X.exit_code} in a precondition",
        """
        steps:
          - id: a
            run: "true"
            preconditions:
              - condition: "¶${b.exit_code}"
                expected: "0"
        """,
        "${b.exit_code} refers to no step",
    ),
    (
        "${NAME.path} of nothing",
        """
        steps:
          - id: a
            action: state.get
            output: CURSOR
            with: {key: k}
          - id: b
            run: echo ¶${CURSR.value.last_id}
            depends: a
        """,
        '${CURSR.value.last_id} refers to nothing: "CURSR" is no step, output variable or '
        'parameter; did you mean "CURSOR"?',
    ),
    (
        "a step property that does not exist",
        """
        steps:
          - id: a
            run: "true"
          - id: b
            run: echo ¶${a.value}
        """,
        "a step reference takes .output, .stdout, .stderr or .exit_code",
    ),
    (
        "the second of two equal references in a block scalar",
        """
        steps:
          - id: a
            run: |
              echo ${zz.output}
              echo ¶${zz.output}
        """,
        "${zz.output} refers to no step",
    ),
    (
        "${params.x} not declared",
        """
        params: "A B COUNT=1"
        steps:
          - id: a
            run: echo ¶${params.cuont}
        """,
        '${params.cuont}: no parameter "cuont"',
    ),
    (
        "${params.x} with no named params at all",
        """
        steps:
          - id: a
            run: echo ¶${params.x}
        """,
        "no named parameter is declared",
    ),
    (
        "two backslashes are no escape",
        r"""
        steps:
          - id: a
            run: echo \\¶${nope.output}
        """,
        "${nope.output} refers to no step",
    ),
    (
        "YAML syntax error",
        """
        steps:
          - id: a
            run: "true"
           ¶bad: indentation
        """,
        "invalid YAML",
    ),
    (
        "unclosed quote",
        """
        steps:
          - id: a
            run: "true
        ¶""",
        "invalid YAML",
    ),
    (
        "a document that is no mapping",
        """
        ¶- run: "true"
        """,
        "the DAG must be a mapping, got an array",
    ),
    (
        "no steps",
        """
        ¶name: nothing
        """,
        "the DAG has no steps",
    ),
    (
        "steps neither list nor map",
        """
        steps: ¶"echo hi"
        """,
        "steps must be a list of steps, got a string",
    ),
    (
        "unknown type",
        """
        type: ¶dag
        steps:
          - run: "true"
        """,
        'type must be graph or chain, got "dag"',
    ),
    (
        "overlap_policy",
        """
        overlap_policy: ¶sometimes
        steps:
          - run: "true"
        """,
        'overlap_policy must be skip, all or latest, got "sometimes"',
    ),
    (
        "invalid cron",
        """
        schedule:
          - "0 * * * *"
          - ¶"61 * * * *"
        steps:
          - run: "true"
        """,
        'invalid cron expression "61 * * * *" in schedule',
    ),
    (
        "max_active_runs not a number",
        """
        max_active_runs: ¶many
        steps:
          - run: "true"
        """,
        "max_active_runs must be a whole number, got a string",
    ),
    (
        "typed_references not a boolean",
        """
        typed_references: ¶"yes"
        steps:
          - run: "true"
        """,
        "typed_references must be true or false, got a string",
    ),
    (
        "env entry that is neither KEY=VALUE nor a map",
        """
        env:
          - A=1
          - ¶justtext
        steps:
          - run: "true"
        """,
        "each entry of env must be KEY=VALUE or a map",
    ),
    (
        "env name",
        """
        env:
          ¶1A: x
        steps:
          - run: "true"
        """,
        'invalid env name "1A"',
    ),
    (
        "continue_on word",
        """
        steps:
          - id: a
            run: "true"
            continue_on: ¶sometimes
        """,
        'continue_on must be failed, skipped or a mapping, got "sometimes"',
    ),
    (
        "repeat while without a condition",
        """
        steps:
          - id: a
            run: "true"
            repeat_policy:
              repeat: ¶while
              limit: 3
        """,
        "repeat: while needs repeat_policy.condition or repeat_policy.exit_code",
    ),
    (
        "repeat limit 0",
        """
        steps:
          - id: a
            run: "true"
            repeat_policy: {repeat: true, limit: ¶0}
        """,
        "repeat_policy.limit must be 1 or more, got 0",
    ),
    (
        "a precondition with eval",
        """
        steps:
          - id: a
            run: "true"
            preconditions:
              - ¶eval: $(date +%u)
                expected: "1"
        """,
        '"eval" in a precondition is a Dagu key that statebox\'s runner does not support',
    ),
    (
        "a precondition without condition",
        """
        steps:
          - id: a
            run: "true"
            preconditions:
              - ¶expected: "1"
        """,
        "a precondition needs condition",
    ),
    (
        "a duplicate YAML key",
        """
        steps:
          - id: a
            run: "true"
            ¶run: "false"
        """,
        'duplicate key "run" in a step (first at line 3)',
    ),
    (
        "a key in both spellings",
        """
        steps:
          - id: a
            run: "true"
            retry_policy: {limit: 1}
            ¶retryPolicy: {limit: 2}
        """,
        '"retry_policy" given twice (as "retry_policy" and "retryPolicy")',
    ),
    (
        "output name",
        """
        steps:
          - id: a
            run: "true"
            output: ¶my-var
        """,
        'invalid output name "my-var"',
    ),
    (
        "a handler Dagu has that the runner lacks",
        """
        steps:
          - run: "true"
        handler_on:
          ¶init: {run: "true"}
        """,
        '"init" in handler_on is a Dagu key',
    ),
    (
        "a handler with depends",
        """
        steps:
          - id: a
            run: "true"
        handler_on:
          success:
            run: "true"
            ¶depends: a
        """,
        "handler_on.success cannot have depends",
    ),
    (
        "a DAG name Dagu refuses",
        """
        name: ¶my dag
        steps:
          - run: "true"
        """,
        'invalid DAG name "my dag"',
    ),
    (
        "a second YAML document",
        """
        steps:
          - run: "true"
        ---
        ¶name: child
        steps:
          - run: "true"
        """,
        "a second YAML document",
    ),
    (
        "call with with",
        """
        steps:
          - id: a
            call: child
            ¶with: {dag: child}
        """,
        "call takes params, not with",
    ),
    (
        "structured output",
        """
        steps:
          - id: a
            run: "true"
            output: ¶{image: {from: stdout}}
        """,
        "output as an object (Dagu's structured output) is not supported",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_each_problem_is_reported_at_its_place(tmp_path: Path, text: str, fragment: str) -> None:
    source, line, column = marked(text)
    path = write(tmp_path, source)
    problems = check_files([path], warn=lambda _: None)
    found = [str(p) for p in problems]
    expected = f"{path}:{line}:{column}: "
    assert any(s.startswith(expected) and fragment in s for s in found), (
        f"wanted {expected}…{fragment!r}; got {found}"
    )


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = """
    name: many
    stepz: []
    steps:
      - id: 1bad
        run: "true"
      - id: a
        run: echo ${ghost.output}
        timeout_sec: soon
        depends: [nowhere]
      - id: b
        action: state.sett
    """
    path = write(tmp_path, text)
    with pytest.raises(DagFileError) as info:
        load_dag(path, warn=lambda _: None)
    error = info.value
    assert isinstance(error, InvalidRequestError) and error.exit_code == 2
    lines = [(p.where.line, p.where.column) for p in error.problems]
    assert lines == sorted(lines) and len(lines) == 6
    assert str(error).splitlines() == [str(p) for p in error.problems]
    assert all(str(p).startswith(f"{path}:") for p in error.problems)
    for fragment in ("stepz", "1bad", "${ghost.output}", "timeout_sec", "nowhere", "state.sett"):
        assert fragment in str(error)


def test_a_file_that_does_not_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(NotFoundError) as info:
        load_dag(missing)
    assert info.value.exit_code == 3 and "missing.yaml" in info.value.message
    (problem,) = check_files([missing])
    assert str(problem).startswith(f"{missing}:1:1: no DAG file")


def test_an_empty_file_and_bad_bytes(tmp_path: Path) -> None:
    assert "empty file" in problems_of(tmp_path, "")[0].message
    raw = tmp_path / "latin1.yaml"
    raw.write_bytes(b"name: caf\xe9\nsteps:\n  - run: 'true'\n")
    (problem,) = check_files([str(raw)])
    assert "not UTF-8" in problem.message


def test_an_alias_bomb_is_refused_without_being_expanded(tmp_path: Path) -> None:
    """Nine lines of aliases stand for 10**9 strings: reading the step's ``with`` tree
    would never finish (and exhaust memory); the file is refused before it is read."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in itertools.pairwise("abcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    text = "\n".join([*lines, "steps:", "  - action: state.set", "    with: {key: k, value: *i}"])
    (problem,) = problems_of(tmp_path, text + "\n")
    assert "more than 200000 values once its aliases are expanded" in problem.message
    assert problem.where.line == 1
    (recursive,) = problems_of(tmp_path, "steps:\n  - run: 'true'\n    env: &r [*r]\n")
    assert "recursive alias" in recursive.message


# -- references that are fine -------------------------------------------------------------


def test_references_that_are_no_problem(tmp_path: Path) -> None:
    text = r"""
    params:
      - COUNT: 1
      - REGION=eu
    env:
      PAYLOAD: '{"a": 1}'
    steps:
      - id: load
        action: state.get
        output: CURSOR
        with: {key: k}
      - name: Fetch feed
        run: >
          echo ${CURSOR.value.last_id} ${CURSOR} ${UNKNOWN_ENV_VAR} $HOME ${HOME}
          ${params.COUNT} ${params.REGION} ${params.1} ${env.ANYTHING} ${VAR:-default}
          ${1} \${nope.output} ${COUNT.x} ${PAYLOAD.a} ${load.stdout} ${load.exit_code}
          ${Fetch feed.output} ${steps.load.outputs.x} ${load.output}
        depends: load
    """
    assert problems_of(tmp_path, text) == []


def test_references_in_every_field_are_checked(tmp_path: Path) -> None:
    text = """
    env:
      - A: ${e1.output}
    preconditions: test -n "${e2.output}"
    steps:
      - id: s
        run: echo ${e3.output}
        env: ["B=${e4.output}"]
        working_dir: /tmp/${e5.output}
        repeat_policy: {repeat: until, condition: "${e6.output}", expected: "x"}
      - id: t
        call: child
        params: "X=${e7.output}"
      - id: u
        script: echo ${e8.output}
    handler_on:
      exit:
        run: echo ${e9.output} ${s.output}
    """
    found = {m for p in problems_of(tmp_path, text) for m in re.findall(r"e\d", p.message)}
    assert found == {f"e{i}" for i in range(1, 10)}


# -- defaults and forms -------------------------------------------------------------------


def test_defaults_as_dagu(tmp_path: Path) -> None:
    path = write(tmp_path, 'steps:\n  - run: "true"\n', name="nightly-report.yml")
    dag = load_dag(path)
    assert dag.name == "nightly-report"
    assert dag.path == os.path.abspath(path)
    assert dag.type == "graph"
    assert dag.working_dir == str(tmp_path.resolve()) or dag.working_dir == str(tmp_path)
    assert os.path.isabs(dag.working_dir or "")
    assert dag.max_output_size == DEFAULT_MAX_OUTPUT_SIZE == 1 << 20
    assert dag.hist_retention_days == DEFAULT_HIST_RETENTION_DAYS == 30
    assert dag.max_active_runs == 1 and dag.overlap_policy == "skip"
    assert dag.typed_references is False and dag.schedule == () and dag.params == ()
    (step,) = dag.steps
    assert step.id is None and step.name == "cmd_1" and step.run == ("true",)
    assert step.depends == () and step.where is not None and step.where.line == 2


def test_hist_retention_days_as_dagu(tmp_path: Path) -> None:
    def days(value: str) -> tuple[float, list[str]]:
        warnings: list[str] = []
        path = write(tmp_path, f"hist_retention_days: {value}\nsteps:\n  - run: 'true'\n")
        return load_dag(path, warn=warnings.append).hist_retention_days, warnings

    assert days("7") == (7.0, [])
    assert days("0.5") == (0.5, [])  # statebox's own: Dagu takes whole days
    # Dagu's loader makes 0 its default (30 days): the same here, with a warning.
    retained, warnings = days("0")
    assert retained == DEFAULT_HIST_RETENTION_DAYS
    (warning,) = warnings
    assert warning.startswith(f"{tmp_path / 'dag.yaml'}:1:22: warning: hist_retention_days: 0")
    assert "default of 30 days" in warning


def test_a_relative_path_and_a_relative_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "working_dir: ../data\nsteps:\n  - run: 'true'\n")
    monkeypatch.chdir(tmp_path)
    dag = load_dag(os.path.join("sub", "dag.yaml"))
    assert dag.working_dir == os.path.join(str(tmp_path), "data")
    assert dag.path == str(tmp_path / "sub" / "dag.yaml")
    kept = load_dag(write(tmp_path, "working_dir: ${HOME}/x\nsteps:\n  - run: 'true'\n"))
    assert kept.working_dir == "${HOME}/x"


def test_every_dag_key(tmp_path: Path) -> None:
    text = """
    name: every-key
    description: ignored
    tags: [a, b]
    group: ops
    hist_retention_days: 3
    log_dir: /tmp/logs
    params: "A B COUNT=1"
    env:
      - LEVEL: debug
      - NUM=3
    dotenv: .env
    shell: [bash, -e]
    shell_args: [-o, pipefail]
    type: chain
    preconditions:
      - condition: "${LEVEL}"
        expected: "re:deb.*"
        negate: false
    max_output_size: 2048
    max_active_steps: 3
    schedule: "*/5 * * * *"
    max_active_runs: 2
    overlap_policy: latest
    typed_references: true
    steps:
      - run: "true"
    handler_on:
      success: {run: echo ok}
      failure: {run: echo failed}
      abort: {run: echo aborted}
      exit: {id: bye, run: echo bye}
    """
    dag = load_dag(write(tmp_path, text))
    assert dag.name == "every-key"
    assert dag.params == ((None, "A"), (None, "B"), ("COUNT", "1"))
    assert dag.env == {"LEVEL": "debug", "NUM": "3"}
    assert dag.dotenv == (".env",)
    assert dag.shell == "bash -e -o pipefail"
    assert dag.type == "chain"
    assert dag.preconditions == (
        Precondition("${LEVEL}", "re:deb.*", False, dag.preconditions[0].where),
    )
    assert dag.max_output_size == 2048 and dag.max_active_steps == 3
    assert dag.hist_retention_days == 3
    assert dag.schedule == ("*/5 * * * *",)
    assert dag.max_active_runs == 2 and dag.overlap_policy == "latest"
    assert dag.typed_references is True
    handlers = dag.handler_on
    assert handlers.success and handlers.success.name == "onSuccess"
    assert handlers.failure and handlers.failure.run == ("echo failed",)
    assert handlers.abort and handlers.abort.name == "onAbort"
    assert handlers.exit and handlers.exit.id == "bye" and handlers.exit.name == "onExit"


def test_every_step_key(tmp_path: Path) -> None:
    text = """
    steps:
      - id: first
        name: First step
        description: ignored
        run: [echo one, echo two]
        output: $RESULT
        env: {A: "1", B: 2, C: true, D: null}
        working_dir: sub
        shell: bash
        timeout_sec: 2.5
        preconditions: test -f ready
        retry_policy:
          limit: "3"
          interval_sec: 1
          exit_code: 4
          backoff: true
          max_interval_sec: 10
        continue_on:
          failure: true
          skipped: true
          exit_code: [1, "2"]
          output: ["re:warn.*", done]
          mark_success: true
        repeat_policy:
          repeat: until
          condition: "${RESULT}"
          expected: done
          interval_sec: 0.5
          limit: 5
          backoff: 1.5
          max_interval_sec: 3
      - id: second
        depends: First step
        run: "true"
        with:
          shell: zsh
        retry_policy: {limit: 1, backoff: false, exit_code: []}
        continue_on: failed
        repeat_policy: {repeat: true}
      - id: third
        depends: [first, second, first]
        run: "true"
        continue_on: skipped
        repeat_policy: {condition: "test -f x", interval_sec: 1}
    """
    first, second, third = load_dag(write(tmp_path, text)).steps
    assert (first.id, first.name, first.ref) == ("first", "First step", "first")
    assert first.run == ("echo one", "echo two") and first.output == "RESULT"
    assert first.env == {"A": "1", "B": "2", "C": "true", "D": ""}
    assert first.working_dir == "sub" and first.shell == "bash" and first.timeout_sec == 2.5
    assert [p.condition for p in first.preconditions] == ["test -f ready"]
    assert first.preconditions[0].expected is None
    assert first.retry_policy == RetryPolicy(
        limit=3, interval_sec=1.0, exit_code=(4,), backoff=2.0, max_interval_sec=10.0
    )
    assert first.continue_on == ContinueOn(True, True, (1, 2), ("re:warn.*", "done"), True)
    assert first.repeat_policy == RepeatPolicy(
        mode="until",
        condition="${RESULT}",
        expected="done",
        interval_sec=0.5,
        limit=5,
        backoff=1.5,
        max_interval_sec=3.0,
    )
    assert second.depends == ("First step",) and second.shell == "zsh"
    assert second.retry_policy == RetryPolicy(limit=1, backoff=1.0)
    assert second.continue_on == ContinueOn(failure=True)
    assert second.repeat_policy == RepeatPolicy(mode="while")
    assert third.depends == ("First step", "second")
    assert third.continue_on == ContinueOn(skipped=True)
    assert third.repeat_policy == RepeatPolicy(
        mode="while", condition="test -f x", interval_sec=1.0
    )


def test_repeat_policy_modes_as_dagu(tmp_path: Path) -> None:
    def policy(body: str) -> RepeatPolicy | None:
        text = f'steps:\n  - run: "true"\n    repeat_policy: {body}\n'
        (step,) = load_dag(write(tmp_path, text)).steps
        return step.repeat_policy

    assert policy("{repeat: false}") is None
    assert policy("{interval_sec: 3}") is None  # nothing to decide on: no repeat
    assert policy("{condition: c, expected: e}") == RepeatPolicy("until", "c", "e")
    assert policy("{exit_code: [1]}") == RepeatPolicy("while", exit_code=(1,))
    assert policy("{repeat: while, exit_code: 1}") == RepeatPolicy("while", exit_code=(1,))
    assert policy("{repeat: false, condition: c}") == RepeatPolicy("while", "c")


def test_chain_type(tmp_path: Path) -> None:
    text = """
    type: chain
    steps:
      - id: a
        run: "true"
      - id: b
        run: "true"
      - - id: c1
          run: "true"
        - id: c2
          run: "true"
      - id: d
        run: "true"
      - id: e
        run: "true"
        depends: a
      - id: f
        run: "true"
        depends: []
    """
    steps = {s.ref: s.depends for s in load_dag(write(tmp_path, text)).steps}
    assert steps == {
        "a": (),
        "b": ("a",),
        "c1": ("b",),
        "c2": ("b",),
        "d": ("c1", "c2"),
        "e": ("a",),  # explicit depends win over the chain
        "f": (),
    }


def test_graph_type_adds_no_dependency(tmp_path: Path) -> None:
    text = 'steps:\n  - id: a\n    run: "true"\n  - id: b\n    run: "true"\n'
    assert [s.depends for s in load_dag(write(tmp_path, text)).steps] == [(), ()]


def test_steps_as_a_map(tmp_path: Path) -> None:
    text = """
    type: chain
    steps:
      extract:
        run: echo extract
      load:
        id: load
        run: echo load
      report:
        run: echo report
        depends: extract
    """
    steps = load_dag(write(tmp_path, text)).steps
    assert [(s.name, s.id, s.depends) for s in steps] == [
        ("extract", None, ()),
        ("load", "load", ("extract",)),
        ("report", None, ("extract",)),
    ]


def test_generated_names_as_dagu(tmp_path: Path) -> None:
    text = """
    steps:
      - echo shorthand
      - action: state.set
        with: {key: k, value: 1}
      - call: child
      - script: echo hi
      - name: cmd_5
        run: "true"
      - run: "true"
    """
    names = [s.name for s in load_dag(write(tmp_path, text)).steps]
    assert names == ["cmd_1", "state_2", "dag_3", "script_4", "cmd_5", "cmd_6"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ('"A B K=V"', ((None, "A"), (None, "B"), ("K", "V"))),
        ("'K=\"two words\" X=1 last'", (("K", "two words"), ("X", "1"), (None, "last"))),
        ("[A, B=2, {C: 3}, {D: null}]", ((None, "A"), ("B", "2"), ("C", "3"), ("D", ""))),
        ("{COUNT: 10, REGION: eu, ON: true}", (("COUNT", "10"), ("REGION", "eu"), ("ON", "true"))),
        (
            "[{name: COUNT, default: 5, type: integer, description: how many}, {name: X}]",
            (("COUNT", "5"), ("X", "")),
        ),
        ('\'{"A": 1, "B": "x"}\'', (("A", "1"), ("B", "x"))),
        ("null", ()),
    ],
)
def test_params_forms(
    tmp_path: Path, params: str, expected: tuple[tuple[str | None, str], ...]
) -> None:
    text = f"params: {params}\nsteps:\n  - run: 'true'\n"
    assert load_dag(write(tmp_path, text), warn=lambda _: None).params == expected


def test_parse_param_string() -> None:
    assert parse_param_string('x K="a \\"b\\"" `cmd arg`') == [
        (None, "x"),
        ("K", 'a "b"'),
        (None, "`cmd arg`"),
    ]
    assert parse_param_string('[1, "two", {"K": false}]') == [
        (None, "1"),
        (None, "two"),
        ("K", "false"),
    ]


def test_env_forms(tmp_path: Path) -> None:
    for env in ("{A: '1', B: x=y}", "[{A: '1'}, {B: x=y}]", "[A=1, B=x=y]"):
        dag = load_dag(write(tmp_path, f"env: {env}\nsteps:\n  - run: 'true'\n"))
        assert dag.env == {"A": "1", "B": "x=y"}, env


def test_yaml_scalars_are_read_as_go_reads_them(tmp_path: Path) -> None:
    text = """
    steps:
      - id: a
        action: state.set
        with:
          key: k
          value:
            on: yes
            date: 2024-01-01
            octal: 0777
            time: 12:30
            big: 1e3
            t: true
            n: ~
    """
    (step,) = load_dag(write(tmp_path, text)).steps
    assert step.with_["value"] == {
        "on": "yes",
        "date": "2024-01-01",
        "octal": 777,
        "time": "12:30",
        "big": 1000.0,
        "t": True,
        "n": None,
    }


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = """
    x-retry: &retry {limit: 2, interval_sec: 1}
    steps:
      - id: a
        run: "true"
        retry_policy: *retry
      - id: b
        run: "true"
        retry_policy:
          <<: *retry
          limit: 5
    """
    # x-retry is no Dagu key: an unknown key like any other
    (problem,) = problems_of(tmp_path, text)
    assert problem.where.line == 1 and 'unknown key "x-retry"' in problem.message
    dag = load_dag(write(tmp_path, text.replace("x-retry: &retry", "description: &retry")))
    a, b = dag.steps
    assert a.retry_policy == RetryPolicy(limit=2, interval_sec=1.0)
    assert b.retry_policy == RetryPolicy(limit=5, interval_sec=1.0)


def test_legacy_command_script_and_call(tmp_path: Path) -> None:
    text = """
    steps:
      - id: legacy
        command: python
        script: |
          print("hi")
      - id: sub
        call: child
        params: "A=1 B=2"
      - id: sub_map
        call: child
        params: {A: 1}
      - id: bare_call
        call: child
      - id: new_style
        action: dag.run
        with:
          dag: child
          params: {A: "${legacy.output}"}
    """
    steps = {s.ref: s for s in load_dag(write(tmp_path, text)).steps}
    assert steps["legacy"].run == ("python",) and steps["legacy"].script == 'print("hi")\n'
    assert steps["sub"].action == "dag.run"
    assert steps["sub"].with_ == {"dag": "child", "params": "A=1 B=2"}
    assert steps["sub_map"].with_ == {"dag": "child", "params": {"A": 1}}
    assert steps["bare_call"].with_ == {"dag": "child"}
    assert steps["new_style"].with_ == {"dag": "child", "params": {"A": "${legacy.output}"}}


# -- the older camelCase spellings --------------------------------------------------------


def test_camel_case_keys_are_read_with_a_warning(tmp_path: Path) -> None:
    text = """
    maxActiveRuns: 3
    overlapPolicy: all
    handlerOn:
      cancel:
        run: echo aborted
    steps:
      - id: a
        run: "true"
        workingDir: /tmp
        timeoutSec: 5
        retryPolicy:
          limit: 2
          intervalSec: 1
          exitCode: [4]
          maxIntervalSec: 9
        continueOn:
          markSuccess: true
          failure: true
        repeatPolicy:
          repeat: while
          exitCode: [1]
    """
    warnings: list[str] = []
    path = write(tmp_path, text)
    dag = load_dag(path, warn=warnings.append)
    assert dag.max_active_runs == 3 and dag.overlap_policy == "all"
    assert dag.handler_on.abort is not None and dag.handler_on.abort.name == "onAbort"
    (step,) = dag.steps
    assert step.working_dir == "/tmp" and step.timeout_sec == 5
    assert step.retry_policy == RetryPolicy(2, 1.0, (4,), 1.0, 9.0)
    assert step.continue_on == ContinueOn(failure=True, mark_success=True)
    assert step.repeat_policy == RepeatPolicy("while", exit_code=(1,))
    expected = {
        (1, 1, "maxActiveRuns", "max_active_runs"),
        (2, 1, "overlapPolicy", "overlap_policy"),
        (3, 1, "handlerOn", "handler_on"),
        (4, 3, "cancel", "abort"),
        (9, 5, "workingDir", "working_dir"),
        (10, 5, "timeoutSec", "timeout_sec"),
        (11, 5, "retryPolicy", "retry_policy"),
        (13, 7, "intervalSec", "interval_sec"),
        (14, 7, "exitCode", "exit_code"),
        (15, 7, "maxIntervalSec", "max_interval_sec"),
        (16, 5, "continueOn", "continue_on"),
        (17, 7, "markSuccess", "mark_success"),
        (19, 5, "repeatPolicy", "repeat_policy"),
        (21, 7, "exitCode", "exit_code"),
    }
    assert len(warnings) == len(expected)
    for line, column, old, new in expected:
        prefix = f"{path}:{line}:{column}: warning: "
        assert any(
            w.startswith(prefix) and f'"{old}"' in w and f'"{new}"' in w for w in warnings
        ), (
            prefix,
            old,
            warnings,
        )


def test_older_names_that_are_not_camel_case(tmp_path: Path) -> None:
    text = """
    steps:
      - id: a
        action: state.get
        config: {key: k}
        preconditions:
          - command: test -f x
    handler_on:
      cancel: {run: echo stop}
    """
    warnings: list[str] = []
    path = write(tmp_path, text)
    dag = load_dag(path, warn=warnings.append)
    (step,) = dag.steps
    assert step.with_ == {"key": "k"} and step.preconditions[0].condition == "test -f x"
    assert dag.handler_on.abort is not None
    assert warnings == [
        f'{path}:4:5: warning: "config" is the older spelling of "with": write with '
        "(Dagu's current name)",
        f'{path}:6:9: warning: "command" is the older spelling of "condition": write '
        "condition (Dagu's current name)",
        f'{path}:8:3: warning: "cancel" is the older spelling of "abort": write abort '
        "(Dagu's current name)",
    ]


def test_warnings_go_to_standard_error_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "steps:\n  - run: 'true'\n    timeoutSec: 1\n")
    load_dag(path)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f'{path}:3:5: warning: "timeoutSec" is the older spelling of "timeout_sec": '
        "write timeout_sec (Dagu's keys are snake_case now)\n"
    )


# -- the seed's examples, as YAML ---------------------------------------------------------

SEED_DAGS = {
    "feed-sync": """
        name: feed-sync
        schedule: "0 * * * *"
        steps:
          - id: load_cursor
            action: state.get
            output: CURSOR
            with:
              key: cursors/feed
              default:
                last_id: 0
          - id: fetch
            run: ./fetch-feed --after "${CURSOR.value.last_id}" > result.json
            depends: load_cursor
          - id: parse_last_id
            run: jq -r '.last_id' result.json
            output: LAST_ID
            depends: fetch
          - id: save_cursor
            action: state.set
            with:
              key: cursors/feed
              value:
                last_id: "${LAST_ID}"
            depends: parse_last_id
        """,
    "get": """
        steps:
          - id: load
            action: state.get
            output: STATE
            with:
              key: cursors/feed
              default:
                last_id: 0
        """,
    "set": """
        steps:
          - action: state.set
            with:
              key: cursors/feed
              value:
                last_id: 123
        """,
    "change-detection": """
        steps:
          - id: check_snapshot
            action: state.diff
            output: DIFF
            with:
              key: snapshots/feed
              value:
                count: "${COUNT}"
                checksum: "${CHECKSUM}"
          - id: notify_if_changed
            run: ./notify.sh
            depends: check_snapshot
            preconditions:
              - condition: "${DIFF.changed}"
                expected: "true"
        """,
    "delete": """
        steps:
          - action: state.delete
            with:
              key: cursors/feed
        """,
    "list": """
        steps:
          - id: list_cursors
            action: state.list
            output: CURSORS
            with:
              prefix: cursors/
              limit: 20
              include_values: false
        """,
    "custom-scope": """
        steps:
          - action: state.set
            with:
              scope: custom
              namespace: feed-pipeline-v1
              key: cursors/source-a
              value:
                last_id: 123
        """,
    "other-dag": """
        steps:
          - action: state.get
            with:
              scope: dag
              namespace: upstream-dag
              key: cursors/feed
        """,
    "optimistic": """
        steps:
          - id: load
            action: state.get
            output: STATE
            with:
              key: counters/jobs
              required: true
          - id: save
            action: state.set
            with:
              key: counters/jobs
              expected_version: "${STATE.version}"
              value:
                count: "${NEXT_COUNT}"
            depends: load
        """,
}


@pytest.mark.parametrize("name", list(SEED_DAGS))
def test_the_seed_examples_load(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, SEED_DAGS[name], name=f"{name}.yaml")
    warnings: list[str] = []
    dag = load_dag(path, warn=warnings.append)
    assert warnings == [] and dag.name == name and dag.steps
    assert all(
        step.action in (None, "state.get", "state.set", "state.diff", "state.delete", "state.list")
        for step in dag.steps
    )


def test_the_seed_feed_sync_in_detail(tmp_path: Path) -> None:
    dag = load_dag(write(tmp_path, SEED_DAGS["feed-sync"], name="feed-sync.yaml"))
    assert dag.schedule == ("0 * * * *",)
    load, fetch, parse, save = dag.steps
    assert load.with_ == {"key": "cursors/feed", "default": {"last_id": 0}}
    assert load.output == "CURSOR" and fetch.depends == ("load_cursor",)
    assert fetch.run == ('./fetch-feed --after "${CURSOR.value.last_id}" > result.json',)
    assert parse.output == "LAST_ID" and parse.depends == ("fetch",)
    assert save.with_ == {"key": "cursors/feed", "value": {"last_id": "${LAST_ID}"}}
    assert save.depends == ("parse_last_id",)
    optimistic = load_dag(write(tmp_path, SEED_DAGS["optimistic"], name="optimistic.yaml"))
    assert optimistic.steps[1].with_["expected_version"] == "${STATE.version}"


def test_statebox_actions_and_typed_references(tmp_path: Path) -> None:
    text = """
    typed_references: true
    steps:
      - id: bump
        action: state.update
        with: {key: counter, jq: ".n += 1", default: {n: 0}}
      - id: lease
        action: lease.acquire
        with: {name: nightly, ttl: 60}
      - id: txn
        action: state.txn
        with: {ops: [{op: set, key: a, value: 1}]}
      - id: back
        action: state.rollback
        with: {key: counter, to_version: 1}
        depends: [bump, lease, txn]
    """
    dag = load_dag(write(tmp_path, text))
    assert dag.typed_references and [s.action for s in dag.steps] == [
        "state.update",
        "lease.acquire",
        "state.txn",
        "state.rollback",
    ]


# -- sub-DAGs -----------------------------------------------------------------------------


def test_find_sub_dag(tmp_path: Path) -> None:
    parent_dir, dags_dir = tmp_path / "parent", tmp_path / "dags"
    parent_dir.mkdir()
    dags_dir.mkdir()
    parent = write(parent_dir, "steps: [echo]", name="parent.yaml")
    beside = write(parent_dir, "steps: [echo]", name="child.yaml")
    write(parent_dir, "steps: [echo]", name="child.yml")
    assert find_sub_dag("child", parent, str(dags_dir)) == beside
    os.remove(beside)
    assert find_sub_dag("child", parent, str(dags_dir)) == str(parent_dir / "child.yml")
    os.remove(parent_dir / "child.yml")
    in_dags = write(dags_dir, "steps: [echo]", name="child.yaml")
    assert find_sub_dag("child", parent, str(dags_dir)) == in_dags
    assert find_sub_dag("child.yaml", None, str(dags_dir)) == in_dags
    nested = write(parent_dir, "steps: [echo]", name="other.yml")
    assert find_sub_dag(nested, None, None) == nested  # an absolute path
    (parent_dir / "sub").mkdir()
    deeper = write(parent_dir / "sub", "steps: [echo]", name="leaf.yaml")
    assert find_sub_dag("sub/leaf", parent, None) == deeper
    with pytest.raises(NotFoundError) as info:
        find_sub_dag("ghost", parent, str(dags_dir))
    assert info.value.exit_code == 3
    for tried in ("ghost.yaml", "ghost.yml"):
        assert str(parent_dir / tried) in info.value.message
        assert str(dags_dir / tried) in info.value.message


# -- cycles, for any graph ----------------------------------------------------------------


def _has_cycle(deps: dict[int, set[int]]) -> bool:
    """Kahn's algorithm: a graph has a cycle iff some node is never freed."""
    pending = {n: len(d) for n, d in deps.items()}
    free = [n for n, count in pending.items() if count == 0]
    freed = 0
    while free:
        n = free.pop()
        freed += 1
        for m, d in deps.items():
            if n in d:
                pending[m] -= 1
                if pending[m] == 0:
                    free.append(m)
    return freed < len(deps)


@st.composite
def graphs(draw: st.DrawFn) -> dict[int, set[int]]:
    size = draw(st.integers(1, 7))
    nodes = list(range(size))
    return {n: draw(st.sets(st.sampled_from(nodes), max_size=3)) for n in nodes}


@settings(max_examples=150, deadline=None)
@given(graph=graphs(), chain=st.booleans())
def test_a_cycle_is_reported_iff_there_is_one(
    tmp_path_factory: pytest.TempPathFactory, graph: dict[int, set[int]], chain: bool
) -> None:
    lines = ["type: chain" if chain else "type: graph", "steps:"]
    for n, deps in graph.items():
        lines += [f"  - id: s{n}", "    run: 'true'"]
        if deps or not chain:
            lines.append(f"    depends: [{', '.join(f's{d}' for d in sorted(deps))}]")
    directory = tmp_path_factory.getbasetemp()
    problems = problems_of(directory, "\n".join(lines) + "\n", name="graph.yaml")
    assert all(p.message.startswith("dependency cycle: ") for p in problems), problems
    # In a chain, a step without depends follows the one before it.
    effective = {
        n: (deps if deps or not chain else ({n - 1} if n else set())) for n, deps in graph.items()
    }
    assert bool(problems) == _has_cycle(effective)
    for problem in problems:  # each named cycle is one: every step depends on the next
        names = [
            int(x[1:]) for x in problem.message.removeprefix("dependency cycle: ").split(" → ")
        ]
        assert names[0] == names[-1]
        assert all(b in effective[a] for a, b in itertools.pairwise(names))
