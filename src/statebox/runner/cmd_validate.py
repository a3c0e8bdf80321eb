"""``statebox validate FILE…``: check DAG files (Dagu's form) and Direktiv workflow files
as ``statebox run`` would read them, and run nothing. Each file is checked by its form's
loader (:func:`statebox.runner.forms.check_any`: ``states:`` is a workflow).

Output:

- standard output: one line ``FILE: ok`` for each file without a problem (``FILE`` as
  given on the command line), nothing else;
- standard error: every problem of every file, one per line,
  ``FILE:LINE:COLUMN: message`` (unknown keys with a did-you-mean, wrong types, invalid
  or duplicate ids, unknown dependencies, cycles, unknown actions and ``with`` fields,
  references to unknown steps or outputs; for a workflow: unknown state types and keys,
  transitions to unknown states, undeclared functions, invalid durations, cron
  expressions and JSON Schemas, unbalanced ``jq(...)``), and the warnings (an older
  camelCase key) as ``FILE:LINE:COLUMN: warning: message``. Warnings do not make a
  file invalid.

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
        common=(),
        help="check DAG files (Dagu's form) or Direktiv workflows and run nothing",
        description=(
            "Check each DAG file (steps:) or Direktiv workflow file (states:) as\n"
            "`statebox run` reads it: YAML syntax, unknown keys (with a did-you-mean),\n"
            "types, ids, dependencies and cycles or transitions, actions, functions,\n"
            "references to unknown steps or states. Every problem is printed on standard\n"
            "error as FILE:LINE:COLUMN: message; each valid file as `FILE: ok` on\n"
            "standard output. Exits 0 when all are valid, 2 otherwise."
        ),
        examples=[
            "statebox validate examples/feed-sync.yaml",
            "statebox validate dags/*.yaml",
            "statebox validate parent.yaml child.yml && statebox run parent.yaml",
            "statebox validate examples/direktiv/*.yaml",
        ],
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="DAG or workflow files (YAML)")
    parser.set_defaults(handler=run, opens_store=False)  # reads files only


def run(args: argparse.Namespace, store: StateStore | None) -> int:
    from .forms import check_any

    def warn(message: str) -> None:
        sys.stderr.write(message + "\n")

    failed = False
    for path in args.files:
        problems = check_any([path], warn=warn)
        for problem in problems:
            sys.stderr.write(f"{problem}\n")
        if problems:
            failed = True
        else:
            sys.stdout.write(f"{path}: ok\n")
    sys.stdout.flush()
    sys.stderr.flush()
    return 2 if failed else 0
