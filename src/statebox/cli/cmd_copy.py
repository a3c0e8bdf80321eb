"""``statebox copy --from URL --to URL`` → :func:`statebox.transfer.copy_store`: dump,
load and verify, between any two stores (docs/move-and-backup.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "copy",
        help="copy a store into another (any two backends), then verify the copy",
        description=(
            "Copy every key, with its versions, timestamps and history, from the store\n"
            "--from to the store --to (SQLite, PostgreSQL, a file store, a server), then\n"
            "read both again and compare the count of entries and history versions and\n"
            "each (key, version, hash) per keyspace. Secret keyspaces are copied and sealed\n"
            "at the destination. Interrupted, run it again: keys already copied count as\n"
            "same. Prints one JSON line; exit code 4 when keys conflict (differ at the\n"
            "destination: --replace overwrites them), 1 when the verification fails."
        ),
        examples=[
            "statebox copy --from sqlite:///state.db --to postgresql://statebox@db/statebox",
            "statebox copy --from file:///srv/dagu/data --to sqlite:///state.db --no-history",
            "statebox copy --from sqlite:///a.db --to sqlite:///b.db --scope dag --namespace feed",
        ],
        common=("scope", "namespace"),
    )
    parser.add_argument("--from", dest="source", metavar="URL", required=True, help="copy from")
    parser.add_argument("--to", dest="destination", metavar="URL", required=True, help="copy to")
    parser.add_argument(
        "--no-history", dest="history", action="store_false", help="the live entries only"
    )
    parser.add_argument(
        "--replace", action="store_true", help="overwrite keys that differ (else: conflicts)"
    )
    parser.set_defaults(handler=run, opens_store=False)


def run(args: argparse.Namespace, store: None) -> int:
    from ..core.errors import ConflictError, CorruptEntryError
    from ..core.model import RunContext
    from ..store import open_store
    from ..transfer import copy_store, count_records
    from ._transfer import note, progress_bar, write_summary

    context = RunContext.from_env()
    with (
        open_store(args.source, context=context) as source,
        open_store(args.destination, context=context) as destination,
    ):
        total = count_records(source, args.scope, args.namespace)
        with progress_bar("copy", total) as advance:
            report = copy_store(
                source,
                destination,
                scope=args.scope,
                namespace=args.namespace,
                history=args.history,
                replace=args.replace,
                progress=advance,
            )
    write_summary("copy", report.to_dict())
    if report.load.conflicts:
        note(
            "copy",
            f"{len(report.load.conflicts)} keys differ at the destination and were left as "
            'they are (listed in "conflicts"; --replace overwrites them)',
        )
        return ConflictError.exit_code
    if not report.verification.ok:
        note("copy", f"the copy differs from its source: {report.verification.difference}")
        return CorruptEntryError.exit_code
    return 0
