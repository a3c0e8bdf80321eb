"""``statebox list [PREFIX] [--limit N] [--include-values] [--after KEY]``.

Calls :meth:`StateStore.list`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._parser import add_command, add_reveal_option, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import ListResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "list",
        common=("store", "format", "scope", "namespace", "dag", "root_dag", "run_id"),
        help="list the entries of one scope and namespace",
        description=(
            "List entries whose key starts with PREFIX (a plain byte prefix: 'cur' matches\n"
            "'cursor' and 'cursors/api'), in ascending key order. Page through a large\n"
            "namespace with --limit and --after (the last key of the previous page)."
        ),
        examples=[
            "statebox list cursors/ --dag feed-sync",
            "statebox list --scope global --include-values --format table",
            "statebox list --limit 100 --after cursors/feed-z",
        ],
    )
    parser.add_argument("prefix", metavar="PREFIX", nargs="?", help="key prefix (default: all)")
    parser.add_argument(
        "--limit",
        metavar="N",
        type=checked(params.limit, "--limit"),
        default=0,
        help="at most N entries (0: no limit)",
    )
    parser.add_argument("--include-values", action="store_true", help="include each entry's value")
    parser.add_argument(
        "--after",
        metavar="KEY",
        type=checked(params.after_key, "--after"),
        help="only keys after KEY (for paging)",
    )
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> ListResult:
    return store.list(
        args.prefix,
        scope=args.scope,
        namespace=args.namespace,
        limit=args.limit,
        include_values=args.include_values,
        after=args.after,
    )
