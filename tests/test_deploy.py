"""The deployment files: Dockerfile, compose.yaml, deploy/statebox.service.

Every ``statebox`` command line in them goes through statebox's own argument parser, so
an option the server does not have (or a value it refuses) fails here rather than at
someone's ``docker compose up``. The image is non-root and checks ``/healthz``; its
health check's one-liner is run against a real server. The unit passes
``systemd-analyze verify`` where systemd is installed. Building and running the image
needs a container engine: that test is skipped only when ``docker info`` fails.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from statebox.cli import build_parser
from statebox.server.options import DEFAULT_PORT

from .server_util import running_server

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "statebox.service"
EXAMPLE_TOKENS = ROOT / "deploy" / "tokens.example.yaml"
EXAMPLE_SECRET = "statebox-example-token-change-me"


def parse(argv: list[str]) -> Any:
    """``statebox ARGV`` parsed as the CLI parses it (a UsageError when it is invalid)."""
    assert argv, "an empty command line"
    return build_parser(argv[0]).parse_args(argv)


# --- the Dockerfile ------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` for each instruction, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def test_the_image_is_small_multi_stage_and_runs_as_a_user() -> None:
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for word, args in instructions if word == "FROM"]
    assert bases == ["python:3.11-slim", "python:3.11-slim"], bases
    # Any builder, the legacy one too: it has no `RUN --mount` and pulls no frontend.
    assert not [args for word, args in instructions if word == "RUN" and "--mount" in args]
    assert not DOCKERFILE.read_text().startswith("# syntax=")
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the image runs as root: no USER in its last stage"
    assert users[-1] not in ("root", "0", "0:0"), users


def test_the_image_serves_by_default_with_options_statebox_has() -> None:
    stage = dict(final_stage())
    assert exec_form(stage["ENTRYPOINT"]) == ["statebox"]
    args = parse(exec_form(stage["CMD"]))
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert args.tokens  # a non-loopback address needs them: the server would refuse
    assert stage["EXPOSE"] == str(args.port)
    assert "STATEBOX_HOME=/var/lib/statebox" in stage["ENV"]
    assert json.loads(stage["VOLUME"]) == ["/var/lib/statebox"]


def healthcheck_command(arguments: str) -> list[str]:
    """The command of ``HEALTHCHECK [--options] CMD [...]``."""
    _, _, command = arguments.partition("CMD ")
    return exec_form(command)


def test_the_health_check_asks_healthz_on_the_served_port() -> None:
    stage = dict(final_stage())
    command = healthcheck_command(stage["HEALTHCHECK"])
    assert command[:2] == ["python", "-c"], command  # no curl in the slim image
    port = parse(exec_form(stage["CMD"])).port
    assert f"http://127.0.0.1:{port}/healthz" in command[2]


def run_health_check(code: str, port: int) -> int:
    code = code.replace(f":{DEFAULT_PORT}/", f":{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


def test_the_health_check_passes_on_a_server_and_fails_without_one(tmp_path: Path) -> None:
    code = healthcheck_command(dict(final_stage())["HEALTHCHECK"])[2]
    compose_code = compose()["services"]["statebox-a"]["healthcheck"]["test"][3]
    with running_server(f"sqlite:///{tmp_path / 'state.db'}", tokens=EXAMPLE_TOKENS) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert run_health_check(code, port) == 0
        assert run_health_check(compose_code, port) == 0
    assert run_health_check(code, port) != 0  # stopped: unhealthy


def test_the_build_context_is_the_package_only() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()]
    rules = [ln for ln in lines if not ln.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    copied = [
        args
        for word, args in dockerfile_instructions()
        if word == "COPY" and not args.startswith("--from=")  # from the build stage
    ]
    assert all(set(a.split()[:-1]) <= {"pyproject.toml", "README.md", "src"} for a in copied)


# --- compose.yaml ----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_runs_two_servers_on_one_postgres_started_in_order() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    servers = {name: s for name, s in services.items() if name.startswith("statebox-")}
    assert len(servers) == 2
    stores = set()
    for name, service in servers.items():
        args = parse(service["command"])
        assert args.command == "serve"
        stores.add(args.store)
        assert args.store.startswith("postgresql://") and "@postgres:" in args.store
        assert ":" not in args.store.split("//", 1)[1].split("@", 1)[0], "a password in a URL"
        assert args.tokens == "/run/secrets/statebox-tokens"
        assert name in args.allowed_hosts  # other containers call it by its service name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert any(f":{args.port}/healthz" in part for part in service["healthcheck"]["test"])
    assert len(stores) == 1  # one database, shared
    assert servers["statebox-b"]["depends_on"]["statebox-a"]["condition"] == "service_healthy"
    assert compose()["secrets"]["statebox-tokens"]["file"].endswith("./deploy/tokens.example.yaml}")


def test_the_example_token_is_the_one_the_comments_name(tmp_path: Path) -> None:
    import httpx

    with running_server(f"sqlite:///{tmp_path / 'state.db'}", tokens=EXAMPLE_TOKENS) as server:
        assert httpx.get(f"{server.url}/v1/keyspaces", timeout=30).status_code == 401
        answer = httpx.get(
            f"{server.url}/v1/keyspaces",
            headers={"Authorization": f"Bearer {EXAMPLE_SECRET}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    assert EXAMPLE_SECRET in COMPOSE.read_text()


# --- the systemd unit ------------------------------------------------------------------

#: The specifiers the unit uses, as systemd expands them for statebox.service.
SPECIFIERS = {"%d": "/run/credentials/statebox.service", "%S": "/var/lib", "%%": "%"}


def unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_the_unit_runs_statebox_serve_with_options_statebox_has() -> None:
    service = unit()["Service"]
    (exec_start,) = service["ExecStart"]
    for specifier, value in SPECIFIERS.items():
        exec_start = exec_start.replace(specifier, value)
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/statebox")
    args = parse(argv[1:])
    assert args.command == "serve"
    assert args.store == "sqlite:////var/lib/statebox/state.db"  # in its StateDirectory
    assert args.tokens == "/run/credentials/statebox.service/tokens.yaml"
    assert service["LoadCredential"] == ["tokens.yaml:/etc/statebox/tokens.yaml"]
    assert service["StateDirectory"] == ["statebox"]
    assert service["Environment"] == ["STATEBOX_HOME=/var/lib/statebox"]


def test_the_unit_is_hardened() -> None:
    service = unit()["Service"]
    assert service["DynamicUser"] == ["yes"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on the unit, its ExecStart pointed at this statebox
    (verify checks that the program exists). It exits 0 on an unknown key, only
    printing it: any line naming the unit fails too."""
    statebox = Path(sys.executable).with_name("statebox")
    assert statebox.exists()
    copy = tmp_path / "statebox.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/statebox", str(statebox)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = [ln for ln in (result.stdout + result.stderr).splitlines() if "statebox" in ln]
    assert result.returncode == 0 and not said, result.stdout + result.stderr


# --- the image, where a container engine runs ------------------------------------------


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not docker_engine(), reason="no container engine (docker info fails)")
def test_the_image_builds_runs_and_becomes_healthy(tmp_path: Path) -> None:
    tag = f"statebox-test:{uuid.uuid4().hex[:12]}"
    name = f"statebox-test-{uuid.uuid4().hex[:12]}"
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(EXAMPLE_TOKENS.read_text())
    tokens.chmod(0o644)  # the image's user reads it

    def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    built = docker("build", "--tag", tag, str(ROOT), timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    try:
        started = docker(
            "run", "--detach", "--name", name,
            "--volume", f"{tokens}:/etc/statebox/tokens.yaml:ro", tag,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        user = docker("exec", name, "id", "-u").stdout.strip()
        assert user not in ("", "0"), user
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline:
            status = docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout
            if status.strip() in ("healthy", "unhealthy"):
                break
            time.sleep(2)
        assert status.strip() == "healthy", docker("logs", name).stdout
    finally:
        docker("rm", "--force", "--volumes", name)
        docker("rmi", "--force", tag)


def test_no_deploy_file_names_a_package_index_install_of_statebox() -> None:
    wrong = re.compile(r"pip install\s+['\"]?statebox\b(?!.*--no-index)")
    for path in (DOCKERFILE, COMPOSE, UNIT):
        for line in path.read_text().splitlines():
            assert not wrong.search(line), f"{path.name}: {line}"
