"""The import contracts of ``.importlinter`` (issue #13): a wrong arrow fails the build.

Each test plants one forbidden import in a copy of the package and runs the real
``lint-imports`` over that copy, so the contract is shown to catch it — and the copy
without the plant passes, so a failure is the plant's and not the harness's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import statebox

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(statebox.__file__).resolve().parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(copy_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=copy_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "statebox", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_tree_as_it_is_keeps_every_contract(package_copy: Path) -> None:
    result = _lint(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "arrow"),
    [
        # A backend that leans on a face (the old http backend imported server/wire.py).
        (
            "backends/http.py",
            "from ..server import app",
            "statebox.backends.http -> statebox.server.app",
        ),
        # One face importing another: the CLI reaching into the server.
        (
            "cli/cmd_get.py",
            "from ..server import auth",
            "statebox.cli.cmd_get -> statebox.server.auth",
        ),
        # The server reaching into the CLI.
        (
            "server/app.py",
            "from ..cli import _output",
            "statebox.server.app -> statebox.cli._output",
        ),
        # The pure core depending on the engine above it.
        ("core/values.py", "from .. import store", "statebox.core.values -> statebox.store"),
        # The wire protocol depending on a backend.
        (
            "wire/codec.py",
            "from ..backends import base",
            "statebox.wire.codec -> statebox.backends.base",
        ),
    ],
)
def test_a_planted_wrong_arrow_breaks_the_build(
    package_copy: Path, module: str, planted: str, arrow: str
) -> None:
    target = package_copy / "statebox" / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    result = _lint(package_copy)
    assert result.returncode != 0
    assert "Broken contracts" in result.stdout
    assert arrow in result.stdout


def test_the_architecture_page_names_modules_and_functions_that_exist() -> None:
    """docs/architecture.md's "one place for each concept" table stays true: every
    module it names exists, and every function it names in parentheses is defined there."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page.split("## One place for each concept", 1)[1].split("\n## ", 1)[0]
    checked = 0
    for row in table.splitlines()[3:]:
        where = row.rsplit("|", 2)[1]
        for module, names in re.findall(r"`([\w/]+\.py)`(?: \(([^)]*)\))?", where):
            source = (PACKAGE / module).read_text()
            for name in re.findall(r"`(\w+)`", names):
                assert re.search(rf"^\s*def {name}\(", source, re.M), f"{module} has no {name}"
                checked += 1
    assert checked >= 8
