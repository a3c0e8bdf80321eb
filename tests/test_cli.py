"""The ``statebox`` command line.

The SPEC §4 lines, the exit codes and the input channels are checked on the real
``statebox`` executable in subprocesses, on every store a separate process can open
(``memory://`` lives inside one process, so it is left out on purpose). The option
matrix runs the same entry point, ``statebox.cli.main``, inside the test process on a
real SQLite file: same parser, same engine, same output path — only the interpreter
start-up is saved, which keeps this file quick.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from statebox import RunContext, open_store
from statebox.core.clock import format_timestamp

from .backends import BACKENDS

if TYPE_CHECKING:
    from statebox.cli._parser import Subparsers

BIN = Path(sys.executable).parent
STATEBOX = BIN / "statebox"

#: Backends whose URL only lives inside one process.
IN_PROCESS_ONLY = {"memory"}
CLI_BACKENDS = [name for name in BACKENDS if name not in IN_PROCESS_ONLY]

#: Everything in the environment that changes what the CLI does (SPEC §1, §6).
CONTEXT_VARIABLES = (
    "STATEBOX_STORE",
    "STATEBOX_HOME",
    "XDG_DATA_HOME",
    "STATEBOX_DAG",
    "STATEBOX_ROOT_DAG",
    "STATEBOX_RUN_ID",
    "STATEBOX_STEP",
    "STATEBOX_DEBUG",
    "DAG_NAME",
    "DAG_RUN_ID",
    "DAG_RUN_STEP_NAME",
    "AIRFLOW_CTX_DAG_ID",
    "AIRFLOW_CTX_DAG_RUN_ID",
    "AIRFLOW_CTX_TASK_ID",
    "GITHUB_WORKFLOW",
    "GITHUB_RUN_ID",
    "GITHUB_JOB",
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Run:
    code: int
    out: bytes
    err: str

    @property
    def line(self) -> str:
        """The one line on standard output (asserting success and exactly one line)."""
        assert self.code == 0, self.err
        assert self.err == ""
        text = self.out.decode()
        assert text.endswith("\n") and text.count("\n") == 1, text
        return text[:-1]

    @property
    def data(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.line)
        return parsed

    @property
    def text(self) -> str:
        assert self.code == 0, self.err
        return self.out.decode()

    def failed(self, code: int, *words: str) -> str:
        """Assert exit ``code``, nothing on stdout, one ``Error:`` line naming ``words``."""
        assert self.code == code, (self.code, self.out, self.err)
        assert self.out == b""
        assert self.err.startswith("Error: ") and self.err.endswith("\n"), self.err
        assert self.err.count("\n") == 1, self.err
        for word in words:
            assert word in self.err, (word, self.err)
        return self.err


Env = Mapping[str, str | None]


class Cli:
    """Runs ``statebox`` in a subprocess with a clean environment and one store."""

    def __init__(self, env: Mapping[str, str], url: str) -> None:
        self.env = {**env, "STATEBOX_STORE": url, "STATEBOX_DAG": "feed-sync"}
        self.url = url

    def __call__(
        self,
        *args: str,
        input: bytes = b"",
        env: Env | None = None,
        command: list[str] | None = None,
    ) -> Run:
        full_env = dict(self.env)
        for name, value in (env or {}).items():
            if value is None:
                full_env.pop(name, None)
            else:
                full_env[name] = value
        proc = subprocess.run(
            [*(command or [str(STATEBOX)]), *args],
            input=input,
            env=full_env,
            capture_output=True,
            timeout=120,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def environment_without_context(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test process's environment without any run context or store settings."""
    env = {k: v for k, v in os.environ.items() if k not in CONTEXT_VARIABLES}
    # Byte-compiled modules, as an installed package has them: each run starts faster.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.getbasetemp() / "pycache")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # Never the user's real default store, even when a test clears STATEBOX_STORE.
    env["STATEBOX_HOME"] = str(tmp_path_factory.mktemp("statebox-home"))
    return env


@pytest.fixture(scope="session")
def clean_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return environment_without_context(tmp_path_factory)


@pytest.fixture(params=CLI_BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path, clean_env: dict[str, str]) -> Iterator[Cli]:
    """The executable on a fresh store of every backend a subprocess can open."""
    with BACKENDS[request.param](tmp_path, request) as url:
        yield Cli(clean_env, url)


@pytest.fixture
def sqlite_cli(tmp_path: Path, clean_env: dict[str, str]) -> Cli:
    """The executable on a fresh SQLite store, for what does not depend on the backend."""
    return Cli(clean_env, f"sqlite:///{tmp_path / 'state.db'}")


InProcess = Callable[..., Run]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InProcess:
    """``statebox.cli.main`` in this process, on a fresh SQLite store, stdio captured."""
    from statebox.cli import main

    for name in CONTEXT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    base = {"STATEBOX_STORE": f"sqlite:///{tmp_path / 'state.db'}", "STATEBOX_DAG": "feed-sync"}

    def call(*args: str, input: bytes = b"", env: Env | None = None) -> Run:
        with monkeypatch.context() as patch:
            for name, value in {**base, **(env or {})}.items():
                if value is None:
                    patch.delenv(name, raising=False)
                else:
                    patch.setenv(name, value)
            out, err = io.BytesIO(), io.StringIO()
            stdout = io.TextIOWrapper(out, encoding="utf-8")
            patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(input)))
            patch.setattr(sys, "stdout", stdout)
            patch.setattr(sys, "stderr", err)
            code = main(list(args))
            stdout.flush()  # --help writes text
            return Run(code, out.getvalue(), err.getvalue())

    call.url = base["STATEBOX_STORE"]  # type: ignore[attr-defined]
    return call


# == the real executable, every backend ==================================================


def test_the_five_operations_print_the_spec_lines(cli: Cli) -> None:
    h1, h2 = sha('{"last_id":123}'), sha('{"last_id":124}')
    at = '"scope":"dag","namespace":"feed-sync","key":"cursors/feed"'
    assert cli("set", "cursors/feed", '{"last_id": 123}').line == (
        f'{{"operation":"set",{at},"version":1,"hash":"{h1}","created":true}}'
    )
    assert cli("get", "cursors/feed").line == (
        f'{{"operation":"get",{at},"found":true,"version":1,"hash":"{h1}",'
        '"value":{"last_id":123}}'
    )
    assert cli("diff", "cursors/feed", '{ "last_id" : 123 }').line == (
        f'{{"operation":"diff",{at},"changed":false,"foundPrevious":true,"previousVersion":1,'
        f'"version":1,"hash":"{h1}","previous":{{"last_id":123}},"current":{{"last_id":123}}}}'
    )
    assert cli("diff", "cursors/feed", '{"last_id":124}', "--expected-version", "1").line == (
        f'{{"operation":"diff",{at},"changed":true,"foundPrevious":true,"previousVersion":1,'
        f'"version":2,"hash":"{h2}","previous":{{"last_id":123}},"current":{{"last_id":124}}}}'
    )
    cli("set", "cursors/feed", "1", "--expected-version", "1").failed(4, "cursors/feed")
    cli("set", "cursors/feed", "1", "--create-only").failed(4, "cursors/feed")
    cli("set", "cursors/other", '"x"')
    with open_store(cli.url, context=RunContext(dag="feed-sync")) as store:
        entry = store.list("cursors/feed").entries[0]
    assert (entry.version, entry.hash) == (2, h2)  # the refused writes changed nothing
    assert cli("list", "cursors/f").line == (
        '{"operation":"list","scope":"dag","namespace":"feed-sync","prefix":"cursors/f",'
        f'"entries":[{{{at},"version":2,"hash":"{h2}",'
        f'"createdAt":"{format_timestamp(entry.created_at)}",'
        f'"updatedAt":"{format_timestamp(entry.updated_at)}"}}]}}'
    )
    cli("delete", "cursors/feed", "--expected-version", "1").failed(4)
    assert cli("delete", "cursors/feed").line == f'{{"operation":"delete",{at},"deleted":true}}'
    assert cli("delete", "cursors/feed").line == f'{{"operation":"delete",{at},"deleted":false}}'
    assert cli("get", "cursors/feed", "--default", '{"last_id": 0}').line == (
        f'{{"operation":"get",{at},"found":false,"value":{{"last_id":0}}}}'
    )
    cli("get", "cursors/feed", "--required", "--default", "0").failed(3, "cursors/feed")
    assert cli("get", "cursors/other").data["version"] == 1


# == the real executable, SQLite =======================================================


def test_escaping_in_the_stored_value_and_in_the_envelope(sqlite_cli: Cli) -> None:
    """Envelope strings are raw UTF-8; the stored value keeps Go's escapes."""
    value = '{"html": "<b>café & 東京</b>", "sep": "\u2028", "n": [1.2300, 1E5, -0]}'
    stored = (
        '{"html":"\\u003cb\\u003ecafé \\u0026 東京\\u003c/b\\u003e","n":[1.2300,1E5,-0],'
        '"sep":"\\u2028"}'
    )
    where = ("--namespace", "site<&>é")
    assert sqlite_cli("set", "notes/ü<1>", value, *where).line == (
        '{"operation":"set","scope":"dag","namespace":"site<&>é","key":"notes/ü<1>",'
        f'"version":1,"hash":"{sha(stored)}","created":true}}'
    )
    assert (
        sqlite_cli("get", "notes/ü<1>", *where).out
        == (
            '{"operation":"get","scope":"dag","namespace":"site<&>é","key":"notes/ü<1>",'
            f'"found":true,"version":1,"hash":"{sha(stored)}","value":{stored}}}\n'
        ).encode()
    )


def test_input_from_standard_input_a_file_and_raw_argv_bytes(
    sqlite_cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "value.json"
    path.write_bytes(b'{"name": "Zo\xc3\xab", "n": 1.50, "bad": "a\xffb"}')
    expected = '"value":{"bad":"a\ufffdb","n":1.50,"name":"Zoë"}}'
    assert sqlite_cli("set", "file", f"@{path}").code == 0
    assert sqlite_cli("set", "stdin", "-", input=b"  " + path.read_bytes() + b"\n\n").code == 0
    assert sqlite_cli("set", "argv", os.fsdecode(path.read_bytes())).code == 0
    for key in ("file", "stdin", "argv"):
        assert sqlite_cli("get", key).line.endswith(expected)
    sqlite_cli("set", "k", f"@{tmp_path / 'nope.json'}").failed(2, str(tmp_path / "nope.json"))


def test_exit_codes_of_each_kind(sqlite_cli: Cli, tmp_path: Path) -> None:
    sqlite_cli("get", "../bad").failed(2, 'invalid key "../bad"')
    sqlite_cli("get", "k", env={"STATEBOX_DAG": None}).failed(2, "STATEBOX_DAG")
    sqlite_cli("get", "k", "--expected-version").failed(2, "unrecognized arguments")
    sqlite_cli("get", "k", "--required").failed(3)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    sqlite_cli("get", "k", "--store", f"sqlite:///{garbage}").failed(1, str(garbage))


def test_output_is_utf8_whatever_the_locale(sqlite_cli: Cli) -> None:
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    assert '"key":"clé"' in sqlite_cli("set", "clé", '"东京"', env=env).line
    assert sqlite_cli("get", "clé", env=env).out.decode().endswith('"value":"东京"}\n')


def test_top_level_help_and_python_dash_m(sqlite_cli: Cli) -> None:
    from statebox.cli import all_commands

    text = sqlite_cli("--help").text
    for line in (
        "exit codes:",
        "  0  success",
        "  2  bad input",
        "  3  not found",
        "  4  conflict",
    ):
        assert line in text
    assert all(f"    {name} " in text for name in all_commands())
    module = [sys.executable, "-m", "statebox.cli"]
    assert sqlite_cli("set", "k", "1", command=module).data["version"] == 1
    sqlite_cli("get", "nope", "--required", command=module).failed(3)


def test_a_get_imports_nothing_heavy(clean_env: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from statebox.cli import main\n"
        "assert main(['get', 'k']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {**clean_env, "STATEBOX_STORE": f"sqlite:///{tmp_path / 's.db'}", "STATEBOX_DAG": "d"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    get_line, modules = out.splitlines()
    assert json.loads(get_line)["found"] is False
    loaded = set(modules.split())
    heavy = {"asyncio", "statebox.aio", "jq", "jsonpatch", "httpx", "starlette", "uvicorn"}
    heavy |= {"psycopg", "shutil", "statebox.cli.cmd_set", "statebox.cli.cmd_list"}
    assert heavy & loaded == set()
    # and ``import statebox`` alone loads no engine at all
    bare = subprocess.run(
        [sys.executable, "-c", "import sys, statebox; print(' '.join(sys.modules))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "statebox.store" not in bare and "asyncio" not in bare


def test_every_public_name_loads_lazily() -> None:
    code = (
        "import statebox\n"
        "for name in statebox.__all__: getattr(statebox, name)\n"
        "from statebox import *\n"
        "assert StateStore is statebox.store.StateStore\n"
        "assert statebox.core.errors.ConflictError.exit_code == 4\n"
        "try:\n    statebox.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "module 'statebox' has no attribute 'no_such_name'\n"


# == the same entry point in-process: the option matrix =================================


def test_missing_key_default_and_required(run: InProcess) -> None:
    at = '"scope":"dag","namespace":"feed-sync","key":"k"'
    assert run("get", "k").line == f'{{"operation":"get",{at},"found":false}}'
    assert run("get", "k", "--default", "null").line == (
        f'{{"operation":"get",{at},"found":false,"value":null}}'
    )
    assert run("get", "k", "--default", "-", input=b' "in" ').line.endswith('"value":"in"}')
    run("get", "k", "--required", "--default", "0").failed(3, '"k"', "not found")
    run("set", "k", "5")
    got = run("get", "k", "--required", "--default", "0").data
    assert (got["found"], got["value"]) == (True, 5)


def test_diff_without_update_and_guards(run: InProcess) -> None:
    at = '"scope":"dag","namespace":"feed-sync","key":"s"'
    h1 = sha('{"count":1}')
    assert run("diff", "s", '{"count": 1}', "--no-update").line == (
        f'{{"operation":"diff",{at},"changed":true,"foundPrevious":false,"current":{{"count":1}}}}'
    )
    assert run("get", "s").data["found"] is False
    assert run("diff", "s", '{"count": 1}').line == (
        f'{{"operation":"diff",{at},"changed":true,"foundPrevious":false,'
        f'"version":1,"hash":"{h1}","current":{{"count":1}}}}'
    )
    assert run("diff", "s", '{"count": 2}', "--no-update").line == (
        f'{{"operation":"diff",{at},"changed":true,"foundPrevious":true,'
        f'"previousVersion":1,"version":1,"hash":"{h1}","previous":{{"count":1}},'
        '"current":{"count":2}}'
    )
    # expected_version is checked before "changed": a mismatch conflicts even unchanged
    run("diff", "s", '{"count": 1}', "--expected-version", "2").failed(4)
    run("diff", "other", "1", "--no-update", "--expected-version", "3").failed(4)
    assert run("diff", "s", "-", input=b'{"count":1}').data["changed"] is False
    assert run("get", "s").data["version"] == 1


def test_list_options(run: InProcess) -> None:
    for key in ("cursors/b", "cursors/a", "cursor", "other"):
        run("set", key, f'"{key}"')

    def keys(*args: str) -> list[str]:
        entries = run("list", *args).data["entries"]
        assert isinstance(entries, list)
        return [e["key"] for e in entries]

    assert keys() == ["cursor", "cursors/a", "cursors/b", "other"]
    assert keys("cur") == ["cursor", "cursors/a", "cursors/b"]  # a plain byte prefix
    assert keys("cursors/") == ["cursors/a", "cursors/b"]
    assert keys("--limit", "2") == ["cursor", "cursors/a"]
    assert keys("--limit", "2", "--after", "cursors/a") == ["cursors/b", "other"]
    assert keys("cursors/", "--after", "cursors/b") == []
    assert keys("--limit", "0") == keys()
    listing = run("list", "cursors/", "--include-values", "--limit", "1").data
    assert listing["prefix"] == "cursors/"
    assert listing["entries"] == [
        {**listing["entries"][0], "value": "cursors/a"}  # type: ignore[index, dict-item]
    ]
    assert "value" not in run("list").data["entries"][0]  # type: ignore[index]
    assert "prefix" not in run("list").data
    assert run("list", "nothing/").line.endswith('"prefix":"nothing/","entries":[]}')


def test_conflicts_write_nothing(run: InProcess) -> None:
    run("set", "k", "1")
    run("set", "k", "2", "--expected-version", "2").failed(4, '"k"')
    run("set", "k", "2", "--expected-version", "0").failed(4)
    # A negative expected version is no version at all: refused as HTTP refuses it.
    run("set", "k", "2", "--expected-version", "-1").failed(2, "invalid --expected-version -1")
    run("set", "new", "1", "--expected-version", "1").failed(4)
    run("delete", "k", "--expected-version", "5").failed(4)
    assert (run("get", "k").data["version"], run("get", "k").data["value"]) == (1, 1)
    assert run("set", "k", "2", "--expected-version", "1").data["version"] == 2
    assert run("set", "fresh", "1", "--expected-version", "0").data["created"] is True
    assert run("set", "fresh2", "1", "--create-only").data["created"] is True
    assert run("delete", "k", "--expected-version", "2").data["deleted"] is True
    assert run("set", "k", "9").data["version"] == 1  # re-created after the delete


def test_number_literals_and_negative_values(run: InProcess) -> None:
    run("set", "numbers", "[1.2300, 1E5, -0, 9007199254740993, 1, 1.0]")
    assert run("get", "numbers").line.endswith('"value":[1.2300,1E5,-0,9007199254740993,1,1.0]}')
    for number in ("-1.5e3", "-0", "-7", "-0.25", "-2E+2"):
        assert run("set", "negative", number).code == 0
        assert run("get", "negative").line.endswith(f'"value":{number}}}')
    assert run("get", "missing", "--default", "-2.5E-3").line.endswith('"value":-2.5E-3}')
    assert run("set", "--dag", "d", "dash", "--", "-1").data["namespace"] == "d"


def test_bad_values_exit_2_and_write_nothing(run: InProcess, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    run("set", "k", f"@{missing}").failed(2, str(missing), "VALUE")
    run("get", "k", "--default", f"@{missing}").failed(2, str(missing), "--default")
    run("diff", "k", f"@{tmp_path}").failed(2, str(tmp_path))  # a directory
    run("set", "k", "{not json").failed(2, "invalid JSON")
    run("set", "k", "1 2").failed(2, "more than one JSON value")
    run("set", "k", "-", input=b"").failed(2, "invalid JSON")
    run("set", "k", "NaN").failed(2)
    run("get", "k", "--default", "{").failed(2, "invalid JSON")
    big = tmp_path / "big.json"
    big.write_text('"' + "x" * 1_048_575 + '"')  # 1,048,577 bytes
    run("set", "k", f"@{big}").failed(2, "value too large: 1048577 bytes exceeds 1048576")
    # within the limit as typed, over it once every "<" becomes "\u003c"
    run("set", "k", "-", input=b'"' + b"<" * 300_000 + b'"').failed(2, "value too large")
    assert run("get", "k").data["found"] is False


def test_standard_input_feeds_one_argument_only() -> None:
    """For commands with two JSON arguments: a second '-' is an error, not empty input."""
    from statebox.cli._input import JsonArgs
    from statebox.core.errors import InvalidValueError

    reader = JsonArgs()
    stdin = sys.stdin
    try:
        with open(os.devnull) as sys.stdin:
            assert reader.read("-", "VALUE").text == b""
            with pytest.raises(InvalidValueError, match="already read for VALUE"):
                reader.read("-", "--default")
    finally:
        sys.stdin = stdin


def test_invalid_references_and_configuration_exit_2(run: InProcess) -> None:
    run("get", "../bad").failed(2, 'invalid key "../bad"')
    run("set", "/lead", "1").failed(2, "invalid key")
    run("get", "a//b").failed(2, "invalid key")
    run("get", os.fsdecode(b"bad\xff")).failed(2, "invalid key")
    run("get", "k", "--scope", "DAG").failed(2, "invalid scope")
    run("get", "k", "--namespace", "a/b").failed(2, "invalid namespace")
    run("list", "/x").failed(2, "invalid prefix")
    run("list", "--after", "x/").failed(2, 'invalid --after "x/"')
    run("list", "--limit", "-1").failed(2, "invalid --limit -1")
    run("get", "k", "--scope", "custom").failed(2, "--namespace")
    run("get", "k", env={"STATEBOX_DAG": None}).failed(2, "STATEBOX_DAG")
    run("get", "k", "--scope", "run").failed(2, "STATEBOX_RUN_ID")
    run("get", "k", "--store", "nosuch://x").failed(2, "unsupported store URL")
    run("get", "k", "--store", "sqlite://host/x.db").failed(2, "invalid SQLite store URL")


def test_backend_failures_exit_1(run: InProcess, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    run("get", "k", "--store", f"sqlite:///{blocked}/sub/x.db").failed(1, str(blocked))


def test_usage_errors_exit_2(run: InProcess) -> None:
    alone = run()  # no command at all is a question, not a mistake: the help, exit 0
    assert alone.code == 0 and alone.out.decode().startswith("usage: statebox ")
    run("frobnicate").failed(2, "invalid choice", "frobnicate")
    run("get").failed(2, "KEY", "statebox get --help")
    run("set", "k").failed(2, "VALUE")
    run("set", "k", "1", "--expected-version", "one").failed(2, "--expected-version", "one")
    run("list", "--limit", "1.5").failed(2, "--limit")
    run("get", "k", "--bogus").failed(2, "--bogus")
    # no silent prefix matching of option names: scripts must say what they mean
    run("set", "k", "1", "--expected", "1").failed(2, "--expected")
    run("get", "k", "--format", "yaml").failed(2, "--format")
    run("list", "a", "b").failed(2, "unrecognized")


def test_unexpected_errors_exit_1_with_a_traceback_only_when_debugging(
    run: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command module that fails with a non-statebox exception (registered for real)."""
    import types

    from statebox import cli
    from statebox.cli._parser import add_command

    def register(subparsers: Subparsers) -> None:
        parser = add_command(
            subparsers, "boom", help="fails", description="fails", examples=["statebox boom"]
        )
        parser.set_defaults(handler=lambda args, store: 1 / 0)

    module = types.ModuleType("statebox_test_boom")
    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "boom", module.__name__)
    message = "Error: unexpected ZeroDivisionError: division by zero "
    assert run("boom").failed(1) == message + "(set STATEBOX_DEBUG=1 for the traceback)\n"
    debug = run("boom", env={"STATEBOX_DEBUG": "1"})
    assert debug.code == 1 and debug.out == b""
    assert debug.err.startswith("Traceback") and debug.err.endswith(
        message + "(set STATEBOX_DEBUG=1 for the traceback)\n"
    )


def test_common_options_before_and_after_the_command(run: InProcess) -> None:
    def where(*args: str) -> tuple[object, object]:
        data = run(*args).data
        return data["scope"], data["namespace"]

    assert where("--scope", "custom", "--namespace", "team", "set", "k", "1") == ("custom", "team")
    assert where("get", "k", "--scope", "custom", "--namespace", "team") == ("custom", "team")
    assert run("get", "k", "--scope", "custom", "--namespace", "team").data["found"] is True
    # after the command wins over before it
    assert where("--namespace", "a", "get", "k", "--namespace", "b") == ("dag", "b")
    assert where(
        "--format", "table", "--scope", "run", "get", "k", "--format", "json", "--scope", "global"
    ) == ("global", "_")
    assert where("--scope", "root_dag", "--root-dag", "nightly", "set", "r", "1") == (
        "root_dag",
        "nightly",
    )
    assert where("set", "r", "1", "--scope", "run", "--run-id", "run-7") == ("run", "run-7")
    # root_dag falls back to the workflow itself for a top-level run
    assert where("get", "r", "--scope", "root_dag") == ("root_dag", "feed-sync")
    # scope names are trimmed; a namespace overrides the default in every scope
    assert where("get", "r", "--scope", " global ", "--namespace", "x") == ("global", "x")
    assert where("--dag", "opt", "get", "r") == ("dag", "opt")


def test_run_context_from_each_engine_and_recorded_on_writes(run: InProcess) -> None:
    engines = {
        "sb": {"STATEBOX_DAG": "sb", "STATEBOX_RUN_ID": "r1", "STATEBOX_STEP": "s1"},
        "dagu": {
            "STATEBOX_DAG": None,
            "DAG_NAME": "dagu",
            "DAG_RUN_ID": "r2",
            "DAG_RUN_STEP_NAME": "s2",
        },
        "airflow": {
            "STATEBOX_DAG": None,
            "AIRFLOW_CTX_DAG_ID": "airflow",
            "AIRFLOW_CTX_DAG_RUN_ID": "r3",
            "AIRFLOW_CTX_TASK_ID": "s3",
        },
        "gha": {
            "STATEBOX_DAG": None,
            "GITHUB_WORKFLOW": "gha",
            "GITHUB_RUN_ID": "r4",
            "GITHUB_JOB": "s4",
        },
    }
    for namespace, env in engines.items():
        assert run("set", "k", "1", env=env).data["namespace"] == namespace
    # the options override the environment
    run("set", "k", "2", "--run-id", "opt-run", "--step", "opt-step", env=engines["sb"])
    run("set", "k", "3", "--dag", "sb", env=engines["gha"])
    with open_store(run.url, context=RunContext(dag="x")) as store:  # type: ignore[attr-defined]
        by = {
            ns: [(u.dag_name, u.dag_run_id, u.step_name) for u in (
                h.updated_by for h in store.history("k", namespace=ns).versions
            )]
            for ns in engines
        }  # fmt: skip
    assert by["sb"] == [("sb", "r4", "s4"), ("sb", "opt-run", "opt-step"), ("sb", "r1", "s1")]
    assert by["dagu"] == [("dagu", "r2", "s2")]
    assert by["airflow"] == [("airflow", "r3", "s3")]
    assert by["gha"] == [("gha", "r4", "s4")]


def test_store_option_environment_and_default_location(run: InProcess, tmp_path: Path) -> None:
    explicit, home, xdg = tmp_path / "explicit.db", tmp_path / "home", tmp_path / "xdg"
    run("--store", f"sqlite:///{explicit}", "set", "k", '"explicit"')
    run("set", "k2", "1", "--store", f"sqlite:///{explicit}")  # after the command too
    run("set", "k", '"env"')  # STATEBOX_STORE
    run("set", "k", '"home"', env={"STATEBOX_STORE": None, "STATEBOX_HOME": str(home)})
    no_home = {"STATEBOX_STORE": None, "STATEBOX_HOME": None, "XDG_DATA_HOME": str(xdg)}
    run("set", "k", '"xdg"', env=no_home)
    env_path = Path(run.url.removeprefix("sqlite:///"))  # type: ignore[attr-defined]
    for path, value, keys in (
        (explicit, "explicit", {"k", "k2"}),
        (env_path, "env", {"k"}),
        (home / "state.db", "home", {"k"}),
        (xdg / "statebox" / "state.db", "xdg", {"k"}),
    ):
        with open_store(f"sqlite:///{path}", context=RunContext(dag="feed-sync")) as store:
            assert store.get("k").value == value
            assert {e.key for e in store.list().entries} == keys


def test_format_table(run: InProcess) -> None:
    run("set", "cursors/feed", '{"last_id": 123}')
    run("set", "cursors/other", '"' + "x" * 100 + '"')
    h = sha('{"last_id":123}')
    assert run("get", "cursors/feed", "--format", "table").text.splitlines() == [
        "scope      dag",
        "namespace  feed-sync",
        "key        cursors/feed",
        "found      true",
        "version    1",
        f"hash       {h}",
        'value      {"last_id":123}',
    ]
    lines = run("--format", "table", "list", "cursors/", "--include-values").text.splitlines()
    assert lines[:5] == [
        "scope      dag",
        "namespace  feed-sync",
        "prefix     cursors/",
        "",
        "entries:",
    ]
    assert lines[5].split() == ["KEY", "VERSION", "HASH", "CREATED_AT", "UPDATED_AT", "VALUE"]
    assert lines[6].split()[:3] == ["cursors/feed", "1", h[:12]]
    assert lines[6].endswith('{"last_id":123}')
    assert lines[7].endswith('"' + "x" * 58 + "…")  # long cells are cut
    assert len(lines) == 8
    assert run("list", "none/", "--format", "table").text.splitlines()[-2:] == [
        "entries:",
        "(none)",
    ]
    h2 = sha('{"last_id":124}')
    diff = run("diff", "cursors/feed", '{"last_id": 124}', "--format", "table").text.splitlines()
    assert diff[3:] == [
        "changed          true",
        "foundPrevious    true",
        "previousVersion  1",
        "version          2",
        f"hash             {h2}",
        'previous         {"last_id":123}',
        'current          {"last_id":124}',
    ]
    assert "found      false" in run("get", "nope", "--format", "table").text
    assert run("delete", "nope", "--format", "table").text.splitlines()[-1] == "deleted    false"


def test_help_of_every_command_has_an_example(run: InProcess) -> None:
    from statebox.cli import all_commands

    for name in all_commands():
        result = run(name, "--help")
        assert result.code == 0 and result.err == ""
        text = result.out.decode()
        assert text.startswith(f"usage: statebox {name}")
        assert f"examples:\n  statebox {name}" in text
