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
        common=("store", "format", "scope", "namespace", "context"),
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
    """The operations, each read as the server reads a transaction's
    (:func:`~statebox.wire.codec.transaction_operation`): numbers exact (``1.2300``
    stays ``1.2300``), a base64 ``value`` as bytes, ``fencing`` an object, ``ttl``
    exact. Parsed by the core's exact-number parser: no ``msgspec``, which only the
    server needs."""
    from ..core.errors import InvalidValueError, NestingTooDeepError
    from ..core.exactjson import loads_exact
    from ..wire.codec import transaction_operation

    try:
        items = loads_exact(text, "OPS")
    except NestingTooDeepError:
        raise
    except UnicodeDecodeError as exc:  # its message would show Python's reprs
        raise InvalidValueError(f"invalid OPS: not UTF-8 text (at byte {exc.start})") from None
    except ValueError as exc:
        raise InvalidValueError(f"invalid OPS: not JSON: {exc}") from None
    if not isinstance(items, list):
        raise InvalidValueError('invalid OPS: must be a JSON list like [{"op": "set", ...}]')
    return [transaction_operation(item, index) for index, item in enumerate(items)]


def run(args: argparse.Namespace, store: StateStore) -> TransactionResult:
    raw = JsonArgs().read(args.ops, "OPS", envelope=2)  # [{"value": ...}]
    return store.transaction(
        read_operations(raw.text),
        fencing=fencing_from(args),
        scope=args.scope,
        namespace=args.namespace,
    )
