"""The PostgreSQL test harness itself (``tests/pg.py``): the throw-away cluster works and
cleans up, and without any server the PostgreSQL tests skip locally but fail under CI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from statebox import RunContext, open_store

from .pg import BINDIR_ENV, DSN_ENV, ThrowawayCluster, add_query, find_pg_bindir

ROOT = Path(__file__).resolve().parent.parent


def test_a_throwaway_cluster_serves_a_store_and_is_removed_at_the_end() -> None:
    bindir = find_pg_bindir()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no initdb/pg_ctl on this CI machine")
        pytest.skip("no initdb/pg_ctl on this machine (install the PostgreSQL server)")
    cluster = ThrowawayCluster(bindir)
    with cluster as dsn:
        assert dsn.startswith("postgresql://postgres@127.0.0.1:")
        url = add_query(dsn, schema="harness")
        with open_store(url, context=RunContext(dag="harness")) as store:
            store.set("k", {"v": 1})
            assert store.get("k").value == {"v": 1}
    assert not cluster.root.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", cluster.port), 1):
        pass  # the server is gone


def _pytest_without_a_server(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (DSN_ENV, "CI")}
    env[BINDIR_ENV] = "/nonexistent"  # and no binaries either
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # seconds saved; none of them is needed
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_timeout",
            "tests/test_postgres.py::test_both_url_schemes_open_the_same_store",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_a_server_postgres_tests_skip_saying_how_to_enable_them() -> None:
    result = _pytest_without_a_server(ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert f"set {DSN_ENV}=" in result.stdout


def test_without_a_server_postgres_tests_fail_under_ci() -> None:
    result = _pytest_without_a_server(ci=True)
    assert result.returncode != 0
    assert "PostgreSQL tests cannot run under CI" in result.stdout
    assert "skipped" not in result.stdout
