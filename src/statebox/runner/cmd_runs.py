"""``statebox runs [--dag NAME] [--limit N]``, ``statebox runs show RUN_ID`` and
``statebox runs log RUN_ID STEP [--stderr]``: the runs the store has records of
(:mod:`.records`), from any machine that shares the store.

Output (standard output, UTF-8):

- ``runs``: one JSON line ``{"runs":[{"run_id","dag","status","started_at",
  "finished_at","duration"},…]}``, newest first (``duration`` in seconds, null while a
  run runs); with ``--format table`` a table. ``--dag`` (the common option) keeps one
  DAG's runs; ``--limit N`` the newest N (0, the default: all).
- ``runs show``: the run's record as one JSON line — its status, params, times and
  ``duration``, and each step's status, attempts, times, ``duration``, exit code, output
  and error; with ``--format table`` its fields, then a table of the steps.
- ``runs log``: the step's standard output (``--stderr``: its standard error) as kept,
  byte for byte; STEP is the step's id or its name. A state step's is its JSON line.

A run or step the store has no record of is an error naming it (exit code 3).

The CLI finds this module through the ``statebox.commands`` entry point; it imports no
other face.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..core.commands import AddCommand
    from ..store import StateStore
    from .records import RunRecord


_CELL_WIDTH: Final = 60


def _limit(raw: str) -> int:
    from ..core import params

    return params.limit(raw, "--limit")


_limit.__name__ = "--limit"  # how argparse would name it in a message of its own


def register(subparsers: Any, add_command: AddCommand) -> None:
    parser = add_command(
        subparsers,
        "runs",
        common=("store", "format", "dag"),
        help="list the runs of DAGs, show one, print a step's log",
        description=(
            "List the runs the store has records of, newest first (--dag NAME: one DAG's;\n"
            "--limit N: the newest N). `runs show RUN_ID` prints a run's record: its status,\n"
            "each step's status, attempts, timings, exit code and output. `runs log RUN_ID\n"
            "STEP` prints the step's standard output as kept (--stderr: standard error);\n"
            "STEP is its id or name. An unknown run or step exits with code 3."
        ),
        examples=[
            "statebox runs",
            "statebox runs --dag feed-sync --limit 5 --format table",
            "statebox runs show 0197a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
            "statebox runs log 0197a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b fetch",
        ],
    )
    parser.add_argument(
        "--limit", metavar="N", type=_limit, default=0, help="the newest N runs (0: all)"
    )
    actions = parser.add_subparsers(title="actions", dest="runs_action", metavar="[show|log]")
    show = add_command(
        actions,
        "show",
        common=("store", "format"),
        help="print a run's record",
        description=(
            "Print the record of RUN_ID: status, params, times, and each step's status,\n"
            "attempts, times, exit code, output and error."
        ),
        examples=["statebox runs show 0197a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b --format table"],
    )
    show.add_argument("run_id", metavar="RUN_ID", help="the run's id")
    log = add_command(
        actions,
        "log",
        common=("store",),
        help="print a step's output",
        description=(
            "Print the standard output (--stderr: standard error) of STEP (its id or name)\n"
            "in run RUN_ID, as kept with the run's record: at most the DAG's\n"
            "max_output_size, and at most its last MiB."
        ),
        examples=["statebox runs log 0197a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b fetch --stderr"],
    )
    log.add_argument("run_id", metavar="RUN_ID", help="the run's id")
    log.add_argument("step", metavar="STEP", help="the step's id or name")
    log.add_argument("--stderr", action="store_true", help="standard error instead of output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> int:
    from .records import RunRecords

    records = RunRecords(store)
    action = getattr(args, "runs_action", None)
    table = getattr(args, "format", "json") == "table"
    if action == "show":
        record = records.get(args.run_id)
        _write(_show_table(record) if table else _dumps(_shown(record)))
    elif action == "log":
        stream = "stderr" if args.stderr else "stdout"
        text = records.log(args.run_id, args.step, stream=stream)
        out = sys.stdout.buffer
        out.write(text.encode("utf-8", "replace"))
        out.flush()
    else:
        limit = getattr(args, "limit", 0) or None
        rows = [_summary(r) for r in records.list(dag=args.dag, limit=limit)]
        _write(_table(rows) if table else _dumps({"runs": rows}))
    return 0


# --- what is printed --------------------------------------------------------------------


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _summary(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "dag": record.dag,
        "status": record.status,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": _seconds(record.duration()),
    }


def _shown(record: RunRecord) -> dict[str, Any]:
    """The record's JSON, with the durations beside the times."""
    data = record.to_json()
    shown: dict[str, Any] = {}
    for name, value in data.items():
        if name == "steps":
            continue
        shown[name] = value
        if name == "finished_at":
            shown["duration"] = _seconds(record.duration())
    steps = []
    for step in record.steps:
        fields: dict[str, Any] = {}
        for name, value in step.to_json().items():
            fields[name] = value
            if name == "finished_at":
                fields["duration"] = _seconds(step.duration())
        steps.append(fields)
    shown["steps"] = steps
    return shown


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _write(text: str) -> None:
    out = sys.stdout.buffer
    out.write(text.encode("utf-8", "replace") + b"\n")
    out.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        from .display import format_duration

        return format_duration(value)
    text = value if isinstance(value, str) else _dumps(value)
    text = " ".join(text.split()) if "\n" in text or "\t" in text else text
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(none)"
    columns = list(rows[0])
    header = [c.upper() for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    )


def _show_table(record: RunRecord) -> str:
    shown = _shown(record)
    fields = [(k, v) for k, v in shown.items() if k != "steps"]
    width = max(len(k) for k, _ in fields)
    lines = [f"{k.ljust(width)}  {_cell(v)}".rstrip() for k, v in fields]
    steps = [
        {
            "step": s["name"],
            "id": s["id"],
            "status": s["status"],
            "attempts": str(s["attempts"]),
            "duration": s["duration"],
            "exit_code": None if s["exit_code"] is None else str(s["exit_code"]),
            "output": s["output"],
            "error": s["error"],
        }
        for s in shown["steps"]
    ]
    return "\n".join([*lines, "", "steps:", _table(steps)])
