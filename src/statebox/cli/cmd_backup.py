"""``statebox backup PATH`` → :func:`statebox.transfer.backup_sqlite`: an online,
consistent copy of a SQLite store (docs/move-and-backup.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "backup",
        help="take a consistent copy of a SQLite store while others write",
        description=(
            "Copy a SQLite store into the file PATH with SQLite's backup API: online\n"
            "(writers go on), one consistent snapshot, written to PATH.tmp, synced, then\n"
            "renamed onto PATH and checked with PRAGMA integrity_check. Prints one JSON\n"
            "line: the path, its size, its entries. Other stores: PostgreSQL's pg_dump,\n"
            "or 'statebox copy --to sqlite:///PATH' (see docs/move-and-backup.md)."
        ),
        examples=[
            "statebox backup /var/backups/statebox/state-$(date +%F).db",
            "statebox backup state.backup.db --store sqlite:///srv/statebox/state.db",
        ],
        common=("store",),
    )
    parser.add_argument("path", metavar="PATH", help="the backup file to write")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> int:
    from ..transfer import backup_sqlite
    from ._transfer import write_summary

    report = backup_sqlite(store, args.path)
    fields = report.to_dict()
    del fields["operation"]
    write_summary("backup", fields)
    return 0
