"""What keeps ``statebox get`` and ``set`` fast to start: the modules they do not load,
the garbage collector paused while the command starts, and the shortcut that reads a
plain ``sqlite:///`` URL without urllib.parse (it must answer exactly what the full parse
answers). ``bench/bench_cli.py`` measures the result against the stdlib floor."""

from __future__ import annotations

import argparse
import gc
import gettext
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from statebox.backends import open_backend
from statebox.backends.sqlite import _parse_sqlite_url, sqlite_path_from_url
from statebox.cli import main
from statebox.cli._parser import _JSON_NEGATIVE_NUMBER, _NEGATIVE_NUMBER_MATCHER
from statebox.core.errors import ConfigurationError

# Each costs from a fraction of a millisecond to several at start-up; none is needed to
# read or write one entry. (typing is still loaded: core.model's records need it.)
_NOT_FOR_A_GET = {
    "pathlib",
    "urllib.parse",
    "ipaddress",
    "base64",
    "threading",  # the SQLite backend takes its locks from _thread
    "weakref",  # ... and no WeakSet: weak references from _weakref
    "_weakrefset",
    "locale",  # argparse's gettext look-ups, skipped while the parser is built
    "importlib",  # modules are imported with __import__
    "shutil",  # argparse's help formatter, given the terminal width by other means
    "asyncio",
    "dataclasses",
    "decimal",
    "hashlib",  # OpenSSL: a write's first small values are hashed by _sha256
    "_hashlib",
    "socket",
    "typing",  # NamedTuple classes are built by core._tuples; annotations are not evaluated
    "contextlib",
    # the results beyond Dagu's operations and their renderers: a dozen NamedTuple
    # classes, about 2 ms
    "statebox.core.results_beyond",
    "statebox.core.envelope_beyond",
}


def _modules_loaded_by(code: str, env: dict[str, str]) -> tuple[list[str], set[str]]:
    """The output lines of ``code`` run in a fresh interpreter, and the modules it loaded
    beyond what the bare interpreter loads in the same environment (a ``.pth`` file may
    preload some)."""

    def run(source: str) -> list[str]:
        return subprocess.run(
            [sys.executable, "-c", source], env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()

    listing = "import sys; print(' '.join(sorted(sys.modules)))"
    *lines, loaded = run(f"{code}\n{listing}\n")
    bare = set(run(listing)[-1].split())
    return lines, set(loaded.split()) - bare


def _modules_after(argv: list[str], env: dict[str, str]) -> set[str]:
    code = f"from statebox.cli import main\nassert main({argv!r}) == 0"
    lines, loaded = _modules_loaded_by(code, env)
    assert json.loads(lines[-1])["operation"] == argv[0]
    return loaded


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "STATEBOX_DAG": "d", **extra}


def test_a_get_with_a_store_url_loads_none_of_the_costly_modules(tmp_path: Path) -> None:
    env = _env(STATEBOX_STORE=f"sqlite:///{tmp_path / 's.db'}")
    loaded = _modules_after(["get", "k"], env)
    assert "statebox.backends.sqlite" in loaded  # the test measures a real read
    assert loaded & _NOT_FOR_A_GET == set()
    assert "statebox.cli._input" not in loaded  # JSON arguments: a get without --default


def test_a_set_loads_none_of_them(tmp_path: Path) -> None:
    env = _env(STATEBOX_STORE=f"sqlite:///{tmp_path / 's.db'}")
    assert _modules_after(["set", "k", '{"a": [1, -2.5]}'], env) & _NOT_FOR_A_GET == set()
    # A negative number as VALUE still parses (argparse's matcher, compiled on demand).
    assert _modules_after(["set", "k", "-1.5e3"], env) & _NOT_FOR_A_GET == set()
    lines, _ = _modules_loaded_by("from statebox.cli import main\nmain(['get', 'k'])", env)
    assert json.loads(lines[-1])["value"] == -1500.0


def test_help_lists_every_command_without_loading_the_server() -> None:
    """``statebox --help`` builds every command's parser, ``serve``'s included (found
    through its entry point, so ``--help`` pays for ``importlib.metadata``, which a
    ``get`` never does): its options come from a module of their own, not the server's
    (tokens, backends, the web framework)."""
    lines, loaded = _modules_loaded_by(
        "from statebox.cli import main\nassert main(['--help']) == 0", _env()
    )
    assert "options:" in lines  # argparse's own strings are still there
    assert "serve" in "\n".join(lines)
    assert "statebox.server.options" in loaded
    heavy = {
        "statebox.server.main",
        "statebox.server.auth",
        "statebox.server.app",
        "statebox.backends.base",
        "starlette",
        "uvicorn",
    }
    assert loaded & heavy == set()


def test_the_default_location_still_works_without_them_preloaded(tmp_path: Path) -> None:
    loaded = _modules_after(["get", "k"], _env(HOME=str(tmp_path)))
    # The default location is computed with os.path: pathlib would bring urllib.parse
    # and ipaddress into every start-up of the main job.
    assert loaded & _NOT_FOR_A_GET == set()
    assert (tmp_path / ".local/share/statebox/state.db").is_file()


def _collector_during_a_get(tmp_path: Path, *, console_script: bool) -> dict[str, object]:
    """Collections run between the start of ``main`` and the command's handler, whether
    the collector is on in the handler, and objects frozen, in a fresh interpreter."""
    call = "main()" if console_script else "main(['get', 'k'])"
    code = f"""
import atexit, gc, json, sys
atexit.register(int)  # work left for the shutdown: main() returns
sys.argv = ['statebox', 'get', 'k']
from statebox.cli import main, cmd_get
seen = {{}}
def collections():
    return sum(generation['collections'] for generation in gc.get_stats())
def handler(args, store):
    seen.update(during=collections() - seen['start'], enabled_in_handler=gc.isenabled())
    return None
cmd_get.run = handler
seen['start'] = collections()
assert {call} == 0
seen.update(enabled_after=gc.isenabled(), frozen=gc.get_freeze_count() > 0)
print(json.dumps(seen))
"""
    env = _env(STATEBOX_STORE=f"sqlite:///{tmp_path / 's.db'}")
    lines, _ = _modules_loaded_by(code, env)
    result: dict[str, object] = json.loads(lines[-1])
    return result


@pytest.mark.parametrize("console_script", [True, False])
def test_the_collector_is_paused_while_the_command_starts(
    tmp_path: Path, console_script: bool
) -> None:
    seen = _collector_during_a_get(tmp_path, console_script=console_script)
    # Importing the engine allocates enough for several collections; none runs while
    # the command starts. In a caller's process, one runs when the collector resumes
    # (the start-up objects are young); a process the command owns freezes them first.
    assert seen["during"] == (0 if console_script else 1)
    # serve and watch run for hours: the collector is back before the handler runs.
    assert seen["enabled_in_handler"] is True
    assert seen["enabled_after"] is True
    # Only a process the command owns keeps its start-up objects frozen.
    assert seen["frozen"] is console_script


def _console_script_run(
    tmp_path: Path, argv: list[str], setup: str = ""
) -> subprocess.CompletedProcess[str]:
    """``main()`` as the console script calls it, after ``setup``, with a canary object
    that reports the interpreter's shutdown when it tears the main module down."""
    code = f"""
import functools, os, sys
# Its finalizer holds no module globals (no reference cycle to wait for a collection),
# so the shutdown's clearing of the main module runs it.
Canary = type("Canary", (), {{"__del__": functools.partial(os.write, 2, b"shutdown ran\\n")}})
canary = Canary()
{setup}
sys.argv = ["statebox", *{argv!r}]
from statebox.cli import main
sys.exit(main())
"""
    env = _env(STATEBOX_STORE=f"sqlite:///{tmp_path / 's.db'}")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_the_console_script_ends_without_the_interpreter_shutdown(tmp_path: Path) -> None:
    done = _console_script_run(tmp_path, ["set", "k", "1"])
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["version"] == 1  # the output is all there
    done = _console_script_run(tmp_path, ["get", "k"])
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["value"] == 1
    # The exit code is the command's.
    done = _console_script_run(tmp_path, ["get", "missing", "--required"])
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr.startswith("Error: ") and "shutdown ran" not in done.stderr


def test_the_shutdown_runs_when_it_has_work_to_do(tmp_path: Path) -> None:
    setup = "import atexit\natexit.register(lambda: print('at exit', flush=True))"
    done = _console_script_run(tmp_path, ["get", "k"], setup)
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "at exit"
    assert done.stderr == "shutdown ran\n"
    # A thread still running is waited for, as before.
    setup = "import threading, time\nthreading.Thread(target=time.sleep, args=(0.2,)).start()"
    done = _console_script_run(tmp_path, ["get", "k"], setup)
    assert (done.returncode, done.stderr) == (0, "shutdown ran\n")
    # main([...]) called by a program returns to it; then main() with a usage error (get
    # without KEY) exits with the usage code, which the short way out keeps.
    setup = "from statebox.cli import main\nprint('returned', main(['get', 'k']))"
    done = _console_script_run(tmp_path, ["get"], setup)
    assert done.stdout.splitlines()[-1] == "returned 0"
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and "shutdown ran" not in done.stderr


def test_main_leaves_a_disabled_collector_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEBOX_STORE", "memory://")
    monkeypatch.setenv("STATEBOX_DAG", "d")
    gc.disable()
    try:
        assert main(["get", "k"]) == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert main(["get", "k"]) == 0
    assert gc.isenabled()


def test_argparse_translates_again_once_the_parser_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATEBOX_STORE", "memory://")
    monkeypatch.setenv("STATEBOX_DAG", "d")
    assert main(["get", "k"]) == 0
    assert vars(argparse)["_"] is gettext.gettext
    assert main(["get"]) == 2  # a usage error: formatted with gettext, as before
    assert vars(argparse)["_"] is gettext.gettext


@given(st.text(alphabet="-+.eE0123456789x٣ ", max_size=12))
@example("-")
@example("-0")
@example("-1.5e3")
@example("--store")
@example("-٣")  # a digit to str.isdigit, not to the pattern
def test_the_lazy_negative_number_matcher_answers_as_the_pattern(text: str) -> None:
    expected = re.match(_JSON_NEGATIVE_NUMBER, text)
    got = _NEGATIVE_NUMBER_MATCHER.match(text)
    assert (got and got.group()) == (expected and expected.group())


def _outcome(parse: Callable[[str], object], url: str) -> object:
    try:
        return parse(url)
    except ConfigurationError as exc:
        return ("error", str(exc))


_url_text = st.text(alphabet="ab/.%20?#=&x \t\n:;[]@\x00é", max_size=20)


@given(_url_text)
@example("")
@example("/")
@example("//")
@example("/abs/x.db")
@example("rel/x.db?timeout=2")
@example("a%20b.db")
@example("x.db#frag")
@example("x\t.db")
def test_the_plain_url_shortcut_agrees_with_urlsplit(rest: str) -> None:
    for url in ("sqlite:///" + rest, "sqlite://" + rest, "SQLITE:///" + rest):
        assert _outcome(sqlite_path_from_url, url) == _outcome(_parse_sqlite_url, url)


@pytest.mark.parametrize("url", ["sqlite:///x.db", "sqlite:////abs/x.db", "SQLite:///x.db"])
def test_sqlite_urls_open_the_sqlite_backend(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = url.replace("/abs", str(tmp_path))
    backend = open_backend(url)
    try:
        # open_backend puts the sealing layer over it (statebox.backends.sealing)
        assert type(getattr(backend, "inner", backend)).__name__ == "SqliteBackend"
    finally:
        backend.close()


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path}/new/dir/state.db")
    try:
        assert (tmp_path / "new/dir/state.db").is_file()
    finally:
        backend.close()


@pytest.mark.parametrize("url", ["sqlite://[x/state.db", "sqlite://x]/state.db", "http://[x"])
def test_a_malformed_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid"):
        open_backend(url)
