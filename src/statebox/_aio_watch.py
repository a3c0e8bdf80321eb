"""How :class:`~statebox.aio.AsyncStateStore` steps the sync watch loop from the event
loop: the loop runs in a worker thread one batch at a time, and each wait inside it lasts
one slice (:data:`WATCH_SLICE`) at most, so a cancelled task frees its thread within a
slice instead of holding it until the next change."""

from __future__ import annotations

import asyncio
import threading
from typing import Final, cast

from .core.results import WatchEvent
from .store import _follow_batches
from .watch import Watcher

__all__ = ["WATCH_SLICE", "Following"]

#: The longest single wait of a watch thread: a cancelled task frees its thread this soon.
WATCH_SLICE: Final = 1.0


class _WatchStopped(Exception):
    """Ends the sync watch loop in its thread once the async side has gone."""


class _SlicedWaits:
    """The watcher as the sync watch loop sees it, each wait cut to one slice: between
    slices the thread sees whether the async side still wants events."""

    def __init__(self, watcher: Watcher, stop: threading.Event) -> None:
        self._watcher = watcher
        self._stop = stop

    def poll(self, timeout: float) -> list[WatchEvent]:
        if self._stop.is_set():
            raise _WatchStopped
        # Cutting a wait short changes nothing: the loop polls again until its deadline.
        return self._watcher.poll(min(timeout, WATCH_SLICE))


class Following:
    """The sync watch loop (``store._follow_batches``), stepped from the event loop."""

    def __init__(self, watcher: Watcher, timeout: float | None) -> None:
        self._stop = threading.Event()
        # The loop only calls ``poll``, which _SlicedWaits provides.
        waits = cast(Watcher, _SlicedWaits(watcher, self._stop))
        self._batches = _follow_batches(waits, timeout)

    async def next_batch(self) -> list[WatchEvent] | None:
        """The next non-empty batch, or None when the timeout has passed."""
        return await asyncio.to_thread(next, self._batches, None)

    def stop(self) -> None:
        """Let a thread still waiting in the loop end at its next slice."""
        self._stop.set()
