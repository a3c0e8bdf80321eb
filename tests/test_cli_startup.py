"""What keeps ``statebox get`` fast to start: the modules it does not load, and the
shortcut that reads a plain ``sqlite:///`` URL without urllib.parse (it must answer
exactly what the full parse answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from statebox.backends import open_backend
from statebox.backends.sqlite import _parse_sqlite_url, sqlite_path_from_url
from statebox.errors import ConfigurationError

# Each costs milliseconds at start-up; none is needed to read one entry.
_NOT_FOR_A_GET = {"pathlib", "urllib.parse", "ipaddress", "base64"}


def _modules_after_get(tmp_path: Path, env: dict[str, str]) -> set[str]:
    code = (
        "import sys\n"
        "from statebox.cli import main\n"
        "assert main(['get', 'k']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    get_line, modules = out.splitlines()
    assert json.loads(get_line)["found"] is False
    return set(modules.split())


def test_a_get_with_a_store_url_loads_no_url_or_path_library(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "STATEBOX_STORE": f"sqlite:///{tmp_path / 's.db'}",
        "STATEBOX_DAG": "d",
    }
    assert _modules_after_get(tmp_path, env) & _NOT_FOR_A_GET == set()


def test_help_lists_every_command_without_loading_the_server() -> None:
    """``statebox --help`` builds every command's parser, ``serve``'s included: its
    options come from a module of their own, not the server's (tokens, backends, sockets)."""
    code = (
        "import sys\n"
        "from statebox.cli import main\n"
        "assert main(['--help']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(out.splitlines()[-1].split())
    assert "statebox.server.options" in loaded
    heavy = {"statebox.server.main", "statebox.server.auth", "statebox.backends.base", "socket"}
    assert loaded & (heavy | _NOT_FOR_A_GET) == set()


def test_the_default_location_still_works_without_them_preloaded(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "STATEBOX_DAG": "d"}
    loaded = _modules_after_get(tmp_path, env)
    # The default location is computed with os.path: pathlib would bring urllib.parse
    # and ipaddress into every start-up of the main job.
    assert loaded & _NOT_FOR_A_GET == set()
    assert (tmp_path / ".local/share/statebox/state.db").is_file()


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
        assert type(backend).__name__ == "SqliteBackend"
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
