"""What ``statebox dump``, ``load``, ``copy`` and ``backup`` share: the progress bar,
the summary line and the notes on standard error.

The progress bar (rich: done/total, rate, ETA) is drawn on standard error only when it
is a terminal: a script that captures standard error gets the notes and nothing else.
rich is imported only then.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["count_lines", "note", "progress_bar", "write_summary"]

Advance = Callable[[int], None]


def write_summary(operation: str, fields: dict[str, Any]) -> None:
    """The command's one JSON line on standard output."""
    line = json.dumps({"operation": operation, **fields}, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def note(command: str, text: str) -> None:
    """One line for people on standard error (never a progress bar's)."""
    sys.stderr.write(f"statebox {command}: {text}\n")
    sys.stderr.flush()


def count_lines(path: str) -> int:
    """The ``\\n``s in a file (a dump's records plus its header), read in chunks."""
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


@contextmanager
def progress_bar(
    description: str, total: int | None, *, completed: int = 0
) -> Iterator[Advance | None]:
    """A bar on standard error when it is a terminal (``None`` otherwise): give the
    function it yields the number of keys each step did."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("… keys/s" if speed is None else f"{speed:,.0f} keys/s")

    columns = [
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), refresh_per_second=4) as bar:
        task = bar.add_task(description, total=total, completed=completed)

        def advance(done: int) -> None:
            bar.advance(task, done)

        yield advance
