"""The CLI's keyspace commands (issue #13, item 6): ``statebox keyspaces`` (and its
``delete``), ``statebox purge``, ``statebox lease get``, and ``expiresAt`` in what get,
list and history print."""

from __future__ import annotations

import re

from statebox import ManualClock, RunContext, open_store

from .test_cli import InProcess, run  # noqa: F401  (the in-process CLI fixture)

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


def _names(data: dict[str, object]) -> list[str]:
    rows = data["keyspaces"]
    assert isinstance(rows, list)
    return [f"{k['scope']}/{k['namespace']}" for k in rows]


def test_keyspaces_lists_pages_and_filters_by_scope(run: InProcess) -> None:  # noqa: F811
    assert run("keyspaces").line == '{"operation":"keyspaces","keyspaces":[]}'
    run("set", "a", "1")
    run("set", "b", "1")
    run("set", "a", "1", "--scope", "global")
    run("set", "a", "1", "--scope", "run", "--run-id", "r-1")
    run("set", "a", "1", "--scope", "run", "--run-id", "r-2")
    everything = run("keyspaces").data
    assert _names(everything) == ["dag/feed-sync", "global/_", "run/r-1", "run/r-2"]
    rows = everything["keyspaces"]
    assert isinstance(rows, list) and rows[0]["entries"] == 2
    assert re.fullmatch(STAMP, rows[0]["updatedAt"])
    first = run("keyspaces", "--limit", "2").data
    assert _names(first) == ["dag/feed-sync", "global/_"]
    assert first["next"] == "global/_"
    rest = run("keyspaces", "--limit", "2", "--after", "global/_").data
    assert _names(rest) == ["run/r-1", "run/r-2"] and "next" not in rest
    assert _names(run("keyspaces", "--scope", "run").data) == ["run/r-1", "run/r-2"]
    table = run("keyspaces", "--format", "table").text
    assert "SCOPE" in table and "ENTRIES" in table and "run" in table


def test_keyspaces_refuses_bad_input_with_exit_2(run: InProcess) -> None:  # noqa: F811
    for args in (["--after", "run"], ["--scope", "lease"], ["--limit", "-1"]):
        result = run("keyspaces", *args)
        assert result.code == 2, (args, result.err)
        assert result.err.startswith("Error: ")


def test_keyspaces_delete_deletes_one_whole_keyspace(run: InProcess) -> None:  # noqa: F811
    run("set", "a", "1", "--scope", "run", "--run-id", "r-1")
    run("set", "b", "1", "--scope", "run", "--run-id", "r-1")
    run("set", "a", "1", "--scope", "run", "--run-id", "r-2")
    deleted = run("keyspaces", "delete", "--scope", "run", "--namespace", "r-1")
    assert deleted.line == (
        '{"operation":"deleteKeyspace","scope":"run","namespace":"r-1","deleted":2}'
    )
    assert _names(run("keyspaces").data) == ["run/r-2"]
    # the namespace defaults from the run context, as for every command
    assert run("keyspaces", "delete", "--scope", "run", "--run-id", "r-2").data["deleted"] == 1
    assert run("keyspaces").data["keyspaces"] == []


def test_purge_removes_expired_entries(run: InProcess) -> None:  # noqa: F811
    store_url = run.url  # type: ignore[attr-defined]
    clock = ManualClock(1_000_000_000 * 10**9)  # 2001: long before the CLI's real clock
    with open_store(store_url, context=RunContext(dag="feed-sync"), clock=clock) as store:
        for i in range(5):
            store.set(f"k{i}", i, ttl=1)
        store.set("kept", 1)
    assert run("purge", "--limit", "2").line == '{"operation":"purge","purged":2}'
    assert run("purge").line == '{"operation":"purge","purged":3}'
    assert run("purge").line == '{"operation":"purge","purged":0}'
    assert [e["key"] for e in run("list").data["entries"]] == ["kept"]  # type: ignore[attr-defined]
    assert run("purge", "--limit", "-1").code == 2


def test_lease_get(run: InProcess) -> None:  # noqa: F811
    missing = run("lease", "get", "nightly")
    assert missing.code == 3
    assert missing.err == 'Error: lease "nightly" was never acquired\n'
    acquired = run("lease", "acquire", "nightly", "--ttl", "60", "--holder", "me").data
    got = run("lease", "get", "nightly").data
    assert got == {**acquired, "action": "get"}


def test_expires_at_is_printed_only_for_entries_with_a_ttl(run: InProcess) -> None:  # noqa: F811
    run("set", "plain", "1")
    run("set", "timed", "1", "--ttl", "60")
    plain, timed = run("get", "plain").data, run("get", "timed").data
    assert "expiresAt" not in plain
    assert re.fullmatch(STAMP, str(timed["expiresAt"]))
    listed = {e["key"]: e for e in run("list").data["entries"]}  # type: ignore[attr-defined]
    assert "expiresAt" not in listed["plain"]
    assert listed["timed"]["expiresAt"] == timed["expiresAt"]
    versions = run("history", "timed").data["versions"]
    assert versions[0]["expiresAt"] == timed["expiresAt"]  # type: ignore[index]
    assert "expiresAt" not in run("history", "plain").data["versions"][0]  # type: ignore[index]
