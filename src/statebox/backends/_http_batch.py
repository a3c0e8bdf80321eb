"""The remote store's applies on the wire: the bodies of ``POST /v1/apply/{scope}/{ns}``
and ``POST /v1/apply`` (several keyspaces), and their answers read back.

A transaction across keyspaces is one request to one server, which commits it through
its own store's ``apply_batch``: two coordinators cannot commit together, so keyspaces
routed to different ones are refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core.envelope import dumps_envelope
from ..core.errors import BackendUnavailableError, InvalidRequestError, quoted
from ..core.model import Keyspace
from ..wire.codec import decode_entry
from ..wire.mutations import mutation_to_wire
from .base import Applied, Mutation, Put

__all__ = ["applied_from_wire", "apply_body", "batches_body", "check_one_coordinator"]


def _named(keyspace: Keyspace) -> str:
    return f"scope {quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}"


def check_one_coordinator(spaces: Sequence[Keyspace], owner: Callable[[str], str]) -> None:
    """Refuse keyspaces that ``owner`` (routing key → its coordinator) routes to more
    than one coordinator."""
    owners = {keyspace: owner(keyspace.routing_key) for keyspace in spaces}
    if len(set(owners.values())) > 1:
        served = "; ".join(f"{_named(k)} by {by}" for k, by in owners.items())
        raise InvalidRequestError(
            "a transaction across keyspaces served by different coordinators cannot be "
            f"all-or-nothing: {served}"
        )


def apply_body(mutations: Sequence[Mutation], now: int) -> str:
    """``{"ops": [...]}``. No history_limit: how much history is kept is the server's."""
    return dumps_envelope({"ops": [mutation_to_wire(m, now) for m in mutations]})


def batches_body(batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], now: int) -> str:
    """``{"batches": [{"scope", "namespace", "ops": [...]}, ...]}``."""
    return dumps_envelope(
        {
            "batches": [
                {
                    "scope": keyspace.scope,
                    "namespace": keyspace.namespace,
                    "ops": [mutation_to_wire(m, now) for m in mutations],
                }
                for keyspace, mutations in batches
            ]
        }
    )


def applied_from_wire(data: Any, mutations: Sequence[Mutation]) -> list[Applied]:
    """One apply's answer (``{"results": [...]}``), the values written decoded as sent."""
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
