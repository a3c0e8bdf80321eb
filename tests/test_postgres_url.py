"""The ``postgresql://`` URL and the ``postgres`` extra: no server needed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from statebox import ConfigurationError, open_store
from statebox.backends._pg_url import parse_pg_url

ROOT = Path(__file__).resolve().parent.parent


def query_of(conninfo: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(conninfo).query))


def test_statebox_options_are_taken_out_and_libpq_ones_kept() -> None:
    opts = parse_pg_url(
        "postgres://app:s3cret@db.example:6543/state?schema=team_a&pool_min=2&pool_max=5"
        "&pool_timeout=2.5&sslmode=require&application_name=worker"
    )
    assert (opts.schema, opts.pool_min, opts.pool_max, opts.pool_timeout) == ("team_a", 2, 5, 2.5)
    parts = urlsplit(opts.conninfo)
    assert parts.scheme == "postgresql"
    assert parts.netloc == "app:s3cret@db.example:6543"
    query = query_of(opts.conninfo)
    assert query["sslmode"] == "require"
    assert query["application_name"] == "worker"  # the URL wins over statebox's default
    assert not {"schema", "pool_min", "pool_max", "pool_timeout"} & query.keys()
    assert "s3cret" not in opts.display
    assert "app:***@db.example:6543" in opts.display


def test_libpq_options_keep_their_spaces() -> None:
    # libpq percent-decodes its URI query but reads "+" literally
    opts = parse_pg_url("postgresql://h/db?options=-c%20work_mem%3D8MB&schema=s")
    assert "options=-c%20work_mem%3D8MB" in opts.conninfo
    assert query_of(opts.conninfo)["options"] == "-c work_mem=8MB"
    # and a "+" stays a plus (say, in a password passed as a parameter)
    opts = parse_pg_url("postgresql://h/db?password=a+b%2Bc")
    assert "password=a%2Bb%2Bc" in opts.conninfo


def test_defaults() -> None:
    opts = parse_pg_url("postgresql://postgres@127.0.0.1/test")
    assert (opts.schema, opts.pool_min, opts.pool_max, opts.pool_timeout) == ("public", 1, 10, 30)
    query = query_of(opts.conninfo)
    assert query["connect_timeout"] == "10"
    assert query["application_name"] == "statebox"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("schema=1abc", 'invalid schema "1abc"'),
        ("schema=a-b", 'invalid schema "a-b"'),
        ("schema=" + "s" * 64, "at most 63 characters"),
        ("pool_max=0", "?pool_max=0 "),
        ("pool_min=x", "?pool_min=x "),
        ("pool_min=5&pool_max=2", "?pool_max=2 is below ?pool_min=5"),
        ("pool_timeout=0", "?pool_timeout=0 "),
        ("pool_timeout=soon", "?pool_timeout=soon "),
    ],
)
def test_bad_options_name_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_pg_url(f"postgresql://u:pw@h/db?{query}")


def test_bad_options_are_refused_before_connecting() -> None:
    # Nothing listens there; a ConfigurationError (not "unavailable") proves no connection.
    with pytest.raises(ConfigurationError, match="invalid schema"):
        open_store("postgresql://u@127.0.0.1:1/db?schema=no%20spaces")


HIDE_DRIVER = """
import sys
sys.modules[{module!r}] = None  # as if the postgres extra were not installed
import statebox
try:
    statebox.open_store("postgresql://u@127.0.0.1:1/db")
except statebox.ConfigurationError as exc:
    print(exc)
    raise SystemExit(0)
raise SystemExit("opened without the driver?")
"""


@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool"])
def test_missing_driver_fails_with_the_install_command(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", HIDE_DRIVER.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "psycopg[binary,pool]>=3.2"' in result.stdout
    assert 'pip install ".[postgres]"' in result.stdout
    assert module in result.stdout


def test_the_documented_options_and_defaults_are_the_real_ones() -> None:
    doc = (ROOT / "docs" / "postgres.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", doc, re.M))
    opts = parse_pg_url("postgresql://h/db")
    actual = {
        "schema": opts.schema,
        "pool_min": str(opts.pool_min),
        "pool_max": str(opts.pool_max),
        "pool_timeout": f"{opts.pool_timeout:g}",
        "pipeline": "auto",
        "statement_timeout": f"{opts.statement_timeout:g}",
    }
    assert documented == actual


@pytest.mark.parametrize(
    ("url", "pipeline"),
    [
        ("postgresql://u@db.internal/db", True),  # a remote server: round trips cost
        ("postgresql://u@10.0.0.5:5432/db", True),
        ("postgresql://u@127.0.0.1:5432/db", False),  # this machine: they hardly do
        ("postgresql://u@localhost/db", False),
        ("postgresql://u@[::1]:5432/db", False),
        ("postgresql:///db", False),  # the default unix socket
        ("postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql", False),
        ("postgresql://u@127.0.0.1/db?host=db.internal", True),  # host= wins, as in libpq
        ("postgresql://u@localhost,db.internal/db", True),
        ("postgresql://u@db.internal/db?pipeline=off", False),
        ("postgresql://u@localhost/db?pipeline=on", True),
    ],
)
def test_pipeline_mode_is_on_for_remote_servers_unless_told(url: str, pipeline: bool) -> None:
    opts = parse_pg_url(url)
    assert opts.pipeline is pipeline
    assert "pipeline" not in query_of(opts.conninfo)


def test_a_bad_pipeline_value_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\?pipeline=yes .*on, off or auto"):
        parse_pg_url("postgresql://h/db?pipeline=yes")
