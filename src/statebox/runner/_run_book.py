"""What a run knows as it goes, and its record: :class:`RunBook`.

The run's loop (:mod:`._step_graph`) asks it whether a step may start
(:meth:`RunBook.gate`: its dependencies' outcomes and their ``continue_on``) and what
the step may see (:meth:`RunBook.visible`: the outputs and properties of its transitive
dependencies, every finished step's for a handler), and tells it of each step's
progress and end. The book keeps each step's :class:`~.records.StepRecord` up to date,
saves the run record (:class:`~.records.RunRecord`) — when the run starts, after each
step finishes but not more often than :data:`SAVE_INTERVAL`, and at the end, each time
with ``ttl`` (the DAG's retention) — and tells ``display`` of every change. All of it
in the run loop's thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ..core.errors import StateboxError
from . import refs
from ._context import Visible, now_iso
from ._steps import Outcome
from .records import RunRecord, RunRecords, StepRecord

if TYPE_CHECKING:
    from .display import Display
    from .model import Step

__all__ = ["SAVE_INTERVAL", "RunBook"]

#: The run record is saved after a step finishes, but not more often than this
#: (seconds): steps that finish sooner after a save are in the next one. A save is a
#: durable write (an fsync on SQLite); a chain of quick steps must not pay one each.
SAVE_INTERVAL: Final = 0.2


class RunBook:
    """One run's outcomes, outputs and record; see the module's text."""

    def __init__(
        self,
        record: RunRecord,
        records: RunRecords,
        display: Display | None,
        *,
        ttl: float | None = None,
    ) -> None:
        self.record = record
        self.records = records
        self.display = display
        #: Seconds the record is kept after each save (None: for good).
        self.ttl = ttl
        self.step_records = {r.name: r for r in record.steps}
        self.results: dict[str, Outcome] = {}
        #: Output variable → value, of every finished step.
        self.outputs: dict[str, str] = {}
        #: Step name → (its output variable, its view for references).
        self.finished: dict[str, tuple[str | None, refs.StepView]] = {}
        self.ancestors: dict[str, frozenset[str]] = {}
        self._saved_at = 0.0
        self._dirty = False

    # -- what the loop asks ------------------------------------------------------------

    def gate(self, step: Step) -> Outcome | None:
        """None when the step may run; else how it ends because of its dependencies."""
        verdict: Outcome | None = None
        for dep in step.depends:
            result = self.results.get(dep)
            if result is None or result.status == "succeeded" or result.continued:
                continue
            if result.status == "skipped":
                if verdict is None:
                    verdict = Outcome("skipped", error=f"dependency {dep} was skipped")
                    verdict.continued = step.continue_on.skipped
            else:
                verdict = Outcome("aborted", error=f"dependency {dep} {result.status}")
                break
        return verdict

    def visible(self, step: Step, handlers: bool) -> Visible:
        """What the step's references may name (every finished step, for a handler)."""
        if handlers:
            names: Sequence[str] = list(self.finished)
        else:
            ancestors = set(step.depends)
            for dep in step.depends:
                ancestors |= self.ancestors.get(dep, frozenset())
            self.ancestors[step.name] = frozenset(ancestors)
            names = [n for n in self.finished if n in ancestors]
        outputs: dict[str, str] = {}
        views: dict[str, refs.StepView] = {}
        for name in names:
            variable, view = self.finished[name]
            if variable is not None and view.output is not None:
                outputs[variable] = view.output
            views[name] = view
            ref = self.step_records[name].id
            if ref:
                views[ref] = view
        return Visible(outputs, views)

    def status(self, steps: Sequence[Step], stopped: bool) -> str:
        """The run's status once ``steps`` (the DAG's) have ended."""
        if stopped:
            return "aborted"
        outcomes = [self.results[s.name] for s in steps if s.name in self.results]
        if any(o.status in ("failed", "aborted") and not o.continued for o in outcomes):
            return "failed"
        if any(o.status == "failed" for o in outcomes):
            return "partially_succeeded"
        return "succeeded"

    # -- what the loop tells -----------------------------------------------------------

    def add_handler(self, handler: Step) -> None:
        """A handler about to run: its record, after the steps'."""
        self.record.steps.append(StepRecord(name=handler.name, id=handler.id))
        self.step_records[handler.name] = self.record.steps[-1]

    def changed(
        self, step: Step, status: str, attempt: int, message: str | None, child: str | None
    ) -> None:
        rec = self.step_records[step.name]
        if child is not None:
            rec.child_run_id = child
            if (rec.status, rec.attempts) == (status, attempt):
                return  # only the sub-DAG's run id is new: nothing to show
        if rec.started_at is None:
            rec.started_at = now_iso()
        rec.status, rec.attempts = status, attempt
        self.show("step_changed", step.name, status, attempt=attempt, message=message)

    def finish(self, step: Step, outcome: Outcome) -> None:
        if step.name not in self.ancestors:
            self.ancestors[step.name] = frozenset(step.depends)
        self.results[step.name] = outcome
        view = refs.StepView(
            output=outcome.seen if step.output else None,
            stdout=outcome.stdout_path,
            stderr=outcome.stderr_path,
            exit_code=outcome.exit_code,
        )
        self.finished[step.name] = (step.output, view)
        if step.output and outcome.seen is not None:
            self.outputs[step.output] = outcome.seen  # revealed, if the step asked
        rec = self.step_records[step.name]
        rec.status = outcome.status
        rec.attempts = outcome.attempts
        rec.started_at = outcome.started_at if outcome.attempts else rec.started_at
        rec.finished_at = outcome.finished_at or now_iso()
        rec.exit_code = outcome.exit_code
        rec.output = outcome.output  # masked: the masker masks the rest when it is saved
        rec.error = outcome.error
        if outcome.child_run_id:
            rec.child_run_id = outcome.child_run_id
        self.save(soon=True)
        self.show(
            "step_changed",
            step.name,
            outcome.status,
            attempt=max(1, outcome.attempts),
            duration=outcome.duration,
            message=outcome.error,
        )

    # -- saving and showing ------------------------------------------------------------

    def save(self, *, final: bool = False, soon: bool = False) -> None:
        """Save the record now (``soon``: now, unless the last save was less than
        :data:`SAVE_INTERVAL` ago — then the run's loop saves it when that has passed)."""
        now = time.monotonic()
        if soon and now - self._saved_at < SAVE_INTERVAL:
            self._dirty = True
            return
        try:
            self.records.save(self.record, ttl=self.ttl)
        except StateboxError:
            if final:
                raise
            self._dirty = True  # tried again after the next step or interval
            return
        finally:
            self._saved_at = now
        self._dirty = False

    def save_due(self, now: float) -> None:
        """Save a record left unsaved by :meth:`save` once :data:`SAVE_INTERVAL` passed."""
        if self._dirty and now - self._saved_at >= SAVE_INTERVAL:
            self.save()

    def save_wait(self, now: float, longest: float) -> float:
        """How long the loop may wait before :meth:`save_due` has a save to make."""
        if not self._dirty:
            return longest
        return min(longest, max(0.0, self._saved_at + SAVE_INTERVAL - now))

    def show(self, event: str, *args: Any, **kwargs: Any) -> None:
        if self.display is None:
            return
        try:
            getattr(self.display, event)(*args, **kwargs)
        except (OSError, ValueError):  # a closed terminal must not stop the run
            self.display = None
