"""``http://host:port[,http://host2:port…]`` — the remote store: a statebox server as a backend.

Each contract method is one request to the server's entries API (``/v1/entries``,
``/v1/apply``, ``/v1/records``, ``/v1/changes``, ``/v1/leases``, ``/v1/import``), so a
:class:`~statebox.StateStore` over a server behaves as one over the server's own store.

Several coordinators (comma-separated URLs): each keyspace goes to the coordinator that
rendezvous hashing picks (:mod:`statebox.backends._routing`); a coordinator's id is its
URL exactly as written, so write the list the same way on every worker (the order does
not matter). A transaction across keyspaces (``apply_batch``) is one request, so its
keyspaces must share a coordinator; keyspaces on several are refused before anything is
sent.

Failures: a read that cannot reach its coordinator is tried once more on the same one;
a write that cannot is reported as :class:`~statebox.core.errors.BackendUnavailableError` and
never retried, here or on another coordinator — it may or may not have been applied, and
a second coordinator would break the one-owner-per-keyspace rule. ``STATEBOX_TOKEN`` is
sent as the bearer token. The client's clock travels as ``X-Statebox-Now``; a server uses
it only in test mode, else its own.

Connections, requests and the retry rule are :mod:`statebox.backends._http_transport`'s;
what goes over the wire is :mod:`statebox.wire`'s (entries, errors, and the mutations
of ``/v1/apply`` in :mod:`statebox.wire.mutations`, beside the server's reader of them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from ..core.clock import parse_timestamp
from ..core.envelope import EmbeddedJSON, dumps_envelope
from ..core.errors import BackendUnavailableError, ConfigurationError, NotFoundError, quoted
from ..core.model import Keyspace, KeyspaceInfo, keyspace_sort_key
from ..wire.codec import (
    NOW_HEADER,
    decode_entry,
    decode_lease,
    decode_record,
    format_seconds,
    updated_by_headers,
)
from ._http_batch import applied_from_wire, apply_body, batches_body, check_one_coordinator
from ._http_transport import READ_TIMEOUT, Transport
from ._routing import choose, lease_routing_key
from .base import (
    Applied,
    Backend,
    Capabilities,
    Entry,
    HistoryRecord,
    KeyImport,
    Lease,
    Mutation,
    WriteContext,
    check_batches,
)

__all__ = ["HttpBackend", "parse_coordinators"]

#: The longest one long poll of ``wait_for_change`` asks the server to block.
WAIT_SLICE = 30.0
#: Leases asked for per request of ``list_leases`` (the most ``GET /v1/leases`` gives).
LEASES_PAGE = 1000


def parse_coordinators(url: str) -> list[str]:
    """The coordinator URLs of a store URL, as written (their ids)."""
    coordinators = [part.strip() for part in url.split(",")]
    for part in coordinators:
        parsed = urlsplit(part)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(
                f"invalid remote store URL {quoted(url)}: each coordinator must be "
                "http://host:port or https://host:port, separated by commas"
            )
        if parsed.query or parsed.fragment:
            raise ConfigurationError(
                f"invalid remote store URL {quoted(url)}: no query or fragment in {quoted(part)}"
            )
    if len(set(coordinators)) != len(coordinators):
        raise ConfigurationError(
            f"invalid remote store URL {quoted(url)}: a coordinator is repeated"
        )
    return coordinators


def _segment(text: str) -> str:
    return quote(text, safe="")


def _key_path(key: str) -> str:
    return quote(key, safe="/")


class HttpBackend(Backend):
    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True,
        cross_machine=True,
        durable=True,
        own_history_limit=True,  # the server's --history-limit
        seals_secrets=True,  # the server seals secret keyspaces with its own key
    )

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.url = url
        self.coordinators = parse_coordinators(url)
        secret = token if token is not None else os.environ.get("STATEBOX_TOKEN", "")
        self._transport = Transport(self.coordinators, secret.strip())
        self._owners: dict[str, str] = {}

    # -- plumbing ----------------------------------------------------------------------

    def _owner(self, routing_key: str) -> str:
        owner = self._owners.get(routing_key)
        if owner is None:
            owner = choose(routing_key, self.coordinators)
            if len(self._owners) < 4096:
                self._owners[routing_key] = owner
        return owner

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
        status, data = self._transport.send(coordinator, method, path, write=write, **options)
        return self._transport.answer(status, data, coordinator, exact=exact)

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
        data = self._call(
            keyspace.routing_key,
            "POST",
            self._space("apply", keyspace),
            write=True,
            exact=True,
            body=apply_body(mutations, ctx.now),
            headers=self._write_headers(ctx),
        )
        return applied_from_wire(data, mutations)

    def apply_batch(
        self, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        """One ``POST /v1/apply`` for the keyspaces with mutations, which must share a
        coordinator (else refused before anything is sent); one keyspace with mutations
        takes :meth:`apply`'s route (a conflict's flat index is then the same)."""
        check_batches(batches)
        sent = [(keyspace, mutations) for keyspace, mutations in batches if mutations]
        # Only the keyspaces sent must share a coordinator: an empty batch writes nothing.
        check_one_coordinator([keyspace for keyspace, _ in sent], self._owner)
        if len(sent) <= 1:
            applied = {k: self.apply(k, m, ctx) for k, m in sent}
            return [applied.get(keyspace, []) for keyspace, _ in batches]
        data = self._call(
            sent[0][0].routing_key,
            "POST",
            "/v1/apply",
            write=True,
            exact=True,
            body=batches_body(sent, ctx.now),
            headers=self._write_headers(ctx),
        )
        answered = data["batches"]
        if len(answered) != len(sent):
            raise BackendUnavailableError(
                f"statebox server answered {len(answered)} batches for {len(sent)} keyspaces"
            )
        found = {
            keyspace: applied_from_wire(result, mutations)
            for (keyspace, mutations), result in zip(sent, answered, strict=True)
        }
        return [found.get(keyspace, []) for keyspace, _ in batches]

    @staticmethod
    def _write_headers(ctx: WriteContext) -> dict[str, str]:
        return {NOW_HEADER: str(ctx.now), **updated_by_headers(ctx.updated_by)}

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

    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool, now: int
    ) -> list[str]:
        """One ``POST /v1/import/{scope}/{namespace}``: the server's store imports the
        batch in its own atomic section (sealing secret keyspaces with its key)."""
        from ..wire.imports import import_body, outcomes_from_wire

        data = self._call(
            keyspace.routing_key,
            "POST",
            self._space("import", keyspace),
            write=True,
            body=import_body(items, replace=replace),
            headers={NOW_HEADER: str(now)},
        )
        return outcomes_from_wire(data, len(items))

    def close(self) -> None:
        self._transport.close()

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

    def list_leases(self, now: int, after: str | None, limit: int) -> list[Lease]:
        """Each coordinator's live leases, merged by name; a lease counts from the
        coordinator that owns its name only (several coordinators may share one store)."""
        found: list[Lease] = []
        for coordinator in self.coordinators:
            found += self._leases_of(coordinator, now, after, limit)
        found.sort(key=lambda lease: lease.name)
        return found[:limit] if limit else found

    def _leases_of(self, coordinator: str, now: int, after: str | None, limit: int) -> list[Lease]:
        found: list[Lease] = []
        cursor = after
        while True:
            wanted = min(limit - len(found), LEASES_PAGE) if limit else LEASES_PAGE
            params: dict[str, str | int] = {"limit": wanted}
            if cursor is not None:
                params["after"] = cursor
            status, data = self._transport.send(
                coordinator,
                "GET",
                "/v1/leases",
                write=False,
                params=params,
                headers={NOW_HEADER: str(now)},
            )
            page = self._transport.answer(status, data, coordinator)
            for item in page["leases"]:
                lease = decode_lease(item)
                if self._owner(lease_routing_key(lease.name)) == coordinator:
                    found.append(lease)
            cursor = page.get("next")
            if cursor is None or (limit and len(found) >= limit):
                return found[:limit] if limit else found

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
            status, data = self._transport.send(
                coordinator,
                "POST",
                "/v1/purge",
                write=True,
                body=body,
                headers={NOW_HEADER: str(now)},
            )
            purged += int(self._transport.answer(status, data, coordinator)["purged"])
        return purged

    # -- keyspaces ---------------------------------------------------------------------

    def list_keyspaces(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]:
        """Each coordinator's page, merged: every coordinator owns some keyspaces."""
        found: list[KeyspaceInfo] = []
        for coordinator in self.coordinators:
            found += self._keyspaces_of(coordinator, scope, after, limit, now)
        found.sort(key=lambda k: keyspace_sort_key(k.keyspace))
        return found[:limit] if limit else found

    def _keyspaces_of(
        self, coordinator: str, scope: str | None, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]:
        found: list[KeyspaceInfo] = []
        cursor = None if after is None else f"{after.scope}/{after.namespace}"
        while True:
            params: dict[str, str | int] = {"limit": limit - len(found) if limit else 0}
            if scope is not None:
                params["scope"] = scope
            if cursor is not None:
                params["after"] = cursor
            status, data = self._transport.send(
                coordinator,
                "GET",
                "/v1/keyspaces",
                write=False,
                params=params,
                headers={NOW_HEADER: str(now)},
            )
            page = self._transport.answer(status, data, coordinator)
            found += [
                KeyspaceInfo(
                    k["scope"], k["namespace"], int(k["entries"]), parse_timestamp(k["updatedAt"])
                )
                for k in page["keyspaces"]
            ]
            cursor = page.get("next")
            if cursor is None or (limit and len(found) >= limit):
                return found

    def delete_keyspace(self, keyspace: Keyspace, ctx: WriteContext) -> int:
        # The server's store deletes it atomically and keeps history by its own policy.
        data = self._call(
            keyspace.routing_key,
            "DELETE",
            self._space("kv", keyspace),
            write=True,
            headers=self._write_headers(ctx),
        )
        return int(data["deleted"])
