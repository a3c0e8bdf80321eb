"""Leases as fences are authorized (issue #12 §5).

Fencing a write with a lease needs a read grant on that lease: a token without one can
neither fence with another team's lease nor learn its latest token (or whether it
exists) from the refusal — through every route that takes a fence. A NUL in a lease
holder is an invalid value (4xx) on every backend, PostgreSQL included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from statebox import InvalidValueError, StateStore

from .server_util import ServerProcess, running_server

OWNER = "owner-secret-0123456789"  # holds the lease "nightly", writes custom/a
INTRUDER = "intruder-secret-0123456789"  # writes custom/b, no lease grant at all
FENCER = "fencer-secret-0123456789"  # writes custom/b, may read lease "nightly"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("fencing")
    tokens = directory / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "name": "owner",
                        "secret": OWNER,
                        "grants": [
                            {"access": "write", "scope": "custom", "namespace": "a"},
                            {"access": "write", "scope": "lease", "namespace": "nightly"},
                        ],
                    },
                    {
                        "name": "intruder",
                        "secret": INTRUDER,
                        "grants": [{"access": "write", "scope": "custom", "namespace": "b"}],
                    },
                    {
                        "name": "fencer",
                        "secret": FENCER,
                        "grants": [
                            {"access": "write", "scope": "custom", "namespace": "b"},
                            {"access": "read", "scope": "lease", "namespace": "nightly"},
                        ],
                    },
                ]
            }
        )
    )
    with running_server(f"sqlite:///{directory / 'state.db'}", tokens=tokens) as srv:
        yield srv


def client(server: ServerProcess, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {secret}"}, timeout=30
    )


@pytest.fixture(scope="module")
def lease_token(server: ServerProcess) -> int:
    """The owner holds "nightly", acquired for the third time: its token is 3."""
    with client(server, OWNER) as owner:
        for _ in range(2):
            taken = owner.post("/v1/leases/acquire", json={"name": "nightly", "ttl": 600})
            assert taken.status_code == 200, taken.text
            owner.post(
                "/v1/leases/release",
                json={
                    "name": "nightly",
                    "holder": taken.json()["holder"],
                    "token": taken.json()["token"],
                },
            )
        taken = owner.post("/v1/leases/acquire", json={"name": "nightly", "ttl": 600})
        token: int = taken.json()["token"]
        assert token == 3
        return token


def _fenced_writes(lease: str, token: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that takes a fence, writing to custom/b."""
    fence = {"lease": lease, "token": token}
    return [
        ("PUT", "/v1/kv/custom/b/k", {"params": {"lease": lease, "token": token}, "json": 1}),
        ("DELETE", "/v1/kv/custom/b/k", {"params": {"lease": lease, "token": token}}),
        ("POST", "/v1/update/custom/b/k", {"json": {"merge": {"x": 1}, "fencing": fence}}),
        ("POST", "/v1/rollback/custom/b/k", {"json": {"version": 1, "fencing": fence}}),
        (
            "POST",
            "/v1/txn/custom/b",
            {"json": {"ops": [{"op": "set", "key": "k", "value": 1}], "fencing": fence}},
        ),
        (
            "POST",
            "/v1/txn/custom/b",
            {"json": {"ops": [{"op": "set", "key": "k", "value": 1, "fencing": fence}]}},
        ),
        # the list form a Python caller may use is authorized too (or refused as malformed)
        (
            "POST",
            "/v1/txn/custom/b",
            {"json": {"ops": [{"op": "set", "key": "k", "value": 1, "fencing": [lease, token]}]}},
        ),
        (
            "POST",
            "/v1/apply/custom/b",
            {"json": {"ops": [{"op": "set", "key": "k", "value": 1, "fencing": fence}]}},
        ),
        (
            "POST",
            "/v1/apply/custom/b",
            {"json": {"ops": [{"op": "delete", "key": "k", "fencing": [lease, token]}]}},
        ),
    ]


def test_a_token_cannot_fence_with_a_lease_it_cannot_read(
    server: ServerProcess, lease_token: int
) -> None:
    with client(server, INTRUDER) as intruder:
        for method, path, options in _fenced_writes("nightly", lease_token):
            answer = intruder.request(method, path, **options)
            assert answer.status_code in (400, 403), (method, path, answer.text)
            if answer.status_code == 400:  # the list form over HTTP: malformed, not run
                assert answer.json()["error"]["kind"] == "invalid_request"
            else:
                assert answer.json()["error"]["kind"] == "permission_denied", answer.text
        # nothing was written by any of them
        assert intruder.get("/v1/kv/custom/b/k").json()["found"] is False


def test_the_refusal_tells_nothing_about_the_lease(server: ServerProcess, lease_token: int) -> None:
    with client(server, INTRUDER) as intruder:
        stale = intruder.put("/v1/kv/custom/b/k", params={"lease": "nightly", "token": 1}, json=1)
        ghost = intruder.put("/v1/kv/custom/b/k", params={"lease": "no-such", "token": 1}, json=1)
        right = intruder.put(
            "/v1/kv/custom/b/k", params={"lease": "nightly", "token": lease_token}, json=1
        )
    # Stale, current or never acquired: the same refusal, no token, no holder.
    assert stale.status_code == ghost.status_code == right.status_code == 403
    assert stale.json() == right.json()
    assert stale.text.replace("nightly", "X") == ghost.text.replace("no-such", "X")
    for answer in (stale, ghost, right):
        text = answer.text
        assert str(lease_token) not in text and "owner" not in text and "latest" not in text


def test_a_read_grant_on_the_lease_allows_fencing(server: ServerProcess, lease_token: int) -> None:
    with client(server, FENCER) as fencer:
        ok = fencer.put(
            "/v1/kv/custom/b/f", params={"lease": "nightly", "token": lease_token}, json=1
        )
        assert ok.status_code == 200, ok.text
        stale = fencer.put("/v1/kv/custom/b/f", params={"lease": "nightly", "token": 1}, json=2)
        assert stale.status_code == 409 and stale.json()["error"]["kind"] == "fencing"
        # it may read the lease, so the refusal may say what the latest token is
        assert str(lease_token) in stale.json()["error"]["message"]
        other = fencer.put("/v1/kv/custom/b/f", params={"lease": "other", "token": 1}, json=3)
        assert other.status_code == 403
        assert fencer.get("/v1/kv/custom/b/f").json()["value"] == 1


# --- a NUL in a lease holder, on every backend --------------------------------------------


def test_a_nul_in_a_holder_is_an_invalid_value(store: StateStore) -> None:
    with pytest.raises(InvalidValueError, match="NUL"):
        store.acquire_lease("job", 10, holder="worker\x00one")
    with pytest.raises(InvalidValueError, match="Unicode"):
        store.acquire_lease("job", 10, holder="worker\udc80")
    lease = store.acquire_lease("job", 10, holder="worker")
    with pytest.raises(InvalidValueError, match="NUL"):
        store.renew_lease("job", 10, token=lease.token, holder="worker\x00")
    with pytest.raises(InvalidValueError, match="NUL"):
        store.release_lease("job", token=lease.token, holder="\x00")
    held = store.get_lease("job")
    assert held is not None and held.holder == "worker"  # still the one that was held


def test_a_nul_in_a_holder_over_http_is_422(server: ServerProcess) -> None:
    with client(server, OWNER) as owner:
        answer = owner.post(
            "/v1/leases/acquire", json={"name": "nightly", "ttl": 10, "holder": "a\u0000b"}
        )
    assert answer.status_code == 422 and "NUL" in answer.json()["error"]["message"]
