"""Transactions (SPEC §5): the operations a batch may hold, and how they are read.

A transaction is a list of set/delete operations on one scope+namespace, each with its
own guards, applied all-or-nothing through one ``Backend.apply``. Operations come as
:class:`SetOp` / :class:`DeleteOp` objects or as the dicts the CLI and the HTTP API
receive::

    {"op": "set", "key": "a", "value": 1, "expected_version": 3, "ttl": 60}
    {"op": "delete", "key": "b", "expected_version": 2}

(``expectedVersion`` / ``createOnly`` are accepted too, as the JSON envelopes spell them.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from .core.errors import InvalidRequestError, InvalidValueError, json_kind, quoted
from .core.leases import Fencing

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

_ALIASES = {"expectedVersion": "expected_version", "createOnly": "create_only"}
_FIELDS = {
    "set": {"key", "value", "expected_version", "create_only", "ttl", "fencing"},
    "delete": {"key", "expected_version", "fencing"},
}


def _fencing(raw: Any, where: str) -> Fencing | None:
    """An operation's own fencing: a JSON object is read by the faces' one reader
    (:func:`statebox.core.params.fencing`); the Python forms (a lease, a pair) pass as
    they are. Either way :func:`statebox.core.leases.as_fence` checks it before it is
    written."""
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
    if not isinstance(raw, Mapping):
        raise InvalidValueError(
            f'{where}: must be an object like {{"op": "set", "key": ..., "value": ...}}, '
            f"not {json_kind(raw)}"
        )
    fields = {_ALIASES.get(str(k), str(k)): v for k, v in raw.items()}
    kind = fields.pop("op", None)
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise InvalidValueError(f'{where}: "op" must be "set" or "delete", not {quoted(kind)}')
    unknown = sorted(set(fields) - _FIELDS[kind])
    if unknown:
        listed = ", ".join(quoted(name) for name in unknown)
        raise InvalidValueError(f"{where} ({kind}): unknown field(s) {listed}")
    if "key" not in fields:
        raise InvalidValueError(f'{where} ({kind}): "key" is required')
    expected = _version(fields.get("expected_version"), where)
    fencing = _fencing(fields.get("fencing"), where)
    if kind == "delete":
        return DeleteOp(fields["key"], expected, fencing)
    if "value" not in fields:
        raise InvalidValueError(f'{where} (set): "value" is required (null is a value)')
    create_only = fields.get("create_only", False)
    if not isinstance(create_only, bool):
        raise InvalidValueError(f'{where} (set): "create_only" must be true or false')
    return SetOp(fields["key"], fields["value"], expected, create_only, fields.get("ttl"), fencing)
