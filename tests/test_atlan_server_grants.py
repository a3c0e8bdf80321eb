"""statebox.compat.atlan through a statebox server with tokens: which grants a token needs
(docs/atlan.md, "Through a statebox server").

Every call but ``save_state_object(..., replace=True)`` reads the stored object, which
the remote store does through the server's entries API: on a secret keyspace that needs
a grant with ``reveal: true`` (else ``PermissionDeniedError``). The credentials
namespace is always secret; a workflows namespace only when the server declares it so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import PermissionDeniedError
from statebox.compat.atlan import StateStore, StateType

from .server_util import ServerProcess, running_server
from .test_atlan_api import new_secret_key

WORKER = "atlan-worker-secret-0123456789"  # write on the app's namespaces, reveal too
BLIND = "atlan-blind-secret-0123456789ab"  # write on the app's namespaces, no reveal

TOKENS = f"""
tokens:
  - name: worker
    secret: {WORKER}
    grants:
      - {{access: write, scope: custom, namespace: "atlan-*", reveal: true}}
  - name: blind
    secret: {BLIND}
    grants:
      - {{access: write, scope: custom, namespace: "atlan-*"}}
"""
CREDS = {"host": "db.example.com", "password": "s3cr3t-pw"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    where = tmp_path_factory.mktemp("atlan-grants")
    tokens = where / "tokens.yaml"
    tokens.write_text(TOKENS)
    env = {  # the server seals: its key, and one app's workflows declared secret too
        "STATEBOX_SECRET_KEY": new_secret_key(),
        "STATEBOX_SECRET_NAMESPACES": "custom/atlan-sealedApp-workflows",
    }
    with running_server(f"sqlite:///{where / 'state.db'}", tokens=tokens, env=env) as srv:
        yield srv


@pytest.fixture
def as_token(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv("STATEBOX_STORE", server.url)
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STATEBOX_SECRET_KEY", raising=False)  # the client holds no key

    def use(token: str, app: str = "appName") -> None:
        StateStore.close()  # the next call opens the store with this token
        monkeypatch.setenv("STATEBOX_TOKEN", token)
        monkeypatch.setenv("ATLAN_APPLICATION_NAME", app)

    yield use
    StateStore.close()


def test_a_token_with_reveal_on_the_credentials_uses_every_call(as_token: Any) -> None:
    as_token(WORKER)
    run(StateStore.save_state_object("wf-1", {"status": "running"}, StateType.WORKFLOWS))
    run(StateStore.save_state("progress", 75, "wf-1", StateType.WORKFLOWS))
    assert run(StateStore.get_state("wf-1", StateType.WORKFLOWS)) == {
        "status": "running",
        "progress": 75,
    }
    run(StateStore.save_state_object("db-cred-1", CREDS, StateType.CREDENTIALS))
    run(StateStore.save_state("port", 5432, "db-cred-1", StateType.CREDENTIALS))
    got = run(StateStore.get_state("db-cred-1", StateType.CREDENTIALS))
    assert got == {**CREDS, "port": 5432}


def test_without_reveal_only_the_secret_namespaces_are_refused(as_token: Any) -> None:
    as_token(BLIND)  # workflows are not secret here: write is enough
    run(StateStore.save_state_object("wf-2", {"status": "queued"}, StateType.WORKFLOWS))
    run(StateStore.save_state("progress", 10, "wf-2", StateType.WORKFLOWS))
    assert run(StateStore.get_state("wf-2", StateType.WORKFLOWS)) == {
        "status": "queued",
        "progress": 10,
    }
    # credentials are always secret: every call that reads them needs reveal
    for call in (
        StateStore.get_state("db-cred-2", StateType.CREDENTIALS),
        StateStore.save_state("user", "svc", "db-cred-2", StateType.CREDENTIALS),
        StateStore.save_state_object("db-cred-2", CREDS, StateType.CREDENTIALS),
    ):
        with pytest.raises(PermissionDeniedError, match="reveal"):
            run(call)
    # a whole write reads nothing
    saved = StateStore.save_state_object("db-cred-2", CREDS, StateType.CREDENTIALS, replace=True)
    assert run(saved) == CREDS
    as_token(BLIND, app="sealedApp")  # the server declares this app's workflows secret
    with pytest.raises(PermissionDeniedError, match="reveal"):
        run(StateStore.save_state("progress", 10, "wf-3", StateType.WORKFLOWS))
