"""Watch (SPEC §5): wait until an entry, or any entry under a prefix, changes.

What "changed past the known state" means, precisely:

- The watcher keeps a *baseline*: for each watched key, the ``(version, createdAt,
  updatedAt, hash)`` it last knew, or "missing". An entry whose current state differs
  from its baseline is an event: ``created`` (baseline missing), ``deleted`` (now
  missing or expired), else ``updated``. Versions are compared for difference, not
  order: a delete and re-create restarts at version 1 and still counts.
- Without ``after_version`` the baseline is the state when the watch starts, so only
  later writes count.
- With ``after_version=N`` on a key, the baseline is "version N": if the key is at
  another version already (missing counts as 0), that is reported at once; if it is at
  N, later writes count.
- With ``after_version=N`` on a prefix, every entry under it at a version above N is
  reported at once (``previousVersion`` N); entries at N or below, and keys created
  later, count from their state when the watch starts. ``after_version=0`` therefore
  reports every existing entry, then what changes.
- Several writes between two looks are one event (``previousVersion`` is what the
  watcher knew, ``version`` what is there now). After reporting, the baseline moves to
  what was reported, so :meth:`Watcher.poll` called again never repeats an event and
  never misses a write.
- Expiry is not a write and wakes nobody: an expired entry is reported as deleted the
  next time the watcher looks (at the next write to the keyspace, or when the timeout
  ends).

No busy re-reading: the watcher reads the backend's change token *before* each look at
the entries and then blocks in ``wait_for_change`` until the token moves (SQLite and the
file backend sleep until their files are written — inotify, ``backends/_fswait.py`` —,
PostgreSQL is woken by NOTIFY, memory by a condition variable). Only then does it look
at the watched entries again — once per change: the look that found a change's events
was made at the token the next :meth:`Watcher.poll` waits on, so that poll waits first.

:meth:`Watcher.poll` blocks its thread while it waits. The server holds no thread per
waiting client: it calls :meth:`Watcher.changes` (one look, no waiting) and waits for
the backend's changes itself, on its event loop (``server/changes_hub.py``).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .backends.base import Backend, Entry
from .core.clock import Clock
from .core.model import Keyspace
from .core.results import StoredValue, WatchEvent

__all__ = ["Watcher"]


class _Known(NamedTuple):
    version: int
    created_at: int | None = None  # None: only the version is known (after_version)
    updated_at: int | None = None
    hash: str = ""


def _known(entry: Entry) -> _Known:
    return _Known(entry.version, entry.created_at, entry.updated_at, entry.hash)


class Watcher:
    """Watches one key (``prefix is None``) or every key under ``prefix``."""

    def __init__(
        self,
        backend: Backend,
        keyspace: Keyspace,
        clock: Clock,
        *,
        key: str | None = None,
        prefix: str | None = None,
        after_version: int | None = None,
        include_values: bool = False,
        secret: bool = False,
    ) -> None:
        assert (key is None) != (prefix is None)
        self.backend = backend
        self.keyspace = keyspace
        self.clock = clock
        self.key = key
        self.prefix = prefix
        self.include_values = include_values
        #: The keyspace is secret: the values of its events are marked so (masked when
        #: rendered, unless revealed).
        self.secret = secret
        self._token = backend.change_token(keyspace)
        #: Events may be due before any write: an ``after_version`` baseline that is
        #: not the current state. Otherwise the last look was at ``_token`` and nothing
        #: new can show until the token moves.
        self._due = after_version is not None
        self._baseline: dict[str, _Known] = {}
        for entry_key, entry in self._look().items():
            if after_version is None or entry.version == after_version:
                self._baseline[entry_key] = _known(entry)
            elif key is not None or entry.version > after_version:
                if after_version > 0:  # else: baseline "missing", reported as created
                    self._baseline[entry_key] = _Known(after_version)
            else:
                self._baseline[entry_key] = _known(entry)
        if key is not None and after_version and key not in self._baseline:
            self._baseline[key] = _Known(after_version)

    def _look(self) -> dict[str, Entry]:
        """The live watched entries now (one get, or one prefix scan)."""
        now = self.clock.now_ns()
        if self.key is not None:
            entry = self.backend.get(self.keyspace, self.key, now)
            return {} if entry is None else {self.key: entry}
        assert self.prefix is not None
        entries = self.backend.scan(
            self.keyspace,
            self.prefix,
            after=None,
            limit=0,
            include_values=self.include_values,
            now=now,
        )
        return {entry.key: entry for entry in entries}

    def changes(self) -> list[WatchEvent]:
        """Events since the baseline, now, without waiting; moves the baseline past them."""
        return self._changes()

    def _changes(self) -> list[WatchEvent]:
        """Events since the baseline; moves the baseline past them."""
        self._token = self.backend.change_token(self.keyspace)  # before looking
        self._due = False
        current = self._look()
        events: list[WatchEvent] = []
        for entry_key in sorted(self._baseline.keys() | current.keys()):
            before, entry = self._baseline.get(entry_key), current.get(entry_key)
            if entry is None:
                if before is None:
                    continue
                del self._baseline[entry_key]
                events.append(WatchEvent(self.keyspace, entry_key, "deleted", before.version, 0))
                continue
            if before == _known(entry):
                continue
            self._baseline[entry_key] = _known(entry)
            events.append(
                WatchEvent(
                    self.keyspace,
                    entry_key,
                    "created" if before is None else "updated",
                    before.version if before is not None else 0,
                    entry.version,
                    entry.hash,
                    StoredValue(entry.data, entry.content_type, self.secret)
                    if self.include_values
                    else None,
                )
            )
        return events

    def poll(self, timeout: float) -> list[WatchEvent]:
        """Events past the baseline, waiting up to ``timeout`` seconds for the first;
        ``[]`` when none came."""
        deadline = time.monotonic() + max(timeout, 0.0)
        # Right after a look (the last poll's), nothing can be new until the token
        # moves, so wait first: a watcher looks once per change, not twice.
        if self._due and (events := self._changes()):
            return events
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # one last look catches expiries (they move no token)
                return self._changes()
            token = self._token
            moved = self.backend.wait_for_change(self.keyspace, token, remaining) != token
            if moved and (events := self._changes()):
                return events
