"""Server details held in place: the engines it keeps, the durations it accepts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from statebox import RunContext, open_store
from statebox.backends.memory import MemoryBackend
from statebox.core.clock import ManualClock
from statebox.core.params import MAX_SECONDS as MAX_DURATION_SECONDS
from statebox.server.config import ServerConfig
from statebox.server.state import ServerState

from .server_util import ServerProcess, running_server


def test_the_engines_the_server_keeps_never_purge_as_they_write() -> None:
    """A kept engine's own purge every few hundred writes would run inside a group
    commit on the event loop; the server purges on its own schedule instead."""
    clock = ManualClock()
    backend = MemoryBackend("memory://")
    state = ServerState("memory://", backend, ServerConfig(), clock)
    store = state.store_for(RunContext(dag="d"))
    store.set("old", 1, ttl=1)
    clock.advance(2)
    for i in range(300):  # past the engine's default purge_every (256)
        store.set("k", i)
    assert state.store_for(RunContext(dag="d")) is store
    assert backend.purge_expired(clock.now_ns()) == 1  # still there for the server's purge


def test_reset_gives_a_fresh_store_and_forgets_the_engines_of_the_old() -> None:
    state = ServerState("memory://", MemoryBackend("memory://"), ServerConfig(), ManualClock())
    before = state.store_for(RunContext(dag="d"))
    before.set("k", 1)
    state.reset()
    after = state.store_for(RunContext(dag="d"))
    assert after is not before and after.backend is state.backend
    assert state.writer is None and state.inline_reads
    assert not after.get("k").found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("server-state") / "state.db"
    with running_server(f"sqlite:///{db}") as srv:
        yield srv


def test_http_accepts_every_ttl_the_engine_accepts(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to the engine's bound (100 years), through the API and the remote store."""
    long = MAX_DURATION_SECONDS - 1000  # over the 10**9 s the wire once refused
    with open_store(server.url) as remote:
        assert remote.set("long", 1, ttl=long, scope="global", namespace="durations").version == 1
        assert remote.get("long", scope="global", namespace="durations").found
        assert remote.acquire_lease("long-lease", ttl=long).token >= 1
    client = server.client
    answer = client.put("/v1/kv/global/durations/put", json=1, params={"ttl": long})
    assert answer.status_code == 200
    too_long = client.put(
        "/v1/kv/global/durations/put", json=1, params={"ttl": MAX_DURATION_SECONDS + 1}
    )
    assert too_long.status_code == 400
