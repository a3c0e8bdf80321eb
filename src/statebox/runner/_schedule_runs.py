"""The runs a scheduler starts (:mod:`.scheduler`): each in a thread of its own, its
claim and leases finished when it ends, a heartbeat renewing the leases meanwhile, and
on stop the waiting occurrences dropped and the runs stopped and waited for.

:class:`RunKeeper` is the scheduler's base: what it holds (the store, its
:class:`~._claims.Claims`, each DAG's waiting and running occurrences, the lock that
guards them) and the threads' side of its work, so that :mod:`.scheduler` reads as the
decisions alone: when a DAG occurs, and what each occurrence does.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._claims import Claims, Occurrence
from ._context import new_run_id, now_iso
from ._cron import Occurrences, iso

if TYPE_CHECKING:
    from ..store import StateStore
    from .forms import Runnable

__all__ = ["DagState", "RunFn", "RunKeeper"]

#: Runs one DAG or workflow: ``(dag, run_id, stop) -> the run's final status``.
RunFn = Callable[["Runnable", str, threading.Event], str]


@dataclass(eq=False)
class DagState:
    """One scheduled DAG (or Direktiv workflow): when it occurs, its next occurrence
    not yet handled, and its occurrences this scheduler has queued and running."""

    dag: Runnable
    schedule: Occurrences
    next_epoch: int
    waiting: deque[Occurrence] = field(default_factory=deque)
    running: list[Occurrence] = field(default_factory=list)


class RunKeeper:
    """A scheduler's runs and what it holds; see the module's text."""

    def __init__(
        self,
        store: StateStore,
        *,
        store_url: str | None,
        dags_dir: str | None,
        run: RunFn | None,
        new_run_id: Callable[[], str] | None,
        holder: str | None,
        lease_ttl: float,
        claim_ttl: float,
        log: Callable[[str], None] | None,
    ) -> None:
        self.store = store
        self.lease_ttl = lease_ttl
        self.claim_ttl = claim_ttl
        self.holder = holder or _default_holder()
        self._claims = Claims(
            store, self.holder, lease_ttl=lease_ttl, claim_ttl=claim_ttl, say=self._say
        )
        self._log = log if log is not None else _print_line
        self._run = run if run is not None else _executor_run(store, store_url, dags_dir)
        self._new_run_id = new_run_id
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._heartbeat: threading.Thread | None = None
        self._states: dict[str, DagState] = {}

    # -- stopping ----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask :meth:`run_forever` to stop (thread-safe; call it from a signal handler's
        thread, not the handler itself)."""
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for this scheduler's runs to end; True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [o.thread for s in self._states.values() for o in s.running]
            alive = [t for t in threads if t is not None and t.is_alive()]
            if not alive:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            alive[0].join(left)

    def shutdown(self) -> None:
        """Stop: drop the waiting occurrences, tell the running runs to stop, wait."""
        self._stopping.set()
        with self._lock:
            dropped = [o for s in self._states.values() for o in s.waiting]
            for state in self._states.values():
                state.waiting.clear()
            running = [o for s in self._states.values() for o in s.running]
        for occ in dropped:
            self._claims.finish(occ, "dropped", reason="the scheduler stopped")
            self._claims.release(occ.lease)
            self._say(occ.dag, occ.epoch, "dropped (the scheduler stopped)")
        for occ in running:
            occ.stop.set()
        self.join()
        self._wake.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None

    # -- one run -----------------------------------------------------------------------

    def _start(self, state: DagState, occ: Occurrence) -> None:
        thread = threading.Thread(
            target=self._run_one,
            args=(state, occ),
            name=f"statebox-schedule-{occ.dag.name}-{occ.epoch}",
        )
        occ.thread = thread
        with self._lock:
            state.running.append(occ)
        self._say(occ.dag, occ.epoch, f"started run {occ.run_id}")
        thread.start()

    def _run_one(self, state: DagState, occ: Occurrence) -> None:
        assert occ.run_id is not None
        started = time.monotonic()
        error: str | None = None
        try:
            status = self._run(occ.dag, occ.run_id, occ.stop)
        except Exception as exc:  # a run that blew up must not take the scheduler down
            status, error = "failed", str(exc) or type(exc).__name__
        try:
            self._claims.finish(occ, status, reason=error)
            self._claims.release_all(occ)
        finally:
            with self._lock:
                if occ in state.running:
                    state.running.remove(occ)
            self._wake.set()
        took = time.monotonic() - started
        detail = f": {error}" if error else ""
        self._say(occ.dag, occ.epoch, f"run {occ.run_id} {status} in {took:.2f} s{detail}")

    def _drop(self, occ: Occurrence, reason: str) -> None:
        self._claims.finish(occ, "dropped", reason=reason)
        self._claims.release_all(occ)
        self._say(occ.dag, occ.epoch, f"dropped ({reason})")

    # -- the leases' heartbeat ---------------------------------------------------------

    def renew_leases(self) -> None:
        """Renew every lease this scheduler holds (the heartbeat does it every ttl/3)."""
        with self._lock:
            occs = [o for s in self._states.values() for o in (*s.waiting, *s.running)]
        self._claims.renew(occs)

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stopping.wait(self.lease_ttl / 3):
                self.renew_leases()
            # Stopping: keep the runs' leases alive until they ended.
            while self.join(self.lease_ttl / 3) is False:
                self.renew_leases()

        self._heartbeat = threading.Thread(target=beat, name="statebox-schedule-heartbeat")
        self._heartbeat.daemon = True
        self._heartbeat.start()

    # -- small things --------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)

    def _fresh_run_id(self) -> str:
        return (self._new_run_id or new_run_id)()

    def _say(self, dag: Runnable, epoch: int, message: str) -> None:
        self._log(f"{dag.name} @ {iso(epoch)}: {message}")


def _default_holder() -> str:
    import secrets
    import socket

    return f"{socket.gethostname()}/{os.getpid()}#{secrets.token_hex(4)}"


def _print_line(line: str) -> None:
    stamp = now_iso()
    try:
        sys.stdout.write(f"{stamp} {line}\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _executor_run(store: StateStore, store_url: str | None, dags_dir: str | None) -> RunFn:
    def run(dag: Runnable, run_id: str, stop: threading.Event) -> str:
        from .executor import RunOptions
        from .forms import run_any

        if store_url is None:
            raise RuntimeError("the scheduler needs the store's URL to run DAGs")
        # A workflow's scheduled instance starts with the input {} (the engine's default).
        options = RunOptions(store_url=store_url, run_id=run_id, dags_dir=dags_dir)
        record = run_any(dag, store, options, stop=stop)
        return str(record.status)

    return run
