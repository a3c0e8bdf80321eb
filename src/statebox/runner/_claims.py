"""Exactly once across machines — what no scheduler of the seeds does: the leases and
the claims of ``statebox schedule``, kept apart from its loop (:mod:`.scheduler`) so
that the protocol can be read in one place.

For each DAG and occurrence a scheduler:

1. acquires the lease ``statebox.schedule/<dag>/<epoch>`` (a ``ConflictError``: another
   scheduler is on it, nothing to do), which keeps two schedulers from deciding at once;
2. decides: start (a free run slot, below), queue, or skip;
3. records the decision with a *create-only* write of ``<dag>/<epoch>`` in scope
   ``statebox``, namespace ``schedule``, fenced by the lease's token. This claim is the
   once-marker: a scheduler whose lease expired and was taken over is refused (fencing),
   and one that comes after a finished occurrence finds the claim (create-only), so no
   occurrence is ever claimed twice;
4. runs the DAG with a fresh run id in a thread, keeping the lease (renewed) until the
   run ends, then releases it and writes the run's final status into the claim.

``max_active_runs`` holds across machines too: a run holds one of the DAG's slot leases
``statebox.schedule/<dag>/slot/<i>`` (``i < max_active_runs``), renewed while it runs, so
a slot held by a scheduler that died frees itself after the lease's ttl. Queued
occurrences wait in the scheduler that claimed them; ``all`` keeps their order across
schedulers (an occurrence does not start while the one before it is still queued by a
live scheduler), ``latest`` drops a waiting occurrence once a newer one is claimed
anywhere. Claims expire after ``claim_ttl`` (a week): far longer than any occurrence can
be late.

A claim (``statebox get --scope statebox --namespace schedule <dag>/<epoch>``) holds
``dag``, ``occurrence`` (UTC), ``epoch``, ``holder`` (the scheduler: host/pid#random),
``status`` — ``running`` then the run's final status (``succeeded``, ``failed``,
``aborted``, ``partially_succeeded``), or ``skipped``, ``queued``, ``dropped`` (a newer
occurrence superseded it under ``latest``, or the scheduler stopped first) — and the
``run_id`` once it started. A scheduler that dies leaves its claims as they were: its
occurrences are not run again (at most once, never twice), and its leases expire.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..core.errors import ConflictError, StateboxError
from ._context import now_iso
from ._cron import iso

if TYPE_CHECKING:
    from ..core.results_beyond import LeaseResult
    from ..store import StateStore
    from .forms import Runnable  # a DAG or a Direktiv workflow: both are scheduled

__all__ = [
    "CLAIM_NAMESPACE",
    "CLAIM_SCOPE",
    "DEFAULT_CLAIM_TTL",
    "DEFAULT_LEASE_TTL",
    "LEASE_PREFIX",
    "Claims",
    "Occurrence",
    "claim_key",
    "occurrence_lease",
    "slot_lease",
]

#: The reserved scope and the namespace the claims (one per DAG and occurrence) live in.
CLAIM_SCOPE: Final = "statebox"
CLAIM_NAMESPACE: Final = "schedule"
#: Every lease the scheduler takes is named under this prefix.
LEASE_PREFIX: Final = "statebox.schedule"

DEFAULT_LEASE_TTL: Final = 30.0
DEFAULT_CLAIM_TTL: Final = 7 * 24 * 3600.0

#: ``say(dag, epoch, message)``: a line about one occurrence.
Say = Callable[["Runnable", int, str], None]


def occurrence_lease(dag: str, epoch: int) -> str:
    """The lease one occurrence's scheduler holds: ``statebox.schedule/<dag>/<epoch>``."""
    return f"{LEASE_PREFIX}/{dag}/{epoch}"


def slot_lease(dag: str, slot: int) -> str:
    """One of the DAG's ``max_active_runs`` run slots."""
    return f"{LEASE_PREFIX}/{dag}/slot/{slot}"


def claim_key(dag: str, epoch: int) -> str:
    """The claim's key in scope ``statebox``, namespace ``schedule``."""
    return f"{dag}/{epoch}"


@dataclass(eq=False)
class Occurrence:
    """One occurrence this scheduler claimed: its lease, its claim's version, its run
    slot and run once it starts."""

    dag: Runnable
    epoch: int
    lease: LeaseResult
    claim_version: int = 0
    slot: LeaseResult | None = None
    run_id: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class Claims:
    """One scheduler's side of the protocol: the leases it takes, renews and releases,
    and the claims it writes and reads. ``say`` hears of what fails on the way."""

    def __init__(
        self,
        store: StateStore,
        holder: str,
        *,
        lease_ttl: float,
        claim_ttl: float,
        say: Say,
    ) -> None:
        self.store = store
        self.holder = holder
        self.lease_ttl = lease_ttl
        self.claim_ttl = claim_ttl
        self.say = say

    # -- leases ------------------------------------------------------------------------

    def lease(self, dag: Runnable, epoch: int) -> LeaseResult:
        """The occurrence's lease; ``ConflictError`` when another scheduler holds it."""
        return self.store.acquire_lease(
            occurrence_lease(dag.name, epoch), self.lease_ttl, holder=f"{self.holder}/{epoch}"
        )

    def take_slot(self, occ: Occurrence) -> LeaseResult | None:
        """One of the DAG's run slots, or None when all are taken (or none is needed)."""
        limit = occ.dag.max_active_runs
        for slot in range(max(limit, 0)):
            try:
                return self.store.acquire_lease(
                    slot_lease(occ.dag.name, slot),
                    self.lease_ttl,
                    holder=f"{self.holder}/{occ.epoch}",
                )
            except ConflictError:
                continue
        return None

    def lease_alive(self, dag: Runnable, epoch: int) -> bool:
        """Whether a scheduler (any) still holds the occurrence's lease."""
        lease = self.store.get_lease(occurrence_lease(dag.name, epoch))
        return lease is not None and lease.expires_at > self.store.clock.now_ns()

    def release(self, lease: LeaseResult) -> None:
        with contextlib.suppress(StateboxError):  # else it expires by itself
            self.store.release_lease(lease)

    def release_all(self, occ: Occurrence) -> None:
        """The occurrence's run slot (if it holds one), then its lease."""
        if occ.slot is not None:
            self.release(occ.slot)
            occ.slot = None
        self.release(occ.lease)

    def renew(self, occs: Iterable[Occurrence]) -> None:
        """Renew the leases of ``occs``: each one's own, and its run slot's."""
        for occ in occs:
            for which in ("lease", "slot"):
                lease = occ.lease if which == "lease" else occ.slot
                if lease is None:
                    continue
                try:
                    renewed = self.store.renew_lease(lease, self.lease_ttl)
                except StateboxError as exc:
                    self.say(occ.dag, occ.epoch, f"lost its {which} lease {lease.name}: {exc}")
                    continue
                if which == "lease":
                    occ.lease = renewed
                elif occ.slot is lease:
                    occ.slot = renewed

    # -- claims ------------------------------------------------------------------------

    def claim(self, occ: Occurrence, status: str, *, reason: str | None = None) -> None:
        """Write the occurrence's claim, create-only and fenced by its lease: a
        ``ConflictError`` when it was claimed before, a ``FencingError`` when the lease
        was taken over."""
        self._write(occ, status, reason, create_only=True, fencing=occ.lease)

    def update(self, occ: Occurrence, status: str, *, reason: str | None = None) -> None:
        """Write the occurrence's new status into its claim (the version it wrote last)."""
        self._write(occ, status, reason, expected_version=occ.claim_version)

    def finish(self, occ: Occurrence, status: str, *, reason: str | None) -> None:
        """:meth:`update`, saying so when it could not."""
        try:
            self.update(occ, status, reason=reason)
        except StateboxError as exc:
            self.say(occ.dag, occ.epoch, f"could not record {status}: {exc}")

    def status(self, dag: Runnable, epoch: int) -> str | None:
        """The status of the occurrence's claim (any scheduler's): None when there is no
        claim, ``""`` when it says none."""
        found = self.store.get(
            claim_key(dag.name, epoch), scope=CLAIM_SCOPE, namespace=CLAIM_NAMESPACE
        )
        if not found.found:
            return None
        value = found.value
        status = value.get("status") if isinstance(value, dict) else None
        return status if isinstance(status, str) else ""

    def _write(self, occ: Occurrence, status: str, reason: str | None, **condition: Any) -> None:
        written = self.store.set(
            claim_key(occ.dag.name, occ.epoch),
            self._document(occ, status, reason),
            scope=CLAIM_SCOPE,
            namespace=CLAIM_NAMESPACE,
            ttl=self.claim_ttl,
            **condition,
        )
        occ.claim_version = written.version

    def _document(self, occ: Occurrence, status: str, reason: str | None) -> dict[str, Any]:
        claim: dict[str, Any] = {
            "dag": occ.dag.name,
            "occurrence": iso(occ.epoch),
            "epoch": occ.epoch,
            "holder": self.holder,
            "status": status,
            "updated_at": now_iso(),
        }
        if occ.run_id is not None:
            claim["run_id"] = occ.run_id
        if reason:
            claim["reason"] = reason
        return claim
