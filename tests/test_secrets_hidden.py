"""Secrets stay out of clients and logs (issue #12 §4).

A store URL's password, in any of the forms libpq reads, is never printed; and an error
a client sees over HTTP never carries the store URL, its host or a file path: the
client gets a request id, the server's log has the details (passwords masked).
Real servers in subprocesses over a real PostgreSQL schema and a real SQLite file.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from statebox.backends._pg_url import parse_pg_url
from statebox.server.main import redact_url

from .pg import add_query, admin_connection, fresh_schema_url
from .server_util import running_server

PASSWORD = "hunter2-Secret"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{PASSWORD}@db.internal:5432/state",
        f"postgresql://app@db.internal/state?password={PASSWORD}&schema=s",
        f"postgresql://app@db.internal/state?schema=s&PassWord={PASSWORD}",
        f"postgresql://app@db.internal/state?pass%77ord={PASSWORD}",
        f"postgresql://app@db.internal/state?sslpassword={PASSWORD}",
        f"postgres://app:{PASSWORD}@db.internal/state?password={PASSWORD}",
    ],
)
def test_every_password_form_is_masked(url: str) -> None:
    for shown in (redact_url(url), parse_pg_url(url).display):
        assert PASSWORD not in shown and "***" in shown, shown
        assert "db.internal" in shown  # only the secret goes


def test_conninfo_and_messages_are_masked() -> None:
    from statebox.core.redaction import redact_text

    line = f"connect failed: host=db.internal password={PASSWORD} dbname=state"
    assert PASSWORD not in redact_text(line) and "dbname=state" in redact_text(line)
    quoted = f"host=db password='{PASSWORD} with space' port=5432"
    assert redact_text(quoted) == "host=db password=*** port=5432"
    for plain in ("sqlite:///var/lib/state.db?timeout=3", "memory://", "file:///srv/state"):
        assert redact_url(plain) == plain  # nothing to mask: the URL is left as written


@pytest.fixture
def pg_url_with_password(pg_server: str) -> Iterator[str]:
    # The test server trusts loopback, so it ignores the password: only its display matters.
    with fresh_schema_url(pg_server) as url:
        yield add_query(url, password=PASSWORD)


def _error(text: str) -> dict[str, object]:
    import json

    error = json.loads(text)["error"]
    assert isinstance(error, dict)
    return error


def test_postgres_password_never_reaches_stdout_clients_or_the_log(
    pg_url_with_password: str,
) -> None:
    url = pg_url_with_password
    schema = re.search(r"schema=(\w+)", url)
    assert schema is not None
    with running_server(url) as server:
        http = server.client
        assert http.put("/v1/kv/custom/n/k", json=1).status_code == 200
        # The storage fails under the server (the schema is dropped): a 503 for the client.
        with admin_connection(url) as admin:
            admin.execute(f'DROP SCHEMA "{schema.group(1)}" CASCADE')
        answer = http.get("/v1/kv/custom/n/k")
        assert answer.status_code == 503, answer.text
        error = _error(answer.text)
        assert error["kind"] == "backend_unavailable"
        request_id = error["requestId"]
        assert isinstance(request_id, str) and re.fullmatch(r"[0-9a-f]{16}", request_id)
        assert answer.headers["x-request-id"] == request_id
        assert request_id in str(error["message"])
        for leak in (PASSWORD, "postgresql", "127.0.0.1", urlsplit(url).hostname, schema.group(1)):
            assert leak is not None and leak not in answer.text, leak
        # a write's failure (the write path, another message) is answered alike
        write = http.put("/v1/kv/custom/n/k", json=2)
        assert write.status_code == 503 and PASSWORD not in write.text
        assert "postgresql" not in write.text and "requestId" in write.text
        server.stop()
        log = server.log_text()
    assert PASSWORD not in log
    # the log line has the id and the details, password masked
    line = next(line for line in log.splitlines() if request_id in line)
    assert "postgresql://" in line and "password=***" in line


def test_startup_line_masks_a_query_password(pg_url_with_password: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "statebox.server", "--store", pg_url_with_password, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "statebox server listening on" in first
    assert PASSWORD not in first and "password=***" in first


def test_sqlite_path_never_reaches_a_client(tmp_path: Path) -> None:
    directory = tmp_path / "very-private-directory"
    directory.mkdir()
    db = directory / "state.db"
    with running_server(f"sqlite:///{db}?timeout=0.2") as server:
        http = server.client
        assert http.put("/v1/kv/custom/n/k", json=1).status_code == 200
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")  # another process's long write
            answer = http.put("/v1/kv/custom/n/k", json=2)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert answer.status_code == 503, answer.text
        error = _error(answer.text)
        assert "very-private-directory" not in answer.text and "state.db" not in answer.text
        assert "retry" in str(error["message"])
        request_id = str(error["requestId"])
        server.stop()
        log = server.log_text()
    line = next(line for line in log.splitlines() if request_id in line)
    assert str(db) in line and "locked" in line
    # and nothing was lost: the store still has version 1
    with running_server(f"sqlite:///{db}") as again:
        assert again.client.get("/v1/kv/custom/n/k").json()["version"] == 1


def test_a_mistyped_store_url_is_reported_without_its_password() -> None:
    import statebox

    for url in (
        f"postgresq://app:{PASSWORD}@db.internal/state",
        f"postgresq://app@db.internal/state?password={PASSWORD}",
    ):
        with pytest.raises(statebox.ConfigurationError) as caught:
            statebox.open_store(url)
        assert PASSWORD not in caught.value.message and "db.internal" in caught.value.message
