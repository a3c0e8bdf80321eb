"""How ``statebox run`` shows a run: live on a terminal, plain lines otherwise.

The executor tells a :class:`Display` of every change — a run started, a step running,
retrying or done, the run finished — from whichever thread the step ran in; both
displays here take those calls from any thread.

- :class:`LiveDisplay` (a terminal): a table of the steps redrawn in place with
  ``rich`` — status (running and retrying with a spinner; succeeded, failed, skipped,
  aborted in colour), attempt, duration (counting while a step runs) and the last
  message — then the run's status and duration under it.
- :class:`PlainDisplay` (a pipe, a file, a CI log): one line per change::

      10:00:00 run feed-sync 0197a1b2-… running
      10:00:00 step fetch running
      10:00:01 step fetch retrying attempt 2 exit status 1
      10:00:03 step fetch succeeded attempt 2 2.1s
      10:00:03 step "save cursor" succeeded 0.0s
      10:00:03 run feed-sync 0197a1b2-… succeeded 3.4s

  ``HH:MM:SS`` is local time. A name holding white space is quoted; the attempt is
  shown from the second on; a message is one line, at most 300 characters.

``rich`` is imported only for a terminal.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

from ..core.errors import quoted

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["Display", "LiveDisplay", "PlainDisplay", "format_duration", "make_display"]

_MESSAGE_MAX: Final = 300
_SPACE: Final = re.compile(r"\s+")
#: Statuses still under way: shown with a spinner and a running clock.
_ACTIVE: Final = frozenset({"running", "retrying"})
_STYLES: Final = {
    "not_started": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "succeeded": "green",
    "partially_succeeded": "yellow",
    "failed": "bold red",
    "aborted": "red",
    "skipped": "dim",
    "queued": "dim",
}


class Display(Protocol):
    """What the executor tells whoever shows a run."""

    def run_started(self, dag: str, run_id: str) -> None: ...

    def step_changed(
        self,
        step: str,
        status: str,
        *,
        attempt: int = 1,
        duration: float | None = None,
        message: str | None = None,
    ) -> None: ...

    def run_finished(self, dag: str, run_id: str, status: str, duration: float) -> None: ...

    def close(self) -> None: ...


def make_display(stream: TextIO | None = None) -> Display:
    """A :class:`LiveDisplay` when ``stream`` (default: standard output) is a terminal,
    else a :class:`PlainDisplay`."""
    out = sys.stdout if stream is None else stream
    try:
        terminal = out.isatty()
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        terminal = False
    if terminal:
        try:
            return LiveDisplay(out)
        except ImportError:  # statebox without the runner extra: still a display
            pass
    return PlainDisplay(out)


def format_duration(seconds: float) -> str:
    """``34ms``, ``1.2s``, ``12.0s``, ``2m03s``, ``1h02m``."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _one_line(message: str | None) -> str | None:
    if not message:
        return None
    text = _SPACE.sub(" ", message).strip()
    if len(text) > _MESSAGE_MAX:
        text = text[: _MESSAGE_MAX - 1] + "…"
    return text or None


def _name(text: str) -> str:
    """A name as one word of a plain line: quoted when it holds white space (or is empty)."""
    if text and not _SPACE.search(text) and '"' not in text:
        return text
    return quoted(text)


class PlainDisplay:
    """One line per change, for output that is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def run_started(self, dag: str, run_id: str) -> None:
        self._line(f"run {_name(dag)} {run_id} running")

    def step_changed(
        self,
        step: str,
        status: str,
        *,
        attempt: int = 1,
        duration: float | None = None,
        message: str | None = None,
    ) -> None:
        parts = ["step", _name(step), status]
        if attempt > 1:
            parts.append(f"attempt {attempt}")
        if duration is not None:
            parts.append(format_duration(duration))
        text = _one_line(message)
        if text is not None:
            parts.append(text)
        self._line(" ".join(parts))

    def run_finished(self, dag: str, run_id: str, status: str, duration: float) -> None:
        self._line(f"run {_name(dag)} {run_id} {status} {format_duration(duration)}")

    def close(self) -> None:
        # A closed stream: nothing left to flush.
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._stream.flush()


@dataclass
class _Row:
    status: str = "not_started"
    attempt: int = 1
    duration: float | None = None
    message: str | None = None
    since: float = 0.0  # monotonic time the step became active


class LiveDisplay:
    """A live table of the steps (``rich``), for a terminal. ``console`` replaces the one
    made for ``stream`` (tests render to ``Console(force_terminal=True, file=StringIO())``).

    Two locks, never held together by one thread while it waits for rich's: ``_control``
    orders starting and stopping the live view; ``_state`` guards the rows, which rich's
    refresh thread reads (under its own lock) to draw them. A step's change only updates
    its row: the refresh thread redraws 8 times a second."""

    def __init__(self, stream: TextIO | None = None, *, console: Console | None = None) -> None:
        from rich.console import Console

        self._console = console if console is not None else Console(file=stream or sys.stdout)
        self._control = threading.Lock()
        self._state = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._run: tuple[str, str] | None = None
        self._final: tuple[str, float] | None = None
        self._live: Any = None

    # -- events --------------------------------------------------------------------------

    def run_started(self, dag: str, run_id: str) -> None:
        from rich.live import Live

        with self._control:
            self._stop()
            with self._state:
                self._run, self._final, self._rows = (dag, run_id), None, {}
            self._live = Live(
                console=self._console,
                get_renderable=self._render,
                refresh_per_second=8,
                transient=False,
            )
            self._live.start()

    def step_changed(
        self,
        step: str,
        status: str,
        *,
        attempt: int = 1,
        duration: float | None = None,
        message: str | None = None,
    ) -> None:
        with self._state:
            row = self._rows.setdefault(step, _Row())
            if status in _ACTIVE and row.status not in _ACTIVE:
                row.since = time.monotonic()
            row.status, row.attempt, row.duration = status, attempt, duration
            if message is not None or status not in _ACTIVE:
                row.message = _one_line(message)

    def run_finished(self, dag: str, run_id: str, status: str, duration: float) -> None:
        with self._control:
            with self._state:
                self._run, self._final = (dag, run_id), (status, duration)
            self._stop()  # its last drawing shows the run's status

    def close(self) -> None:
        with self._control:
            self._stop()

    # -- drawing -------------------------------------------------------------------------

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _render(self) -> RenderableType:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        with self._state:
            dag, run_id = self._run or ("", "")
            table = Table(
                title=Text.assemble(("run ", "dim"), (dag, "bold"), (f"  {run_id}", "dim")),
                title_justify="left",
                box=None,
                pad_edge=False,
                header_style="bold dim",
            )
            for column in ("STEP", "STATUS", "ATTEMPT", "DURATION", "MESSAGE"):
                table.add_column(column, no_wrap=column != "MESSAGE", overflow="fold")
            now = time.monotonic()
            for name, row in self._rows.items():
                style = _STYLES.get(row.status, "")
                status: RenderableType = Text(row.status, style=style)
                duration = row.duration
                if row.status in _ACTIVE and self._final is None:
                    status = Spinner("dots", text=Text(row.status, style=style), style=style)
                    duration = now - row.since
                table.add_row(
                    Text(name),
                    status,
                    str(row.attempt) if row.attempt > 1 else "",
                    format_duration(duration) if duration is not None else "",
                    Text(row.message or "", style="dim"),
                )
            if self._final is not None:
                final, seconds = self._final
                table.caption = Text.assemble(
                    ("run ", "dim"),
                    (final, _STYLES.get(final, "bold")),
                    (f"  {format_duration(seconds)}", "dim"),
                )
                table.caption_justify = "left"
            return table
