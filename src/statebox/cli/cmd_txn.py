"""``statebox txn [OPS]`` (a JSON list, standard input by default) →
:meth:`StateStore.transaction`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._beyond import add_fencing_option, fencing_from
from ._input import JsonArgs
from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ..core.results import TransactionResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "txn",
        help="apply several sets and deletes all-or-nothing",
        description=(
            "Apply a JSON list of operations on one scope and namespace, all or nothing:\n"
            '  {"op": "set", "key": K, "value": V, "expected_version": N, "create_only": true,\n'
            '   "ttl": S}  and  {"op": "delete", "key": K, "expected_version": N}\n'
            "(only op, key and, for a set, value are required). If any guard fails nothing\n"
            "is written, the error names the failing operation (position and key), and the\n"
            "exit code is 4."
        ),
        examples=[
            "statebox txn @ops.json --scope global",
            'echo \'[{"op": "set", "key": "a", "value": 1}, '
            '{"op": "delete", "key": "b"}]\' | statebox txn',
        ],
    )
    parser.add_argument(
        "ops",
        metavar="OPS",
        nargs="?",
        default="-",
        help="the JSON list of operations ('-', the default: standard input; '@path' a file)",
    )
    add_fencing_option(parser)
    parser.set_defaults(handler=run)


def _plain(value: Any) -> Any:
    """Operation fields other than ``value`` as plain Python numbers."""
    from ..core.results import EmbeddedJSON

    if isinstance(value, EmbeddedJSON):
        return json.loads(value.text)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_operations(text: str | bytes) -> list[Any]:
    """The operations, each ``value`` as exact JSON text (:class:`RawJSON`)."""
    from ..core.errors import InvalidValueError
    from ..core.results import EmbeddedJSON, dumps_envelope
    from ..core.values import RawJSON

    try:
        # Every number literal kept as written, so ``1.2300`` reaches the store intact.
        parsed = json.loads(text, parse_float=EmbeddedJSON, parse_int=EmbeddedJSON)
    except ValueError as exc:
        raise InvalidValueError(f"invalid OPS: not JSON: {exc}") from exc
    if not isinstance(parsed, list):
        raise InvalidValueError('invalid OPS: must be a JSON list like [{"op": "set", ...}]')
    operations: list[Any] = []
    for raw in parsed:
        if isinstance(raw, dict):
            op = {k: _plain(v) for k, v in raw.items() if k != "value"}
            if "value" in raw:
                op["value"] = RawJSON(dumps_envelope(raw["value"]))
            operations.append(op)
        else:
            operations.append(_plain(raw))  # the engine names what is wrong with it
    return operations


def run(args: argparse.Namespace, store: StateStore) -> TransactionResult:
    raw = JsonArgs().read(args.ops, "OPS", envelope=2)  # [{"value": ...}]
    return store.transaction(
        read_operations(raw.text),
        fencing=fencing_from(args),
        scope=args.scope,
        namespace=args.namespace,
    )
