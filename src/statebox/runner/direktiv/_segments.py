"""The no-lost-update bookkeeping of one instance (:class:`Segments`): which getter
visit last read each variable, the data as each such getter was entered, and whether a
state with side effects ran since — what the engine needs to decide, when a setter's
guarded write fails, whether the segment from that getter may simply run again (see
:mod:`.engine`)."""

from __future__ import annotations

import copy
import random
from typing import Any, Final

from .model import PURE_STATE_TYPES

__all__ = ["BACKOFF_CAP", "BACKOFF_FIRST", "Segments"]

#: The wait before a rerun: from this (seconds), doubling, capped, full jitter.
BACKOFF_FIRST: Final = 0.002
BACKOFF_CAP: Final = 0.1

ScopeKey = tuple[str, str]


class Segments:
    """Visits are numbered from 1. A getter visit that read variables is remembered
    (with a copy of the data as it was entered) while it is the latest to have read one
    of them; ``last_impure`` is the number of the latest visit of a state with side
    effects (not in :data:`.model.PURE_STATE_TYPES`) or of a setter that committed."""

    def __init__(self) -> None:
        self.visits = 0
        self.last_impure = 0
        self.last_read: dict[ScopeKey, int] = {}
        self.snapshots: dict[int, tuple[str, dict[str, Any]]] = {}
        #: Reruns in a row (since a setter last wrote).
        self.reruns = 0

    def enter(self, state_type: str) -> int:
        """A visit begins: its number."""
        self.visits += 1
        if state_type not in PURE_STATE_TYPES:
            self.last_impure = self.visits
        return self.visits

    def read(
        self, reads: list[ScopeKey], number: int, getter: str, entered: dict[str, Any]
    ) -> None:
        """Getter visit ``number`` (state ``getter``, entered with ``entered``) read
        ``reads``."""
        if not reads:
            return
        for key in reads:
            self.last_read[key] = number
        self.snapshots[number] = (getter, entered)
        self._prune()

    def wrote(self) -> None:
        """A setter committed its writes: a barrier. Running the states before it again
        would write again what it wrote (a getter re-reading a variable it wrote would
        add twice), so a later conflict never goes back past it (``last_impure``); the
        next conflict starts a new count of reruns."""
        self.last_impure = self.visits
        self.reruns = 0

    def target(self, keys: list[ScopeKey], limit: int) -> int | None:
        """The getter visit to run again from after a conflict on ``keys``: the earliest
        of the latest visits that read each — when every visit since it was pure and
        fewer than ``limit`` reruns were made in a row; else None."""
        visits = [self.last_read.get(key) for key in keys]
        if not visits or any(v is None for v in visits):
            return None
        target = min(v for v in visits if v is not None)
        if self.last_impure >= target or self.reruns >= limit:
            return None
        return target

    def rewind(self, target: int) -> tuple[str, dict[str, Any], float]:
        """Go back to getter visit ``target``: its state id, a copy of the data it was
        entered with, and how long to wait first. The reads of visits after it are
        forgotten (those visits are abandoned)."""
        self.reruns += 1
        getter, data = self.snapshots[target]
        for key in [k for k, v in self.last_read.items() if v >= target]:
            del self.last_read[key]
        self._prune()
        cap = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (self.reruns - 1))
        return getter, copy.deepcopy(data), random.uniform(0, cap)

    def _prune(self) -> None:
        live = set(self.last_read.values())
        for number in [n for n in self.snapshots if n not in live]:
            del self.snapshots[number]
