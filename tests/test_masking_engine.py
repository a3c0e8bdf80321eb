"""Masked unless asked, in the engine and the renderer (issue #16).

The library returns a secret keyspace's values as they are (whoever holds the store
holds the key) and marks them (``StoredValue.secret``); the one renderer every face
uses (:mod:`statebox.core.envelope`) masks them unless asked to reveal; their ``repr``
masks them too. An ``update`` of a secret key that fails says what failed, never the
value. ``diff`` compares values, not hashes (a sealed entry's hash is keyed). The
tokens file's ``reveal`` grant.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from statebox import (
    Blob,
    InvalidValueError,
    ManualClock,
    RunContext,
    StateStore,
    StoredValue,
    ValueTooLargeError,
    open_store,
)
from statebox.aio import AsyncStateStore
from statebox.backends.memory import MemoryBackend
from statebox.core.envelope import envelope, envelope_data, envelope_json
from statebox.core.errors import ConfigurationError, SecretKeyError
from statebox.core.model import Keyspace
from statebox.core.results import TransactionResult
from statebox.core.secrecy import SecretPolicy
from statebox.server.auth import ANONYMOUS, Access, Grant, Principal, TokenRegistry

SECRET = "hunter2-correct-horse"
VALUE = {"password": SECRET, "user": "svc"}
CREDS: dict[str, Any] = {"scope": "custom", "namespace": "creds"}
PLAIN: dict[str, Any] = {"scope": "custom", "namespace": "plain"}
MASKED = {"value": "***", "masked": True}


@pytest.fixture
def store() -> StateStore:
    """A store whose policy declares ``custom/creds`` secret (values kept in clear in
    memory: sealing is the backend's layer, masking the renderer's)."""
    return StateStore(
        MemoryBackend(),
        context=RunContext(dag="d"),
        clock=ManualClock(),
        secret_policy=SecretPolicy(["custom/creds"]),
    )


def _shown(result: Any, reveal: bool = False) -> str:
    return envelope_json(result, reveal)


# --- the values carried, and their repr ----------------------------------------------------


def test_the_library_gets_real_values_marked_secret(store: StateStore) -> None:
    store.set("login", VALUE, **CREDS)
    store.set("login", VALUE, **PLAIN)
    got = store.get("login", **CREDS)
    assert got.value == VALUE and got.stored is not None and got.stored.secret is True
    compact = json.dumps(VALUE, separators=(",", ":")).encode()
    assert store.get("login", **PLAIN).stored == StoredValue(compact)
    assert store.get("login", **PLAIN).stored.secret is False  # type: ignore[union-attr]
    marked = {
        "default": store.get("absent", default=VALUE, **CREDS).stored,
        "list": store.list(include_values=True, **CREDS).entries[0].stored,
        "history": store.history("login", include_values=True, **CREDS).versions[0].stored,
        "update": store.update("login", merge={"n": 1}, **CREDS).stored,
        "rollback": store.rollback("login", 1, **CREDS).stored,
        "diff current": store.diff("login", VALUE, **CREDS).current,
        "diff previous": store.diff("login", VALUE, **CREDS).previous,
        "watch": store.watch(prefix="", after_version=0, include_values=True, timeout=0, **CREDS)
        .events[0]
        .stored,
    }
    for name, stored in marked.items():
        assert stored is not None and stored.secret is True, name
        assert SECRET in stored.data.decode(), name  # the real bytes
    plain = store.list(include_values=True, **PLAIN).entries[0].stored
    assert plain is not None and plain.secret is False


def test_the_async_store_marks_them_too(store: StateStore) -> None:
    store.set("login", VALUE, **CREDS)

    async def read() -> Any:
        return await AsyncStateStore(store).get("login", **CREDS)

    got = asyncio.run(read())
    assert got.value == VALUE and got.stored.secret is True


def test_a_secret_value_is_masked_in_its_repr(store: StateStore) -> None:
    store.set("login", VALUE, **CREDS)
    got = store.get("login", **CREDS)
    for text in (repr(got.stored), repr(got), str(got), f"{[got]}"):
        assert SECRET not in text and "<masked>" in text, text
    assert SECRET in repr(store.get("absent", default=VALUE, **PLAIN))


def test_the_policy_comes_from_the_backend_else_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "global/vault")
    assert StateStore(MemoryBackend()).secret_policy.is_secret(Keyspace("global", "vault"))

    class Declaring(MemoryBackend):
        secret_policy = SecretPolicy(["custom/mine"])

    store = StateStore(Declaring())
    assert store.secret_policy.is_secret(Keyspace("custom", "mine"))
    assert not store.secret_policy.is_secret(Keyspace("global", "vault"))
    other = store.with_context(RunContext(dag="x"))
    assert other.secret_policy is store.secret_policy
    # the Atlan credentials namespaces are always secret
    assert StateStore(MemoryBackend()).secret_policy.is_secret(
        Keyspace("custom", "atlan-app-credentials")
    )


# --- the renderer ----------------------------------------------------------------------------


def test_every_result_that_carries_a_value_masks_it_unless_revealed(store: StateStore) -> None:
    store.set("login", VALUE, **CREDS)
    results: dict[str, Any] = {
        "get": store.get("login", **CREDS),
        "get default": store.get("absent", default=VALUE, **CREDS),
        "update": store.update("login", merge={"n": 1}, **CREDS),
        "rollback": store.rollback("login", 1, **CREDS),
        "list": store.list(include_values=True, **CREDS),
        "list entry": store.list(include_values=True, **CREDS).entries[0],
        "history": store.history("login", include_values=True, **CREDS),
        "history item": store.history("login", include_values=True, **CREDS).versions[0],
        "diff": store.diff("login", {"other": 1}, update=False, **CREDS),
        "watch": store.watch(prefix="", after_version=0, include_values=True, timeout=0, **CREDS),
        "watch event": store.watch("login", after_version=1, include_values=True, **CREDS).events[
            0
        ],
    }
    for name, result in results.items():
        masked = _shown(result)
        assert (SECRET not in masked and '"value":"***","masked":true' in masked) or (
            name == "diff" and '"current":"***"' in masked and '"masked":true' in masked
        ), (name, masked)
        assert SECRET not in json.dumps(envelope_data(result)), name
        assert SECRET in _shown(result, reveal=True) or name == "diff", name
        assert '"masked"' not in _shown(result, reveal=True), name
    diff = envelope_data(results["diff"], reveal=True)
    assert diff["previous"]["password"] == SECRET and diff["current"] == {"other": 1}


def test_reveal_holds_for_one_render_only(store: StateStore) -> None:
    store.set("login", VALUE, **CREDS)
    got = store.get("login", **CREDS)
    assert envelope(got, reveal=True)["value"].text == json.dumps(VALUE, separators=(",", ":"))
    assert {k: envelope(got)[k] for k in ("value", "masked")} == MASKED  # not left on
    assert SECRET not in got.to_json() and SECRET not in json.dumps(got.as_data())


def test_a_masked_binary_value_keeps_its_content_type(store: StateStore) -> None:
    store.set("cert", Blob(SECRET.encode(), "application/x-pem-file"), **CREDS)
    shown = envelope_data(store.get("cert", **CREDS))
    assert shown["value"] == "***" and shown["masked"] is True
    assert shown["contentType"] == "application/x-pem-file" and "encoding" not in shown
    revealed = envelope_data(store.get("cert", **CREDS), reveal=True)
    assert base64.b64decode(revealed["value"]) == SECRET.encode()
    assert revealed["encoding"] == "base64" and "masked" not in revealed


def test_a_transaction_reports_no_value(store: StateStore) -> None:
    result = store.transaction([{"op": "set", "key": "t", "value": VALUE}], **CREDS)
    assert isinstance(result, TransactionResult)
    assert SECRET not in _shown(result) and SECRET not in _shown(result, reveal=True)


# --- update's failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        {"jq": "error(.)"},
        {"jq": ".password | tonumber"},
        {"jq": "{a: .password} | .a + 1"},
        {"patch": [{"op": "add", "path": "/user/x", "value": 1}]},
        {"patch": [{"op": "test", "path": "/password", "value": "guess"}]},
    ],
)
def test_a_failing_update_of_a_secret_key_says_what_failed_not_the_value(
    store: StateStore, transform: dict[str, Any]
) -> None:
    store.set("login", VALUE, **CREDS)
    store.set("login", VALUE, **PLAIN)
    with pytest.raises(InvalidValueError) as secret:
        store.update("login", **transform, **CREDS)
    message = secret.value.message
    assert SECRET not in message and "svc" not in message, message
    assert message.startswith('update of secret key "login" failed: the ')
    assert message.endswith("; the value is not shown")
    assert secret.value.__cause__ is None and secret.value.__suppress_context__
    with pytest.raises(InvalidValueError) as plain:
        store.update("login", **transform, **PLAIN)
    assert "secret" not in plain.value.message  # elsewhere: jq's or the patch's own words


def test_a_too_large_result_of_a_secret_key_keeps_its_kind(tmp_path: Path) -> None:
    store = StateStore(MemoryBackend(), json_limit=64, secret_policy=SecretPolicy(["custom/creds"]))
    store.set("login", VALUE, **CREDS)
    with pytest.raises(ValueTooLargeError) as raised:
        store.update("login", jq=". + {pad: (.password * 10)}", **CREDS)
    assert SECRET not in raised.value.message
    assert "made the value too large" in raised.value.message


# --- diff on a sealed store ---------------------------------------------------------------------


def test_diff_on_a_sealed_store_compares_values_not_keyed_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "custom/creds")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", base64.urlsafe_b64encode(bytes(32)).decode())
    with open_store(f"sqlite:///{tmp_path / 's.db'}", context=RunContext(dag="d")) as store:
        written = store.set("login", VALUE, **CREDS)
        same = store.diff("login", VALUE, **CREDS)
        assert same.changed is False and same.version == written.version == 1
        assert store.get("login", **CREDS).version == 1
        changed = store.diff("login", {"password": "new"}, **CREDS)
        assert changed.changed is True and changed.version == 2


# --- past versions under a lost key ------------------------------------------------------------


def test_an_intact_past_version_reads_when_the_current_one_cannot_be_opened() -> None:
    """``get(version=N)`` reads version N itself: the current entry, sealed under a key
    the reader no longer has, does not block it (it raises on its own read only)."""
    from statebox.backends import SealedBackend
    from statebox.backends.sealing.keyring import generate_key

    inner, policy = MemoryBackend(), SecretPolicy(["custom/creds"])

    def sealed(key: str) -> StateStore:
        backend = SealedBackend(inner, policy, {"STATEBOX_SECRET_KEY": key})
        return StateStore(backend, context=RunContext(dag="d"), clock=ManualClock())

    old_key, lost_key = generate_key(), generate_key()
    reader = sealed(old_key)
    reader.set("login", VALUE, ttl=600, **CREDS)
    assert reader.get("login", version=1, **CREDS) == reader.get("login", **CREDS)  # its TTL too
    sealed(lost_key).set("login", {"password": "new"}, **CREDS)  # version 2: another key
    with pytest.raises(SecretKeyError):
        reader.get("login", **CREDS)
    with pytest.raises(SecretKeyError):
        reader.get("login", version=2, **CREDS)
    old = reader.get("login", version=1, **CREDS)
    assert (old.found, old.version, old.value, old.expires_at) == (True, 1, VALUE, None)


# --- the reveal grant -------------------------------------------------------------------------


def test_the_reveal_grant() -> None:
    creds, plain = Keyspace("custom", "creds"), Keyspace("custom", "plain")
    revealer = Principal(
        "r",
        (
            Grant(Access.WRITE, "custom", "*"),
            Grant(Access.READ, "custom", "cre*", reveal=True),
        ),
    )
    assert revealer.can_reveal(creds) and not revealer.can_reveal(plain)
    assert not Principal("w", (Grant(Access.WRITE, "custom", "*"),)).can_reveal(creds)
    assert ANONYMOUS.can_reveal(creds)


def test_tokens_files_say_reveal_true_or_false() -> None:
    def grants(grant: str) -> tuple[Grant, ...]:
        text = f'{{"tokens": [{{"name": "t", "secret": "{"s" * 16}", "grants": [{grant}]}}]}}'
        registry = TokenRegistry.from_data(json.loads(text), "tokens.json")
        principal = registry.authenticate("s" * 16)
        assert principal is not None
        return principal.grants

    assert grants('{"access": "read"}') == (Grant(Access.READ),)
    assert grants('{"access": "read", "reveal": true}')[0].reveal is True
    assert grants('{"access": "write", "reveal": false}')[0].reveal is False
    for bad in ('"yes"', "1", "null"):
        with pytest.raises(ConfigurationError, match="'reveal' must be true or false"):
            grants(f'{{"access": "read", "reveal": {bad}}}')
