"""``statebox validate FILE…`` on the real executable: what goes to standard output and
standard error, and the exit code. It runs nothing: a DAG whose step would create a file
is checked, and the file is never created."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

STATEBOX = Path(sys.executable).parent / "statebox"

GOOD = """
name: good
steps:
  - id: load
    action: state.get
    output: CURSOR
    with: {key: cursors/feed, default: {last_id: 0}}
  - id: touch
    run: touch ran.txt && echo ${CURSOR.value.last_id}
    depends: load
"""

BAD = """
name: bad
steps:
  - id: a
    run: echo ${ghost.output}
    retry_polcy: {limit: 2}
  - id: b
    action: state.set
    with: {key: k}
    depends: [a, c]
"""

OLD_SPELLING = """
steps:
  - id: a
    run: "true"
    retryPolicy: {limit: 2, intervalSec: 1}
"""


def validate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEBOX_", "DAG_"))}
    env["STATEBOX_STORE"] = "memory://"
    env["STATEBOX_HOME"] = str(cwd / "home")
    return subprocess.run(
        [str(STATEBOX), "validate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(directory: Path, name: str, text: str) -> str:
    (directory / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return name


def test_valid_files_print_ok_and_exit_0(tmp_path: Path) -> None:
    first = write(tmp_path, "good.yaml", GOOD)
    second = write(tmp_path, "also.yml", GOOD.replace("name: good", "name: also"))
    result = validate(tmp_path, first, second)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "good.yaml: ok\nalso.yml: ok\n"
    assert result.stderr == ""
    assert not (tmp_path / "ran.txt").exists()  # nothing ran


def test_every_problem_goes_to_standard_error_and_the_exit_code_is_2(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", BAD)
    result = validate(tmp_path, bad, good, "missing.yaml")
    assert result.returncode == 2
    assert result.stdout == "good.yaml: ok\n"
    assert result.stderr.splitlines() == [
        'bad.yaml:4:15: ${ghost.output} refers to no step: "ghost" is no step\'s id or name',
        'bad.yaml:5:5: unknown key "retry_polcy" in a step; did you mean "retry_policy"?',
        "bad.yaml:8:11: state.set needs with.value",
        'bad.yaml:9:18: step "b" depends on "c", which is no step\'s id or name',
        'missing.yaml:1:1: no DAG file "missing.yaml"',
    ]


def test_a_cycle_and_a_yaml_error(tmp_path: Path) -> None:
    cycle = write(
        tmp_path,
        "cycle.yaml",
        """
        steps:
          - id: a
            run: "true"
            depends: c
          - id: b
            run: "true"
            depends: a
          - id: c
            run: "true"
            depends: b
        """,
    )
    broken = write(tmp_path, "broken.yaml", "steps:\n  - id: a\n   run: x\n")
    result = validate(tmp_path, cycle, broken)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "cycle.yaml:4:5: dependency cycle: a → c → b → a"
    assert lines[1].startswith("broken.yaml:3:") and "invalid YAML" in lines[1]
    assert len(lines) == 2


def test_older_spellings_warn_but_the_file_is_valid(tmp_path: Path) -> None:
    old = write(tmp_path, "old.yaml", OLD_SPELLING)
    result = validate(tmp_path, old)
    assert result.returncode == 0
    assert result.stdout == "old.yaml: ok\n"
    assert result.stderr.splitlines() == [
        'old.yaml:4:5: warning: "retryPolicy" is the older spelling of "retry_policy": '
        "write retry_policy (Dagu's keys are snake_case now)",
        'old.yaml:4:29: warning: "intervalSec" is the older spelling of "interval_sec": '
        "write interval_sec (Dagu's keys are snake_case now)",
    ]


def test_usage(tmp_path: Path) -> None:
    result = validate(tmp_path)
    assert result.returncode == 2 and "FILE" in result.stderr
    help_text = validate(tmp_path, "--help")
    assert help_text.returncode == 0
    assert "statebox validate examples/feed-sync.yaml" in help_text.stdout


def test_validate_opens_no_store(tmp_path: Path) -> None:
    # Without STATEBOX_STORE the default store is $STATEBOX_HOME/state.db: validate reads
    # DAG files only, so it must not create it.
    path = write(tmp_path, "ok.yaml", "steps:\n  - id: a\n    run: echo hi\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEBOX_", "DAG_"))}
    env["STATEBOX_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("statebox")), "validate", path],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: ok\n"
    assert not (tmp_path / "home").exists()
