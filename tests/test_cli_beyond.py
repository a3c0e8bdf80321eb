"""The SPEC §5 commands of the CLI, run as real processes on a real SQLite file:
update, history / get --version / rollback, txn, lease and --fencing, set --ttl, watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import RunContext, StateStore, open_store

CONTEXT_PREFIXES = ("STATEBOX_", "DAG_", "AIRFLOW_CTX_", "GITHUB_")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CONTEXT_PREFIXES)}
    clean["STATEBOX_STORE"] = f"sqlite:///{tmp_path / 'state.db'}"
    clean["STATEBOX_DAG"] = "feed-sync"
    return clean


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[StateStore]:
    with open_store(env["STATEBOX_STORE"], context=RunContext(dag="feed-sync")) as s:
        yield s


def sb(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statebox.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> dict[str, Any]:
    out = sb(env, *args, stdin=stdin)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def fails(env: dict[str, str], code: int, *args: str, stdin: str | None = None) -> str:
    out = sb(env, *args, stdin=stdin)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert out.stderr.startswith("Error: ")
    return out.stderr


# --- update ---------------------------------------------------------------------------


def test_update_with_each_transform(env: dict[str, str], store: StateStore) -> None:
    first = ok(env, "update", "c", "--jq", ".n += 1", "--default", '{"n": 0}')
    assert list(first) == [
        "operation",
        "scope",
        "namespace",
        "key",
        "version",
        "hash",
        "created",
        "value",
    ]
    assert (first["operation"], first["version"], first["created"], first["value"]) == (
        "update",
        1,
        True,
        {"n": 1},
    )
    merged = sb(env, "update", "c", "--merge", '{"price": 1.50}')
    assert merged.stdout.rstrip().endswith('"value":{"n":1,"price":1.50}}')
    ok(env, "update", "c", "--patch", "-", stdin='[{"op": "remove", "path": "/price"}]')
    assert store.get("c").stored.text == '{"n":1}'  # type: ignore[union-attr]
    assert store.get("c").version == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jq", ".[]"], "yielded more than one value"),
        (["--jq", "empty"], "yielded no value"),
        (["--jq", ".n +"], "invalid jq expression"),
        (["--patch", '[{"op": "test", "path": "/n", "value": 9}]'], "JSON patch operation 0"),
        (["--merge", "{"], "invalid JSON"),
    ],
)
def test_a_failing_update_writes_nothing_and_exits_2(
    env: dict[str, str], store: StateStore, args: list[str], message: str
) -> None:
    store.set("c", {"n": 1, "m": 2})
    assert message in fails(env, 2, "update", "c", *args)
    assert store.get("c").version == 1


def test_update_needs_one_transform(env: dict[str, str]) -> None:
    assert "one of the arguments" in fails(env, 2, "update", "c")
    assert "not allowed with" in fails(env, 2, "update", "c", "--jq", ".", "--merge", "{}")


def test_update_with_a_stale_expected_version_exits_4(
    env: dict[str, str], store: StateStore
) -> None:
    store.set("c", 1)
    store.set("c", 2)
    assert "expected version 1" in fails(
        env, 4, "update", "c", "--jq", ". + 1", "--expected-version", "1"
    )
    assert store.get("c").value == 2


def test_concurrent_cli_updates_lose_nothing(env: dict[str, str], store: StateStore) -> None:
    loop = "for i in 1 2 3; do {} update hits --jq '. + 1' --default 0 >/dev/null || exit 1; done"
    command = loop.format(f"'{sys.executable}' -m statebox.cli")
    procs = [subprocess.Popen(["bash", "-c", command], env=env) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    got = store.get("hits")
    assert (got.value, got.version) == (12, 12)


# --- history, get --version, rollback -------------------------------------------------


def test_history_get_version_and_rollback(env: dict[str, str], store: StateStore) -> None:
    store.set("k", {"v": "a"})
    store.set("k", {"v": "b"})
    store.delete("k")
    store.set("k", {"v": "c"})
    history = ok(env, "history", "k", "--include-values")
    assert [
        (v["version"], v.get("deleted", False), v.get("value")) for v in history["versions"]
    ] == [
        (1, False, {"v": "c"}),
        (2, True, None),
        (2, False, {"v": "b"}),
        (1, False, {"v": "a"}),
    ]
    assert len(ok(env, "history", "k", "--limit", "2")["versions"]) == 2
    assert ok(env, "get", "k", "--version", "2")["value"] == {"v": "b"}
    assert ok(env, "get", "k", "--version", "9")["found"] is False
    fails(env, 3, "get", "k", "--version", "9", "--required")
    rolled = ok(env, "rollback", "k", "--to-version", "2")
    assert (rolled["operation"], rolled["version"], rolled["value"]) == ("rollback", 2, {"v": "b"})
    assert store.get("k").value == {"v": "b"}
    fails(env, 4, "rollback", "k", "--to-version", "1", "--expected-version", "1")
    fails(env, 3, "rollback", "k", "--to-version", "7")
    assert "--to-version" in fails(env, 2, "rollback", "k")


# --- txn ------------------------------------------------------------------------------


def test_txn_from_stdin_applies_everything(env: dict[str, str], store: StateStore) -> None:
    store.set("old", 1)
    ops = [
        {"op": "set", "key": "a", "value": 1, "createOnly": True},
        {"op": "delete", "key": "old", "expected_version": 1},
    ]
    result = ok(env, "txn", stdin=json.dumps(ops))
    assert result["operation"] == "transaction"
    assert [(r["index"], r["operation"], r["key"]) for r in result["results"]] == [
        (0, "set", "a"),
        (1, "delete", "old"),
    ]
    assert store.get("a").value == 1 and not store.get("old").found


def test_txn_keeps_number_literals_and_reads_files(
    env: dict[str, str], store: StateStore, tmp_path: Path
) -> None:
    ops = tmp_path / "ops.json"
    ops.write_text('[{"op": "set", "key": "p", "value": {"price": 1.2300, "n": -0, "e": 1E5}}]')
    ok(env, "txn", f"@{ops}", "--scope", "global")
    assert store.get("p", scope="global").stored.text == '{"e":1E5,"n":-0,"price":1.2300}'  # type: ignore[union-attr]


def test_txn_reads_operations_as_the_server_does(env: dict[str, str], store: StateStore) -> None:
    """One reader for both faces (wire.codec.transaction_operation): a base64 value
    is stored as bytes with its type, a ttl is exact seconds, 1_000 is no number."""
    ops = [
        {"op": "set", "key": "b", "value": "aGk=", "encoding": "base64", "contentType": "x/y"},
        {"op": "set", "key": "t", "value": 1, "ttl": 2.5},
    ]
    ok(env, "txn", stdin=json.dumps(ops))
    blob = store.get("b")
    assert blob.stored is not None and (blob.stored.data, blob.stored.content_type) == (
        b"hi",
        "x/y",
    )
    ttl = store.get("t")
    assert ttl.expires_at is not None
    assert ttl.expires_at - ttl.updated_at == 2_500_000_000
    assert "not JSON" in fails(env, 2, "txn", stdin='[{"op": "set", "key": "x", "ttl": 1_000}]')


def test_a_failing_txn_names_the_operation_and_writes_nothing(
    env: dict[str, str], store: StateStore
) -> None:
    store.set("b", 1)
    ops = [
        {"op": "set", "key": "a", "value": 1},
        {"op": "set", "key": "b", "value": 2, "expected_version": 5},
    ]
    message = fails(env, 4, "txn", stdin=json.dumps(ops))
    assert 'transaction operation 1 (set "b")' in message
    assert not store.get("a").found and store.get("b").value == 1
    assert "operation 0" in fails(env, 2, "txn", stdin='[{"op": "put", "key": "a"}]')
    assert "not JSON" in fails(env, 2, "txn", stdin="[{")
    assert "JSON list" in fails(env, 2, "txn", stdin='{"op": "set"}')


# --- leases, --fencing, --ttl ---------------------------------------------------------


def test_leases_and_fencing(env: dict[str, str], store: StateStore) -> None:
    lease = ok(env, "lease", "acquire", "import", "--ttl", "60", "--holder", "worker-1")
    assert (lease["operation"], lease["action"], lease["token"], lease["holder"]) == (
        "lease",
        "acquire",
        1,
        "worker-1",
    )
    ok(env, "set", "cursor", "1", "--fencing", "import:1")
    assert 'held by "worker-1"' in fails(env, 4, "lease", "acquire", "import", "--ttl", "60")
    renewed = ok(
        env, "lease", "renew", "import", "--token", "1", "--holder", "worker-1", "--ttl", "120"
    )
    assert renewed["token"] == 1 and renewed["expiresAt"] > lease["expiresAt"]
    released = ok(env, "lease", "release", "import", "--token", "1", "--holder", "worker-1")
    assert released["released"] is True
    other = ok(env, "lease", "acquire", "import", "--ttl", "60")
    assert other["token"] == 2 and other["holder"].startswith("feed-sync#")
    for args in (
        ["set", "cursor", "99"],
        ["delete", "cursor"],
        ["update", "cursor", "--jq", ". + 1"],
        ["rollback", "cursor", "--to-version", "1"],
        ["txn", '[{"op": "set", "key": "cursor", "value": 99}]'],
    ):
        assert "is stale" in fails(env, 4, *args, "--fencing", "import:1")
    assert store.get("cursor").value == 1
    ok(env, "update", "cursor", "--jq", ". + 1", "--fencing", "import:2")
    assert store.get("cursor").value == 2
    for bad in ("import", "import:x", ":3", "import:²"):  # "²".isdigit(), yet no int
        assert "invalid --fencing" in fails(env, 2, "set", "cursor", "1", "--fencing", bad)
    fails(env, 2, "lease")
    fails(env, 2, "lease", "renew", "import", "--token", "2")  # --holder is required


def test_set_and_update_with_ttl(env: dict[str, str], store: StateStore) -> None:
    before = time.time_ns()
    ok(env, "set", "session", '"abc"', "--ttl", "3600")
    expires = store.get("session").expires_at
    assert expires is not None
    assert before + 3600 * 10**9 <= expires <= time.time_ns() + 3600 * 10**9
    ok(env, "update", "session", "--jq", '. + "!"')  # keeps the expiry
    assert store.get("session").expires_at == expires
    ok(env, "set", "session", '"plain"')  # a set without --ttl clears it
    assert store.get("session").expires_at is None
    assert "invalid --ttl" in fails(env, 2, "set", "session", "1", "--ttl", "0")


# --- watch ----------------------------------------------------------------------------


def test_watch_once_sees_a_write_from_another_process(
    env: dict[str, str], store: StateStore
) -> None:
    # --after-version 0: a write that lands before the watcher looks is still reported
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "statebox.cli",
            "watch",
            "w",
            "--after-version",
            "0",
            "--once",
            "--timeout",
            "60",
            "--include-values",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ok(env, "set", "w", '{"hello": 1}')
    out, err = watcher.communicate(timeout=90)
    assert watcher.returncode == 0, err
    (line,) = out.splitlines()
    event = json.loads(line)
    assert (event["operation"], event["key"], event["event"], event["version"]) == (
        "watch",
        "w",
        "created",
        1,
    )
    assert event["value"] == {"hello": 1} and event["deleted"] is False


def test_watch_a_prefix_prints_one_line_per_change(env: dict[str, str], store: StateStore) -> None:
    store.set("jobs/a", 1)
    store.set("jobs/b", 1)
    store.set("other", 1)
    existing = sb(env, "watch", "--prefix", "jobs/", "--after-version", "0", "--timeout", "0.3")
    assert existing.returncode == 0, existing.stderr
    assert [json.loads(line)["key"] for line in existing.stdout.splitlines()] == [
        "jobs/a",
        "jobs/b",
    ]

    watcher = subprocess.Popen(
        [sys.executable, "-m", "statebox.cli", "watch", "--prefix", "jobs/", "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: lines.extend(json.loads(line) for line in watcher.stdout or ())
    )
    reader.start()
    try:
        # Until the watcher reports a write, it may not have taken its baseline yet.
        deadline = time.monotonic() + 60
        while not lines and time.monotonic() < deadline:
            store.set("jobs/sync", 1)
            time.sleep(0.1)
        assert lines, "the watcher reported nothing"
        store.delete("jobs/a")
        store.set("jobs/b", 2)
        while time.monotonic() < deadline and not {"jobs/a", "jobs/b"} <= {e["key"] for e in lines}:
            time.sleep(0.05)
    finally:
        watcher.kill()
        watcher.wait()
        reader.join()
    changes = [(e["key"], e["event"], e["version"]) for e in lines if e["key"] != "jobs/sync"]
    assert sorted(changes) == [("jobs/a", "deleted", 0), ("jobs/b", "updated", 2)]


def test_watch_times_out_quietly(env: dict[str, str]) -> None:
    out = sb(env, "watch", "nothing", "--timeout", "0.2")
    assert (out.returncode, out.stdout) == (0, "")
    assert "exactly one of a key or a prefix" in fails(env, 2, "watch", "--timeout", "0")
