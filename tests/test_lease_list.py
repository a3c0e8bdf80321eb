"""Listing the leases held now (issue #18): ``GET /v1/leases``, the remote store's
``list_leases`` over it, and ``statebox lease list``.

The route lists only the leases the token may read (a lease is authorized as scope
``lease`` with its name as namespace), reading on past the ones it may not, so a page is
never short while more readable leases follow; pages are bounded (100 by default, 1000
at most). Each listed lease is what ``GET /v1/leases/{name}`` answers for it. The
backend contract's ``list_leases`` itself is checked on every backend by
tests/test_conformance_beyond.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from statebox import InvalidValueError, StateStore, open_store
from statebox.backends.http import HttpBackend

from .pg import admin_connection, fresh_schema_url
from .server_util import ServerProcess, running_server
from .test_cli import Cli, clean_env, sqlite_cli

__all__ = ["clean_env", "sqlite_cli"]  # the fixtures, used here by name

ADMIN = "admin-secret-0123456789"  # write on everything
FEEDS = "feeds-secret-0123456789"  # write leases feed-*, read leases shared-*
NOBODY = "nobody-secret-0123456789"  # a keyspace, no lease grant at all

#: Acquired by the admin, in this order (listed by name).
NAMES = ["zz", "feed-2", "other-1", "shared-x", "feed-1"]


def _tokens(directory: Path) -> Path:
    tokens = directory / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "admin", "secret": ADMIN, "grants": [{"access": "write"}]},
                    {
                        "name": "feeds",
                        "secret": FEEDS,
                        "grants": [
                            {"access": "write", "scope": "lease", "namespace": "feed-*"},
                            {"access": "read", "scope": "lease", "namespace": "shared-*"},
                        ],
                    },
                    {
                        "name": "nobody",
                        "secret": NOBODY,
                        "grants": [{"access": "write", "scope": "custom", "namespace": "x"}],
                    },
                ]
            }
        )
    )
    return tokens


def client(server: ServerProcess, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {secret}"}, timeout=30
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("lease-list")
    with running_server(f"sqlite:///{directory / 'state.db'}", tokens=_tokens(directory)) as srv:
        with client(srv, ADMIN) as admin:
            for name in NAMES:
                taken = admin.post(
                    "/v1/leases/acquire", json={"name": name, "ttl": 3600, "holder": "w-1"}
                )
                assert taken.status_code == 200, taken.text
            done = admin.post(
                "/v1/leases/acquire", json={"name": "feed-done", "ttl": 3600, "holder": "w-2"}
            ).json()
            released = admin.post(
                "/v1/leases/release",
                json={"name": "feed-done", "holder": "w-2", "token": done["token"]},
            )
            assert released.json()["released"] is True
        yield srv


def remote(url: str, secret: str) -> StateStore:
    """A remote store over ``url`` with the token ``secret``."""
    return StateStore(HttpBackend(url, token=secret))


def names(page: dict[str, Any]) -> list[str]:
    return [lease["name"] for lease in page["leases"]]


def test_the_route_lists_the_live_leases_by_name_as_get_answers_each(
    server: ServerProcess,
) -> None:
    with client(server, ADMIN) as admin:
        answer = admin.get("/v1/leases")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        page = answer.json()
        assert list(page) == ["operation", "leases", "next"]
        assert page["operation"] == "leases"
        # "feed-done" was released: not held, not listed.
        assert names(page) == ["feed-1", "feed-2", "other-1", "shared-x", "zz"]
        assert page["next"] is None
        for lease in page["leases"]:
            assert lease == admin.get(f"/v1/leases/{lease['name']}").json()
            assert set(lease) == {
                "operation",
                "action",
                "name",
                "holder",
                "token",
                "expiresAt",
            }
            assert (lease["action"], lease["holder"], lease["token"]) == ("get", "w-1", 1)


def test_a_token_sees_only_the_leases_it_may_read(server: ServerProcess) -> None:
    with client(server, FEEDS) as feeds:
        assert names(feeds.get("/v1/leases").json()) == ["feed-1", "feed-2", "shared-x"]
        # Paged: each page full while readable ones follow, next the last one listed.
        first = feeds.get("/v1/leases", params={"limit": 2}).json()
        assert (names(first), first["next"]) == (["feed-1", "feed-2"], "feed-2")
        second = feeds.get("/v1/leases", params={"limit": 2, "after": first["next"]}).json()
        assert (names(second), second["next"]) == (["shared-x"], None)
        one = feeds.get("/v1/leases", params={"limit": 1, "after": "feed-2"}).json()
        assert (names(one), one["next"]) == (["shared-x"], None)  # read past "other-1"
    with client(server, NOBODY) as nobody:
        answer = nobody.get("/v1/leases")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"operation": "leases", "leases": [], "next": None}
        # ... while the lease itself stays refused to it.
        assert nobody.get("/v1/leases/feed-1").status_code == 403


def test_the_route_needs_a_token(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/v1/leases", timeout=30).status_code == 401
    bad = httpx.get(
        f"{server.url}/v1/leases", headers={"authorization": "Bearer wrong"}, timeout=30
    )
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"limit": 0}, 400, "?limit="),
        ({"limit": 1001}, 400, "1000 or less"),
        ({"limit": "x"}, 400, "?limit="),
        ({"limit": -1}, 400, "?limit="),
        ({"after": ""}, 422, "lease name"),  # as GET /v1/leases/{name} refuses one
    ],
)
def test_a_page_is_bounded_and_its_query_checked(
    server: ServerProcess, query: dict[str, Any], status: int, words: str
) -> None:
    with client(server, ADMIN) as admin:
        answer = admin.get("/v1/leases", params=query)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]["message"]
        assert admin.get("/v1/leases", params={"limit": 1000}).status_code == 200


def test_the_openapi_document_describes_the_route(server: ServerProcess) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    operation = document["paths"]["/v1/leases"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["limit"]["schema"]["maximum"] == 1000
    assert set(parameters) == {"limit", "after"}


def test_the_remote_store_lists_what_its_token_may_read(server: ServerProcess) -> None:
    with remote(server.url, FEEDS) as store:
        assert [lease.name for lease in store.list_leases()] == ["feed-1", "feed-2", "shared-x"]
        assert [lease.name for lease in store.list_leases(after="feed-1", limit=1)] == ["feed-2"]
        lease = store.list_leases(limit=1)[0]
        assert lease == store.get_lease("feed-1")


def test_the_server_reads_past_many_unreadable_leases_and_pages_by_100(
    tmp_path: Path,
) -> None:
    """More unreadable leases than one round of reads (1000) before the readable ones;
    and more readable ones than the default page."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        for i in range(1100):
            store.acquire_lease(f"a-{i:04}", 3600, holder="h")
        for i in range(101):
            store.acquire_lease(f"feed-{i:03}", 3600, holder="h")
    with running_server(url, tokens=_tokens(tmp_path)) as srv, client(srv, FEEDS) as feeds:
        page = feeds.get("/v1/leases").json()
        assert names(page) == [f"feed-{i:03}" for i in range(100)]
        assert page["next"] == "feed-099"
        rest = feeds.get("/v1/leases", params={"after": page["next"]}).json()
        assert (names(rest), rest["next"]) == (["feed-100"], None)
        # The remote store pages through all of them.
        with remote(srv.url, FEEDS) as over_http:
            assert len(over_http.list_leases()) == 101
        with remote(srv.url, ADMIN) as over_http:
            assert len(over_http.list_leases()) == 1201
            assert len(over_http.list_leases(limit=1150)) == 1150


def test_several_coordinators_on_one_store_list_each_lease_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        for i in range(20):
            store.acquire_lease(f"job-{i:02}", 3600, holder="h")
    with (
        running_server(url) as one,
        running_server(url) as two,
        open_store(f"{one.url},{two.url}") as remote,
    ):
        listed = [lease.name for lease in remote.list_leases()]
        assert listed == [f"job-{i:02}" for i in range(20)]
        assert [lease.name for lease in remote.list_leases(limit=3)] == [
            "job-00",
            "job-01",
            "job-02",
        ]


def test_the_engine_refuses_an_invalid_after(tmp_path: Path) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 'state.db'}") as store,
        pytest.raises(InvalidValueError, match="lease name"),
    ):
        store.list_leases(after="")


# --- the CLI ------------------------------------------------------------------------------


def test_cli_lease_list_pages_with_limit_and_after(sqlite_cli: Cli) -> None:
    assert sqlite_cli("lease", "list").data == {
        "operation": "leases",
        "leases": [],
        "next": None,
    }
    for name in ["c", "a", "b"]:
        assert sqlite_cli("lease", "acquire", name, "--ttl", "300", "--holder", "w-1").code == 0
    taken = sqlite_cli("lease", "acquire", "gone", "--ttl", "300", "--holder", "w-2").data
    gone = ("gone", "--token", str(taken["token"]), "--holder", "w-2")
    assert sqlite_cli("lease", "release", *gone).data["released"] is True
    everything = sqlite_cli("lease", "list").data
    got = json.loads(sqlite_cli("lease", "get", "a").line)
    assert everything["leases"][0] == got
    assert [lease["name"] for lease in everything["leases"]] == ["a", "b", "c"]  # type: ignore[index]
    assert everything["next"] is None
    first = sqlite_cli("lease", "list", "--limit", "2").data
    assert [lease["name"] for lease in first["leases"]] == ["a", "b"]  # type: ignore[index]
    assert first["next"] == "b"
    rest = sqlite_cli("lease", "list", "--limit", "2", "--after", "b").data
    assert [lease["name"] for lease in rest["leases"]] == ["c"]  # type: ignore[index]
    assert rest["next"] is None
    table = sqlite_cli("lease", "list", "--format", "table").text
    assert "HOLDER" in table and "w-1" in table
    sqlite_cli("lease", "list", "--limit", "-1").failed(2, "--limit")


# --- PostgreSQL: byte order whatever the collation ------------------------------------------


def test_postgres_lists_leases_by_byte_even_under_a_linguistic_collation(
    pg_server: str,
) -> None:
    """A database whose collation sorts text linguistically ("a" < "Z", "-" ignored)
    still lists lease names by their bytes, as every other backend does."""
    with fresh_schema_url(pg_server) as url, open_store(url) as store:
        schema = dict(parse_qsl(urlsplit(url).query))["schema"]
        with admin_connection(url) as conn:
            conn.execute(
                f'ALTER TABLE "{schema}".statebox_leases '
                'ALTER COLUMN name TYPE TEXT COLLATE "en-x-icu"'
            )
        for name in ["job_1", "a", "job10", "Z", "job-2"]:
            store.acquire_lease(name, 60, holder="h")
        expected = ["Z", "a", "job-2", "job10", "job_1"]
        assert [lease.name for lease in store.list_leases()] == expected
        assert [lease.name for lease in store.list_leases(after="a", limit=2)] == expected[2:4]
