"""The object-store binding, the secrets API and the metadata answer of the Dapr face
(statebox.dapr.bindings_api, secrets_api, metadata_api), on real SQLite stores: the Atlan
SDK 2.8's object paths and requests, exactly as its ObjectStore sends them
(application_sdk/services/objectstore.py: metadata key/fileName/blobName, data
``{"key": K}`` on get and delete, ``{"prefix": P}`` on list), its credentials sealed at
rest, and the reveal grant every Dapr read of a secret keyspace needs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from statebox import StateStore
from statebox.core.model import Keyspace
from statebox.dapr.bindings_api import invoke_binding
from statebox.dapr.components import load_components
from statebox.dapr.errors import DaprError
from statebox.dapr.metadata_api import metadata
from statebox.dapr.secrets_api import get_bulk_secret, get_secret
from statebox.dapr.state_api import DaprContext

from .backends import new_secret_key
from .conftest import make_store
from .dapr_http_support import STATESTORE_YAML as SEED_STATESTORE
from .dapr_support import StoreCaller
from .test_dapr_components import component

T = TypeVar("T")
SECRET = "hunter2-s3cr3t-Pa55"
OBJECTS = Keyspace("custom", "dapr-objectstore")
CREDENTIALS = Keyspace("custom", "dapr-objectstore-credentials")
SECRETS = Keyspace("custom", "dapr-secretstore")
APP = "persistent-artifacts/apps/default"


def run(work: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await work

    return asyncio.run(wrapped())


def failure(work: Awaitable[object]) -> DaprError:
    with pytest.raises(DaprError) as caught:
        run(work)
    return caught.value


@pytest.fixture
def dapr(tmp_path: Path) -> DaprContext:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "statestore.yaml").write_text(SEED_STATESTORE)
    meta = "  metadata:\n    - name: rootPath\n      value: ./local/dapr/objectstore\n"
    (folder / "objectstore.yaml").write_text(
        component("objectstore", "bindings.localstorage", meta)
    )
    (folder / "secretstore.yaml").write_text(component("secretstore", "secretstores.local.file"))
    (folder / "pubsub.yaml").write_text(component("pubsub", "pubsub.in-memory"))
    return DaprContext(load_components(folder), "myapp")


@pytest.fixture
def store(
    tmp_path: Path, dapr: DaprContext, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StateStore]:
    """A sealed SQLite store whose secret keyspaces are the components' (as ``serve``
    declares them), under a fresh key from the environment."""
    policy = " ".join(f"{k.scope}/{k.namespace}" for k in dapr.components.secret_keyspaces())
    assert policy == "custom/dapr-objectstore-credentials custom/dapr-secretstore"
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", policy)
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
    with make_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def file_metadata(key: str) -> dict[str, str]:
    return {"key": key, "fileName": key, "blobName": key}  # ObjectStore._create_file_metadata


def atlan_get(caller: StoreCaller, dapr: DaprContext, key: str) -> bytes:
    data = json.dumps({"key": key}).encode()
    return run(invoke_binding(caller, dapr, "objectstore", "get", data, file_metadata(key))).data


def atlan_create(caller: StoreCaller, dapr: DaprContext, key: str, content: bytes) -> None:
    run(invoke_binding(caller, dapr, "objectstore", "create", content, file_metadata(key)))


def atlan_list(caller: StoreCaller, dapr: DaprContext, prefix: str) -> list[str]:
    query = prefix.rstrip("/") + "/"
    data = json.dumps({"prefix": query}).encode()
    meta = {"prefix": query, "fileName": query}
    answer = run(invoke_binding(caller, dapr, "objectstore", "list", data, meta)).data
    names = json.loads(answer)
    assert isinstance(names, list)
    return names


# --- the object store --------------------------------------------------------------------


def test_atlan_state_objects_round_trip(store: StateStore, dapr: DaprContext) -> None:
    caller = StoreCaller(store)
    path = f"{APP}/workflows/wf-1/config.json"
    # get_state of a new id: the binding fails, which the SDK takes as "no state".
    missing = failure(
        invoke_binding(caller, dapr, "objectstore", "get", b'{"key": "x"}', file_metadata(path))
    )
    assert (missing.code, missing.http_status, missing.grpc_status) == (
        "ERR_INVOKE_OUTPUT_BINDING",
        500,
        "INTERNAL",
    )
    assert missing.message == f"error invoking output binding objectstore: object not found: {path}"
    atlan_create(caller, dapr, path, json.dumps({"status": "running", "progress": 50}).encode())
    assert json.loads(atlan_get(caller, dapr, path)) == {"status": "running", "progress": 50}
    entry = store.get(path, scope="custom", namespace="dapr-objectstore")
    assert entry.value == {"progress": 50, "status": "running"}  # statebox JSON: get, history
    run(
        invoke_binding(
            caller, dapr, "objectstore", "delete", json.dumps({"key": path}).encode(),
            file_metadata(path),
        )
    )  # fmt: skip
    assert not store.get(path, scope="custom", namespace="dapr-objectstore").found
    again = failure(invoke_binding(caller, dapr, "objectstore", "delete", b"", file_metadata(path)))
    assert again.code == "ERR_INVOKE_OUTPUT_BINDING"


def test_objects_are_named_by_metadata_or_the_data_key(
    store: StateStore, dapr: DaprContext
) -> None:
    caller = StoreCaller(store)
    run(invoke_binding(caller, dapr, "objectstore", "create", b"abc", {"blobName": "b.txt"}))
    assert (
        run(invoke_binding(caller, dapr, "objectstore", "get", b'{"key": "b.txt"}', {})).data
        == b"abc"
    )
    made = run(invoke_binding(caller, dapr, "objectstore", "create", b"\x00\xff", {}))
    name = made.metadata["key"]
    assert json.loads(made.data) == {"fileName": name} and len(name) == 36  # a UUID
    assert (
        run(invoke_binding(caller, dapr, "objectstore", "get", b"", {"name": name})).data
        == b"\x00\xff"
    )
    nameless = failure(invoke_binding(caller, dapr, "objectstore", "get", b"", {}))
    assert "required metadata 'key' missing" in nameless.message


def test_operations_dapr_does_not_know_fail_as_in_dapr(
    store: StateStore, dapr: DaprContext
) -> None:
    caller = StoreCaller(store)
    bad = failure(invoke_binding(caller, dapr, "objectstore", "presign", b"", {"key": "k"}))
    assert bad.message == (
        "error invoking output binding objectstore: binding objectstore does not support "
        "operation presign. supported operations:create get delete list"
    )
    empty = failure(invoke_binding(caller, dapr, "objectstore", "", b"", {}))
    assert "operation field is missing from request" in empty.message
    unserved = failure(invoke_binding(caller, dapr, "pubsub", "create", b"", {}))
    assert "is declared but statebox does not serve it" in unserved.message


def test_list_answers_the_names_under_the_prefix(store: StateStore, dapr: DaprContext) -> None:
    caller = StoreCaller(store)
    names = [
        f"{APP}/workflows/a/config.json",
        f"{APP}/workflows/b/config.json",
        f"{APP}/credentials/c/config.json",
        f"{APP}/workflows_archive/z.json",
        "odd name/ with//slashes",
    ]
    for name in names:
        atlan_create(caller, dapr, name, b"{}")
    assert atlan_list(caller, dapr, f"{APP}/workflows") == names[:2]
    assert atlan_list(caller, dapr, APP) == sorted(names[:4])
    everything = json.loads(run(invoke_binding(caller, dapr, "objectstore", "list", b"", {})).data)
    assert everything == sorted(names)
    assert atlan_list(caller, dapr, "odd name") == ["odd name/ with//slashes"]
    # Without a grant on the credentials keyspace, its names are left out.
    partial = StoreCaller(store, read=[OBJECTS])
    assert atlan_list(partial, dapr, APP) == sorted(names[:2] + names[3:4])


# --- credentials: sealed at rest, revealed only with the grant ----------------------------


def sqlite_bytes(db: Path) -> bytes:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_credentials_go_to_the_secret_keyspace_and_are_sealed(
    tmp_path: Path, store: StateStore, dapr: DaprContext
) -> None:
    caller = StoreCaller(store)
    creds = f"{APP}/credentials/guid-1/config.json"
    atlan_create(caller, dapr, creds, json.dumps({"host": "db", "password": SECRET}).encode())
    control = f"{APP}/workflows/wf/config.json"
    atlan_create(caller, dapr, control, json.dumps({"note": "visible-control-value"}).encode())
    assert store.get(creds, scope="custom", namespace="dapr-objectstore-credentials").found
    assert not store.get(creds, scope="custom", namespace="dapr-objectstore").found
    assert json.loads(atlan_get(caller, dapr, creds))["password"] == SECRET
    raw = sqlite_bytes(tmp_path / "state.db")
    assert b"visible-control-value" in raw  # the control: plaintext is found when there
    assert SECRET.encode() not in raw

    blind = StoreCaller(store, reveal=[])
    denied = failure(invoke_binding(blind, dapr, "objectstore", "get", b"", file_metadata(creds)))
    assert (denied.code, denied.http_status) == ("ERR_PERMISSION_DENIED", 403)
    assert json.loads(atlan_get(blind, dapr, control)) == {"note": "visible-control-value"}
    assert ("reveal", CREDENTIALS) in caller.asked


# --- secrets -------------------------------------------------------------------------------


def test_get_secret_and_bulk(store: StateStore, dapr: DaprContext) -> None:
    store.set(
        "guid-1", {"password": SECRET, "user": "svc"}, scope="custom", namespace="dapr-secretstore"
    )
    store.set("token", "abc", scope="custom", namespace="dapr-secretstore")
    caller = StoreCaller(store)
    assert run(get_secret(caller, dapr, "secretstore", "guid-1", {})) == {
        "password": SECRET,
        "user": "svc",
    }
    assert run(get_secret(caller, dapr, "secretstore", "token", {})) == {"token": "abc"}
    missing = failure(get_secret(caller, dapr, "secretstore", "nope", {}))
    assert (missing.code, missing.http_status, missing.grpc_status) == (
        "ERR_SECRET_GET",
        500,
        "INTERNAL",
    )
    assert missing.message == (
        "failed getting secret with key nope from secret store secretstore: secret nope not found"
    )
    assert run(get_bulk_secret(caller, dapr, "secretstore", {})) == {
        "guid-1": {"password": SECRET, "user": "svc"},
        "token": {"token": "abc"},
    }


def test_a_secret_that_is_no_map_of_strings_is_refused_without_its_value(
    store: StateStore, dapr: DaprContext
) -> None:
    store.set("n", {"pin": 123456789}, scope="custom", namespace="dapr-secretstore")
    error = failure(get_secret(StoreCaller(store), dapr, "secretstore", "n", {}))
    assert error.code == "ERR_SECRET_GET" and "key n" in error.message
    assert "123456789" not in error.message
    assert (
        failure(get_bulk_secret(StoreCaller(store), dapr, "secretstore", {})).code
        == "ERR_SECRET_GET"
    )


def test_secrets_need_read_and_reveal(store: StateStore, dapr: DaprContext) -> None:
    store.set("k", "v", scope="custom", namespace="dapr-secretstore")
    for caller in (StoreCaller(store, reveal=[]), StoreCaller(store, read=[])):
        for work in (
            get_secret(caller, dapr, "secretstore", "k", {}),
            get_bulk_secret(caller, dapr, "secretstore", {}),
        ):
            error = failure(work)
            assert (error.code, error.http_status) == ("ERR_PERMISSION_DENIED", 403)
    unknown = failure(get_secret(StoreCaller(store), dapr, "vault", "k", {}))
    assert (unknown.code, unknown.http_status) == ("ERR_SECRET_STORE_NOT_FOUND", 401)


def test_the_atlan_credential_lookup(store: StateStore, dapr: DaprContext) -> None:
    """SecretStore.get_credentials (2.8): the CREDENTIALS state object, then the secret of
    the same guid, merged (credentialSource "direct")."""
    caller = StoreCaller(store)
    guid = "3f1c"
    path = f"{APP}/credentials/{guid}/config.json"
    atlan_create(
        caller, dapr, path, json.dumps({"credentialSource": "direct", "host": "h"}).encode()
    )
    store.set(guid, {"password": SECRET}, scope="custom", namespace="dapr-secretstore")
    config = json.loads(atlan_get(caller, dapr, path))
    config.update(run(get_secret(caller, dapr, "secretstore", guid, {})))
    assert config == {"credentialSource": "direct", "host": "h", "password": SECRET}


# --- metadata ------------------------------------------------------------------------------


def test_metadata_lists_the_served_components(dapr: DaprContext) -> None:
    shown = metadata(dapr)
    assert shown["id"] == "myapp"
    assert shown["runtimeVersion"].startswith("statebox")
    assert shown["extended"]["daprRuntimeVersion"] == shown["runtimeVersion"]
    assert sorted(shown["components"], key=lambda c: c["name"]) == [
        {
            "name": "objectstore",
            "type": "bindings.localstorage",
            "version": "v1",
            "capabilities": ["OUTPUT_BINDING"],
        },
        {"name": "secretstore", "type": "secretstores.local.file", "version": "v1"},
        {
            "name": "statestore",
            "type": "state.sqlite",
            "version": "v1",
            "capabilities": ["ETAG", "TRANSACTIONAL", "TTL"],
        },
    ]
    json.dumps(shown)  # the HTTP body as it is
