"""``statebox validate FILE…``: check DAG files as ``statebox run`` would read them, and
run nothing.

Output:

- standard output: one line ``FILE: ok`` for each file without a problem (``FILE`` as
  given on the command line), nothing else;
- standard error: every problem of every file, one per line,
  ``FILE:LINE:COLUMN: message`` (unknown keys with a did-you-mean, wrong types, invalid
  or duplicate ids, unknown dependencies, cycles, unknown actions and ``with`` fields,
  references to unknown steps or outputs), and the warnings (an older camelCase key) as
  ``FILE:LINE:COLUMN: warning: message``. Warnings do not make a file invalid.

Exit code: 0 when every file is valid, 2 when any is not (a missing file included).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.commands import AddCommand
    from ..store import StateStore


def register(subparsers: Any, add_command: AddCommand) -> None:
    parser = add_command(
        subparsers,
        "validate",
        help="check DAG files (Dagu's form) and run nothing",
        description=(
            "Check each DAG file as `statebox run` reads it: YAML syntax, unknown keys\n"
            "(with a did-you-mean), types, step ids, dependencies and cycles, actions and\n"
            "their `with` fields, references to unknown steps or outputs. Every problem is\n"
            "printed on standard error as FILE:LINE:COLUMN: message; each valid file as\n"
            "`FILE: ok` on standard output. Exits 0 when all are valid, 2 otherwise."
        ),
        examples=[
            "statebox validate examples/feed-sync.yaml",
            "statebox validate dags/*.yaml",
            "statebox validate parent.yaml child.yml && statebox run parent.yaml",
        ],
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="DAG files (YAML)")
    parser.set_defaults(handler=run, opens_store=False)  # reads files only


def run(args: argparse.Namespace, store: StateStore | None) -> int:
    from .loader import check_files

    def warn(message: str) -> None:
        sys.stderr.write(message + "\n")

    failed = False
    for path in args.files:
        problems = check_files([path], warn=warn)
        for problem in problems:
            sys.stderr.write(f"{problem}\n")
        if problems:
            failed = True
        else:
            sys.stdout.write(f"{path}: ok\n")
    sys.stdout.flush()
    sys.stderr.flush()
    return 2 if failed else 0
