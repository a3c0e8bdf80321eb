"""``statebox schedule DIR``: run DAGs on their ``schedule``, once per occurrence, across
every scheduler that shares the store.

What Dagu does, and so does this:

- ``schedule`` is a cron expression or a list of them (croniter's syntax: five fields,
  or six with a trailing seconds field, ``@hourly`` …; a ``CRON_TZ=Zone`` or ``TZ=Zone``
  prefix picks the time zone, else the local one). Each occurrence runs the DAG once.
- Only occurrences after the scheduler started run: one missed while no scheduler was up
  is not run afterwards (Dagu does not catch up by default). An occurrence found more
  than ``max_lateness`` seconds late (the machine slept) is missed too, with a line.
- ``max_active_runs`` (default 1; 0 or less: no limit) bounds the DAG's concurrent runs,
  and ``overlap_policy`` says what an occurrence does while that many are active:
  ``skip`` (the default) skips it; ``all`` queues it, and queued occurrences start in
  order as runs finish; ``latest`` queues it and drops every older waiting one.
- SIGTERM/SIGINT (:meth:`Scheduler.stop`): no new run starts, waiting occurrences are
  dropped, running runs are told to stop (their stop event: the executor stops the
  steps, runs ``handler_on.exit`` and records them aborted), and the scheduler returns
  once they ended.

Exactly once across machines, and ``max_active_runs`` across them too: each occurrence
is decided under a lease and recorded in a fenced, create-only claim in the store (scope
``statebox``, namespace ``schedule``); :mod:`._claims` tells how.

The cron expressions are read by :mod:`._cron`, as the loader reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from ..core.errors import (
    ConflictError,
    FencingError,
    InvalidValueError,
    StateboxError,
    quoted,
)
from ._claims import (
    CLAIM_NAMESPACE,
    CLAIM_SCOPE,
    DEFAULT_CLAIM_TTL,
    DEFAULT_LEASE_TTL,
    LEASE_PREFIX,
    Occurrence,
    claim_key,
    occurrence_lease,
    slot_lease,
)
from ._cron import CronSchedule, Occurrences, iso
from ._schedule_runs import DagState, RunFn, RunKeeper

if TYPE_CHECKING:
    from ..core.results_beyond import LeaseResult
    from ..store import StateStore
    from .forms import Runnable

__all__ = [
    "CLAIM_NAMESPACE",
    "CLAIM_SCOPE",
    "DEFAULT_CLAIM_TTL",
    "DEFAULT_LEASE_TTL",
    "LEASE_PREFIX",
    "CronSchedule",
    "RunFn",
    "Scheduler",
    "claim_key",
    "occurrence_lease",
    "slot_lease",
]

DEFAULT_MAX_LATENESS: Final = 60.0
#: How often a scheduler with waiting occurrences looks for a free slot held elsewhere.
DEFAULT_POLL: Final = 0.5
#: The longest the loop sleeps at once (it also wakes when a run ends or on stop).
MAX_SLEEP: Final = 5.0


class Scheduler(RunKeeper):
    """Runs ``dags`` on their schedules until :meth:`stop`; see the module's text.

    ``dags`` may hold Direktiv workflows too (``start: {type: scheduled}``). ``run``
    runs one (default: :func:`statebox.runner.forms.run_any` with a
    :class:`~statebox.runner.executor.RunOptions` of ``store_url`` and ``dags_dir``);
    ``now`` is the clock (epoch seconds) occurrences are computed with, ``sleep`` how the
    loop waits (default: until the next occurrence, a run's end, or :meth:`stop`).
    Tests drive :meth:`tick` with their own clock instead of :meth:`run_forever`.
    """

    def __init__(
        self,
        store: StateStore,
        dags: Sequence[Runnable],
        *,
        store_url: str | None = None,
        dags_dir: str | None = None,
        run: RunFn | None = None,
        new_run_id: Callable[[], str] | None = None,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        holder: str | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        claim_ttl: float = DEFAULT_CLAIM_TTL,
        max_lateness: float = DEFAULT_MAX_LATENESS,
        poll: float = DEFAULT_POLL,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if min(lease_ttl, claim_ttl, max_lateness, poll) <= 0:
            raise ValueError("lease_ttl, claim_ttl, max_lateness and poll must be above 0")
        super().__init__(
            store,
            store_url=store_url,
            dags_dir=dags_dir,
            run=run,
            new_run_id=new_run_id,
            holder=holder,
            lease_ttl=lease_ttl,
            claim_ttl=claim_ttl,
            log=log,
        )
        self.now = now
        self.max_lateness = max_lateness
        self.poll = poll
        self._sleep = sleep if sleep is not None else self._wait
        self.started_at = now()
        for dag in dags:
            if not dag.schedule:
                continue
            if dag.name in self._states:
                raise InvalidValueError(
                    f"two scheduled DAGs are named {quoted(dag.name)}: "
                    f"{self._states[dag.name].dag.path} and {dag.path}"
                )
            where = str(dag.where) if dag.where else dag.path
            schedule = Occurrences(dag.schedule, where=where)
            self._states[dag.name] = DagState(dag, schedule, schedule.next_after(self.started_at))

    # -- public --------------------------------------------------------------------------

    @property
    def dags(self) -> Mapping[str, Runnable]:
        """The scheduled DAGs, by name."""
        return {name: state.dag for name, state in self._states.items()}

    def next_occurrence(self, dag: str) -> int:
        """The next occurrence (epoch seconds) not yet handled for ``dag``."""
        return self._states[dag].next_epoch

    def active_runs(self, dag: str) -> list[str]:
        """The run ids of ``dag``'s runs this scheduler is running."""
        with self._lock:
            return [o.run_id for o in self._states[dag].running if o.run_id]

    def waiting(self, dag: str) -> list[int]:
        """The occurrences of ``dag`` this scheduler has queued, oldest first."""
        with self._lock:
            return [o.epoch for o in self._states[dag].waiting]

    def run_forever(self) -> None:
        """Handle occurrences until :meth:`stop`, then stop cleanly (see the module)."""
        self._start_heartbeat()
        try:
            while not self._stopping.is_set():
                self._wake.clear()  # a run ending from here on cuts the sleep short
                try:
                    next_at = self.tick()
                except StateboxError as exc:  # the store unreachable: keep trying
                    self._log(f"statebox schedule: {exc}")
                    next_at = self.now() + self.poll
                if self._stopping.is_set():
                    break
                delay = min(max(next_at - self.now(), 0.0), MAX_SLEEP)
                self._sleep(delay)
        finally:
            self.shutdown()

    def tick(self) -> float:
        """Handle every occurrence due by ``now()`` and start waiting ones that may;
        return when the next thing is due (epoch seconds)."""
        now = self.now()
        wake = now + MAX_SLEEP
        for state in list(self._states.values()):
            if now - state.next_epoch > self.max_lateness:
                # Behind (the machine slept, the store hung): what is too late is
                # missed, as an occurrence is while no scheduler runs.
                first = state.next_epoch
                state.next_epoch = state.schedule.next_after(now - self.max_lateness)
                last = state.schedule.prev_before(state.next_epoch)
                span = iso(first) if last == first else f"{iso(first)} to {iso(last)}"
                self._log(
                    f"{state.dag.name}: missed {span}: more than {self.max_lateness:g} s late"
                )
            while state.next_epoch <= now and not self._stopping.is_set():
                epoch = state.next_epoch
                state.next_epoch = state.schedule.next_after(epoch)
                self._occur(state, epoch)
            self._start_waiting(state)
            wake = min(wake, state.next_epoch)
            with self._lock:
                if state.waiting:
                    wake = min(wake, now + self.poll)
        return wake

    # -- one occurrence ------------------------------------------------------------------

    def _occur(self, state: DagState, epoch: int) -> None:
        dag = state.dag
        claims = self._claims
        try:
            lease = claims.lease(dag, epoch)
        except ConflictError:
            return  # another scheduler holds it: that one decides
        except StateboxError as exc:
            self._say(dag, epoch, f"not handled: {exc}")
            return
        occ = Occurrence(dag, epoch, lease)
        policy = dag.overlap_policy
        with self._lock:
            must_queue = policy != "skip" and bool(state.waiting)
        slot = None
        try:
            slot = None if must_queue else self._take_slot(occ)
            if slot is not None or dag.max_active_runs <= 0:
                status = "running"
                occ.run_id = self._fresh_run_id()
            elif policy == "skip":
                status = "skipped"
            else:
                status = "queued"
            claims.claim(occ, status, reason=None if status != "skipped" else _busy(dag))
        except StateboxError as exc:
            # ConflictError: claimed before (by a scheduler whose lease we took over);
            # FencingError: our lease was taken over meanwhile. Either way: not ours.
            # Anything else (the store unreachable): not handled here; if another
            # scheduler reaches the store, it takes the lease once it expired.
            if slot is not None:
                claims.release(slot)
            claims.release(lease)
            if isinstance(exc, FencingError):
                self._say(dag, epoch, f"not handled, its lease was taken over: {exc}")
            elif not isinstance(exc, ConflictError):
                self._say(dag, epoch, f"not handled: {exc}")
            return
        occ.slot = slot
        if status == "running":
            self._start(state, occ)
        elif status == "skipped":
            claims.release(lease)
            self._say(dag, epoch, f"skipped ({_busy(dag)})")
        else:
            with self._lock:
                if policy == "latest":
                    older = list(state.waiting)
                    state.waiting.clear()
                else:
                    older = []
                state.waiting.append(occ)
            for old in older:
                self._drop(old, f"superseded by {iso(epoch)}")
            self._say(dag, epoch, f"queued ({_busy(dag)})")

    def _start_waiting(self, state: DagState) -> None:
        """Start the oldest waiting occurrences while slots are free."""
        while not self._stopping.is_set():
            with self._lock:
                if not state.waiting:
                    return
                occ = state.waiting[0]
            dag = occ.dag
            if dag.overlap_policy == "latest" and self._superseded(state, occ):
                with self._lock:
                    if state.waiting and state.waiting[0] is occ:
                        state.waiting.popleft()
                self._drop(occ, "a newer occurrence was claimed")
                continue
            if dag.overlap_policy == "all" and self._predecessor_waits(state, occ):
                return
            slot = self._take_slot(occ)
            if slot is None and dag.max_active_runs > 0:
                return
            with self._lock:
                if not state.waiting or state.waiting[0] is not occ:
                    if slot is not None:
                        self._claims.release(slot)
                    continue
                state.waiting.popleft()
            occ.slot = slot
            occ.run_id = self._fresh_run_id()
            try:
                self._claims.update(occ, "running")
            except StateboxError as exc:
                self._claims.release_all(occ)
                self._say(dag, occ.epoch, f"not started: {exc}")
                continue
            self._start(state, occ)

    def _superseded(self, state: DagState, occ: Occurrence) -> bool:
        """``latest``: has a newer occurrence of the DAG been claimed (anywhere)?"""
        newer = state.schedule.next_after(occ.epoch)
        if newer > self.now():
            return False
        status = self._claims.status(occ.dag, newer)
        return status is not None and status not in ("dropped", "skipped")

    def _predecessor_waits(self, state: DagState, occ: Occurrence) -> bool:
        """``all``: is the occurrence before this one still queued by a live scheduler?"""
        before = state.schedule.prev_before(occ.epoch)
        if before <= self.started_at:
            return False
        with self._lock:
            if any(o.epoch == before for o in state.waiting):
                return True
        if self._claims.status(occ.dag, before) != "queued":
            return False
        return self._claims.lease_alive(occ.dag, before)

    # -- the run slot (its own method: a test stalls in it) ---------------------------

    def _take_slot(self, occ: Occurrence) -> LeaseResult | None:
        """One of the DAG's run slots, or None when all are taken (or none is needed)."""
        return self._claims.take_slot(occ)


def _busy(dag: Runnable) -> str:
    n = dag.max_active_runs
    return f"{n} run{'s' if n != 1 else ''} active, max_active_runs {n}"
