"""The first minutes with the ``statebox`` command: ``statebox`` alone prints the help,
``--version``, ``python -m statebox``, a did-you-mean for mistyped commands and options,
shell completion (bash, zsh, fish), a hint for a JSON string written without its
quotes, and every command's ``--help`` listing only the common options it reads.

Real subprocesses of the installed console script (``.venv/bin/statebox``) and of
``python -m statebox``, on a SQLite file of each test's own."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.cli import all_commands, build_parser
from statebox.cli._input import _is_never_json

from .test_cli_startup import _env, _modules_after

STATEBOX = Path(sys.executable).with_name("statebox")
MODULE = [sys.executable, "-m", "statebox"]
ROOT = Path(__file__).resolve().parent.parent

# Loaded only on an error, --version or completion path: never by a get or a set.
_ONLY_WHEN_ASKED = {"difflib", "shtab", "shlex", "importlib.metadata", "statebox.cli._suggest"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return _env(STATEBOX_STORE=f"sqlite:///{tmp_path / 'state.db'}", HOME=str(tmp_path))


def sh(
    env: dict[str, str], *args: str, via: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [*(via or [str(STATEBOX)]), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def failed(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit code 2, nothing on standard output, one ``Error: …`` line naming ``words``."""
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    return done.stderr


def test_the_console_script_is_installed() -> None:
    assert os.access(STATEBOX, os.X_OK), f"{STATEBOX}: run scripts/_venv.sh"


# --- statebox alone, --version, python -m statebox -------------------------------------


@pytest.mark.parametrize("via", [[str(STATEBOX)], MODULE], ids=["statebox", "python -m"])
def test_statebox_alone_prints_the_help_and_succeeds(env: dict[str, str], via: list[str]) -> None:
    done = sh(env, via=via)
    # As docker, kubectl and etcdctl do (git exits 1): help was asked for and shown.
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: statebox ")
    assert done.stdout == sh(env, "--help").stdout  # the same text as --help
    listed = done.stdout.split("\ncommands:\n", 1)[1]
    for name in all_commands():  # the other faces' commands (serve, run …) too
        assert re.search(rf"^    {name}\b", listed, re.M), name


@pytest.mark.parametrize("via", [[str(STATEBOX)], MODULE], ids=["statebox", "python -m"])
def test_version_is_the_installed_distributions(env: dict[str, str], via: list[str]) -> None:
    done = sh(env, "--version", via=via)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"statebox {version('statebox')}\n",
        "",
    )
    # before other common options too; a command's own --version is another option
    assert sh(env, "--store", "memory://", "--version", via=via).stdout == done.stdout
    assert "--version" in sh(env, "--help").stdout


def test_python_dash_m_statebox_runs_commands(env: dict[str, str]) -> None:
    wrote = sh(env, "set", "k", '{"a": 1}', "--dag", "d", via=MODULE)
    assert wrote.returncode == 0, wrote.stderr
    read = sh(env, "get", "k", "--dag", "d")  # the console script sees the same store
    assert json.loads(read.stdout)["value"] == {"a": 1}
    failed(sh(env, "get", via=MODULE), "KEY")


def test_version_loads_no_command(env: dict[str, str]) -> None:
    code = (
        "import sys\nfrom statebox.cli import main\nmain(['--version'])\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    loaded = set(done.stdout.splitlines()[-1].split())
    assert "importlib.metadata" in loaded
    # no parser of any command was built: no entry point scan, no command module
    assert not {m for m in loaded if m.startswith("statebox.cli.cmd_")}
    assert "statebox.server.options" not in loaded


def test_a_get_and_a_set_load_none_of_the_first_minutes_helpers(env: dict[str, str]) -> None:
    assert _modules_after(["get", "k"], env) & _ONLY_WHEN_ASKED == set()
    assert _modules_after(["set", "k", '"v"'], env) & _ONLY_WHEN_ASKED == set()


# --- did you mean ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["gett", "k"], '"get"'),
        (["lsit"], '"list"'),
        (["serv"], '"serve"'),  # another face's command, from its entry point
        (["valdate", "x.yaml"], '"validate"'),
        (["--dag", "d", "hsitory", "k"], '"history"'),
        (["lease", "aquire", "n", "--ttl", "5"], '"acquire"'),  # an action
        (["secrets", "rotat"], '"rotate"'),
        (["completion", "bsh"], '"bash"'),  # a choice
        (["get", "k", "--format", "tabel"], '"table"'),
    ],
)
def test_a_mistyped_name_gets_the_closest(env: dict[str, str], argv: list[str], meant: str) -> None:
    failed(sh(env, *argv), f"did you mean {meant}?", "invalid choice")


def test_an_unknown_name_far_from_any_lists_them(env: dict[str, str]) -> None:
    message = failed(sh(env, "frobnicate"), "invalid choice", '"frobnicate" is not a command')
    assert "did you mean" not in message
    assert "get, set," in message and "serve" in message


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["get", "k", "--requird"], "--required"),
        (["get", "k", "--defualt=1"], "--default"),
        (["set", "k", "1", "--expected-verison", "1"], "--expected-version"),
        (["list", "--include-value"], "--include-values"),  # no prefix matching, a hint
        (["lease", "list", "--limt", "3"], "--limit"),
        (["get", "k", "--namespce", "n"], "--namespace"),  # a common option
    ],
)
def test_a_mistyped_option_gets_the_closest_of_the_command(
    env: dict[str, str], argv: list[str], meant: str
) -> None:
    message = failed(sh(env, *argv), "unrecognized arguments", f"did you mean {meant}?")
    command = " ".join(a for a in argv[:2] if a in ("get", "set", "list", "lease"))
    assert f"(see: statebox {command} --help)" in message or "lease list" in message


def test_an_option_unlike_any_gets_no_guess(env: dict[str, str]) -> None:
    assert "did you mean" not in failed(sh(env, "get", "k", "--zzzzzz"), "--zzzzzz")
    failed(sh(env, "list", "a", "b"), "unrecognized arguments: b")


def test_a_common_option_a_command_does_not_read_is_named_so(env: dict[str, str]) -> None:
    failed(
        sh(env, "lease", "list", "--dag", "d"),
        "--dag means nothing to statebox lease list",
    )
    failed(sh(env, "purge", "--scope", "run"), "--scope means nothing to statebox purge")
    # before the command every common option is still taken, as always
    done = sh(env, "--dag", "d", "lease", "list")
    assert done.returncode == 0, done.stderr


# --- completion --------------------------------------------------------------------------


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers for ``words`` (the last one being completed), by the function the
    script registered for ``statebox`` (read back with ``complete -p``)."""
    program = f"""
source {script}
spec=$(complete -p statebox) || exit 3
fn=$(sed -E 's/.* -F ([^ ]+) .*/\\1/' <<<"$spec")
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
"$fn" statebox "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def bash_script(env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    if shutil.which("bash") is None:
        pytest.skip("no bash on this machine")
    done = sh(env, "completion", "bash")
    assert (done.returncode, done.stderr) == (0, "")
    script = tmp_path / "statebox.bash"
    script.write_text(done.stdout)
    yield script


def test_the_bash_script_registers_a_completion(bash_script: Path) -> None:
    loaded = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f"source {bash_script} && complete -p statebox"],
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr == ""
    assert re.fullmatch(r"complete .*-F \S+ statebox\n", loaded.stdout), loaded.stdout


def test_bash_completes_commands_actions_options_and_choices(bash_script: Path) -> None:
    assert _complete(bash_script, "statebox", "ge") == ["get"]
    assert "serve" in _complete(bash_script, "statebox", "se")  # another face's
    assert "dump" in _complete(bash_script, "statebox", "")
    assert _complete(bash_script, "statebox", "lease", "ac") == ["acquire"]
    assert _complete(bash_script, "statebox", "get", "k", "--req") == ["--required"]
    assert sorted(_complete(bash_script, "statebox", "completion", "")) == ["bash", "fish", "zsh"]
    # a command's completion offers only the common options it takes
    assert "--dag" not in _complete(bash_script, "statebox", "lease", "list", "--")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_the_zsh_and_fish_scripts_are_printed(
    env: dict[str, str], tmp_path: Path, shell: str
) -> None:
    done = sh(env, "completion", shell)
    assert (done.returncode, done.stderr) == (0, "")
    assert "statebox" in done.stdout and "acquire" in done.stdout and "dump" in done.stdout
    if shell == "zsh":
        assert "\n#compdef statebox" in "\n" + done.stdout
        assert "--required" in done.stdout
    else:
        assert "complete -c statebox -n '_shtab_statebox_using get' -l required" in done.stdout
    _need(shell)
    script = tmp_path / f"statebox.{shell}"
    script.write_text(done.stdout)
    checked = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def _need(shell: str) -> None:
    """Skip without ``shell`` here; fail under CI, where scripts/test installs it."""
    if shutil.which(shell) is None:
        reason = f"no {shell} here to check its completion script (apt-get install {shell})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_fish_completes_commands_actions_options_and_choices(
    env: dict[str, str], tmp_path: Path
) -> None:
    _need("fish")
    script = tmp_path / "statebox.fish"
    script.write_text(sh(env, "completion", "fish").stdout)

    def offered(line: str) -> list[str]:  # fish's own answer: complete -C LINE
        done = subprocess.run(
            ["fish", "--no-config", "-c", f"source {script}; complete -C {line!r}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return [candidate.split("\t")[0] for candidate in done.stdout.splitlines()]

    assert offered("statebox ge") == ["get"]
    assert offered("statebox lease ac") == ["acquire"]
    assert offered("statebox get k --req") == ["--required"]
    assert sorted(offered("statebox completion ")) == ["bash", "fish", "zsh"]
    lease_list = offered("statebox lease list --")
    assert "--limit" in lease_list and "--dag" not in lease_list  # only what it takes


def test_completion_needs_no_store(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "STATEBOX_STORE": f"sqlite:///{tmp_path / 'never' / 'state.db'}"}
    assert sh(env, "completion", "bash").returncode == 0
    assert not (tmp_path / "never").exists()


# --- a JSON string written without its quotes ---------------------------------------------


def test_a_bare_word_value_says_how_to_quote_it(env: dict[str, str]) -> None:
    message = failed(sh(env, "set", "x", "hello", "--dag", "d"), "VALUE is not JSON: hello")
    assert message.endswith(
        """— for the string "hello", quote it for JSON inside shell quotes: '"hello"'\n"""
    )
    assert json.loads(sh(env, "get", "x", "--dag", "d").stdout)["found"] is False
    # and the advice works
    done = sh(env, "set", "x", '"hello"', "--dag", "d")
    assert done.returncode == 0, done.stderr
    assert json.loads(sh(env, "get", "x", "--dag", "d").stdout)["value"] == "hello"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["get", "x", "--default", "zero"], ["--default is not JSON: zero", """'"zero"'"""]),
        (["diff", "x", "new value"], ["VALUE is not JSON: new value", """'"new value"'"""]),
        (["set", "x", "'single'"], ["""'"single"'"""]),  # JSON's quotes are double
        (["set", "x", "nul"], ["""'"nul"'"""]),
        (["set", "x", "it's"], ["""'"it'"'"'s"'"""]),  # quoted for the shell, exactly
        (["set", "x", ""], ["VALUE is not JSON: an empty argument", """'""'"""]),
        (["update", "x", "--merge", "abc"], ["--merge is not JSON: abc"]),
        (["txn", "oops"], ["OPS is not JSON: oops"]),
    ],
)
def test_every_json_argument_gives_the_hint(
    env: dict[str, str], argv: list[str], words: list[str]
) -> None:
    failed(sh(env, *argv, "--dag", "d"), *words)


def test_other_invalid_json_keeps_the_engines_message(env: dict[str, str]) -> None:
    message = failed(sh(env, "set", "x", "{a: 1}", "--dag", "d"), "invalid JSON")
    assert "shell quotes" not in message
    for literal in ("true", " null ", "-1.5e3", "[1]", '"s"', "\t{}\n"):
        done = sh(env, "set", "x", literal, "--dag", "d")
        assert done.returncode == 0, (literal, done.stderr)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(_json, st.sampled_from(["", " ", "\n", "\t\r\n "]), st.booleans())
def test_no_json_text_is_taken_for_a_bare_word(value: object, space: str, indent: bool) -> None:
    text = space + json.dumps(value, indent=1 if indent else None) + space
    assert not _is_never_json(text)


# --- each command's --help: only the common options it reads ------------------------------

_READ = {"--store", "--format", "--scope", "--namespace", "--dag", "--root-dag", "--run-id"}
_WRITE = _READ | {"--step"}
_WHO = {"--store", "--format", "--dag", "--run-id", "--step"}  # lease holder, updatedBy
_COMMON = _WRITE

#: The common options each command reads: a keyspace's (namespace from the run context),
#: and the run context's step only where it is recorded (writes, updatedBy).
EXPECTED: dict[str, set[str]] = {
    "get": _READ,
    "set": _WRITE,
    "diff": _WRITE,
    "delete": _WRITE,
    "list": _READ,
    "update": _WRITE,
    "history": _READ,
    "rollback": _WRITE,
    "txn": _WRITE,
    "lease": set(),
    "lease acquire": _WHO,  # the default holder is the run context's
    "lease renew": {"--store", "--format"},
    "lease release": {"--store", "--format"},
    "lease get": {"--store", "--format"},
    "lease list": {"--store", "--format"},
    "keyspaces": {"--store", "--format", "--scope"},
    "keyspaces delete": _WRITE,
    "purge": {"--store", "--format"},
    "watch": _READ,
    "secrets": set(),
    "secrets keygen": set(),
    "secrets rotate": _WHO,
    "dump": {"--store", "--scope", "--namespace"},
    "load": {"--store"},
    "copy": {"--scope", "--namespace"},
    "backup": {"--store"},
    "completion": set(),
    "run": {"--store", "--run-id"},
    "runs": {"--store", "--format", "--dag"},
    "runs show": {"--store", "--format"},
    "runs log": {"--store"},
    "schedule": {"--store"},
    "serve": {"--store"},
    "validate": set(),
}


def _commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(
        prefix: str, parser: argparse.ArgumentParser
    ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    path = f"{prefix} {name}".strip()
                    yield path, sub
                    yield from walk(path, sub)

    yield from walk("", build_parser())


def _common_shown(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for a in parser._actions for flag in a.option_strings} & _COMMON


def _reads(parser: argparse.ArgumentParser) -> set[str]:
    """The attributes of ``args`` the command's handler reads, from its source."""
    handler = parser.get_default("handler")
    if handler is None:  # a group of actions (lease, secrets): no handler of its own
        return set()
    source = inspect.getsource(handler)
    return set(re.findall(r"\bargs\.(\w+)", source)) | set(
        re.findall(r"getattr\(args, \"(\w+)\"", source)
    )


def test_every_command_is_in_the_table() -> None:
    assert {path for path, _ in _commands()} == set(EXPECTED)


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_help_lists_only_the_common_options_the_command_reads(path: str) -> None:
    parser = dict(_commands())[path]
    shown = _common_shown(parser)
    assert shown == EXPECTED[path]
    usage = parser.format_usage()  # the options listed are the usage's
    for flag in _COMMON:
        assert bool(re.search(rf"\[{flag}\b", usage)) == (flag in shown), (path, flag)
    # Cross-checked with the handler's source: --scope and --namespace are shown exactly
    # when it reads them; --format when it reads it or returns a result printed in it;
    # --store when the store is opened for it.
    reads = _reads(parser)
    handler = parser.get_default("handler")
    if handler is not None and parser.get_default("handler") is not None:
        for option in ("scope", "namespace"):
            # (a handler inherited from the group's parser: keyspaces delete's own)
            assert (f"--{option}" in shown) == (option in reads), (path, option)
        returns = str(inspect.signature(handler).return_annotation)
        prints_result = returns not in ("int", "None")
        assert ("--format" in shown) == ("format" in reads or prints_result), path
        opens_store = parser.get_default("opens_store") is not False
        assert ("--store" in shown) <= (opens_store or "store" in reads), path
    # The run context: only a command that resolves a keyspace from it, records its
    # writer, or reads a part of it itself.
    context = shown & {"--dag", "--root-dag", "--run-id", "--step"}
    if context and "scope" not in reads:
        assert (
            path in ("lease acquire", "secrets rotate")
            or {flag[2:].replace("-", "_") for flag in context} <= reads
        ), path


def test_lease_help_has_no_run_context(env: dict[str, str]) -> None:
    for argv in (["lease", "--help"], ["lease", "list", "--help"], ["purge", "--help"]):
        done = sh(env, *argv)
        assert done.returncode == 0
        assert "--dag" not in done.stdout and "--scope" not in done.stdout, argv
    assert "--dag NAME" in sh(env, "get", "--help").stdout
    assert "--step" not in sh(env, "get", "--help").stdout  # a read records no writer
    assert "--step NAME" in sh(env, "set", "--help").stdout


def test_options_a_command_reads_still_work_after_it(env: dict[str, str]) -> None:
    done = sh(env, "set", "k", "1", "--dag", "d", "--step", "s", "--scope", "run", "--run-id", "r")
    assert done.returncode == 0, done.stderr
    got = sh(env, "history", "k", "--scope", "run", "--run-id", "r", "--format", "table")
    assert got.returncode == 0 and "s" in got.stdout


def test_add_command_refuses_an_unknown_common_name() -> None:
    from statebox.cli._parser import add_command, new_parser

    _, subparsers = new_parser()
    with pytest.raises(ValueError, match="unknown common option 'context2'"):
        add_command(subparsers, "x", help="x", description="x", examples=[], common=("context2",))


def test_docs_say_how_to_install_completion() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text()
    section = docs.split("\n## completion\n", 1)[1].split("\n## ", 1)[0]
    for line in (
        'eval "$(statebox completion bash)"',
        "statebox completion zsh >",
        "statebox completion fish >~/.config/fish/completions/statebox.fish",
    ):
        assert line in section, line


# --- the demo ----------------------------------------------------------------------------


def test_the_demo_says_where_the_state_is_and_how_to_put_statebox_on_path(
    tmp_path: Path,
) -> None:
    venv = Path(sys.executable).parent.parent
    stamp = venv / ".statebox-installed"
    if not stamp.exists() or stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        pytest.skip("scripts/_venv.sh would reinstall statebox first (pyproject.toml changed)")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STATEBOX_", "DAG_", "AIRFLOW_", "GITHUB_"))
    }
    env.update(STATEBOX_HOME=str(tmp_path / "home"), STATEBOX_VENV=str(venv))
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    tail = done.stdout.splitlines()[-5:]
    kept = tmp_path / "home" / "state.db"
    assert tail[0] == f"== the state was kept in the SQLite file {kept}"
    assert kept.is_file()
    assert f'export PATH="{venv}/bin:$PATH"' in tail[3]
    assert f"source {venv}/bin/activate" in tail[3]
    assert "pipx install ." in tail[4] and "docs/install.md" in tail[4]
