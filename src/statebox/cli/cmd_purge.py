"""``statebox purge [--limit N]`` → :meth:`StateStore.purge_expired`, until done."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._parser import add_command, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import PurgeResult
    from ..store import StateStore
    from ._parser import Subparsers

#: Entries removed per call of purge_expired (each call is one write on SQL stores).
_BATCH = 1000


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "purge",
        common=("store", "format"),
        help="remove expired entries now",
        description=(
            "Remove expired entries now (their history is kept). Expired entries are\n"
            "invisible already and are purged as the store is written; this reclaims their\n"
            "space at once, e.g. from a maintenance job. Prints how many were removed.\n"
            "On a statebox server it needs a write grant on every scope and namespace."
        ),
        examples=["statebox purge", "statebox purge --limit 10000"],
    )
    parser.add_argument(
        "--limit",
        metavar="N",
        type=checked(params.limit, "--limit"),
        default=0,
        help="remove at most N (0: all)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> PurgeResult:
    from ..core.results import PurgeResult

    purged = 0  # --limit is 0 (all) or more: checked while parsing
    while not args.limit or purged < args.limit:
        batch = _BATCH if not args.limit else min(_BATCH, args.limit - purged)
        done = store.purge_expired(batch)
        purged += done
        if done < batch:
            break
    return PurgeResult(purged)
