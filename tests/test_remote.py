"""The remote store (``http://…``, SPEC §6): rendezvous routing over real coordinators,
and what happens when one cannot be reached.

Three real servers, each over a store of its own, so where a keyspace (or a lease) lives
can be read off the servers themselves; they run in test mode, so the client's manual
clock (``X-Statebox-Now``) drives TTLs and leases on all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from itertools import permutations
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox import (
    BackendUnavailableError,
    ConfigurationError,
    Keyspace,
    ManualClock,
    RunContext,
    StateStore,
    open_store,
)
from statebox.backends._routing import choose, score
from statebox.backends.http import parse_coordinators

from .server_util import ServerProcess, free_port, running_server, start_server

CONTEXT = RunContext(dag="remote", run_id="r1", step="s1")
NAMESPACES = [f"tenant-{i}" for i in range(16)]


# --- the routing rule ----------------------------------------------------------------


def reference_owner(routing_key: str, ids: list[str]) -> str:
    """SPEC §6 spelled out independently: max big-endian SHA-256, ties to the smaller id."""
    scored = [
        (int.from_bytes(hashlib.sha256((routing_key + "\0" + i).encode()).digest(), "big"), i)
        for i in ids
    ]
    best = max(value for value, _ in scored)
    return min(i for value, i in scored if value == best)


ids_strategy = st.lists(
    st.text(min_size=1, max_size=12).map(lambda s: f"http://{s}"), min_size=1, max_size=6,
    unique=True,
)  # fmt: skip


@given(ids=ids_strategy, scope=st.sampled_from(["dag", "global", "custom"]), ns=st.text())
def test_routing_is_the_spec_rule_in_any_order(ids: list[str], scope: str, ns: str) -> None:
    key = Keyspace(scope, ns).routing_key
    owner = choose(key, ids)
    assert owner == reference_owner(key, ids)
    assert choose(key, list(reversed(ids))) == owner


@given(ids=ids_strategy, ns=st.text())
def test_removing_a_coordinator_that_does_not_own_a_keyspace_keeps_it(
    ids: list[str], ns: str
) -> None:
    key = Keyspace("dag", ns).routing_key
    owner = choose(key, ids)
    for other in ids:
        if other != owner:
            assert choose(key, [i for i in ids if i != other]) == owner


def test_scores_are_sha256_of_key_nul_id() -> None:
    assert score("dag\0feed", "http://a:1") == hashlib.sha256(b"dag\0feed\0http://a:1").digest()
    # Known answers, written down once (from the SPEC §6 rule by hand, as reference_owner
    # spells it), so a change of the rule — or of reference_owner — can never go unnoticed.
    assert score("dag\0feed", "http://a:1").hex() == (
        "d2f6a310e0c625f769a097eb789a821a1af878d0e3dfef8a35e9f44dbfeee9e5"
    )
    ids = ["http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"]
    owners = [choose(Keyspace("dag", f"n{i}").routing_key, ids)[-1] for i in range(8)]
    assert owners == [reference_owner(f"dag\0n{i}", ids)[-1] for i in range(8)]
    assert "".join(owners) == "32312212"


@pytest.mark.parametrize(
    "url",
    ["ftp://a:1", "http://", "http://a:1,http://a:1", "http://a:1?x=1", "http://a:1,,http://b:2"],
)
def test_bad_coordinator_lists_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="remote store URL"):
        parse_coordinators(url)


# --- three real coordinators -----------------------------------------------------------


@pytest.fixture(scope="module")
def trio() -> Iterator[list[ServerProcess]]:
    servers = [start_server("memory://", test_mode=True) for _ in range(3)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def holders(trio: list[ServerProcess], ns: str) -> list[str]:
    """The coordinators whose own store has key ``k`` in custom/``ns``."""
    return [s.url for s in trio if s.client.get(f"/v1/kv/custom/{ns}/k").json()["found"] is True]


def test_the_same_keyspace_goes_to_the_same_coordinator_from_any_client(
    trio: list[ServerProcess],
) -> None:
    urls = [s.url for s in trio]
    clients = [open_store(",".join(order), context=CONTEXT) for order in permutations(urls)]
    try:
        writer, *readers = clients
        for ns in NAMESPACES:
            writer.set("k", ns, scope="custom", namespace=ns)
        owners = {}
        for ns in NAMESPACES:
            owners[ns] = reference_owner(Keyspace("custom", ns).routing_key, urls)
            assert holders(trio, ns) == [owners[ns]]  # exactly one coordinator has it
            for reader in readers:  # every other order of the list finds it there
                assert reader.get("k", scope="custom", namespace=ns).value == ns
        assert len(set(owners.values())) > 1  # the keyspaces really spread out
    finally:
        for client in clients:
            client.close()


def test_removing_a_non_owner_does_not_move_a_keyspace(trio: list[ServerProcess]) -> None:
    urls = [s.url for s in trio]
    with open_store(",".join(urls), context=CONTEXT) as full:
        for ns in NAMESPACES:
            full.set("k", f"kept-{ns}", scope="custom", namespace=ns)
    for ns in NAMESPACES:
        owner = reference_owner(Keyspace("custom", ns).routing_key, urls)
        for gone in (u for u in urls if u != owner):
            rest = ",".join(u for u in urls if u != gone)
            with open_store(rest, context=CONTEXT) as fewer:
                assert fewer.get("k", scope="custom", namespace=ns).value == f"kept-{ns}"


def lease_owner(name: str, urls: list[str]) -> str:
    """SPEC §6: a lease is routed as if it were the keyspace (``lease``, name)."""
    return reference_owner("lease\0" + name, urls)


def test_a_lease_lives_on_the_coordinator_its_own_routing_key_picks(
    trio: list[ServerProcess],
) -> None:
    urls = [s.url for s in trio]
    candidates = [f"job-{i}" for i in range(1000)]
    # One lease per coordinator, each named so that routing it by its bare name (without
    # the ``lease`` part of its key) would send it to another coordinator.
    names = [
        next(n for n in candidates if lease_owner(n, urls) == url != reference_owner(n, urls))
        for url in urls
    ]
    clock = ManualClock()
    with open_store(",".join(urls), context=CONTEXT, clock=clock) as store:
        for name in names:
            acquired = store.acquire_lease(name, 30, holder=f"holder-{name}")
            seen = store.get_lease(name)  # the store reads it where it wrote it
            assert seen is not None and (seen.holder, seen.token) == (acquired.holder, 1)
    now = {"X-Statebox-Now": str(clock.now_ns())}
    for name in names:
        owner = lease_owner(name, urls)
        for server in trio:
            got = server.client.get(f"/v1/leases/{name}", headers=now)
            if server.url == owner:
                assert got.status_code == 200, got.text
                assert (got.json()["holder"], got.json()["token"]) == (f"holder-{name}", 1)
            else:  # never acquired on any other coordinator
                assert got.status_code == 404, (server.url, got.text)


def test_purge_expired_asks_every_coordinator_and_adds_up(trio: list[ServerProcess]) -> None:
    urls = [s.url for s in trio]
    for server in trio:
        server.reset()
    clock = ManualClock()
    # 1, 2 and 3 entries that expire, one keyspace on each coordinator: only the sum over
    # all three is 6, and each coordinator's own count shows whether it was asked.
    expiring = dict(zip(urls, (1, 2, 3), strict=True))
    spaces = {
        url: next(
            ns
            for ns in (f"ttl-{i}" for i in range(1000))
            if reference_owner(Keyspace("custom", ns).routing_key, urls) == url
        )
        for url in urls
    }

    def now() -> dict[str, str]:
        return {"X-Statebox-Now": str(clock.now_ns())}

    with open_store(",".join(urls), context=CONTEXT, clock=clock, purge_every=0) as store:
        for url, ns in spaces.items():
            for k in range(expiring[url]):
                store.set(f"k{k}", k, scope="custom", namespace=ns, ttl=10)
            store.set("stays", True, scope="custom", namespace=ns)  # no ttl: never purged
        for server in trio:  # each entry is where its keyspace's owner is
            ns = spaces[server.url]
            got = server.client.get(f"/v1/kv/custom/{ns}/k0", headers=now())
            assert got.json()["found"] is True, got.text
        assert store.purge_expired() == 0  # nothing has expired yet
        clock.advance(11)
        assert store.purge_expired() == 6
        assert store.purge_expired() == 0
        for ns in spaces.values():
            assert store.get("stays", scope="custom", namespace=ns).value is True
    for server in trio:  # each coordinator was purged: nothing is left for it to purge
        left = server.client.post("/v1/purge", json={"limit": 1000}, headers=now())
        assert left.status_code == 200, left.text
        assert left.json()["purged"] == 0


# --- unreachable coordinators ----------------------------------------------------------


def test_a_write_to_a_stopped_owner_fails_and_goes_nowhere_else() -> None:
    live = start_server("memory://")
    dead = start_server("memory://")
    try:
        urls = [live.url, dead.url]
        ns = next(
            n for n in NAMESPACES if choose(Keyspace("custom", n).routing_key, urls) == dead.url
        )
        dead.stop()
        with open_store(",".join(urls), context=CONTEXT) as store:
            with pytest.raises(BackendUnavailableError, match="the write was not sent"):
                store.set("k", 1, scope="custom", namespace=ns)
            with pytest.raises(BackendUnavailableError, match="tried twice"):
                store.get("k", scope="custom", namespace=ns)
        # never retried on the coordinator that was up
        assert live.client.get(f"/v1/kv/custom/{ns}/k").json()["found"] is False
    finally:
        live.stop()
        dead.stop()


class DroppingProxy:
    """A loopback TCP proxy that cuts its first ``drops`` connections after reading the
    request, and relays every later one to ``target``."""

    def __init__(self, target: str, drops: int) -> None:
        parts = httpx.URL(target)
        self.target = (parts.host, parts.port)
        self.drops = drops
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.drops:
                conn.settimeout(5)
                try:
                    conn.recv(65536)  # the request arrives...
                finally:
                    conn.close()  # ...and the connection dies without an answer
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("remote") / "state.db"
    with running_server(f"sqlite:///{db}?synchronous=NORMAL") as server:
        yield server


def through(proxy: DroppingProxy) -> StateStore:
    return open_store(proxy.url, context=CONTEXT)


def test_a_read_is_retried_once_on_the_same_coordinator(backing: ServerProcess) -> None:
    backing.client.put("/v1/kv/custom/retry/k", content=b'"there"')
    proxy = DroppingProxy(backing.url, drops=1)
    try:
        with through(proxy) as store:
            assert store.get("k", scope="custom", namespace="retry").value == "there"
        assert proxy.accepted == 2  # the dropped attempt and the retry
    finally:
        proxy.close()
    twice = DroppingProxy(backing.url, drops=2)
    try:
        with through(twice) as store, pytest.raises(BackendUnavailableError, match="tried twice"):
            store.get("k", scope="custom", namespace="retry")
        assert twice.accepted == 2  # one retry, no more
    finally:
        twice.close()


def test_a_write_that_loses_its_connection_is_reported_not_retried(
    backing: ServerProcess,
) -> None:
    proxy = DroppingProxy(backing.url, drops=1)
    try:
        with through(proxy) as store:
            with pytest.raises(BackendUnavailableError, match="may or may not have been applied"):
                store.set("k", "lost", scope="custom", namespace="no-retry")
            assert proxy.accepted == 1  # not sent again
            # the next request uses a new connection and works
            assert store.set("k", "kept", scope="custom", namespace="no-retry").version == 1
    finally:
        proxy.close()


def test_a_coordinator_that_never_listened(tmp_path: Path) -> None:
    with open_store(f"http://127.0.0.1:{free_port()}", context=CONTEXT) as store:
        with pytest.raises(BackendUnavailableError, match="unreachable"):
            store.get("k", scope="global")
        with pytest.raises(BackendUnavailableError, match="not sent"):
            store.set("k", 1, scope="global")
