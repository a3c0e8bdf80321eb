"""The Dapr face's wiring into ``statebox serve`` (statebox.dapr.options / .serve): its
options, the extension they build, and the errors a bad start-up gives."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statebox.core.errors import ConfigurationError
from statebox.core.model import Keyspace
from statebox.dapr import serve
from statebox.dapr.options import add_options
from statebox.web.extension import EXTENSION_GROUP

from .test_dapr_http import STATESTORE_YAML, components


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    add_options(parser)
    return parser.parse_args(argv)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statebox.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "STATEBOX_HOME": str(cwd / "home")},
    )


def test_the_entry_point_names_the_module() -> None:
    from importlib.metadata import entry_points

    points = {p.name: p.value for p in entry_points(group=EXTENSION_GROUP)}
    assert points.get("dapr") == "statebox.dapr.serve"
    assert serve.add_options is add_options


def test_the_options_and_their_defaults() -> None:
    args = parsed()
    assert args.dapr_components is None
    assert args.dapr_http_port is None and args.dapr_grpc_port is None
    assert args.dapr_app_id == "statebox"
    args = parsed("--dapr-components", "c", "--dapr-http-port", "3500", "--dapr-app-id", "a")
    assert (args.dapr_components, args.dapr_http_port, args.dapr_app_id) == ("c", 3500, "a")


def test_serve_help_lists_the_options(tmp_path: Path) -> None:
    done = run_cli("serve", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for option in ("--dapr-components", "--dapr-http-port", "--dapr-grpc-port", "--dapr-app-id"):
        assert option in done.stdout, option


def test_no_dapr_option_adds_nothing() -> None:
    assert serve.extension(parsed()) is None


def test_the_extension_of_a_components_folder(tmp_path: Path) -> None:
    folder = components(tmp_path)
    found = serve.extension(parsed("--dapr-components", str(folder), "--dapr-http-port", "3500"))
    assert found is not None
    assert found.name == "dapr"
    assert list(found.http_ports) == [3500]
    assert not found.services  # gRPC only with --dapr-grpc-port
    paths = {(r.method, r.path) for router in found.routers for r in router.routes}
    assert ("GET", "/v1.0/state/{store}/{key:path}") in paths
    assert ("POST", "/v1.0/bindings/{name}") in paths
    assert all(r.errors_as is not None for router in found.routers for r in router.routes)
    assert Keyspace("custom", "dapr-secretstore") in found.secret_keyspaces
    notices = "\n".join(found.notices)
    assert "statestore" in notices and "connectionString" in notices
    assert "./local/dapr/statestore.db" not in notices


def test_grpc_port_adds_a_service(tmp_path: Path) -> None:
    folder = components(tmp_path)
    found = serve.dapr_extension(folder, grpc_port=50001)
    assert len(found.services) == 1
    assert any("50001" in line for line in found.listening)


def test_grpc_without_the_dapr_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "statebox.dapr.grpc", raising=False)
    for name in [n for n in sys.modules if n == "dapr" or n.startswith("dapr.")] or ["dapr"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: imports fail
    with pytest.raises(
        ConfigurationError, match=r'pip install "dapr>=1\.17".*pip install "\.\[dapr\]"'
    ):
        serve.dapr_extension(components(tmp_path), grpc_port=50001)


def test_without_components_the_api_has_no_store(tmp_path: Path) -> None:
    found = serve.dapr_extension(None, http_port=3500)
    assert list(found.http_ports) == [3500] and found.routers


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"app_id": ""}, "--dapr-app-id"),
        ({"app_id": "a||b"}, "--dapr-app-id"),
        ({"http_port": 70000}, "--dapr-http-port"),
        ({"grpc_port": 0}, "--dapr-grpc-port"),
        ({"grpc_port": -1}, "--dapr-grpc-port"),
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        serve.dapr_extension(None, **kwargs)  # type: ignore[arg-type]


def test_a_missing_components_folder_fails_start_up_with_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    store = f"sqlite:///{tmp_path / 'x.db'}"
    done = run_cli(
        "serve", "--store", store, "--port", "0", "--dapr-components", str(missing), cwd=tmp_path
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--dapr-components" in done.stderr and "no such directory" in done.stderr
    assert "listening" not in done.stdout


def test_a_bad_component_file_fails_start_up_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "statestore.yaml").write_text(STATESTORE_YAML)
    (folder / "broken.yaml").write_text("kind: Component\nmetadata: [unclosed\n")
    store = f"sqlite:///{tmp_path / 'x.db'}"
    done = run_cli(
        "serve", "--store", store, "--port", "0", "--dapr-components", str(folder), cwd=tmp_path
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "broken.yaml" in done.stderr
