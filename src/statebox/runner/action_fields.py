"""The ``with`` fields each action takes: what the loader checks a DAG against and what
:mod:`.actions` reads. The seed's fields for Dagu's five state actions; statebox's own
actions name theirs as the CLI's options (``--to-version`` → ``to_version``)."""

from __future__ import annotations

from typing import Final

__all__ = ["ACTION_FIELDS", "REQUIRED_FIELDS", "DAG_RUN", "ACTIONS"]

_ADDRESS: Final = frozenset({"scope", "namespace"})
#: The field of the actions whose output line may hold a value (the CLI's --reveal).
_VALUED: Final = frozenset({"reveal"})

#: ``action:`` of a step that runs another DAG (``call:`` is its legacy spelling).
DAG_RUN: Final = "dag.run"

#: Action → every field its ``with`` may hold.
ACTION_FIELDS: Final[dict[str, frozenset[str]]] = {
    "state.get": _ADDRESS | _VALUED | {"key", "default", "required", "version"},
    "state.set": _ADDRESS | {"key", "value", "expected_version", "create_only", "ttl", "fencing"},
    "state.diff": _ADDRESS | _VALUED | {"key", "value", "update", "expected_version"},
    "state.delete": _ADDRESS | {"key", "expected_version", "fencing"},
    "state.list": _ADDRESS | _VALUED | {"prefix", "limit", "include_values", "after"},
    "state.update": _ADDRESS
    | _VALUED
    | {"key", "jq", "merge", "patch", "default", "ttl", "expected_version", "fencing"},
    "state.history": _ADDRESS | _VALUED | {"key", "limit", "include_values"},
    "state.rollback": _ADDRESS | _VALUED | {"key", "to_version", "expected_version", "fencing"},
    "state.txn": _ADDRESS | {"ops", "fencing"},
    "lease.acquire": frozenset({"name", "ttl"}),
    "lease.renew": frozenset({"name", "ttl", "token"}),
    "lease.release": frozenset({"name", "token"}),
    DAG_RUN: frozenset({"dag", "params"}),
}

#: Action → the fields it cannot do without.
REQUIRED_FIELDS: Final[dict[str, frozenset[str]]] = {
    "state.get": frozenset({"key"}),
    "state.set": frozenset({"key", "value"}),
    "state.diff": frozenset({"key", "value"}),
    "state.delete": frozenset({"key"}),
    "state.list": frozenset(),
    "state.update": frozenset({"key"}),
    "state.history": frozenset({"key"}),
    "state.rollback": frozenset({"key", "to_version"}),
    "state.txn": frozenset({"ops"}),
    "lease.acquire": frozenset({"name", "ttl"}),
    "lease.renew": frozenset({"name", "ttl"}),
    "lease.release": frozenset({"name"}),
    DAG_RUN: frozenset({"dag"}),
}

ACTIONS: Final = frozenset(ACTION_FIELDS)
