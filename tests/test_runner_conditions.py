"""Preconditions (issue #14: string form, ``condition`` / ``expected`` / ``negate``,
``re:``) and ``continue_on.output`` matching, as Dagu does them; command checks run in a
real ``sh -c``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.core.errors import InvalidValueError, StateboxError
from statebox.runner.conditions import expected_matches, output_matches, preconditions_met
from statebox.runner.model import Precondition, Where
from statebox.runner.refs import RefContext

CTX = RefContext(
    params={"environment": "production", "flag": "ready.flag"},
    positional=[],
    env={"MODE": "daily"},
    outputs={"DIFF": '{"operation":"diff","changed":true}', "SAME": '{"changed":false}'},
    steps={},
)


def sh_runner(cwd: Path, env: dict[str, str] | None = None) -> Callable[[str], int]:
    """What the executor gives: the command run by ``sh -c`` in the step's directory and
    environment, its exit code."""

    def run(command: str) -> int:
        return subprocess.run(
            ["sh", "-c", command], cwd=cwd, env={**os.environ, **(env or {})}, check=False
        ).returncode

    return run


def never_run(command: str) -> int:
    raise AssertionError(f"a value condition ran a command: {command}")


# --- expected_matches ------------------------------------------------------------------


def test_expected_equals_a_whole_line() -> None:
    assert expected_matches("true", "true")
    assert expected_matches("a\ntrue\nb", "true")
    assert not expected_matches("true ", "true")
    assert not expected_matches("untrue", "true")
    assert not expected_matches("True", "true")  # case-sensitive


def test_lines_as_go_scans_them() -> None:
    assert expected_matches("x\r\ntrue\r\n", "true")  # \r\n line ends
    assert not expected_matches("x\n", "")  # a final newline ends the last line
    assert expected_matches("x\n\ny", "")  # an empty line in the middle
    assert expected_matches("", "")  # the empty value


def test_re_is_an_unanchored_search_per_line() -> None:
    assert expected_matches("staging", "re:^(staging|production)$")
    assert expected_matches("build 42 ok", "re:[0-9]+")
    assert not expected_matches("a\nb", "re:a.b")  # never across lines
    assert expected_matches("PROD", "re:(?i)prod")
    assert expected_matches("", "re:^$")
    assert not expected_matches("", "re:.")


def test_an_invalid_regex_is_an_error() -> None:
    with pytest.raises(InvalidValueError, match=r'invalid regular expression "re:\(": '):
        expected_matches("x", "re:(")


# --- output_matches --------------------------------------------------------------------


def test_output_patterns_match_a_line_containing_them() -> None:
    assert output_matches("WARN: disk almost full\nok", ["almost full"])
    assert output_matches("done", ["nope", "re:^do"])
    assert not output_matches("done", ["nope", "re:^one"])
    assert not output_matches("done", [])
    assert output_matches("", ["re:^$"])
    with pytest.raises(InvalidValueError):
        output_matches("x", ["re:[z-a]"])


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n")), min_size=1))
def test_every_line_is_matched_exactly(lines: list[str]) -> None:
    value = "".join(line + "\n" for line in lines)  # each line ended, the empty ones too
    for line in lines:
        assert expected_matches(value, line)
        assert output_matches(value, [line])


# --- preconditions ---------------------------------------------------------------------


def test_no_preconditions_are_met() -> None:
    assert preconditions_met([], CTX, run_shell=never_run)


def test_value_conditions_are_rendered_and_compared() -> None:
    met = [
        Precondition("${params.environment}", "production"),
        Precondition("${params.environment}", "re:^(staging|production)$"),
        Precondition("$MODE", "daily"),  # env variables resolve in a condition
        Precondition("${DIFF.changed}", "true"),  # the seed's change detection
    ]
    assert preconditions_met(met, CTX, run_shell=never_run)
    assert not preconditions_met(
        [Precondition("${SAME.changed}", "true")], CTX, run_shell=never_run
    )


def test_a_value_condition_is_data_never_run() -> None:
    pre = [Precondition("$(echo production)", "production")]
    assert not preconditions_met(pre, CTX, run_shell=never_run)
    assert preconditions_met([Precondition("`x`", "`x`")], CTX, run_shell=never_run)


def test_negate_inverts() -> None:
    assert preconditions_met(
        [Precondition("${params.environment}", "staging", negate=True)], CTX, run_shell=never_run
    )
    assert not preconditions_met(
        [Precondition("${params.environment}", "production", negate=True)],
        CTX,
        run_shell=never_run,
    )


def test_a_list_is_an_and() -> None:
    pre = [
        Precondition("${params.environment}", "production"),
        Precondition("${DIFF.changed}", "false"),
    ]
    assert not preconditions_met(pre, CTX, run_shell=never_run)


def test_command_checks_run_in_the_shell(tmp_path: Path) -> None:
    run = sh_runner(tmp_path, {"MODE": "daily"})
    assert not preconditions_met([Precondition("test -f ready.flag")], CTX, run_shell=run)
    (tmp_path / "ready.flag").write_text("")
    assert preconditions_met([Precondition("test -f ready.flag")], CTX, run_shell=run)
    # References are substituted; the shell expands its own variables and syntax.
    assert preconditions_met(
        [Precondition('test -f "${params.flag}" && test "$MODE" = daily && [ "$(echo x)" = x ]')],
        CTX,
        run_shell=run,
    )
    assert preconditions_met([Precondition("exit 3", negate=True)], CTX, run_shell=run)
    assert not preconditions_met([Precondition("true", negate=True)], CTX, run_shell=run)


def test_a_command_that_cannot_start_is_not_met() -> None:
    def cannot_start(command: str) -> int:
        raise FileNotFoundError(2, "No such file or directory", "/no/shell")

    assert not preconditions_met([Precondition("true")], CTX, run_shell=cannot_start)


def test_every_precondition_is_evaluated(tmp_path: Path) -> None:
    # As Dagu: an unmet one does not stop the others (command checks have side effects).
    pre = [Precondition("${params.environment}", "staging"), Precondition("touch ran")]
    assert not preconditions_met(pre, CTX, run_shell=sh_runner(tmp_path))
    assert (tmp_path / "ran").exists()


def test_an_evaluation_error_raises_and_negate_does_not_hide_it(tmp_path: Path) -> None:
    where = Where("dag.yaml", 12, 7)
    pre = [Precondition("${params.environment}", "re:(unclosed", negate=True, where=where)]
    with pytest.raises(StateboxError) as caught:
        preconditions_met(pre, CTX, run_shell=never_run)
    assert isinstance(caught.value, InvalidValueError)
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(
        'dag.yaml:12:7: precondition "${params.environment}" cannot be evaluated: '
        'invalid regular expression "re:(unclosed": '
    )
    # The others still ran, and the error wins over an unmet one.
    mixed = [Precondition("touch ran2"), Precondition("x", "x"), *pre]
    with pytest.raises(InvalidValueError):
        preconditions_met(mixed, CTX, run_shell=sh_runner(tmp_path))
    assert (tmp_path / "ran2").exists()
