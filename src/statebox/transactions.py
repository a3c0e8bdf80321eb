"""Transactions (SPEC §5): the operations a batch may hold, and how they are read.

A transaction is a list of set/delete operations on one scope+namespace, each with its
own guards, applied all-or-nothing through one ``Backend.apply``. Operations come as
:class:`SetOp` / :class:`DeleteOp` objects or as the dicts the CLI and the HTTP API
receive::

    {"op": "set", "key": "a", "value": 1, "expected_version": 3, "ttl": 60}
    {"op": "delete", "key": "b", "expected_version": 2}

(``expectedVersion`` / ``createOnly`` are accepted too, as the JSON envelopes spell them.)
An operation's fields and their first checks are defined once, in
:mod:`statebox.core.operations`. The faces read their JSON operations first with
:func:`statebox.wire.codec.transaction_operation` (a fencing object only, an
``expected_version`` of 0 or more, a positive exact ``ttl``); the library's own forms —
a ``(lease, token)`` pair or a lease, an ``expected_version`` below 0 (a conflict) —
are read here as they always were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from .core.errors import InvalidRequestError, InvalidValueError, quoted
from .core.leases import Fencing
from .core.operations import operation_fields, operation_name

__all__ = ["DeleteOp", "Operation", "SetOp", "parse_operation"]


class SetOp(NamedTuple):
    key: str
    value: Any
    expected_version: int | None = None
    create_only: bool = False
    ttl: float | None = None
    fencing: Fencing | None = None


class DeleteOp(NamedTuple):
    key: str
    expected_version: int | None = None
    fencing: Fencing | None = None


Operation = SetOp | DeleteOp


def _fencing(raw: Any, where: str) -> Fencing | None:
    """An operation's own fencing: an object is read by the faces' one reader
    (:func:`statebox.core.params.fencing`, which the faces' JSON operations went through
    already); the Python forms (a lease, a pair — a list too) pass as they are. Either
    way :func:`statebox.core.leases.as_fence` checks it before it is written."""
    if not isinstance(raw, Mapping):
        return cast("Fencing | None", raw)
    from .core.params import fencing

    try:
        return fencing(dict(raw), '"fencing"')
    except InvalidRequestError as exc:
        raise InvalidValueError(f"{where}: {exc.message}") from None


def _version(raw: Any, where: str) -> int | None:
    if raw is None or (isinstance(raw, int) and not isinstance(raw, bool)):
        return raw
    raise InvalidValueError(
        f'{where}: invalid "expected_version" {quoted(raw)}: must be an integer'
    )


def parse_operation(raw: Any, index: int) -> Operation:
    """One operation from a :class:`SetOp`/:class:`DeleteOp` or a dict; errors name it."""
    if isinstance(raw, (SetOp, DeleteOp)):
        return raw
    where = f"transaction operation {index}"
    kind, fields = operation_fields(raw, where)
    name = operation_name(where, kind, fields["key"])
    expected = _version(fields.get("expected_version"), name)
    fencing = _fencing(fields.get("fencing"), name)
    if kind == "delete":
        return DeleteOp(fields["key"], expected, fencing)
    create_only = fields.get("create_only", False)
    return SetOp(fields["key"], fields["value"], expected, create_only, fields.get("ttl"), fencing)
