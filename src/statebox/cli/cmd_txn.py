"""``statebox txn [OPS]`` (a JSON list, standard input by default) →
:meth:`StateStore.transaction`."""

from __future__ import annotations

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


def read_operations(text: str | bytes) -> list[Any]:
    """The operations, read as the server reads a transaction's
    (:func:`~statebox.wire.codec.transaction_operation`): each ``value`` kept as exact
    JSON text, a base64 one as bytes, ``ttl`` exact."""
    import msgspec

    from ..core.errors import InvalidValueError
    from ..wire.codec import transaction_operation

    try:
        items = msgspec.json.decode(text, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise InvalidValueError(
            'invalid OPS: must be a JSON list like [{"op": "set", ...}]'
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidValueError(f"invalid OPS: not JSON: {exc}") from None
    try:
        return [transaction_operation(bytes(item)) for item in items]
    except ValueError as exc:
        raise InvalidValueError(f"invalid OPS: {exc}") from None


def run(args: argparse.Namespace, store: StateStore) -> TransactionResult:
    raw = JsonArgs().read(args.ops, "OPS", envelope=2)  # [{"value": ...}]
    return store.transaction(
        read_operations(raw.text),
        fencing=fencing_from(args),
        scope=args.scope,
        namespace=args.namespace,
    )
