"""``http://host:port[,http://host2:port…]`` — the remote store: a statebox server as a backend.

Each contract method is one request to the server's entries API (``/v1/entries``,
``/v1/apply``, ``/v1/records``, ``/v1/changes``, ``/v1/leases``), so a
:class:`~statebox.StateStore` over a server behaves as one over the server's own store.

Several coordinators (comma-separated URLs): each keyspace goes to the coordinator that
rendezvous hashing picks (:mod:`statebox.backends._routing`); a coordinator's id is its
URL exactly as written, so write the list the same way on every worker (the order does
not matter).

Failures: a read that cannot reach its coordinator is tried once more on the same one;
a write that cannot is reported as :class:`~statebox.errors.BackendUnavailableError` and
never retried, here or on another coordinator — it may or may not have been applied, and
a second coordinator would break the one-owner-per-keyspace rule. ``STATEBOX_TOKEN`` is
sent as the bearer token. The client's clock travels as ``X-Statebox-Now``; a server uses
it only in test mode, else its own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from ..errors import BackendUnavailableError, ConfigurationError, NotFoundError, StateboxError
from ..model import Keyspace
from ..results import EmbeddedJSON, dumps_envelope
from ..server.wire import (
    NOW_HEADER,
    decode_entry,
    decode_lease,
    decode_record,
    error_from_body,
    format_seconds,
    loads_exact,
    updated_by_headers,
    value_fields,
)
from ._routing import choose, lease_routing_key
from .base import (
    Applied,
    Backend,
    Capabilities,
    Entry,
    HistoryRecord,
    Lease,
    Mutation,
    Put,
    WriteContext,
)

__all__ = ["HttpBackend", "parse_coordinators"]

#: Seconds to wait for an answer (a write may wait on a busy database server-side).
READ_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
#: The longest one long poll of ``wait_for_change`` asks the server to block.
WAIT_SLICE = 30.0


def parse_coordinators(url: str) -> list[str]:
    """The coordinator URLs of a store URL, as written (their ids)."""
    coordinators = [part.strip() for part in url.split(",")]
    for part in coordinators:
        parsed = urlsplit(part)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(
                f"invalid remote store URL {url!r}: each coordinator must be "
                "http://host:port or https://host:port, separated by commas"
            )
        if parsed.query or parsed.fragment:
            raise ConfigurationError(
                f"invalid remote store URL {url!r}: no query or fragment in {part!r}"
            )
    if len(set(coordinators)) != len(coordinators):
        raise ConfigurationError(f"invalid remote store URL {url!r}: a coordinator is repeated")
    return coordinators


def _segment(text: str) -> str:
    return quote(text, safe="")


def _key_path(key: str) -> str:
    return quote(key, safe="/")


def _operation(mutation: Mutation, now: int) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "set" if isinstance(mutation, Put) else "delete"}
    op["key"] = mutation.key
    if isinstance(mutation, Put):
        op.update(value_fields(mutation.value.data, mutation.value.content_type))
        if mutation.create_only:
            op["create_only"] = True
        if mutation.expires_at is not None:
            # Relative, exact to the ns: the server adds it to the time it writes at.
            op["ttl"] = EmbeddedJSON(format_seconds(mutation.expires_at - now))
    if mutation.expected_version is not None:
        op["expected_version"] = mutation.expected_version
    if mutation.fence is not None:
        op["fencing"] = {"lease": mutation.fence.lease, "token": mutation.fence.token}
    return op


class HttpBackend(Backend):
    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True, cross_machine=True, durable=True
    )

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.url = url
        self.coordinators = parse_coordinators(url)
        secret = token if token is not None else os.environ.get("STATEBOX_TOKEN", "")
        self._auth = {"authorization": f"Bearer {secret.strip()}"} if secret.strip() else {}
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._owners: dict[str, str] = {}

    # -- plumbing ----------------------------------------------------------------------

    def _owner(self, routing_key: str) -> str:
        owner = self._owners.get(routing_key)
        if owner is None:
            owner = choose(routing_key, self.coordinators)
            if len(self._owners) < 4096:
                self._owners[routing_key] = owner
        return owner

    def _client(self, coordinator: str) -> httpx.Client:
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours
            self._clients, self._pid = {}, os.getpid()
        client = self._clients.get(coordinator)
        if client is None:
            with self._lock:
                client = self._clients.get(coordinator)
                if client is None:
                    client = httpx.Client(
                        base_url=coordinator.rstrip("/"),
                        headers=self._auth,
                        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                        # Loading the CA bundle costs ~0.1 s: only https needs it.
                        verify=coordinator.startswith("https:"),
                    )
                    self._clients[coordinator] = client
        return client

    def _send(
        self,
        coordinator: str,
        method: str,
        path: str,
        *,
        write: bool,
        params: Mapping[str, str | int] | None = None,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        client = self._client(coordinator)
        extra = {"content-type": "application/json"} if body is not None else {}
        extra.update(headers or {})
        attempts = 1 if write else 2
        for attempt in range(attempts):
            try:
                return client.request(
                    method,
                    path,
                    params=params,
                    content=body.encode() if body is not None else None,
                    headers=extra,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    continue
                raise self._unreachable(coordinator, exc, write) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _unreachable(coordinator: str, exc: httpx.TransportError, write: bool) -> StateboxError:
        what = type(exc).__name__
        if not write:
            return BackendUnavailableError(
                f"statebox server {coordinator} is unreachable ({what}: {exc}); "
                "tried twice; check that it runs and the URL is right"
            )
        if isinstance(exc, httpx.ConnectError):
            outcome = "the write was not sent"
        else:
            outcome = "the write may or may not have been applied: read before retrying"
        return BackendUnavailableError(
            f"statebox server {coordinator} failed during a write ({what}: {exc}); {outcome}. "
            "It is not retried on another coordinator, which would break the one-owner rule"
        )

    def _json(self, response: httpx.Response, coordinator: str, *, exact: bool = False) -> Any:
        if response.status_code >= 400:
            raise error_from_body(response.status_code, response.content, coordinator)
        try:
            return loads_exact(response.content) if exact else json.loads(response.content)
        except ValueError as exc:
            raise BackendUnavailableError(
                f"statebox server {coordinator} sent a response that is not JSON: {exc}"
            ) from exc

    def _call(
        self,
        routing_key: str,
        method: str,
        path: str,
        *,
        write: bool,
        exact: bool = False,
        **options: Any,
    ) -> Any:
        coordinator = self._owner(routing_key)
        response = self._send(coordinator, method, path, write=write, **options)
        return self._json(response, coordinator, exact=exact)

    @staticmethod
    def _space(prefix: str, keyspace: Keyspace) -> str:
        return f"/v1/{prefix}/{_segment(keyspace.scope)}/{_segment(keyspace.namespace)}"

    # -- entries -----------------------------------------------------------------------

    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
        path = f"{self._space('entries', keyspace)}/{_key_path(key)}"
        try:
            data = self._call(
                keyspace.routing_key,
                "GET",
                path,
                write=False,
                exact=True,
                headers={NOW_HEADER: str(now)},
            )
        except NotFoundError:
            return None
        return decode_entry(data["entry"])

    def scan(
        self,
        keyspace: Keyspace,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        include_values: bool,
        now: int,
    ) -> list[Entry]:
        params: dict[str, str | int] = {"prefix": prefix, "limit": limit}
        if after is not None:
            params["after"] = after
        if include_values:
            params["include_values"] = "true"
        data = self._call(
            keyspace.routing_key,
            "GET",
            self._space("entries", keyspace),
            write=False,
            exact=include_values,
            params=params,
            headers={NOW_HEADER: str(now)},
        )
        return [decode_entry(item) for item in data["entries"]]

    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        body = dumps_envelope(
            {
                "ops": [_operation(m, ctx.now) for m in mutations],
                "history_limit": ctx.history_limit,
            }
        )
        headers = {NOW_HEADER: str(ctx.now), **updated_by_headers(ctx.updated_by)}
        data = self._call(
            keyspace.routing_key,
            "POST",
            self._space("apply", keyspace),
            write=True,
            exact=True,
            body=body,
            headers=headers,
        )
        written = {m.value.hash: m.value.data for m in mutations if isinstance(m, Put)}
        results = data["results"]
        if len(results) != len(mutations):
            raise BackendUnavailableError(
                f"statebox server answered {len(results)} results for {len(mutations)} operations"
            )
        return [
            Applied(
                None if r["previous"] is None else decode_entry(r["previous"]),
                None if r["current"] is None else decode_entry(r["current"], written),
            )
            for r in results
        ]

    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]:
        data = self._call(
            keyspace.routing_key,
            "GET",
            f"{self._space('records', keyspace)}/{_key_path(key)}",
            write=False,
            exact=True,
            params={"limit": limit},
        )
        return [decode_record(item) for item in data["records"]]

    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None:
        if version < 1:
            return None
        data = self._call(
            keyspace.routing_key,
            "GET",
            f"{self._space('records', keyspace)}/{_key_path(key)}",
            write=False,
            exact=True,
            params={"version": version},
        )
        records = data["records"]
        return decode_record(records[0]) if records else None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    # -- leases ------------------------------------------------------------------------

    def _lease_call(self, action: str, name: str, now: int, fields: dict[str, Any]) -> Any:
        return self._call(
            lease_routing_key(name),
            "POST",
            f"/v1/leases/{action}",
            write=True,
            body=dumps_envelope({"name": name, **fields}),
            headers={NOW_HEADER: str(now)},
        )

    def acquire_lease(self, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
        ttl = EmbeddedJSON(format_seconds(ttl_ns))
        return decode_lease(self._lease_call("acquire", name, now, {"ttl": ttl, "holder": holder}))

    def renew_lease(self, name: str, holder: str, token: int, ttl_ns: int, now: int) -> Lease:
        fields = {"ttl": EmbeddedJSON(format_seconds(ttl_ns)), "holder": holder, "token": token}
        return decode_lease(self._lease_call("renew", name, now, fields))

    def release_lease(self, name: str, holder: str, token: int, now: int) -> bool:
        data = self._lease_call("release", name, now, {"holder": holder, "token": token})
        return data.get("released") is True

    def get_lease(self, name: str, now: int) -> Lease | None:
        try:
            data = self._call(
                lease_routing_key(name),
                "GET",
                f"/v1/leases/{_segment(name)}",
                write=False,
                headers={NOW_HEADER: str(now)},
            )
        except NotFoundError:
            return None
        return decode_lease(data)

    # -- watch and expiry --------------------------------------------------------------

    def change_token(self, keyspace: Keyspace) -> int:
        data = self._call(
            keyspace.routing_key, "GET", self._space("changes", keyspace), write=False
        )
        return int(data["token"])

    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            wait = min(remaining, WAIT_SLICE)
            data = self._call(
                keyspace.routing_key,
                "GET",
                self._space("changes", keyspace),
                write=False,
                params={"after": token, "timeout": format_seconds(int(wait * 1e9))},
                timeout=wait + READ_TIMEOUT,
            )
            seen = int(data["token"])
            if seen != token or deadline - time.monotonic() <= 0:
                return seen

    def purge_expired(self, now: int, limit: int = 1000) -> int:
        body = dumps_envelope({"limit": max(1, limit)})
        purged = 0
        for coordinator in self.coordinators:  # expiry is everywhere: ask every one
            response = self._send(
                coordinator,
                "POST",
                "/v1/purge",
                write=True,
                body=body,
                headers={NOW_HEADER: str(now)},
            )
            purged += int(self._json(response, coordinator)["purged"])
        return purged
