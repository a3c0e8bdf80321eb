"""Masked unless asked, on the command line (issue #16): the values of a secret keyspace
are ``"***"`` with ``"masked": true`` in every command's output, and themselves with
``--reveal``.

The real ``statebox`` executable in subprocesses, on a sealed SQLite file: the keyspace
``custom/creds`` declared secret by ``STATEBOX_SECRET_NAMESPACES``, the key from
``STATEBOX_SECRET_KEY``, as an operator sets them.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .test_cli import STATEBOX, Cli, Run, clean_env

__all__ = ["clean_env"]  # the fixture, used here by name

SECRET = "hunter2-correct-horse"
VALUE = json.dumps({"password": SECRET, "user": "svc"})
CREDS = ("--scope", "custom", "--namespace", "creds")
PLAIN = ("--scope", "custom", "--namespace", "plain")
KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
MASKED = {"value": "***", "masked": True}


@pytest.fixture
def sealed(tmp_path: Path, clean_env: dict[str, str]) -> Cli:
    env = {
        **clean_env,
        "STATEBOX_SECRET_NAMESPACES": "custom/creds",
        "STATEBOX_SECRET_KEY": KEY,
    }
    cli = Cli(env, f"sqlite:///{tmp_path / 'state.db'}")
    assert cli("set", "login", VALUE, *CREDS).data["version"] == 1
    assert cli("set", "login", VALUE, *PLAIN).data["version"] == 1
    return cli


def _masked(fields: dict[str, object]) -> bool:
    return fields.get("value") == "***" and fields.get("masked") is True


def _no_secret(run: Run) -> None:
    assert SECRET.encode() not in run.out
    assert SECRET not in run.err


def test_get_is_masked_unless_revealed(sealed: Cli) -> None:
    masked = sealed("get", "login", *CREDS)
    _no_secret(masked)
    assert _masked(masked.data) and masked.data["found"] is True
    assert list(masked.data)[-2:] == ["value", "masked"]  # in place of the value
    revealed = sealed("get", "login", *CREDS, "--reveal")
    assert revealed.data["value"] == json.loads(VALUE) and "masked" not in revealed.data
    # a keyspace that is not secret is never masked
    assert sealed("get", "login", *PLAIN).data["value"] == json.loads(VALUE)
    # nor is it in the table view
    table = sealed("get", "login", *CREDS, "--format", "table")
    assert SECRET not in table.text and "***" in table.text
    assert SECRET in sealed("get", "login", *CREDS, "--format", "table", "--reveal").text


def test_a_default_given_for_a_secret_key_is_shown_as_its_keyspace_is(sealed: Cli) -> None:
    given = sealed("get", "absent", *CREDS, "--default", VALUE)
    _no_secret(given)
    assert given.data["found"] is False and _masked(given.data)


def test_list_and_history_with_values_are_masked_unless_revealed(sealed: Cli) -> None:
    sealed("set", "login", '{"password": "second-secret-value"}', *CREDS)
    listed = sealed("list", *CREDS, "--include-values")
    _no_secret(listed)
    entries = listed.data["entries"]
    assert isinstance(entries, list) and len(entries) == 1 and _masked(entries[0])
    shown = sealed("list", *CREDS, "--include-values", "--reveal").data["entries"]
    assert isinstance(shown, list) and shown[0]["value"] == {"password": "second-secret-value"}

    history = sealed("history", "login", *CREDS, "--include-values")
    _no_secret(history)
    assert b"second-secret-value" not in history.out
    versions = history.data["versions"]
    assert isinstance(versions, list) and [v["version"] for v in versions] == [2, 1]
    assert all(_masked(v) for v in versions)
    revealed = sealed("history", "login", *CREDS, "--include-values", "--reveal").data
    assert [v["value"] for v in revealed["versions"]] == [  # type: ignore[attr-defined]
        {"password": "second-secret-value"},
        json.loads(VALUE),
    ]


def test_writes_that_report_their_value_mask_it(sealed: Cli) -> None:
    updated = sealed("update", "login", *CREDS, "--merge", '{"rotated": true}')
    _no_secret(updated)
    assert updated.data["version"] == 2 and _masked(updated.data)
    shown = sealed("update", "login", *CREDS, "--merge", '{"n": 1}', "--reveal").data
    assert shown["value"] == {**json.loads(VALUE), "rotated": True, "n": 1}

    rolled = sealed("rollback", "login", *CREDS, "--to-version", "1")
    _no_secret(rolled)
    assert rolled.data["version"] == 4 and _masked(rolled.data)
    back = sealed("rollback", "login", *CREDS, "--to-version", "1", "--reveal").data
    assert back["value"] == json.loads(VALUE)

    # set and txn print no value at all
    assert "value" not in sealed("set", "other", VALUE, *CREDS).data
    txn = sealed("txn", *CREDS, input=f'[{{"op": "set", "key": "t", "value": {VALUE}}}]'.encode())
    _no_secret(txn)


def test_diff_is_masked_and_compares_the_values_not_their_keyed_hashes(sealed: Cli) -> None:
    same = sealed("diff", "login", VALUE, *CREDS)
    _no_secret(same)
    # A sealed entry's hash is an HMAC: compared by hash, an equal value would differ.
    assert same.data["changed"] is False and same.data["version"] == 1
    assert same.data["previous"] == same.data["current"] == "***"
    assert same.data["masked"] is True
    assert sealed("get", "login", *CREDS).data["version"] == 1  # nothing was written
    changed = sealed("diff", "login", '{"password": "new"}', *CREDS, "--reveal").data
    assert changed["changed"] is True and changed["version"] == 2
    assert changed["previous"] == json.loads(VALUE) and changed["current"] == {"password": "new"}
    assert "masked" not in changed


def test_watch_events_are_masked_unless_revealed(sealed: Cli) -> None:
    def watch(*extra: str) -> Run:
        return sealed(
            "watch", "--prefix", "log", "--after-version", "0", "--include-values", "--once",
            "--timeout", "5", *CREDS, *extra,
        )  # fmt: skip

    masked = watch()
    _no_secret(masked)
    (event,) = [json.loads(line) for line in masked.text.splitlines()]
    assert event["event"] == "created" and _masked(event)
    (shown,) = [json.loads(line) for line in watch("--reveal").text.splitlines()]
    assert shown["value"] == json.loads(VALUE) and "masked" not in shown


def test_a_running_watch_masks_each_new_value(sealed: Cli) -> None:
    proc = subprocess.Popen(
        [str(STATEBOX), "watch", "login", "--include-values", *CREDS],
        env=sealed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)  # its baseline taken
        sealed("set", "login", f'{{"password": "{SECRET}-2"}}', *CREDS)
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
    event = json.loads(line)
    assert event["version"] == 2 and _masked(event)
    assert SECRET.encode() not in line


def test_a_failing_update_of_a_secret_key_does_not_quote_the_value(sealed: Cli) -> None:
    failures = {
        "jq error(.)": sealed("update", "login", *CREDS, "--jq", "error(.)"),
        "jq quoting": sealed("update", "login", *CREDS, "--jq", ".password | tonumber"),
        "jq non-JSON": sealed("update", "login", *CREDS, "--jq", "{a: .password} | .a + nan"),
        "patch": sealed(
            "update", "login", *CREDS, "--patch", '[{"op": "add", "path": "/user/x", "value": 1}]'
        ),
    }
    for what, run in failures.items():
        err = run.failed(2, "secret key", '"login"', "the value is not shown")
        assert SECRET not in err and "svc" not in err, what
    # the same failure on a keyspace that is not secret says what jq said
    plain = sealed("update", "login", *PLAIN, "--jq", "error(.)")
    assert SECRET in plain.failed(2)
    assert sealed("get", "login", *CREDS).data["version"] == 1  # nothing was written


def test_reveal_is_an_option_of_the_commands_that_print_values_only(sealed: Cli) -> None:
    for command in ("get", "list", "history", "watch", "diff", "update", "rollback"):
        assert "--reveal" in sealed(command, "--help").text, command
    for command in ("set", "delete", "txn", "keyspaces", "purge"):
        assert "--reveal" not in sealed(command, "--help").text, command
