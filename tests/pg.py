"""PostgreSQL for the tests: one server per session, one fresh schema per test.

Where the server comes from, in order:

1. ``STATEBOX_TEST_PG_DSN`` (``postgresql://user@host:port/db``) — CI sets it; a DSN
   that does not connect fails the tests, it never skips them.
2. A throw-away cluster made with the PostgreSQL binaries on this machine (``initdb``,
   ``pg_ctl`` from ``$STATEBOX_TEST_PG_BINDIR`` if set, else ``/usr/lib/postgresql/*/bin``
   or ``$PATH``): a temp directory, a free
   loopback port, the unix socket in the temp directory; stopped and deleted at the end
   of the session. As root it runs them as the ``postgres`` user (initdb refuses root).
3. Neither: the PostgreSQL tests are skipped, saying how to enable them — except under
   ``CI=true``, where they fail.

Each test gets ``?schema=t_<random>`` (statebox creates it on first use) and the schema is
dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from .server_util import free_port

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DSN_ENV",
    "ThrowawayCluster",
    "add_query",
    "admin_connection",
    "find_pg_bindir",
    "fresh_schema_url",
    "pg_server",
    "postgres_url",
]

DSN_ENV = "STATEBOX_TEST_PG_DSN"
BINDIR_ENV = "STATEBOX_TEST_PG_BINDIR"
_STATEBOX_OPTIONS = {
    "schema",
    "pool_min",
    "pool_max",
    "pool_timeout",
    "pipeline",
    "statement_timeout",
}
HOW_TO_ENABLE = (
    f"set {DSN_ENV}=postgresql://user@host:port/database, or install the PostgreSQL server "
    "binaries (initdb, pg_ctl) so the tests can start a throw-away cluster"
)


def find_pg_bindir() -> Path | None:
    """The newest directory holding both ``initdb`` and ``pg_ctl``, if any."""
    if os.environ.get(BINDIR_ENV):
        candidates = [Path(os.environ[BINDIR_ENV])]
    else:
        candidates = _installed_bindirs()
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _installed_bindirs() -> list[Path]:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    return candidates


class ThrowawayCluster:
    """A private PostgreSQL server in a temp directory, for one test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="statebox-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb and the server refuse to run as root: run them as "postgres" then.
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                raise RuntimeError(
                    "running as root, and there is no 'postgres' user to run initdb as"
                ) from None
            runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            if runuser is None:
                shutil.rmtree(self.root)
                raise RuntimeError("running as root, and there is no runuser to run initdb with")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = [runuser, "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        try:
            result = subprocess.run(
                [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{args[0]}: {exc}") from exc
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def start(self) -> str:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c max_connections=200 "
            # Throw-away data: durability only costs time here.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
        )
        return self.dsn

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}; {HOW_TO_ENABLE}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}; to run them, {HOW_TO_ENABLE}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The DSN of a PostgreSQL server for this session (a database, no schema)."""
    import psycopg

    dsn = os.environ.get(DSN_ENV, "").strip()
    if dsn:
        try:
            psycopg.connect(dsn, connect_timeout=10).close()
        except psycopg.Error as exc:
            pytest.fail(f"{DSN_ENV}={dsn} does not connect: {exc}")
        yield dsn
        return
    bindir = find_pg_bindir()
    if bindir is None:
        _unavailable(f"{DSN_ENV} is not set and no initdb/pg_ctl was found")
        return
    try:
        cluster = ThrowawayCluster(bindir)
    except RuntimeError as exc:
        _unavailable(str(exc))
        return
    try:  # whatever happens from here on, the cluster and its directory go away
        try:
            cluster.start()
        except RuntimeError as exc:
            pytest.fail(f"could not start a throw-away PostgreSQL from {bindir}: {exc}")
        yield cluster.dsn
    finally:
        cluster.stop()


def add_query(url: str, **params: str) -> str:
    """``url`` with query parameters added (or replaced)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def admin_connection(server: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A plain autocommit psycopg connection to the server (or to a store URL's database)."""
    import psycopg

    parts = urlsplit(server)  # libpq does not know statebox's own options
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _STATEBOX_OPTIONS]
    server = urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))

    with psycopg.connect(server, autocommit=True) as conn:
        yield conn


@contextmanager
def fresh_schema_url(server: str, **params: str) -> Iterator[str]:
    """A store URL on its own new schema, dropped (with everything in it) afterwards."""
    import psycopg

    schema = "t_" + secrets.token_hex(6)
    try:
        yield add_query(server, schema=schema, **params)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def postgres_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The ``tests.backends.BACKENDS`` entry: a fresh schema on the session's server."""
    server: str = request.getfixturevalue("pg_server")
    with fresh_schema_url(server) as url:
        yield url
