"""``statebox load [FILE|-] [--replace]`` → :func:`statebox.transfer.load_records` of a
dump (docs/move-and-backup.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "load",
        help="read a dump back into the store (idempotent; conflicts reported)",
        description=(
            "Load the JSON lines of 'statebox dump' (FILE, or standard input for '-' or\n"
            "no FILE): each key as the dump has it — versions, hashes, timestamps and\n"
            "history kept. A key already there as in the dump counts as same, so loading\n"
            "twice (or again after an interruption) is safe. A key that differs is a\n"
            "conflict: left as it is and listed (exit code 4, after loading the rest),\n"
            "unless --replace, which overwrites it with the dump's. Prints one JSON line:\n"
            "how many keys were created, same, replaced, and the conflicts."
        ),
        examples=[
            "statebox load state.jsonl",
            "statebox dump --store sqlite:///old.db | statebox load --store sqlite:///new.db",
            "statebox load state.jsonl --replace",
        ],
        common=("store",),
    )
    parser.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="the dump ('-': standard input)"
    )
    parser.add_argument(
        "--replace", action="store_true", help="overwrite keys that differ (else: conflicts)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> int:
    from ..core.errors import ConflictError, InvalidRequestError
    from ..transfer import load_records, read_dump
    from ._transfer import count_lines, note, progress_bar, write_summary

    if args.file == "-":
        stream, name, total = sys.stdin.buffer, "standard input", None
    else:
        try:
            stream = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InvalidRequestError(f"cannot read the dump {args.file}: {exc.strerror}") from exc
        name = args.file
        total = max(0, count_lines(args.file) - 1) if sys.stderr.isatty() else None
    try:
        with progress_bar("load", total) as advance:
            report = load_records(
                store, read_dump(stream, name), replace=args.replace, progress=advance
            )
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    write_summary("load", report.to_dict())
    if report.conflicts:
        note(
            "load",
            f"{len(report.conflicts)} keys differ from the dump and were left as they are "
            '(listed in "conflicts"; --replace overwrites them)',
        )
        return ConflictError.exit_code
    return 0
