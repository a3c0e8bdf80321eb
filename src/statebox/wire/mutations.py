"""Mutations on the wire: what the ``http://`` backend sends to ``POST /v1/apply`` and
what the server's raw route reads back, side by side so the two cannot drift.

A mutation here is the backend contract's (:data:`~statebox.core.records.Mutation`), not
a user's operation: the engine on the client has already checked it and normalized its
value, and it carries an absolute expiry, any expiry (a past one too). On the wire the
expiry is relative — exact seconds (``ttl``) that the server adds to the time it writes
at — and the value is a wire value (:func:`~statebox.wire.codec.value_fields`). The
server checks everything again: it trusts no client.

    {"op": "set", "key": "a", "value": {...}, "expected_version": 3, "create_only": true,
     "ttl": 60.5, "fencing": {"lease": "import", "token": 7}}
    {"op": "delete", "key": "b", "expected_version": 2}

An operation's kind, its fields and their names are defined once for both readers, in
:mod:`statebox.core.operations`; the user's operations (``{"op": "set", ...}`` given to
``store.transaction``, with a ttl that must be positive) are read by
:func:`statebox.transactions.parse_operation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.envelope import EmbeddedJSON
from ..core.errors import InvalidReferenceError, InvalidRequestError, InvalidValueError
from ..core.leases import as_fence
from ..core.model import validate_key
from ..core.operations import expected_version, operation_fields
from ..core.params import fencing, format_seconds, seconds_ns
from ..core.records import Delete, Fence, Mutation, Put
from ..core.values import NormalizedValue
from .codec import value_fields, value_from_wire

__all__ = ["mutation_from_wire", "mutation_to_wire"]


def mutation_to_wire(mutation: Mutation, now: int) -> dict[str, Any]:
    """One mutation as ``/v1/apply`` takes it (``now``: the time its expiry is relative to)."""
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


def mutation_from_wire(
    raw: object,
    index: int,
    now: int,
    normalize: Callable[[Any], NormalizedValue],
    check_fence: Callable[[Fence], None] | None = None,
) -> Mutation:
    """The mutation a ``/v1/apply`` operation stands for, every field checked.

    ``raw`` is the operation as parsed (numbers exact; a JSON value may still be text,
    :class:`~statebox.core.values.RawJSON`); ``now`` is the time its ``ttl`` counts from;
    ``normalize`` applies the store's limits to the value. ``check_fence`` (the server's
    authorization of the lease) runs before the value is normalized: a refused write
    costs nothing. Errors name the operation by its position.
    """
    where = f"operation {index}"
    kind, fields = operation_fields(raw, where, wire_value=True)
    try:
        return _mutation(fields, kind, now, normalize, check_fence)
    except (InvalidReferenceError, InvalidRequestError, InvalidValueError) as exc:
        # A field's refusal, of its own kind: said of the operation it is in.
        raise type(exc)(f"{where} ({kind}): {exc.message}", param=exc.params) from None


def _mutation(
    fields: dict[str, Any],
    kind: str,
    now: int,
    normalize: Callable[[Any], NormalizedValue],
    check_fence: Callable[[Fence], None] | None,
) -> Mutation:
    key = validate_key(fields["key"])
    guard = expected_version(fields.get("expected_version"), below_zero=True)
    fence = as_fence(fencing(fields.get("fencing"), '"fencing"'))
    if fence is not None and check_fence is not None:
        check_fence(fence)
    if kind == "delete":
        return Delete(key, guard, fence)
    create_only: bool = fields.get("create_only", False)
    ttl = fields.get("ttl")
    # Any expiry, even a past one: the contract's apply takes it (ttl is exact, may be <= 0).
    expires_at = None if ttl is None else now + seconds_ns(ttl, '"ttl"')
    value = normalize(value_from_wire(fields))
    return Put(key, value, guard, create_only, expires_at, fence)
