"""statebox.compat.atlan: the Atlan Apps Framework's StateStore, as the seed documents it.

The seed's examples run as written (with ``asyncio.run`` around the awaits) on a real
SQLite store named by ``STATEBOX_STORE``; then what the SDK gets wrong (a failed read
taken for "no state") and what the compat layer refuses (ids that escape their folder,
values that are not objects, unknown state types).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import statebox
from statebox import (
    ConfigurationError,
    InvalidReferenceError,
    InvalidValueError,
    open_store,
)
from statebox.compat.atlan import (
    PathTraversalError,
    StateStore,
    StateType,
    build_state_store_path,
)

APP = "appName"
WORKFLOWS_NS = f"atlan-{APP}-workflows"
CREDENTIALS_NS = f"atlan-{APP}-credentials"


def new_secret_key() -> str:
    """A statebox secret key: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite store as ``STATEBOX_STORE``, the app ``appName``, a secret key;
    the compat layer's stores closed afterwards."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("STATEBOX_STORE", url)
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", APP)
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    yield url
    StateStore.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the seed's examples -----------------------------------------------------------------


def test_state_type_is_the_seeds_enum() -> None:
    assert [(t.name, t.value) for t in StateType] == [
        ("WORKFLOWS", "workflows"),
        ("CREDENTIALS", "credentials"),
    ]
    assert StateType.is_member("workflows") is True
    assert StateType.is_member("credentials") is True
    assert StateType.is_member("invalid") is False
    assert StateType.is_member("WORKFLOWS") is False


def test_build_state_store_path_gives_the_seeds_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", "appName")
    path = build_state_store_path("workflow-123", StateType.WORKFLOWS)
    assert path == (
        "./local/tmp/persistent-artifacts/apps/appName/workflows/workflow-123/config.json"
    )
    assert build_state_store_path("db-cred-456", StateType.CREDENTIALS) == (
        "./local/tmp/persistent-artifacts/apps/appName/credentials/db-cred-456/config.json"
    )


def test_the_app_name_defaults_to_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATLAN_APPLICATION_NAME", raising=False)
    assert build_state_store_path("my-workflow-id", StateType.WORKFLOWS) == (
        "./local/tmp/persistent-artifacts/apps/default/workflows/my-workflow-id/config.json"
    )


def test_workflow_state_examples(store_url: str) -> None:
    async def seed() -> tuple[Any, ...]:
        # "Save complete workflow state"
        workflow_state = {
            "status": "running",
            "current_step": "data_processing",
            "progress": 50,
            "config": {"batch_size": 1000},
        }
        updated = await StateStore.save_state_object(
            id="workflow-123", value=workflow_state, type=StateType.WORKFLOWS
        )
        # "Update workflow progress"
        await StateStore.save_state(
            key="progress", value=75, id="workflow-123", type=StateType.WORKFLOWS
        )
        # "Get workflow state"
        state = await StateStore.get_state("workflow-123", StateType.WORKFLOWS)
        missing = await StateStore.get_state("workflow-999", StateType.WORKFLOWS)
        return updated, state, missing

    updated, state, missing = run(seed())
    assert f"Final state has {len(updated)} keys" == "Final state has 4 keys"
    assert updated == {
        "status": "running",
        "current_step": "data_processing",
        "progress": 50,
        "config": {"batch_size": 1000},
    }
    assert f"Current status: {state.get('status', 'unknown')}" == "Current status: running"
    assert state["progress"] == 75
    assert missing is None  # "Returns None if no state exists"


def test_workflow_arguments_saved_whole_and_read_back(store_url: str) -> None:
    # TemporalWorkflowClient.start_workflow adds application_name and workflow_id and
    # saves the object; the get_workflow_args activity reads it with get_state.
    args = {
        "output_prefix": "s3://bucket/out",
        "output_path": "/data/output",
        "workflow_run_id": "run-456",
    }

    async def start_workflow(workflow_id: str) -> dict[str, Any]:
        value = {**args, "application_name": APP, "workflow_id": workflow_id}
        return await StateStore.save_state_object(
            id=workflow_id, value=value, type=StateType.WORKFLOWS
        )

    async def get_workflow_args(workflow_id: str) -> dict[str, Any] | None:
        return await StateStore.get_state(workflow_id, StateType.WORKFLOWS)

    saved = run(start_workflow("wf-123"))
    assert saved == {**args, "application_name": APP, "workflow_id": "wf-123"}
    assert run(get_workflow_args("wf-123")) == saved


def test_credentials_saved_and_read_back(store_url: str, tmp_path: Path) -> None:
    # SecretStore.save_secret saves the config with save_state_object; _get_credentials
    # reads it back with get_state(credential_guid, CREDENTIALS).
    cred_config = {
        "credential_type": "database",
        "host": "db.example.com",
        "port": 5432,
        "database": "mydb",
        "password": "hunter2-very-secret",
    }
    saved = run(StateStore.save_state_object("db-cred-456", cred_config, StateType.CREDENTIALS))
    assert saved == cred_config
    creds = run(StateStore.get_state("db-cred-456", StateType.CREDENTIALS))
    assert creds is not None
    assert f"Database: {creds.get('database')}" == "Database: mydb"
    assert creds == cred_config
    # Kept encrypted (the builtin secret pattern custom/atlan-*-credentials): the
    # SQLite files hold no plaintext of it.
    StateStore.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"hunter2-very-secret" not in stored
    assert b"db.example.com" not in stored


# --- where it stores ---------------------------------------------------------------------


def test_one_entry_per_object_in_a_namespace_per_app_and_type(store_url: str) -> None:
    run(StateStore.save_state_object("workflow-123", {"a": 1}, StateType.WORKFLOWS))
    run(StateStore.save_state("user", "svc", "db-cred-456", StateType.CREDENTIALS))
    with open_store(store_url) as engine:
        got = engine.get("workflow-123", scope="custom", namespace=WORKFLOWS_NS)
        assert got.value == {"a": 1}
        assert engine.get("db-cred-456", scope="custom", namespace=CREDENTIALS_NS).value == {
            "user": "svc"
        }
        listed = engine.keyspaces("custom")
        assert sorted((k.namespace, k.entries) for k in listed.keyspaces) == [
            (CREDENTIALS_NS, 1),
            (WORKFLOWS_NS, 1),
        ]


def test_apps_and_types_do_not_share_objects(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(StateStore.save_state("n", 1, "same-id", StateType.WORKFLOWS))
    assert run(StateStore.get_state("same-id", StateType.CREDENTIALS)) is None
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", "other-app")
    assert run(StateStore.get_state("same-id", StateType.WORKFLOWS)) is None
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", APP)
    assert run(StateStore.get_state("same-id", StateType.WORKFLOWS)) == {"n": 1}


def test_the_state_type_may_be_its_value(store_url: str) -> None:
    run(StateStore.save_state("n", 1, "wf", "workflows"))  # type: ignore[arg-type]
    assert run(StateStore.get_state("wf", StateType.WORKFLOWS)) == {"n": 1}
    assert build_state_store_path("wf", "credentials").endswith(  # type: ignore[arg-type]
        "/credentials/wf/config.json"
    )


@pytest.mark.parametrize("bad", ["nope", "WORKFLOWS", 1, None, b"workflows"])
def test_an_unknown_state_type_is_refused(store_url: str, bad: Any) -> None:
    with pytest.raises(InvalidReferenceError, match=r"invalid state type .*StateType\.WORKFLOWS"):
        run(StateStore.get_state("wf", bad))
    with pytest.raises(InvalidReferenceError, match="invalid state type"):
        build_state_store_path("wf", bad)


@pytest.mark.parametrize("app", ["a/b", "x\\y", "..", "../../../../etc", "", "."])
def test_an_app_name_that_makes_no_namespace_is_a_clear_error(
    store_url: str, monkeypatch: pytest.MonkeyPatch, app: str
) -> None:
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", app)
    with pytest.raises(ConfigurationError, match=r"ATLAN_APPLICATION_NAME=.*namespace"):
        run(StateStore.get_state("wf", StateType.WORKFLOWS))
    with pytest.raises(ConfigurationError, match="ATLAN_APPLICATION_NAME"):
        run(StateStore.save_state("k", 1, "wf", StateType.CREDENTIALS))
    # the path refuses it alike: "../../../../etc" would leave the base
    with pytest.raises(ConfigurationError, match=r"ATLAN_APPLICATION_NAME=.*folder"):
        build_state_store_path("wf", StateType.WORKFLOWS)


def test_an_app_name_with_a_nul_is_refused() -> None:
    from statebox.compat.atlan._naming import _app_problem  # no environment holds a NUL

    assert _app_problem("a\0b") == "it contains a NUL character"
    assert _app_problem("appName") is None and _app_problem("a..b") is None


# --- merging, replacing ------------------------------------------------------------------


def test_save_state_object_merges_top_level_fields_like_dict_update(store_url: str) -> None:
    first = {"status": "running", "config": {"batch_size": 1000, "retries": 3}, "keep": True}
    run(StateStore.save_state_object("wf", first, StateType.WORKFLOWS))
    merged = run(
        StateStore.save_state_object(
            "wf", {"status": "done", "config": {"batch_size": 10}}, StateType.WORKFLOWS
        )
    )
    expected = dict(first)
    expected.update({"status": "done", "config": {"batch_size": 10}})
    assert merged == expected  # "config" replaced whole, not deep-merged
    assert run(StateStore.get_state("wf", StateType.WORKFLOWS)) == expected


def test_save_state_object_with_replace_writes_the_object_whole(store_url: str) -> None:
    run(StateStore.save_state_object("wf", {"a": 1, "b": 2}, StateType.WORKFLOWS))
    replaced = run(StateStore.save_state_object("wf", {"c": 3}, StateType.WORKFLOWS, replace=True))
    assert replaced == {"c": 3}
    assert run(StateStore.get_state("wf", StateType.WORKFLOWS)) == {"c": 3}


def test_save_state_sets_one_field_and_keeps_the_others(store_url: str) -> None:
    run(StateStore.save_state("a", {"nested": [1, 2, 3]}, "wf", StateType.WORKFLOWS))
    run(StateStore.save_state("b", None, "wf", StateType.WORKFLOWS))
    run(StateStore.save_state("a", True, "wf", StateType.WORKFLOWS))
    assert run(StateStore.get_state("wf", StateType.WORKFLOWS)) == {"a": True, "b": None}


def test_save_state_object_refuses_what_is_not_a_dict(store_url: str) -> None:
    not_a_dict = 'state "wf": must be a dict of fields, not an array'
    with pytest.raises(InvalidValueError, match=not_a_dict):
        run(StateStore.save_state_object("wf", [1, 2], StateType.WORKFLOWS))  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="field name 1: must be a string"):
        run(StateStore.save_state_object("wf", {1: "x"}, StateType.WORKFLOWS))  # type: ignore[dict-item]
    with pytest.raises(InvalidValueError, match="field name 2: must be a string"):
        run(StateStore.save_state(2, "x", "wf", StateType.WORKFLOWS))  # type: ignore[arg-type]
    assert run(StateStore.get_state("wf", StateType.WORKFLOWS)) is None


def test_a_value_that_is_not_json_is_refused_and_nothing_written(store_url: str) -> None:
    with pytest.raises(InvalidValueError):
        run(StateStore.save_state("f", float("nan"), "wf", StateType.WORKFLOWS))
    assert run(StateStore.get_state("wf", StateType.WORKFLOWS)) is None


# --- a stored value that is not an object ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [([1, 2], "an array"), ("text", "a string"), (7, "a number"), (None, "null")],
)
@pytest.mark.parametrize("field", ["0", "-", "status"])
def test_a_stored_value_that_is_not_an_object_is_a_clear_error(
    store_url: str, value: Any, kind: str, field: str
) -> None:
    with open_store(store_url) as engine:
        engine.set("wf-9", value, scope="custom", namespace=WORKFLOWS_NS)
    message = f'workflows state "wf-9" .*holds {kind}, not an object'
    # "0" and "-" are where a JSON patch would have inserted into an array.
    with pytest.raises(InvalidValueError, match=message):
        run(StateStore.save_state(field, 1, "wf-9", StateType.WORKFLOWS))
    with pytest.raises(InvalidValueError, match=message):
        run(StateStore.save_state_object("wf-9", {field: 1}, StateType.WORKFLOWS))
    with pytest.raises(InvalidValueError, match=message):
        run(StateStore.get_state("wf-9", StateType.WORKFLOWS))
    with open_store(store_url) as engine:
        got = engine.get("wf-9", scope="custom", namespace=WORKFLOWS_NS)
        assert (got.value, got.version) == (value, 1)  # untouched
    assert run(
        StateStore.save_state_object("wf-9", {"fresh": 1}, StateType.WORKFLOWS, replace=True)
    ) == {"fresh": 1}


def test_binary_data_is_not_an_object(store_url: str) -> None:
    with open_store(store_url) as engine:
        engine.set("wf-b", statebox.Blob(b"\x00\x01", "image/png"), scope="custom",
                   namespace=WORKFLOWS_NS)  # fmt: skip
    with pytest.raises(InvalidValueError, match=r"holds binary data \(image/png\)"):
        run(StateStore.save_state("a", 1, "wf-b", StateType.WORKFLOWS))


# --- ids that escape their folder --------------------------------------------------------

ESCAPES = [
    ("", "it is empty"),
    ("../x", 'a ".." segment'),
    ("..", 'a ".." segment'),
    ("a/../b", 'a ".." segment'),
    ("a/..", 'a ".." segment'),
    ("..\\..\\etc", 'a ".." segment'),
    ("../../../etc/passwd", 'a ".." segment'),
    ("/etc/passwd", "absolute path"),
    ("a\0b", "NUL"),
]


@pytest.mark.parametrize(("bad", "reason"), ESCAPES)
def test_ids_that_escape_the_base_are_refused(store_url: str, bad: str, reason: str) -> None:
    pattern = f"invalid state id {re.escape(statebox.core.errors.quoted(bad))}: "
    with pytest.raises(PathTraversalError, match=pattern) as caught:
        build_state_store_path(bad, StateType.WORKFLOWS)
    assert reason in str(caught.value)
    assert "a state id names a folder inside apps/appName/workflows/" in str(caught.value)
    if bad:
        assert "path traversal detected" in str(caught.value)
    # The SDK's PathTraversalError is a ValueError; this one is statebox's error too.
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidReferenceError)
    for call in (
        StateStore.get_state(bad, StateType.WORKFLOWS),
        StateStore.save_state("k", 1, bad, StateType.CREDENTIALS),
        StateStore.save_state_object(bad, {"k": 1}, StateType.WORKFLOWS),
    ):
        with pytest.raises(PathTraversalError, match=re.escape(reason)):
            run(call)
    with open_store(store_url) as engine:
        assert engine.keyspaces("custom").keyspaces == []  # nothing was written


@pytest.mark.parametrize("bad", ["a//b", "./x", "a/./b", "x/", " x", "x\t"])
def test_ids_that_are_no_statebox_key_are_refused(store_url: str, bad: str) -> None:
    # Not an escape (the SDK's path would stay in its folder), but the key rules would
    # change or refuse them: two ids would share an entry ("a//b" and "a/b").
    with pytest.raises(InvalidReferenceError, match="cannot be a statebox key"):
        run(StateStore.save_state("k", 1, bad, StateType.WORKFLOWS))


def test_ids_may_have_levels(store_url: str) -> None:
    run(StateStore.save_state("k", 1, "tenant/a/wf-1", StateType.WORKFLOWS))
    assert run(StateStore.get_state("tenant/a/wf-1", StateType.WORKFLOWS)) == {"k": 1}
    assert build_state_store_path("tenant/a/wf-1", StateType.WORKFLOWS).endswith(
        "/workflows/tenant/a/wf-1/config.json"
    )
