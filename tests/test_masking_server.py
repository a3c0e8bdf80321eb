"""Masked unless asked, through the server (issue #16): a real ``statebox`` server in a
subprocess, over a sealed SQLite file, with a real tokens file.

A token without a ``reveal`` grant gets every value of the secret keyspace masked, a 403
when it asks ``?reveal=true``, and a 403 on the entries API's routes that carry values
(the remote store reads plaintext through them); a token whose grant says
``reveal: true`` sees the values when it asks. The remote store (``http://``) of a
token with the grant reads and writes plaintext. No secret value reaches an error
message or the server's log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from statebox import PermissionDeniedError, RunContext, open_store

from .server_util import ServerProcess, running_server
from .test_cli import Cli, clean_env

__all__ = ["clean_env"]  # the fixture, used here by name

SECRET = "hunter2-correct-horse"
VALUE = {"password": SECRET, "user": "svc"}
KEY = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()
SECRET_ENV = {"STATEBOX_SECRET_NAMESPACES": "custom/creds", "STATEBOX_SECRET_KEY": KEY}

READER = "reader-secret-0123456789abc"  # read on custom/*, no reveal
WRITER = "writer-secret-0123456789abc"  # write on custom/*, no reveal
REVEALER = "revealer-secret-0123456789"  # write on custom/*, reveal on custom/creds

TOKENS = f"""
tokens:
  - name: reader
    secret: {READER}
    grants:
      - {{access: read, scope: custom}}
  - name: writer
    secret: {WRITER}
    grants:
      - {{access: write, scope: custom}}
  - name: revealer
    secret: {REVEALER}
    grants:
      - {{access: write, scope: custom}}
      - {{access: read, scope: custom, namespace: creds, reveal: true}}
"""

CREDS = "/custom/creds"
PLAIN = "/custom/plain"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    where = tmp_path_factory.mktemp("masking")
    tokens = where / "tokens.yaml"
    tokens.write_text(TOKENS)
    # access log on: the log must carry no value either
    with running_server(
        f"sqlite:///{where / 'state.db'}", tokens=tokens, access_log=True, env=SECRET_ENV
    ) as srv:
        with as_token(srv, WRITER) as writer:
            for space in (CREDS, PLAIN):
                for value in (VALUE, {**VALUE, "version": 2}):
                    assert writer.put(f"/v1/kv{space}/login", json=value).status_code == 200
        yield srv


def as_token(server: ServerProcess, secret: str) -> httpx.Client:
    headers = {"authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def _masked(fields: dict[str, Any]) -> bool:
    return fields.get("value") == "***" and fields.get("masked") is True


def _reads(client: httpx.Client, space: str, reveal: bool) -> dict[str, dict[str, Any]]:
    """Every read route's answer about ``login`` (values included), asked with
    ``?reveal=true`` or not."""
    extra = "&reveal=true" if reveal else ""
    answers = {
        "get": client.get(f"/v1/kv{space}/login?x=1{extra}"),
        "list": client.get(f"/v1/kv{space}?include_values=true{extra}"),
        "history": client.get(f"/v1/history{space}/login?include_values=true{extra}"),
        "watch": client.get(
            f"/v1/watch{space}?key=login&after_version=1&include_values=true&timeout=5{extra}"
        ),
    }
    return {name: {"status": r.status_code, **r.json()} for name, r in answers.items()}


def _values(answers: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The value-carrying parts of each read's answer."""
    return {
        "get": [answers["get"]],
        "list": answers["list"]["entries"],
        "history": answers["history"]["versions"],
        "watch": answers["watch"]["events"],
    }


def _event_stream(client: httpx.Client, space: str, reveal: bool) -> tuple[int, str]:
    extra = "&reveal=true" if reveal else ""
    url = f"/v1/events{space}?key=login&after_version=1&include_values=true&timeout=1{extra}"
    with client.stream("GET", url) as response:
        return response.status_code, response.read().decode()


def test_values_of_a_secret_keyspace_are_masked_without_reveal(server: ServerProcess) -> None:
    for secret in (READER, WRITER, REVEALER):  # a reveal grant shows nothing unasked
        with as_token(server, secret) as client:
            answers = _reads(client, CREDS, reveal=False)
            assert SECRET not in json.dumps(answers)
            for name, parts in _values(answers).items():
                assert answers[name]["status"] == 200, answers[name]
                assert parts and all(_masked(part) for part in parts), (name, parts)
            status, stream = _event_stream(client, CREDS, reveal=False)
            assert status == 200 and "event: updated" in stream
            assert SECRET not in stream and '"value":"***","masked":true' in stream


def test_reveal_without_the_grant_is_403_naming_the_keyspace_and_the_grant(
    server: ServerProcess,
) -> None:
    for secret in (READER, WRITER):
        with as_token(server, secret) as client:
            for name, answer in _reads(client, CREDS, reveal=True).items():
                assert answer["status"] == 403, (name, answer)
                error = answer["error"]
                assert error["kind"] == "permission_denied"
                for word in ('"custom"', '"creds"', "reveal", "secret"):
                    assert word in error["message"], (name, error)
            status, _ = _event_stream(client, CREDS, reveal=True)
            assert status == 403


def test_reveal_with_the_grant_shows_the_values(server: ServerProcess) -> None:
    with as_token(server, REVEALER) as client:
        answers = _reads(client, CREDS, reveal=True)
        parts = _values(answers)
        assert all(answers[name]["status"] == 200 for name in parts)
        assert answers["get"]["value"] == {**VALUE, "version": 2}
        assert [v["value"] for v in parts["history"]] == [{**VALUE, "version": 2}, VALUE]
        assert all("masked" not in part for found in parts.values() for part in found)
        status, stream = _event_stream(client, CREDS, reveal=True)
        assert status == 200 and SECRET in stream and "masked" not in stream


def test_a_keyspace_that_is_not_secret_is_never_masked(server: ServerProcess) -> None:
    with as_token(server, READER) as client:
        for reveal in (False, True):  # asking to reveal needs no grant there
            answers = _reads(client, PLAIN, reveal=reveal)
            for name, found in _values(answers).items():
                assert answers[name]["status"] == 200, answers[name]
                assert all(SECRET in json.dumps(p) and "masked" not in p for p in found), name


def test_writes_that_answer_values_mask_them_unless_revealed(server: ServerProcess) -> None:
    with as_token(server, REVEALER) as revealer:  # may reveal: shown only when asked
        url = f"/v1/update{CREDS}/counter"
        first = revealer.post(url, json={"merge": {"pin": SECRET}, "default": {}})
        assert first.status_code == 200 and _masked(first.json()), first.text
        assert SECRET not in first.text
        diff = revealer.post(f"/v1/diff{CREDS}/counter", json={"value": {"pin": SECRET}})
        assert diff.status_code == 200, diff.text
        answer = diff.json()
        assert answer["changed"] is False  # by value: the sealed entry's hash is keyed
        assert answer["current"] == answer["previous"] == "***" and answer["masked"] is True
        assert SECRET not in diff.text
        shown = revealer.post(f"/v1/update{CREDS}/counter?reveal=true", json={"merge": {"n": 2}})
        assert shown.status_code == 200 and shown.json()["value"] == {"pin": SECRET, "n": 2}
    with as_token(server, WRITER) as writer:  # writes, and rolls back, masked
        rolled = writer.post(f"/v1/rollback{CREDS}/counter", json={"version": 1})
        assert rolled.status_code == 200 and _masked(rolled.json())
        refused = writer.post(f"/v1/rollback{CREDS}/counter?reveal=true", json={"version": 1})
        assert refused.status_code == 403 and "reveal" in refused.json()["error"]["message"]
    with as_token(server, REVEALER) as revealer:
        back = revealer.post(f"/v1/rollback{CREDS}/counter?reveal=true", json={"version": 1})
        assert back.status_code == 200 and back.json()["value"] == {"pin": SECRET}


def _refused_without_reveal(answer: httpx.Response, what: str) -> None:
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["kind"] == "permission_denied"
    for word in ('"writer"', '"custom"', '"creds"', "no reveal grant", "reveal: true", what):
        assert word in error["message"], (word, error)
    assert SECRET not in answer.text


def test_diff_and_update_of_a_secret_keyspace_need_the_reveal_grant(
    server: ServerProcess,
) -> None:
    """Their answers depend on the stored value (diff's ``changed``, a patch ``test``
    op or a jq expression succeeding or failing): without the grant they would confirm
    a guessed value. Set, delete and transactions read no value: write is enough."""
    guesses = (
        {"patch": [{"op": "test", "path": "/password", "value": SECRET}]},
        {"patch": [{"op": "test", "path": "/password", "value": "wrong"}]},
        {"jq": f'if .password == "{SECRET}" then . else error("no") end'},
        {"merge": {"seen": True}},
    )
    with as_token(server, WRITER) as writer:
        for value in (VALUE, {"password": "wrong"}):  # the same answer, right or wrong
            for reveal in ("", "?reveal=true"):
                answer = writer.post(f"/v1/diff{CREDS}/login{reveal}", json={"value": value})
                _refused_without_reveal(answer, "a diff")
        for body in guesses:
            answer = writer.post(f"/v1/update{CREDS}/login", json=body)
            _refused_without_reveal(answer, "an update")
        assert writer.get(f"/v1/kv{CREDS}/login").json()["version"] == 2  # nothing written
        # the plain writes need no reveal grant
        assert writer.put(f"/v1/kv{CREDS}/blind", json={"pin": SECRET}).status_code == 200
        ops = {"ops": [{"op": "set", "key": "blind", "value": {"pin": 1}}]}
        assert writer.post(f"/v1/txn{CREDS}", json=ops).status_code == 200
        assert writer.delete(f"/v1/kv{CREDS}/blind").json()["deleted"] is True
        # and on a keyspace that is not secret, diff and update need write only
        diff = writer.post(f"/v1/diff{PLAIN}/login", json={"value": {"x": 1}, "update": False})
        assert diff.status_code == 200 and diff.json()["changed"] is True
        update = writer.post(f"/v1/update{PLAIN}/counter", json={"merge": {"n": 1}, "default": {}})
        assert update.status_code == 200, update.text
    with as_token(server, REVEALER) as revealer:  # the grant: the answers depend on it
        same = revealer.post(f"/v1/diff{CREDS}/login", json={"value": VALUE, "update": False})
        assert same.status_code == 200 and same.json()["changed"] is True  # version 2's
        tested = revealer.post(f"/v1/update{CREDS}/login", json=guesses[1])
        assert tested.status_code == 422, tested.text


def test_the_entries_api_needs_the_reveal_grant_on_a_secret_keyspace(
    server: ServerProcess,
) -> None:
    carrying = (
        f"/v1/entries{CREDS}/login",
        f"/v1/records{CREDS}/login",
        f"/v1/records{CREDS}/login?version=1",
        f"/v1/entries{CREDS}?include_values=true",
    )
    with as_token(server, READER) as reader:
        for url in carrying:
            refused = reader.get(url)
            assert refused.status_code == 403, (url, refused.text)
            message = refused.json()["error"]["message"]
            assert '"creds"' in message and "reveal" in message, message
            assert SECRET not in refused.text
        # keys and versions without the values: allowed, the hash said to be keyed
        keys = reader.get(f"/v1/entries{CREDS}")
        assert keys.status_code == 200, keys.text
        entry = {e["key"]: e for e in keys.json()["entries"]}["login"]
        assert "value" not in entry and entry["keyedHash"] is True
        # the same routes on a keyspace that is not secret
        for url in carrying:
            assert reader.get(url.replace(CREDS, PLAIN)).status_code == 200, url
        assert "keyedHash" not in reader.get(f"/v1/entries{PLAIN}/login").text
    with as_token(server, REVEALER) as revealer:
        for url in carrying:
            shown = revealer.get(url)
            assert shown.status_code == 200 and SECRET in shown.text, (url, shown.text)
            assert '"keyedHash":true' in shown.text


def test_an_apply_answers_the_values_only_to_a_caller_who_may_reveal_them(
    server: ServerProcess,
) -> None:
    op = {"ops": [{"op": "set", "key": "applied", "value": {"token": SECRET}}]}
    with as_token(server, WRITER) as writer:
        for _ in range(2):  # the second answers the first as "previous"
            answer = writer.post(f"/v1/apply{CREDS}", json=op)
            assert answer.status_code == 200, answer.text
            assert SECRET not in answer.text
        (result,) = answer.json()["results"]
        assert "value" not in result["previous"] and "value" not in result["current"]
        across = writer.post(
            "/v1/apply",
            json={"batches": [{"scope": "custom", "namespace": "creds", **op}]},
        )
        assert across.status_code == 200 and SECRET not in across.text
    with as_token(server, REVEALER) as revealer:
        answer = revealer.post(f"/v1/apply{CREDS}", json=op)
        (result,) = answer.json()["results"]
        assert result["previous"]["value"] == {"token": SECRET}
        assert result["current"]["keyedHash"] is True


def test_the_remote_store_with_the_reveal_grant_reads_and_writes_plaintext(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEBOX_TOKEN", REVEALER)
    space: dict[str, Any] = {"scope": "custom", "namespace": "creds"}
    with open_store(server.url, context=RunContext(dag="remote")) as store:
        got = store.get("login", **space)
        assert got.value == {**VALUE, "version": 2}
        written = store.set("remote", {"api": SECRET}, **space)
        assert store.get("remote", **space).value == {"api": SECRET}
        updated = store.update("remote", merge={"n": 1}, **space)  # read, then apply
        assert updated.value == {"api": SECRET, "n": 1} and updated.version == 2
        assert store.diff("remote", {"api": SECRET, "n": 1}, **space).changed is False
        versions = store.history("remote", include_values=True, **space).versions
        assert [v.stored.parse() for v in versions if v.stored] == [
            {"api": SECRET, "n": 1},
            {"api": SECRET},
        ]
        assert store.rollback("remote", written.version, **space).value == {"api": SECRET}
        listed = store.list(include_values=True, **space).entries
        assert {e.key: e.value for e in listed}["remote"] == {"api": SECRET}
    monkeypatch.setenv("STATEBOX_TOKEN", WRITER)  # no reveal grant: writes, lists keys...
    with open_store(server.url) as store:
        assert store.set("blind", {"api": SECRET}, **space).version == 1
        assert store.transaction([{"op": "delete", "key": "blind"}], **space).results
        assert "remote" in {e.key for e in store.list(**space).entries}
        with pytest.raises(PermissionDeniedError, match="reveal"):  # ...reads no value
            store.get("login", **space)


def test_the_cli_through_the_server_masks_unless_revealed(
    server: ServerProcess, clean_env: dict[str, str]
) -> None:
    env = {**clean_env, "STATEBOX_TOKEN": REVEALER, "STATEBOX_SECRET_NAMESPACES": "custom/creds"}
    cli = Cli(env, server.url)
    masked = cli("get", "login", "--scope", "custom", "--namespace", "creds")
    assert _masked(masked.data) and SECRET.encode() not in masked.out
    shown = cli("get", "login", "--scope", "custom", "--namespace", "creds", "--reveal")
    assert shown.data["value"] == {**VALUE, "version": 2}
    rotate = cli("secrets", "rotate", "--no-new-key")
    rotate.failed(2, "secrets rotate", "server's host", "--store")


def test_a_failing_update_answers_no_value(server: ServerProcess) -> None:
    with as_token(server, REVEALER) as client:
        for body in (
            {"jq": "error(.)"},
            {"jq": ".password | tonumber"},
            {"patch": [{"op": "add", "path": "/user/x", "value": 1}]},
        ):
            answer = client.post(f"/v1/update{CREDS}/login?reveal=true", json=body)
            assert answer.status_code == 422, answer.text
            assert SECRET not in answer.text and "svc" not in answer.text, answer.text
            assert "the value is not shown" in answer.json()["error"]["message"]


def test_no_secret_value_reaches_the_servers_log(server: ServerProcess) -> None:
    # the tests above ran against this server (the module's tests run in order): reads,
    # reveals, refusals, failing updates, the remote store; and once more here
    with as_token(server, REVEALER) as client:
        client.post(f"/v1/update{CREDS}/login", json={"jq": "error(.)"})
        client.get(f"/v1/kv{CREDS}/login?reveal=true")
    log = server.log_text()
    assert "GET /v1/kv/custom/creds/login" in log  # the access log is on...
    assert SECRET not in log  # ...and holds no value


def test_a_server_without_tokens_reveals_to_its_anonymous_caller(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'state.db'}", env=SECRET_ENV) as srv:
        client = srv.client
        assert client.put(f"/v1/kv{CREDS}/login", json=VALUE).status_code == 200
        assert _masked(client.get(f"/v1/kv{CREDS}/login").json())
        assert client.get(f"/v1/kv{CREDS}/login?reveal=true").json()["value"] == VALUE
        assert client.get(f"/v1/entries{CREDS}/login").json()["entry"]["value"] == VALUE


@pytest.mark.parametrize("given", ["backend", "store"])
def test_a_backend_object_given_to_the_server_is_sealed(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from statebox import StateStore
    from statebox.backends.memory import MemoryBackend
    from statebox.core.model import Keyspace
    from statebox.server.app import create_app

    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    inner = MemoryBackend()
    app = create_app(inner if given == "backend" else StateStore(inner))
    with TestClient(app, base_url="http://localhost") as client:
        assert client.put(f"/v1/kv{CREDS}/login", json=VALUE).status_code == 200
        assert _masked(client.get(f"/v1/kv{CREDS}/login").json())
        assert client.get(f"/v1/kv{CREDS}/login?reveal=true").json()["value"] == VALUE
    stored = inner.get(Keyspace("custom", "creds"), "login", 0)
    assert stored is not None and SECRET.encode() not in stored.data  # sealed at rest
    assert stored.content_type == "application/vnd.statebox.sealed"
