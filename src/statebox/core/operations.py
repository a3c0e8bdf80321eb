"""The operations of a transaction as JSON objects (SPEC §5): the one definition of their
fields, and the checks every reader of one makes first (issue #13 item 3).

Two readers take ``{"op": "set", ...}`` / ``{"op": "delete", ...}`` objects: the engine's
transactions (:func:`statebox.transactions.parse_operation`: the operations a user gives,
through the library, ``statebox txn`` or ``POST /v1/txn``) and the wire's mutations
(:func:`statebox.wire.mutations.mutation_from_wire`: what the ``http://`` backend sends
to ``POST /v1/apply``). Both read an operation's kind, its field names (the snake_case
ones and the aliases the JSON envelopes spell), the fields each kind may have and its
key here, with the same words; what the fields then mean is each reader's own (a user's
``ttl`` must be positive, a mutation's may be past).

    {"op": "set", "key": "a", "value": 1, "expected_version": 3, "create_only": true,
     "ttl": 60, "fencing": {"lease": "import", "token": 7}}
    {"op": "delete", "key": "b", "expected_version": 2}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from . import params
from .errors import InvalidRequestError, InvalidValueError, json_kind, quoted

__all__ = [
    "ALIASES",
    "FIELDS",
    "WIRE_VALUE_FIELDS",
    "expected_version",
    "operation_fields",
    "operation_name",
]

#: The fields each kind of operation may have, besides ``op``.
FIELDS: Final = {
    "set": frozenset({"key", "value", "expected_version", "create_only", "ttl", "fencing"}),
    "delete": frozenset({"key", "expected_version", "fencing"}),
}
#: As the JSON envelopes spell them (accepted since the first release of the routes).
ALIASES: Final = {"expectedVersion": "expected_version", "createOnly": "create_only"}
#: A set's value as the wire may carry it: base64 bytes with their content type
#: (:func:`statebox.wire.codec.value_from_wire`).
WIRE_VALUE_FIELDS: Final = frozenset({"encoding", "contentType"})


def operation_name(where: str, kind: str | None = None, key: object = None) -> str:
    """An operation as a message names it: ``transaction operation 1 (set "b")`` —
    ``where`` and, when known, its kind and its key (a string one)."""
    if kind is None:
        return where
    if isinstance(key, str):
        return f"{where} ({kind} {quoted(key)})"
    return f"{where} ({kind})"


def operation_fields(
    raw: object, where: str, *, wire_value: bool = False
) -> tuple[str, dict[str, Any]]:
    """``(kind, fields)`` of the operation ``raw``: its fields by their snake_case names
    (aliases resolved), ``op`` taken out. Refused, naming it by ``where`` (``transaction
    operation 3``): anything but an object, a kind other than ``set`` or ``delete``, a
    field its kind does not have, no ``key``, a set without ``value`` (``null`` is one)
    or with a ``create_only`` other than true or false. ``wire_value``: a set's value may come in
    its wire form (``encoding``, ``contentType``)."""
    if not isinstance(raw, Mapping):
        raise InvalidValueError(
            f'{where}: must be an object like {{"op": "set", "key": ..., "value": ...}}, '
            f"not {json_kind(raw)}"
        )
    fields = {ALIASES.get(str(name), str(name)): item for name, item in raw.items()}
    kind = fields.pop("op", None)
    if not isinstance(kind, str) or kind not in FIELDS:
        raise InvalidValueError(f'{where}: "op" must be "set" or "delete", not {quoted(kind)}')
    known = FIELDS[kind] | WIRE_VALUE_FIELDS if wire_value and kind == "set" else FIELDS[kind]
    unknown = sorted(set(fields) - known)
    if unknown:
        listed = ", ".join(quoted(name) for name in unknown)
        raise InvalidValueError(f"{where} ({kind}): unknown field(s) {listed}")
    if "key" not in fields:
        raise InvalidValueError(f'{where} ({kind}): "key" is required')
    if kind == "set":
        if "value" not in fields:
            raise InvalidValueError(f'{where} (set): "value" is required (null is a value)')
        create_only = fields.get("create_only", False)
        if not isinstance(create_only, bool):
            raise InvalidValueError(
                f'{where} (set): invalid "create_only" {quoted(create_only)}: must be true or false'
            )
    return kind, fields


def expected_version(raw: object, *, below_zero: bool = False) -> int | None:
    """An operation's ``expected_version`` in JSON: null, or an integer (a JSON number:
    ``"3"`` is none) of 0 or more, as every face takes one (:func:`params.expected_version`).
    ``below_zero``: any in 64 bits, as a mutation's (the backend contract's apply takes
    one below 0, meaning a version no key is at: a conflict, as the library has it)."""
    if raw is None:
        return None
    name = '"expected_version"'
    if isinstance(raw, str):  # JSON text, no number (the params' rule reads a query's text)
        raise InvalidRequestError(f"invalid {name} {quoted(raw)}: must be an integer")
    return params.integer(raw, name) if below_zero else params.expected_version(raw, name)
