"""The install commands error messages and docs give are ones that work for this project.

statebox is not on PyPI: ``pip install "statebox[postgres]"`` names a package that does
not exist. Each message that says what to install (:func:`statebox.core.install.extra_hint`)
names instead the packages the extra adds, exactly as ``pyproject.toml`` declares them,
``pip install ".[EXTRA]"`` from a clone, and ``pipx inject statebox`` for a pipx install.
Every such message is made for real here, in a subprocess where the package it needs is
hidden (``sys.modules[name] = None`` makes its import fail as a missing one would).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from statebox.core.install import extra_hint, extra_requirements

ROOT = Path(__file__).resolve().parent.parent
EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]


def declared(extra: str) -> list[str]:
    """The extra's requirements as pyproject.toml writes them, those whose marker holds
    here, without the marker, in the metadata's order (sorted)."""
    out = []
    for line in EXTRAS[extra]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
            out.append(line.split(";")[0].split("#")[0].strip())
    return sorted(out)


def check_commands(message: str, extra: str) -> None:
    """Every command in the message installs something that exists: the packages of
    ``extra`` (by name, version and extras as pyproject.toml declares them) or the
    clone's extra; never the ``statebox`` distribution from an index."""
    assert "statebox[" not in message, message
    assert f'pip install ".[{extra}]"' in message, message
    want = declared(extra)
    assert want, f"the {extra} extra declares nothing to install"
    pip = re.search(r"pip install ((?:\"[^.\"][^\"]*\" ?)+)", message)
    pipx = re.search(r"pipx inject statebox ((?:\"[^\"]+\" ?)+)", message)
    assert pip and pipx, message
    for command in (pip, pipx):
        packages = re.findall(r'"([^"]+)"', command.group(1))
        assert sorted(packages) == want, (message, want)
        assert all(Requirement(p).name != "statebox" for p in packages)


@pytest.mark.parametrize("extra", [e for e in EXTRAS if e != "http"])
def test_each_extra_hint_names_what_pyproject_declares(extra: str) -> None:
    assert sorted(extra_requirements(extra) or []) == declared(extra)
    check_commands(extra_hint(extra), extra)


def test_an_extra_without_packages_says_so() -> None:
    assert EXTRAS["http"] == []
    hint = extra_hint("http")
    assert hint.startswith("the http extra adds no packages")
    assert 'pip install ".[http]"' in hint


def test_an_unknown_extra_is_an_error_not_a_wrong_command() -> None:
    with pytest.raises(ValueError, match="no extra named 'postgress'"):
        extra_hint("postgress")


# Each message that names what to install, made for real with the package hidden.
HIDDEN = {
    "postgres-driver": (
        ["psycopg_pool"],
        "import statebox\nstatebox.open_store('postgresql://u@127.0.0.1:1/db')",
        "postgres",
    ),
    "server": (
        ["uvicorn"],
        "from statebox.server.main import serve\nserve('memory://')",
        "server",
    ),
    "server-package": (
        ["starlette"],
        "import statebox.server as s\ns.create_app",
        "server",
    ),
    "tokens-yaml": (
        ["yaml"],
        "import pathlib, tempfile\nfrom statebox.server.auth import load_tokens\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    p = pathlib.Path(d, 't.yaml'); p.write_text('tokens: []')\n"
        "    load_tokens(p)",
        "server",
    ),
    "secrets": (
        ["cryptography.hazmat.primitives.ciphers.aead"],
        "from statebox.backends.sealing import cipher\ncipher._aead()",
        "secrets",
    ),
    "dapr-grpc": (
        ["grpc"],
        "from statebox.dapr.serve import _grpc_service\n_grpc_service(None, '127.0.0.1', 0)",
        "dapr",
    ),
}

HIDE = """
import sys
for name in {modules!r}:
    sys.modules[name] = None
try:
{body}
except Exception as exc:
    print(exc)
    raise SystemExit(0)
raise SystemExit("no error")
"""


@pytest.mark.parametrize("case", list(HIDDEN))
def test_each_message_gives_commands_that_work_here(case: str) -> None:
    modules, body, extra = HIDDEN[case]
    script = HIDE.format(modules=modules, body="\n".join("    " + ln for ln in body.split("\n")))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    message = result.stdout.strip()
    check_commands(message, extra)


def test_no_message_or_page_names_a_statebox_package_on_an_index() -> None:
    """``pip install "statebox[…]"`` / ``pip install statebox`` (from an index) appears
    nowhere: src, the README, docs/ (the install module's docstring says why)."""
    # The PEP 508 form "statebox[server] @ git+https://…" names its source: allowed, as
    # is a wheel's file name (statebox-0.1.0-….whl).
    wrong = re.compile(r"pip install\s+['\"]?statebox(?![-\w])[^\s'\"`]*+['\"]?+(?!\s*@)")
    found = []
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "src").rglob("*.py")]
    for path in files:
        if path.name == "install.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if wrong.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
