"""The run's loop: a set of steps run as a graph (:func:`drive`).

A step starts when every step it depends on has finished, in the order the steps are
written among those ready, independent ones in parallel: each in a worker thread, at
most ``max_active_steps`` at once (the store is thread-safe). A step whose dependency
failed is ``aborted``, one whose dependency was skipped ``skipped``, unless that
dependency's ``continue_on`` lets it run (:meth:`._run_book.RunBook.gate`). The loop
itself stays in one thread: the workers send it their progress and their ends through a
queue, and it keeps the book (:class:`~._run_book.RunBook`), stops a step whose attempt
ran past its ``timeout_sec``, and, once ``cancel`` (or ``halt``, the whole run tree's
stop) is set, stops every running step and starts no other. Before it returns it waits
for the process groups it stopped to be gone, killing what is left of them when their
grace has passed (:func:`._process.reap_groups`): a process that ignores SIGTERM does
not outlive the run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from ._context import RunScope, Visible, describe
from ._process import Slot, reap_groups
from ._run_book import RunBook
from ._steps import Emit, Outcome, execute_step

if TYPE_CHECKING:
    from .model import Step

__all__ = ["drive"]

#: How often (seconds) the run's loop looks at its stop event and at timeouts.
_POLL: Final = 0.1


def drive(
    book: RunBook,
    scope: RunScope,
    steps: Sequence[Step],
    cancel: threading.Event,
    *,
    handlers: bool,
    halt: threading.Event | None = None,
) -> bool:
    """Run ``steps`` (the DAG's, or one handler) until each finished or was stopped;
    whether ``cancel`` stopped them. ``halt`` (the root run's stop, seen by every
    sub-DAG's run at once) sets ``cancel``."""
    names = {s.name: i for i, s in enumerate(steps)}
    waiting = {s.name: sum(1 for d in s.depends if d in names) for s in steps}
    dependants: dict[str, list[Step]] = {}
    for s in steps:
        for d in s.depends:
            if d in names:
                dependants.setdefault(d, []).append(s)
    ready = [s for s in steps if not waiting[s.name]]
    running: dict[str, Slot] = {}
    slots: list[Slot] = []
    events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    limit = max(1, scope.dag.max_active_steps)
    stopping = False
    pool = ThreadPoolExecutor(max_workers=min(limit, len(steps)) or 1)

    def emit(step: Step, status: str, attempt: int, message: str | None, child: str | None) -> None:
        events.put(("changed", step, status, attempt, message, child))

    def finished(step: Step, outcome: Outcome) -> None:
        book.finish(step, outcome)
        for dependant in dependants.get(step.name, ()):
            waiting[dependant.name] -= 1
            if not waiting[dependant.name]:
                ready.append(dependant)
                ready.sort(key=lambda s: names[s.name])

    try:
        while True:
            if halt is not None and halt.is_set() and not cancel.is_set():
                cancel.set()
            if cancel.is_set() and not stopping:
                stopping = True
                for slot in running.values():
                    slot.cancel("stop")
            while ready and not stopping and len(running) < limit:
                step = ready.pop(0)
                verdict = None if handlers else book.gate(step)
                if verdict is not None:
                    finished(step, verdict)
                    continue
                slot = running[step.name] = Slot()
                slots.append(slot)
                visible = book.visible(step, handlers)
                pool.submit(_work, scope, step, visible, slot, cancel, emit, events)
            if not running:
                break
            try:
                event = events.get(timeout=_wait(book, running))
            except queue.Empty:
                event = None
            if event is not None and event[0] == "done":
                running.pop(event[1].name)
                finished(event[1], event[2])
            elif event is not None:
                book.changed(*event[1:])
            now = time.monotonic()
            for slot in running.values():
                if slot.deadline is not None and now >= slot.deadline:
                    slot.cancel("timeout")
            book.save_due(now)
    finally:
        for slot in running.values():
            slot.cancel("stop")
        pool.shutdown(wait=True)
        reap_groups({pgid: end for slot in slots for pgid, end in slot.signalled.items()})
    return stopping


def _work(
    scope: RunScope,
    step: Step,
    visible: Visible,
    slot: Slot,
    cancel: threading.Event,
    emit: Emit,
    events: queue.SimpleQueue[tuple[Any, ...]],
) -> None:
    """One step, in a worker thread: its outcome always reaches the loop."""
    try:
        outcome = execute_step(scope, step, visible, slot, cancel, emit)
    except BaseException as exc:  # the loop waits for every step: always answer
        outcome = Outcome("failed", error=describe(exc))
    events.put(("done", step, outcome))


def _wait(book: RunBook, running: Mapping[str, Slot]) -> float:
    """How long the loop may wait for an event: a save or a timeout may be due."""
    now = time.monotonic()
    wait = book.save_wait(now, _POLL)
    for slot in running.values():
        if slot.deadline is not None:
            wait = min(wait, max(0.0, slot.deadline - now))
    return wait
