"""``statebox delete KEY [--expected-version N]`` → :meth:`StateStore.delete`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._beyond import add_fencing_option, fencing_from
from ._parser import add_command, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import DeleteResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "delete",
        common=("store", "format", "scope", "namespace", "context"),
        help="delete one value",
        description=(
            "Delete one entry. Deleting a missing key is not an error:\nit prints deleted:false."
        ),
        examples=[
            "statebox delete cursors/feed --dag feed-sync",
            "statebox delete locks/export --expected-version 3",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. cursors/feed")
    parser.add_argument(
        "--expected-version",
        metavar="N",
        type=checked(params.expected_version, "--expected-version"),
        help="delete only if the stored version is N, else fail with exit code 4",
    )
    add_fencing_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> DeleteResult:
    return store.delete(
        args.key,
        scope=args.scope,
        namespace=args.namespace,
        expected_version=args.expected_version,
        fencing=fencing_from(args),
    )
