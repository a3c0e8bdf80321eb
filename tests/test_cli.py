"""The ``statebox`` executable, driven in real subprocesses against real stores.

Every store URL a separate process can open takes part (``memory://`` cannot be shared
between processes, so it is left out on purpose); tests of parsing alone use SQLite.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from statebox import RunContext, open_store
from statebox.clock import format_timestamp

from .backends import BACKENDS

BIN = Path(sys.executable).parent
STATEBOX = BIN / "statebox"

#: Backends whose URL only lives inside one process.
IN_PROCESS_ONLY = {"memory"}
CLI_BACKENDS = [name for name in BACKENDS if name not in IN_PROCESS_ONLY]

#: Everything from the environment that could change what the CLI does (SPEC §1, §6).
CONTEXT_VARIABLES = {
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
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Run:
    code: int
    out: bytes
    err: str

    @property
    def line(self) -> str:
        """The one line on standard output (asserting there is exactly one)."""
        assert self.code == 0, self.err
        assert self.err == ""
        text = self.out.decode("utf-8")
        assert text.endswith("\n") and text.count("\n") == 1, text
        return text[:-1]

    @property
    def data(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.line)
        return parsed

    def failed(self, code: int, *words: str) -> str:
        """Assert exit ``code``, nothing on stdout, one ``Error:`` line naming ``words``."""
        assert self.code == code, (self.code, self.out, self.err)
        assert self.out == b""
        assert self.err.startswith("Error: ") and self.err.endswith("\n"), self.err
        assert self.err.count("\n") == 1, self.err
        for word in words:
            assert word in self.err, (word, self.err)
        return self.err


class Cli:
    """Runs ``statebox`` with a clean environment pointing at one store."""

    def __init__(self, env: Mapping[str, str], url: str) -> None:
        self.env = {**env, "STATEBOX_STORE": url, "STATEBOX_DAG": "feed-sync"}
        self.url = url

    def __call__(
        self,
        *args: str,
        input: bytes = b"",
        env: Mapping[str, str | None] | None = None,
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
            timeout=60,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


@pytest.fixture(scope="session")
def clean_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test process's environment without any run context or store settings."""
    env = {k: v for k, v in os.environ.items() if k not in CONTEXT_VARIABLES}
    # Byte-compiled modules, as an installed package has them: each run starts faster.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # Never the user's real default store, even if a test forgets --store.
    env["STATEBOX_HOME"] = str(tmp_path_factory.mktemp("statebox-home"))
    return env


@pytest.fixture(params=CLI_BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path, clean_env: dict[str, str]) -> Iterator[Cli]:
    """The CLI on a fresh store of every backend a subprocess can open."""
    with BACKENDS[request.param](tmp_path, request) as url:
        yield Cli(clean_env, url)


@pytest.fixture
def sqlite_cli(tmp_path: Path, clean_env: dict[str, str]) -> Cli:
    """The CLI on a fresh SQLite store: for what does not depend on the backend."""
    return Cli(clean_env, f"sqlite:///{tmp_path / 'state.db'}")


# -- the SPEC §4 lines, byte for byte ----------------------------------------------------


def test_set_get_delete_print_the_spec_lines(cli: Cli) -> None:
    h = sha('{"last_id":123}')
    address = '"scope":"dag","namespace":"feed-sync","key":"cursors/feed"'
    assert cli("set", "cursors/feed", '{"last_id": 123}').line == (
        f'{{"operation":"set",{address},"version":1,"hash":"{h}","created":true}}'
    )
    assert cli("get", "cursors/feed").line == (
        f'{{"operation":"get",{address},"found":true,"version":1,"hash":"{h}",'
        '"value":{"last_id":123}}'
    )
    assert cli("set", "cursors/feed", '{ "last_id" : 123 }').line == (
        f'{{"operation":"set",{address},"version":2,"hash":"{h}","created":false}}'
    )
    assert cli("delete", "cursors/feed").line == (
        f'{{"operation":"delete",{address},"deleted":true}}'
    )
    assert cli("delete", "cursors/feed").line == (
        f'{{"operation":"delete",{address},"deleted":false}}'
    )
    assert cli("get", "cursors/feed").line == f'{{"operation":"get",{address},"found":false}}'
    # delete then re-create starts again at version 1
    assert cli("set", "cursors/feed", "1").data["version"] == 1


def test_get_of_a_missing_key_with_defaults(cli: Cli) -> None:
    address = '"scope":"dag","namespace":"feed-sync","key":"cursors/feed"'
    assert cli("get", "cursors/feed", "--default", '{"last_id": 0}').line == (
        f'{{"operation":"get",{address},"found":false,"value":{{"last_id":0}}}}'
    )
    assert cli("get", "cursors/feed", "--default", "null").line == (
        f'{{"operation":"get",{address},"found":false,"value":null}}'
    )
    # required wins over default
    cli("get", "cursors/feed", "--required", "--default", "0").failed(3, "cursors/feed")
    cli("set", "cursors/feed", "5")
    found = cli("get", "cursors/feed", "--required", "--default", "0").data
    assert found["found"] is True and found["value"] == 5


def test_diff_lines(cli: Cli) -> None:
    address = '"scope":"dag","namespace":"feed-sync","key":"snapshots/feed"'
    h1, h2 = sha('{"count":1}'), sha('{"count":2}')
    # missing, --no-update: changed, nothing written, no version/hash
    assert cli("diff", "snapshots/feed", '{"count": 1}', "--no-update").line == (
        f'{{"operation":"diff",{address},"changed":true,"foundPrevious":false,'
        '"current":{"count":1}}'
    )
    assert cli("get", "snapshots/feed").data["found"] is False
    # missing: changed, written as version 1
    assert cli("diff", "snapshots/feed", '{"count": 1}').line == (
        f'{{"operation":"diff",{address},"changed":true,"foundPrevious":false,'
        f'"version":1,"hash":"{h1}","current":{{"count":1}}}}'
    )
    # unchanged: the stored version and hash
    assert cli("diff", "snapshots/feed", '{"count":1}').line == (
        f'{{"operation":"diff",{address},"changed":false,"foundPrevious":true,'
        f'"previousVersion":1,"version":1,"hash":"{h1}","previous":{{"count":1}},'
        '"current":{"count":1}}'
    )
    # changed, --no-update: describes the previous entry
    assert cli("diff", "snapshots/feed", '{"count": 2}', "--no-update").line == (
        f'{{"operation":"diff",{address},"changed":true,"foundPrevious":true,'
        f'"previousVersion":1,"version":1,"hash":"{h1}","previous":{{"count":1}},'
        '"current":{"count":2}}'
    )
    # changed: written as version 2
    assert cli("diff", "snapshots/feed", '{"count": 2}', "--expected-version", "1").line == (
        f'{{"operation":"diff",{address},"changed":true,"foundPrevious":true,'
        f'"previousVersion":1,"version":2,"hash":"{h2}","previous":{{"count":1}},'
        '"current":{"count":2}}'
    )
    # expected_version is checked before "changed": a mismatch conflicts even unchanged
    cli("diff", "snapshots/feed", '{"count": 2}', "--expected-version", "1").failed(4)
    cli("diff", "other", "1", "--no-update", "--expected-version", "3").failed(4)


def test_list_lines(cli: Cli) -> None:
    for key in ("cursors/b", "cursors/a", "cursor", "other"):
        cli("set", key, f'{{"k": "{key}"}}')
    cli("set", "cursors/a", '{"k": "cursors/a", "v": 2}')
    with open_store(cli.url, context=RunContext(dag="feed-sync")) as store:
        stored = {e.key: e for e in store.list().entries}

    def entry(key: str, value: str | None = None) -> str:
        e = stored[key]
        text = (
            f'{{"scope":"dag","namespace":"feed-sync","key":"{key}","version":{e.version},'
            f'"hash":"{e.hash}","createdAt":"{format_timestamp(e.created_at)}",'
            f'"updatedAt":"{format_timestamp(e.updated_at)}"'
        )
        return text + (f',"value":{value}}}' if value is not None else "}")

    head = '{"operation":"list","scope":"dag","namespace":"feed-sync"'
    assert stored["cursors/a"].version == 2
    assert stored["cursors/a"].hash == sha('{"k":"cursors/a","v":2}')
    assert cli("list", "cursors/").line == (
        f'{head},"prefix":"cursors/","entries":[{entry("cursors/a")},{entry("cursors/b")}]}}'
    )
    # a plain byte prefix: "cur" matches "cursor" and "cursors/…", ascending by key
    assert cli("list", "cur").line == (
        f'{head},"prefix":"cur","entries":[{entry("cursor")},'
        f"{entry('cursors/a')},{entry('cursors/b')}]}}"
    )
    value_a = '{"k":"cursors/a","v":2}'
    assert cli("list", "cursors/", "--include-values", "--limit", "1").line == (
        f'{head},"prefix":"cursors/","entries":[{entry("cursors/a", value_a)}]}}'
    )
    assert cli("list", "--after", "cursors/a").line == (
        f'{head},"entries":[{entry("cursors/b")},{entry("other")}]}}'
    )
    assert cli("list", "nothing").line == f'{head},"prefix":"nothing","entries":[]}}'
    assert cli("list", "--limit", "0").data["entries"] == [
        json.loads(entry(k)) for k in ("cursor", "cursors/a", "cursors/b", "other")
    ]


def test_escaping_in_the_stored_value_and_in_the_envelope(cli: Cli) -> None:
    """Envelope strings are raw UTF-8; the stored value keeps Go's escapes."""
    value = '{"html": "<b>café & 東京</b>", "sep": "\u2028"}'
    stored = '{"html":"\\u003cb\\u003ecafé \\u0026 東京\\u003c/b\\u003e","sep":"\\u2028"}'
    run = cli("set", "notes/ü<1>", value, "--namespace", "site<&>é")
    assert run.line == (
        '{"operation":"set","scope":"dag","namespace":"site<&>é","key":"notes/ü<1>",'
        f'"version":1,"hash":"{sha(stored)}","created":true}}'
    )
    assert cli("get", "notes/ü<1>", "--namespace", "site<&>é").out == (
        '{"operation":"get","scope":"dag","namespace":"site<&>é","key":"notes/ü<1>",'
        f'"found":true,"version":1,"hash":"{sha(stored)}","value":{stored}}}\n'
    ).encode()


def test_number_literals_survive_exactly(cli: Cli) -> None:
    literal = "[1.2300, 1E5, -0, 9007199254740993, 1, 1.0]"
    cli("set", "numbers", literal)
    assert cli("get", "numbers").line.endswith('"value":[1.2300,1E5,-0,9007199254740993,1,1.0]}')
    # a negative number is a VALUE, not an option
    for number in ("-1.5e3", "-0", "-7", "-0.25"):
        assert cli("set", "negative", number).code == 0
        assert cli("get", "negative").line.endswith(f'"value":{number}}}')
    assert cli("get", "missing", "--default", "-2.5E-3").line.endswith('"value":-2.5E-3}')


# -- input: argument, standard input, @file --------------------------------------------


def test_value_from_standard_input(cli: Cli) -> None:
    assert cli("set", "k", "-", input=b'  {"b": 1, "a": [true, null]}\n\n').code == 0
    assert cli("get", "k").line.endswith('"value":{"a":[true,null],"b":1}}')
    assert cli("diff", "k", "-", input=b'{"a":[true,null],"b":1}').data["changed"] is False
    got = cli("get", "missing", "--default", "-", input=b'"from stdin"').data
    assert got["value"] == "from stdin"


def test_value_from_a_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "value.json"
    path.write_bytes('{"name": "Zoë", "n": 1.50}'.encode())
    assert cli("set", "k", f"@{path}").code == 0
    assert cli("get", "k").line.endswith('"value":{"n":1.50,"name":"Zoë"}}')
    assert cli("get", "other", "--default", f"@{path}").data["value"] == {"n": 1.5, "name": "Zoë"}
    assert cli("diff", "k", f"@{path}").data["changed"] is False


def test_invalid_utf8_becomes_the_replacement_character(sqlite_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'"a\xffb"')
    sqlite_cli("set", "file", f"@{path}")
    sqlite_cli("set", "stdin", "-", input=b'"a\xffb"')
    sqlite_cli("set", "argv", os.fsdecode(b'"a\xffb"'))
    for key in ("file", "stdin", "argv"):
        assert sqlite_cli("get", key).line.endswith('"value":"a\ufffdb"}')


def test_input_errors_exit_2_and_write_nothing(sqlite_cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    sqlite_cli("set", "k", f"@{missing}").failed(2, str(missing))
    sqlite_cli("get", "k", "--default", f"@{missing}").failed(2, str(missing), "--default")
    sqlite_cli("set", "k", f"@{tmp_path}").failed(2, str(tmp_path))  # a directory
    sqlite_cli("set", "k", "{not json").failed(2, "invalid JSON")
    sqlite_cli("set", "k", "1 2").failed(2, "more than one JSON value")
    sqlite_cli("set", "k", "-", input=b"").failed(2, "invalid JSON")
    sqlite_cli("set", "k", "NaN").failed(2)
    sqlite_cli("diff", "k", "[1,").failed(2, "invalid JSON")
    sqlite_cli("get", "k", "--default", "{").failed(2, "invalid JSON")
    assert sqlite_cli("get", "k").data["found"] is False


def test_standard_input_feeds_one_argument_only() -> None:
    """For commands with two JSON arguments: the second '-' is an error, not empty input."""
    from statebox.cli._input import JsonArgs
    from statebox.errors import InvalidValueError

    reader = JsonArgs()
    stdin = sys.stdin
    try:
        with open(os.devnull) as sys.stdin:
            assert reader.read("-", "VALUE").text == b""
            with pytest.raises(InvalidValueError, match="already read for VALUE"):
                reader.read("-", "--default")
    finally:
        sys.stdin = stdin


def test_value_too_large(sqlite_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('"' + "x" * 1_048_575 + '"')  # 1,048,577 bytes
    sqlite_cli("set", "k", f"@{path}").failed(2, "value too large: 1048577 bytes exceeds 1048576")
    # within the limit as typed, over it once "<" becomes "\u003c"
    path.write_text('"' + "<" * 300_000 + '"')
    sqlite_cli("set", "k", "-", input=path.read_bytes()).failed(2, "value too large")
    assert sqlite_cli("get", "k").data["found"] is False


# -- exit codes ----------------------------------------------------------------------------


def test_conflicts_exit_4_and_write_nothing(cli: Cli) -> None:
    cli("set", "k", "1")
    cli("set", "k", "2", "--expected-version", "2").failed(4, "k")
    cli("set", "k", "2", "--expected-version", "0").failed(4)
    cli("set", "k", "2", "--expected-version", "-1").failed(4)
    cli("set", "k", "2", "--create-only").failed(4)
    cli("set", "new", "1", "--expected-version", "1").failed(4)
    cli("delete", "k", "--expected-version", "5").failed(4)
    got = cli("get", "k").data
    assert got["version"] == 1 and got["value"] == 1
    assert cli("set", "k", "2", "--expected-version", "1").data["version"] == 2
    assert cli("set", "fresh", "1", "--expected-version", "0").data["created"] is True
    assert cli("set", "fresh2", "1", "--create-only").data["created"] is True
    assert cli("delete", "k", "--expected-version", "2").data["deleted"] is True


def test_not_found_exits_3(cli: Cli) -> None:
    cli("get", "cursors/none", "--required").failed(3, "cursors/none", "not found")


def test_invalid_references_exit_2(sqlite_cli: Cli) -> None:
    sqlite_cli("get", "../bad").failed(2, "invalid key")
    sqlite_cli("set", "/lead", "1").failed(2, "invalid key")
    sqlite_cli("get", "a//b").failed(2, "invalid key")
    sqlite_cli("get", "k", "--scope", "DAG").failed(2, "invalid scope")
    sqlite_cli("get", "k", "--namespace", "a/b").failed(2, "invalid namespace")
    sqlite_cli("list", "/x").failed(2, "invalid prefix")
    sqlite_cli("list", "--after", "x/").failed(2, "invalid key")
    sqlite_cli("list", "--limit", "-1").failed(2, "invalid limit")
    sqlite_cli("get", os.fsdecode(b"bad\xff")).failed(2, "invalid key")


def test_configuration_errors_exit_2(sqlite_cli: Cli) -> None:
    sqlite_cli("get", "k", "--scope", "custom").failed(2, "--namespace")
    no_dag = {"STATEBOX_DAG": None}
    sqlite_cli("get", "k", env=no_dag).failed(2, "STATEBOX_DAG")
    sqlite_cli("get", "k", "--scope", "run", env=no_dag).failed(2, "STATEBOX_RUN_ID")
    sqlite_cli("get", "k", "--store", "nosuch://x").failed(2, "unsupported store URL")
    sqlite_cli("get", "k", "--store", "sqlite://host/x.db").failed(2, "invalid SQLite store URL")


def test_backend_errors_exit_1(sqlite_cli: Cli, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    sqlite_cli("get", "k", "--store", f"sqlite:///{garbage}").failed(1, str(garbage))
    blocked = tmp_path / "file"
    blocked.write_text("")
    sqlite_cli("get", "k", "--store", f"sqlite:///{blocked}/sub/x.db").failed(1)


def test_usage_errors_exit_2(sqlite_cli: Cli) -> None:
    sqlite_cli().failed(2, "COMMAND")
    sqlite_cli("frobnicate").failed(2, "invalid choice", "frobnicate")
    sqlite_cli("get").failed(2, "KEY")
    sqlite_cli("set", "k").failed(2, "VALUE")
    sqlite_cli("set", "k", "1", "--expected-version", "one").failed(2, "--expected-version")
    sqlite_cli("get", "k", "--bogus").failed(2, "--bogus")
    # no silent prefix matching of option names: scripts must say what they mean
    sqlite_cli("set", "k", "1", "--expected", "1").failed(2, "--expected")
    sqlite_cli("get", "k", "--format", "yaml").failed(2, "--format")
    sqlite_cli("list", "a", "b").failed(2, "unrecognized")


def test_unexpected_errors_exit_1_and_show_a_traceback_only_when_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A command that fails with a non-statebox exception (a real registered module)."""
    import types

    from statebox import cli
    from statebox.cli._parser import add_command

    module = types.ModuleType("statebox_test_boom")

    def register(subparsers: object) -> None:
        parser = add_command(
            subparsers,  # type: ignore[arg-type]
            "boom",
            help="fails",
            description="fails",
            examples=["statebox boom"],
        )
        parser.set_defaults(handler=lambda args, store: 1 / 0)

    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "statebox_test_boom", module)
    monkeypatch.setitem(cli.COMMANDS, "boom", "statebox_test_boom")
    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.delenv("STATEBOX_DEBUG", raising=False)

    assert cli.main(["boom"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "Error: unexpected ZeroDivisionError: division by zero "
        "(set STATEBOX_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("STATEBOX_DEBUG", "1")
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("(set STATEBOX_DEBUG=1 for the traceback)\n")


# -- options: before and after the command, context, store location ---------------------


def test_common_options_before_and_after_the_command(sqlite_cli: Cli) -> None:
    run = sqlite_cli("--scope", "custom", "--namespace", "team", "set", "k", "1")
    assert (run.data["scope"], run.data["namespace"]) == ("custom", "team")
    run = sqlite_cli("get", "k", "--scope", "custom", "--namespace", "team")
    assert run.data["found"] is True
    # after the command wins over before it
    run = sqlite_cli("--namespace", "a", "get", "k", "--namespace", "team", "--scope", "custom")
    assert run.data["namespace"] == "team"
    run = sqlite_cli("--format", "table", "get", "k", "--format", "json", "--scope", "global")
    assert run.data["namespace"] == "_"
    run = sqlite_cli("--scope", "root_dag", "--root-dag", "nightly", "set", "r", "1")
    assert (run.data["scope"], run.data["namespace"]) == ("root_dag", "nightly")
    run = sqlite_cli("set", "r", "1", "--scope", "run", "--run-id", "run-7")
    assert (run.data["scope"], run.data["namespace"]) == ("run", "run-7")
    # root_dag falls back to the workflow itself for a top-level run
    assert sqlite_cli("get", "r", "--scope", "root_dag").data["namespace"] == "feed-sync"
    # scope names are trimmed; namespace overrides the scope default in every scope
    run = sqlite_cli("get", "r", "--scope", " global ", "--namespace", "x")
    assert (run.data["scope"], run.data["namespace"]) == ("global", "x")


def test_run_context_from_the_environment_and_the_options(sqlite_cli: Cli) -> None:
    engines = [
        {"STATEBOX_DAG": "sb", "STATEBOX_RUN_ID": "r1", "STATEBOX_STEP": "s1"},
        {"STATEBOX_DAG": None, "DAG_NAME": "dagu", "DAG_RUN_ID": "r2", "DAG_RUN_STEP_NAME": "s2"},
        {
            "STATEBOX_DAG": None,
            "AIRFLOW_CTX_DAG_ID": "airflow",
            "AIRFLOW_CTX_DAG_RUN_ID": "r3",
            "AIRFLOW_CTX_TASK_ID": "s3",
        },
        {"STATEBOX_DAG": None, "GITHUB_WORKFLOW": "gha", "GITHUB_RUN_ID": "r4", "GITHUB_JOB": "s4"},
    ]
    for env, namespace in zip(engines, ("sb", "dagu", "airflow", "gha"), strict=True):
        assert sqlite_cli("set", "k", "1", env=env).data["namespace"] == namespace
    sqlite_cli("set", "k", "2", "--dag", "gha", env=engines[3])
    # options override the environment, and every write records who made it
    sqlite_cli(
        "set", "k", "3", "--dag", "sb", "--run-id", "opt-run", "--step", "opt-step",
        env=engines[0],
    )  # fmt: skip
    with open_store(sqlite_cli.url, context=RunContext(dag="x")) as store:
        by = {
            ns: [h.updated_by for h in store.history("k", namespace=ns).versions]
            for ns in ("sb", "dagu", "airflow", "gha")
        }
    assert (by["sb"][0].dag_run_id, by["sb"][0].step_name) == ("opt-run", "opt-step")
    assert (by["sb"][1].dag_name, by["sb"][1].dag_run_id, by["sb"][1].step_name) == (
        "sb",
        "r1",
        "s1",
    )
    assert (by["dagu"][0].dag_run_id, by["dagu"][0].step_name) == ("r2", "s2")
    assert (by["airflow"][0].dag_run_id, by["airflow"][0].step_name) == ("r3", "s3")
    assert (by["gha"][0].dag_name, by["gha"][0].dag_run_id) == ("gha", "r4")
    assert [h.step_name for h in by["gha"]] == ["s4", "s4"]


def test_store_location_option_environment_default(
    sqlite_cli: Cli, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    explicit = tmp_path / "explicit.db"
    sqlite_cli("--store", f"sqlite:///{explicit}", "set", "k", '"explicit"')
    sqlite_cli("set", "k", '"env"')  # STATEBOX_STORE
    home = tmp_path / "home"
    sqlite_cli("set", "k", '"home"', env={"STATEBOX_STORE": None, "STATEBOX_HOME": str(home)})
    xdg = tmp_path / "xdg"
    sqlite_cli(
        "set", "k", '"xdg"', env={"STATEBOX_STORE": None, "STATEBOX_HOME": None, "XDG_DATA_HOME": str(xdg)}
    )  # fmt: skip
    # --store wins over STATEBOX_STORE, "after the command" too
    sqlite_cli("set", "k2", "1", "--store", f"sqlite:///{explicit}")
    for path, value, keys in (
        (explicit, "explicit", {"k", "k2"}),
        (Path(sqlite_cli.url.removeprefix("sqlite:///")), "env", {"k"}),
        (home / "state.db", "home", {"k"}),
        (xdg / "statebox" / "state.db", "xdg", {"k"}),
    ):
        assert path.is_file(), path
        with open_store(f"sqlite:///{path}", context=RunContext(dag="feed-sync")) as store:
            assert store.get("k").value == value
            assert {e.key for e in store.list().entries} == keys


# -- output for people ---------------------------------------------------------------------


def test_format_table(sqlite_cli: Cli) -> None:
    sqlite_cli("set", "cursors/feed", '{"last_id": 123}')
    sqlite_cli("set", "cursors/other", '"' + "x" * 100 + '"')
    h = sha('{"last_id":123}')
    get = sqlite_cli("get", "cursors/feed", "--format", "table").out.decode()
    assert get.splitlines() == [
        "scope      dag",
        "namespace  feed-sync",
        "key        cursors/feed",
        "found      true",
        "version    1",
        f"hash       {h}",
        'value      {"last_id":123}',
    ]
    listing = sqlite_cli("--format", "table", "list", "cursors/", "--include-values")
    lines = listing.out.decode().splitlines()
    assert lines[:4] == ["scope      dag", "namespace  feed-sync", "prefix     cursors/", ""]
    assert lines[4] == "entries:"
    assert lines[5].split() == ["KEY", "VERSION", "HASH", "CREATED_AT", "UPDATED_AT", "VALUE"]
    assert lines[6].split()[:3] == ["cursors/feed", "1", h[:12]]
    assert lines[6].endswith('{"last_id":123}')
    assert lines[7].endswith("x" * 58 + "…")  # long cells are cut
    assert len(lines) == 8
    empty = sqlite_cli("list", "none/", "--format", "table").out.decode().splitlines()
    assert empty[-2:] == ["entries:", "(none)"]
    diff = sqlite_cli("diff", "cursors/feed", '{"last_id": 124}', "--format", "table")
    text = diff.out.decode()
    assert "changed          true" in text and 'previous         {"last_id":123}' in text
    assert 'current          {"last_id":124}' in text
    missing = sqlite_cli("get", "nope", "--format", "table").out.decode()
    assert "found      false" in missing


def test_output_is_utf8_whatever_the_locale(sqlite_cli: Cli) -> None:
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    run = sqlite_cli("set", "clé", '"东京"', env=env)
    assert '"key":"clé"' in run.line
    assert sqlite_cli("get", "clé", env=env).out.decode().endswith('"value":"东京"}\n')


# -- help, entry points, start-up --------------------------------------------------------


def test_help_for_every_command_has_an_example(sqlite_cli: Cli) -> None:
    from statebox.cli import COMMANDS

    top = sqlite_cli("--help")
    assert top.code == 0 and top.err == ""
    text = top.out.decode()
    for line in (
        "exit codes:",
        "  0  success",
        "  2  bad input or configuration",
        "  3  not found",
        "  4  conflict",
    ):
        assert line in text
    for name in COMMANDS:
        assert name in text
        run = sqlite_cli(name, "--help")
        assert run.code == 0, run.err
        help_text = run.out.decode()
        assert f"usage: statebox {name}" in help_text
        assert f"examples:\n  statebox {name}" in help_text
        assert "--namespace NS" in help_text  # the common options, after the command too


def test_python_dash_m_and_main_return_codes(sqlite_cli: Cli) -> None:
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
    for heavy in (
        "asyncio",
        "statebox.aio",
        "jq",
        "jsonpatch",
        "httpx",
        "starlette",
        "uvicorn",
        "psycopg",
        "shutil",
        "statebox.cli.cmd_set",
    ):
        assert heavy not in loaded, heavy
    # and the package itself loads its names lazily
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
        "assert statebox.errors.ConflictError.exit_code == 4\n"
        "try:\n    statebox.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "module 'statebox' has no attribute 'no_such_name'\n"
