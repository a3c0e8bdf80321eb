"""The Dagu envelope of the results beyond Dagu's operations (history, keyspaces,
purge, transaction, lease, watch): :mod:`statebox.core.envelope` adds these renderers
to its table the first time it meets one of these results, so a ``get`` never loads
them (nor :mod:`statebox.core.results_beyond`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .clock import format_timestamp
from .envelope import _address, _without, renderer, value_fields
from .results_beyond import (
    HistoryItem,
    HistoryResult,
    KeyspaceDeleteResult,
    KeyspacesResult,
    LeaseResult,
    LeasesResult,
    PurgeResult,
    TransactionResult,
    WatchEvent,
    WatchResult,
    keyspace_cursor,
)

__all__ = ["RENDERERS"]


# -- history, keyspaces and maintenance ----------------------------------------------------


def _history_item(item: HistoryItem) -> dict[str, Any]:
    out: dict[str, Any] = {"version": item.version, "hash": item.hash}
    if item.deleted:
        out["deleted"] = True
    out["createdAt"] = format_timestamp(item.created_at)
    out["updatedAt"] = format_timestamp(item.updated_at)
    if item.expires_at is not None:
        out["expiresAt"] = format_timestamp(item.expires_at)
    out["updatedBy"] = item.updated_by.to_dict()
    if item.stored is not None:
        out.update(value_fields(item.stored))
    return out


def _history(result: HistoryResult) -> dict[str, Any]:
    out = _address("history", result.keyspace, result.key)
    out["versions"] = [_history_item(item) for item in result.versions]
    return out


def _keyspaces(result: KeyspacesResult) -> dict[str, Any]:
    out: dict[str, Any] = {"operation": "keyspaces"}
    if result.scope is not None:
        out["scope"] = result.scope
    out["keyspaces"] = [
        {
            "scope": k.scope,
            "namespace": k.namespace,
            "entries": k.entries,
            "updatedAt": format_timestamp(k.updated_at),
        }
        for k in result.keyspaces
    ]
    if result.next is not None:
        out["next"] = keyspace_cursor(result.next)
    return out


def _keyspace_delete(result: KeyspaceDeleteResult) -> dict[str, Any]:
    out = _address("deleteKeyspace", result.keyspace)
    out["deleted"] = result.deleted
    return out


def _purge(result: PurgeResult) -> dict[str, Any]:
    return {"operation": "purge", "purged": result.purged}


# -- SPEC §5 ------------------------------------------------------------------------------


def _transaction(result: TransactionResult) -> dict[str, Any]:
    out = _address("transaction", result.keyspace)
    # Each operation's own envelope, numbered, without the keyspace the whole one names.
    # Rendered by its renderer, not envelope(): that would set reveal again, to its own
    # default, for the parts of an envelope rendered with reveal.
    out["results"] = [
        {"index": i, **_without(renderer(type(r))(r), "scope", "namespace")}
        for i, r in enumerate(result.results)
    ]
    return out


def _lease(result: LeaseResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operation": "lease",
        "action": result.action,
        "name": result.name,
        "holder": result.holder,
        "token": result.token,
        "expiresAt": format_timestamp(result.expires_at),
    }
    if result.released is not None:
        out["released"] = result.released
    return out


def _leases(result: LeasesResult) -> dict[str, Any]:
    # Each lease's own envelope, as GET /v1/leases/{name} and 'statebox lease get' give it.
    return {
        "operation": "leases",
        "leases": [_lease(lease) for lease in result.leases],
        "next": result.next,
    }


def _watch_event(event: WatchEvent) -> dict[str, Any]:
    out = _address("watch", event.keyspace, event.key)
    out["event"] = event.event
    out["previousVersion"] = event.previous_version
    out["version"] = event.version
    if event.hash:
        out["hash"] = event.hash
    out["deleted"] = event.deleted
    if event.stored is not None:
        out.update(value_fields(event.stored))
    return out


def _watch(result: WatchResult) -> dict[str, Any]:
    out = _address("watch", result.keyspace, result.key)
    if result.prefix is not None:
        out["prefix"] = result.prefix
    # Each event's own envelope, without what the whole one already says.
    out["events"] = [
        _without(_watch_event(e), "operation", "scope", "namespace") for e in result.events
    ]
    out["timedOut"] = result.timed_out
    return out


RENDERERS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {
    HistoryItem: _history_item,
    HistoryResult: _history,
    KeyspacesResult: _keyspaces,
    KeyspaceDeleteResult: _keyspace_delete,
    PurgeResult: _purge,
    TransactionResult: _transaction,
    LeaseResult: _lease,
    LeasesResult: _leases,
    WatchEvent: _watch_event,
    WatchResult: _watch,
}
