"""``statebox history KEY [--limit N] [--include-values]`` → :meth:`StateStore.history`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._parser import add_command, add_reveal_option, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import HistoryResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "history",
        common=("store", "format", "scope", "namespace", "dag", "root_dag", "run_id"),
        help="list the kept versions of one key, deletions included",
        description=(
            "List the kept versions of a key, newest first; a deletion shows as\n"
            '"deleted":true. The store keeps the last 10 versions of each key by default.\n'
            "Read one with 'statebox get KEY --version N', restore one with\n"
            "'statebox rollback KEY --to-version N'."
        ),
        examples=[
            "statebox history cursors/feed --dag feed-sync",
            "statebox history cursors/feed --limit 3 --include-values --format table",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. cursors/feed")
    parser.add_argument(
        "--limit",
        metavar="N",
        type=checked(params.limit, "--limit"),
        default=0,
        help="at most N versions (0: all kept)",
    )
    parser.add_argument("--include-values", action="store_true", help="include each value")
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> HistoryResult:
    # A negative --limit is the engine's InvalidValueError, as for list.
    return store.history(
        args.key,
        scope=args.scope,
        namespace=args.namespace,
        limit=args.limit,
        include_values=args.include_values,
    )
