"""``statebox dump [--history] [--include-secrets] [--output FILE [--resume]]`` →
:func:`statebox.transfer.dump_records`, as JSON lines (docs/move-and-backup.md)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, BinaryIO

from ..core.errors import InvalidRequestError
from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ..core.model import Keyspace
    from ..store import StateStore
    from ._parser import Subparsers

#: Records between two moves of the progress bar.
_STEP = 100


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "dump",
        help="write every entry (and its history) as JSON lines, to load elsewhere",
        description=(
            "Write the store's entries as JSON lines: a header line, then one line per key\n"
            "with its live entry (version, hash, timestamps, writer, expiry, value) and\n"
            "with --history its kept history. --scope/--namespace select part of the store.\n"
            "Secret keyspaces are skipped (noted on standard error) unless\n"
            "--include-secrets, which writes their values in the clear. --output FILE\n"
            "writes a file (mode 0600) and prints a summary; --resume continues an\n"
            "interrupted one after its last complete line. Read it back with 'statebox load'."
        ),
        examples=[
            "statebox dump --history > state.jsonl",
            "statebox dump --scope dag --namespace feed-sync --output feed.jsonl",
            "statebox dump --history --output all.jsonl --resume",
        ],
        common=("store", "scope", "namespace"),
    )
    parser.add_argument(
        "--history", action="store_true", help="with each key's kept history (deletions too)"
    )
    parser.add_argument(
        "--include-secrets",
        action="store_true",
        help="include secret keyspaces, their values in the clear (keep the dump safe)",
    )
    parser.add_argument("--output", metavar="FILE", help="write to FILE, not standard output")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the dump in --output FILE after its last complete line",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> int:
    from ..transfer import count_records, dump_records, resume_position, write_dump
    from ._transfer import count_lines, note, progress_bar, write_summary

    if args.resume and not args.output:
        raise InvalidRequestError("--resume continues a dump file: give it with --output FILE")
    if args.include_secrets:
        note("dump", "secret keyspaces are written in the clear: keep the dump as safe as the key")
    skipped: list[Keyspace] = []

    def skip(keyspace: Keyspace) -> None:
        skipped.append(keyspace)
        note(
            "dump",
            f"skipped secret keyspace {keyspace.scope}/{keyspace.namespace} "
            "(--include-secrets writes it, in the clear)",
        )

    position = None
    done = 0
    out: BinaryIO
    if args.output:
        header = True
        if args.resume:
            position, has_header = resume_position(args.output)
            header = not has_header
            done = max(0, count_lines(args.output) - 1) if has_header else 0
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if args.resume else os.O_TRUNC)
        out = os.fdopen(os.open(args.output, flags, 0o600), "ab" if args.resume else "wb")
    else:
        header, out = True, sys.stdout.buffer
    records = dump_records(
        store,
        scope=args.scope,
        namespace=args.namespace,
        history=args.history,
        include_secrets=args.include_secrets,
        after=position,
        on_skip=skip,
    )
    written = 0
    try:
        total = None
        if sys.stderr.isatty():
            total = count_records(
                store, args.scope, args.namespace, include_secrets=args.include_secrets
            )
        with progress_bar("dump", total, completed=done) as advance:
            for _ in write_dump(out, records, header=header):
                written += 1
                if advance is not None and written % _STEP == 0:
                    advance(_STEP)
            if advance is not None:
                advance(written % _STEP)
        out.flush()
        if args.output:
            os.fsync(out.fileno())
    finally:
        if args.output:
            out.close()
    if args.output:
        write_summary(
            "dump",
            {
                "output": args.output,
                "records": written,
                "resumedAfter": position._asdict() if position is not None else None,
                "skippedSecret": [f"{k.scope}/{k.namespace}" for k in skipped],
            },
        )
    return 0
