"""statebox installs as its README says: the built wheel and sdist, pip, pipx, extras.

The wheel and the sdist are built from this tree (``python -m build --no-isolation``:
build and hatchling come with the dev extra) and must carry the whole package, ``py.typed``
and the web page's assets included. The wheel goes into a fresh venv with the ``server``
and ``postgres`` extras; then the README's install commands (the blocks marked for this
test) run as written, in a copy of the sources as a clone would have them (the sdist,
unpacked: uncommitted files are in it, as they would be in the commit a clone gets).

Nothing downloads: pip reads only ``.cache/wheelhouse`` (``scripts/wheelhouse``, run by
``scripts/test``, fills it from the registry once per pyproject.toml), through
``PIP_NO_INDEX``/``PIP_FIND_LINKS`` in the environment, which reach the isolated build
environments and pipx's pip too; the machine's pip configuration is ignored.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "statebox"
WHEELHOUSE = Path(os.environ.get("STATEBOX_WHEELHOUSE", ROOT / ".cache" / "wheelhouse"))
README_MARK = re.compile(
    r"<!-- not run: [^>]*tests/test_install\.py[^>]*-->\n```sh\n(.*?)^```", re.S | re.M
)
TIMEOUT = 300

pytestmark = pytest.mark.slow


def shipped_files() -> set[str]:
    """Every file of the package as the wheel must hold it (``statebox/...``)."""
    return {
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def readme_blocks() -> list[str]:
    return README_MARK.findall((ROOT / "README.md").read_text())


@dataclass
class Built:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    if not (WHEELHOUSE / ".stamp").is_file():
        message = f"no wheelhouse at {WHEELHOUSE}: run scripts/wheelhouse (scripts/test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return WHEELHOUSE


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("statebox-*.whl")
    (sdist,) = out.glob("statebox-*.tar.gz")
    return Built(wheel, sdist)


def offline_env(home: Path, wheelhouse: Path, path: Sequence[Path] = ()) -> dict[str, str]:
    """An environment where pip reads only the wheelhouse, with ``path`` first on PATH,
    then the interpreter this venv was made from; nothing of this venv (its PATH entry,
    VIRTUAL_ENV) or of this session's store leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "PIPX_", "STATEBOX_", "VIRTUAL_ENV", "PYTHON"))
    }
    ours = str(Path(sys.prefix) / "bin")
    system = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours]
    base = str(Path(sys.base_prefix) / "bin")
    env.update(
        PATH=os.pathsep.join([*map(str, path), base, *system]),
        HOME=str(home),
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        STATEBOX_HOME=str(home / "statebox"),
        PIPX_HOME=str(home / "pipx"),
        PIPX_BIN_DIR=str(home / "bin"),
        PIPX_MAN_DIR=str(home / "man"),
        # pipx would reinstall pip in its shared environment from the index: not offline.
        PIPX_DISABLE_SHARED_LIBS_AUTO_UPGRADE="1",
    )
    return env


def run(command: list[str] | str, *, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        command if isinstance(command, list) else ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    shown = command if isinstance(command, str) else " ".join(command)
    assert result.returncode == 0, f"$ {shown}\n{result.stdout}{result.stderr}"
    return result.stdout


def test_the_wheel_and_sdist_carry_the_whole_package(built: Built) -> None:
    want = shipped_files()
    assert {"statebox/py.typed", "statebox/ui/assets/index.html"} <= want
    with zipfile.ZipFile(built.wheel) as wheel:
        in_wheel = {n for n in wheel.namelist() if n.startswith("statebox/")}
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = wheel.read(metadata.replace("METADATA", "entry_points.txt")).decode()
        extras = set(re.findall(r"^Provides-Extra: (\S+)$", wheel.read(metadata).decode(), re.M))
    assert want - in_wheel == set(), "missing from the wheel"
    assert "statebox = statebox.cli:main" in entry_points
    assert {"server", "postgres", "secrets", "runner", "dapr", "atlan"} <= extras
    with tarfile.open(built.sdist) as sdist:
        top = built.sdist.name.removesuffix(".tar.gz")
        in_sdist = {n.removeprefix(f"{top}/src/") for n in sdist.getnames()}
        assert f"{top}/pyproject.toml" in sdist.getnames()
        assert f"{top}/README.md" in sdist.getnames()
    assert want - in_sdist == set(), "missing from the sdist"


def test_the_wheel_installs_with_extras_into_a_fresh_venv(
    built: Built, wheelhouse: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    env = offline_env(tmp_path, wheelhouse, [venv / "bin"])
    run([sys.executable, "-m", "venv", str(venv)], env=env, cwd=tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run(
        [*pip, "--no-index", "--find-links", str(wheelhouse), f"{built.wheel}[server,postgres]"],
        env=env,
        cwd=tmp_path,
    )
    assert (venv / "bin" / "statebox").exists()
    version = run(["statebox", "--version"], env=env, cwd=tmp_path)
    assert re.match(r"statebox \d", version), version
    if (PACKAGE / "__main__.py").exists():
        assert "usage: statebox" in run(
            [str(venv / "bin" / "python"), "-m", "statebox", "--help"], env=env, cwd=tmp_path
        )
    # The installed package, not this tree's: its files, its extras' imports.
    where = run(
        [str(venv / "bin" / "python"), "-c",
         "import statebox, psycopg_pool, starlette, uvicorn; print(statebox.__file__)"],
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert where.startswith(str(venv)), where
    run(
        "statebox set k '\"v\"' --dag install && statebox get k --dag install",
        env=env,
        cwd=tmp_path,
    )
    assert "statebox.db" not in os.listdir(tmp_path)  # the store went to STATEBOX_HOME


@pytest.fixture
def clone(built: Built, tmp_path: Path) -> Iterator[Path]:
    """The sources as a clone has them: the sdist unpacked (this tree's files, committed
    or not), made a git repository for the git URL."""
    with tarfile.open(built.sdist) as sdist:
        sdist.extractall(tmp_path / "unpacked", filter="data")
    (tree,) = (tmp_path / "unpacked").iterdir()
    yield tree
    shutil.rmtree(tree, ignore_errors=True)


def test_the_readme_has_the_install_blocks() -> None:
    blocks = readme_blocks()
    assert len(blocks) == 3, blocks
    assert "pip install ." in blocks[0] and "pipx install" in blocks[1]
    assert "git+https://" in blocks[2] and "pipx inject statebox" in blocks[2]


def test_the_readme_pip_commands_work_from_a_clone(
    clone: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    env = offline_env(tmp_path, wheelhouse)
    out = run(readme_blocks()[0], env=env, cwd=clone)
    assert '"value":"hello"' in out, out
    assert (clone / ".venv" / "bin" / "statebox").exists()


def test_the_readme_pipx_commands_work_from_a_clone_and_a_git_url(
    clone: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    pipx = Path(sys.executable).with_name("pipx")
    env = offline_env(tmp_path, wheelhouse, [tmp_path / "bin", tmp_path / "pipx-tool"])
    (tmp_path / "pipx-tool").mkdir()
    (tmp_path / "pipx-tool" / "pipx").symlink_to(pipx)
    from_clone, from_git = readme_blocks()[1:]
    assert "usage: statebox" in run(from_clone, env=env, cwd=clone)
    venvs = tmp_path / "pipx" / "venvs" / "statebox" / "lib"
    assert list(venvs.glob("python*/site-packages/starlette"))  # the extras came too

    run(["pipx", "uninstall", "statebox"], env=env, cwd=tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    run([*git, "init", "-q"], env=env, cwd=clone)
    run([*git, "add", "-A"], env=env, cwd=clone)
    run([*git, "commit", "-q", "-m", "snapshot"], env=env, cwd=clone)
    url = re.search(r'@ (git\+https://[^"]+)"', from_git)
    assert url is not None
    # With a host: pip before 24 refuses a PEP 508 URL without one (git+file:///…).
    script = from_git.replace(url.group(1), f"git+file://localhost{clone}")
    assert "usage: statebox" in run(script, env=env, cwd=tmp_path)
    assert list(venvs.glob("python*/site-packages/starlette"))  # the extra named in brackets
    assert list(venvs.glob("python*/site-packages/psycopg_pool"))  # injected
