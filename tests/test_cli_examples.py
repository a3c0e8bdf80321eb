"""The CLI's documentation: README's shell examples are the files in examples/ and keep
their promises (a cursor carried across runs, no lost increment under concurrency),
docs/cli.md mentions every command and option, README every exit code.

Every code block of the docs also runs, in order, in tests/test_docs_run.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from statebox import RunContext, open_store

from .test_cli import environment_without_context

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# A README shell example: a bash block whose second line names its file in examples/.
EXAMPLE = re.compile(r"```bash\n(#!/usr/bin/env bash\n# (examples/[\w.-]+\.sh)\b.*?)```", re.S)

# Used only where the jq program is missing: the same filters through the jq binding
# that statebox already depends on.
JQ_FALLBACK = """\
import json, sys
import jq
args = [a for a in sys.argv[1:] if a not in ("-r", "-c")]
raw = "-r" in sys.argv[1:]
text = open(args[1]).read() if len(args) > 1 else sys.stdin.read()  # jq FILTER [FILE]
for out in jq.compile(args[0]).input_text(text).all():
    print(out if raw and isinstance(out, str) else json.dumps(out, separators=(",", ":")))
"""


def readme_examples() -> dict[str, str]:
    return {name: code for code, name in EXAMPLE.findall(README)}


@pytest.fixture
def shell_env(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = environment_without_context(tmp_path_factory)
    env["STATEBOX_STORE"] = f"sqlite:///{tmp_path / 'state.db'}"
    if shutil.which("jq", path=env["PATH"]) is None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "jq"
        shim.write_text(f"#!{sys.executable}\n{JQ_FALLBACK}")
        shim.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def write_example(tmp_path: Path, name: str) -> Path:
    script = tmp_path / Path(name).name
    script.write_text(readme_examples()[name])
    return script


def test_readme_examples_are_the_files_in_examples() -> None:
    examples = readme_examples()
    assert set(examples) == {"examples/cursor.sh", "examples/counter.sh"}
    for name, code in examples.items():
        assert (ROOT / name).read_text() == code, f"README's copy of {name} differs"
        assert os.access(ROOT / name, os.X_OK), name


def test_cursor_example_continues_where_the_last_run_stopped(
    tmp_path: Path, shell_env: dict[str, str]
) -> None:
    script = write_example(tmp_path, "examples/cursor.sh")
    first = subprocess.run(["bash", str(script)], env=shell_env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        "run: cursor was 0, fetched 1..3, saved version 1\n"
        "run: cursor was 3, fetched 4..6, saved version 2\n"
    )
    # the README shows exactly this output
    assert first.stdout in README
    again = subprocess.run(["bash", str(script)], env=shell_env, capture_output=True, text=True)
    assert again.stdout == (
        "run: cursor was 6, fetched 7..9, saved version 3\n"
        "run: cursor was 9, fetched 10..12, saved version 4\n"
    )
    url = shell_env["STATEBOX_STORE"]
    with open_store(url, context=RunContext(dag="feed-sync")) as store:
        assert store.get("cursors/feed").value == {"last_id": 12}


def test_counter_example_loses_no_update_under_concurrency(
    tmp_path: Path, shell_env: dict[str, str]
) -> None:
    script = write_example(tmp_path, "examples/counter.sh")
    copies, increments = 3, 3
    procs = [
        subprocess.Popen(
            ["bash", str(script), str(increments)],
            env=shell_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(copies)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    url = shell_env["STATEBOX_STORE"]
    with open_store(url, context=RunContext(dag="counter-demo")) as store:
        counter = store.get("counters/hits")
        history = store.history("counters/hits")
    assert counter.value == copies * increments
    assert counter.version == copies * increments  # one version per increment, none lost
    assert [h.version for h in history.versions][:3] == [9, 8, 7]


def test_docs_cli_mentions_every_command_and_option() -> None:
    from statebox.cli import all_commands, build_parser

    docs = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(all_commands())  # type: ignore[arg-type]
    for name, sub in subparsers.choices.items():  # type: ignore[union-attr]
        assert f"\n## {name}\n" in docs, f"docs/cli.md has no section for {name}"
        section = docs.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                assert option in docs, f"docs/cli.md does not mention {option}"
            if not action.option_strings and action.metavar:
                assert f"`{action.metavar}`" in section, (name, action.metavar)
        assert f"statebox {name}" in section


def test_readme_documents_every_exit_code() -> None:
    from statebox.cli._parser import EXIT_CODES
    from statebox.core import errors

    table = dict(re.findall(r"^\| (\d) \| (.+) \|$", README, re.M))
    codes = {0, 2} | {
        getattr(errors, name).exit_code
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
    }
    assert {int(c) for c in table} == codes == {0, 1, 2, 3, 4}
    assert "not found" in table["3"] and "conflict" in table["4"]
    for code in codes:
        assert f"\n  {code}  " in EXIT_CODES  # and in statebox --help
