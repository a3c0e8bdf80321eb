"""What an instance keeps beside its data: why and when it must stop (:class:`Halt`),
the logs of its states (:class:`StepLog`), how its run record is saved
(:class:`RecordSaver`, :func:`record_data`) and shown (:class:`Screen`); and the small
rules the engine applies (:func:`wrap_input`, :func:`short_json`,
:func:`function_env`)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from ...core.errors import StateboxError, ValueTooLargeError
from .._context import add_error
from .._record_keys import json_size
from ._states import CancelScope

if TYPE_CHECKING:
    from ..display import Display
    from ..records import RunRecord, RunRecords
    from .model import Workflow

__all__ = [
    "KILL_AFTER_INTERRUPT_SEC",
    "OUTPUT_MAX",
    "RECORD_DATA_MAX",
    "SAVE_INTERVAL",
    "Halt",
    "RecordSaver",
    "Screen",
    "StepLog",
    "function_env",
    "record_data",
    "short_json",
    "wrap_input",
]

#: engine.go: the hard timeout falls this long after ``timeouts.interrupt`` when
#: ``timeouts.kill`` is not given.
KILL_AFTER_INTERRUPT_SEC: Final = 300.0
#: How often the caller's stop event is looked at (seconds).
_POLL: Final = 0.05
#: How much of an action's result its step record shows (characters).
OUTPUT_MAX: Final = 2000
#: The most of one state's log kept in memory (the store keeps its own tail).
_LOG_KEEP: Final = 1 << 20
#: The largest instance input or output (bytes of JSON) a run record keeps (at most a
#: quarter of the store's value limit).
RECORD_DATA_MAX: Final = 64 * 1024
#: The run record is saved after a visit, but not more often than this (seconds).
SAVE_INTERVAL: Final = 0.2


def wrap_input(value: Any) -> dict[str, Any]:
    """The instance's first data from an input already read (``--input`` is wrapped as
    it is read: :func:`._gofmt.instance_input`): an object as is, None as ``{}``,
    anything else ``{"input": value}``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {"input": value}


class Halt:
    """The instance's reasons to stop: ``stop`` (the caller's event: SIGTERM / SIGINT),
    the soft timeout (``timeouts.interrupt``: one catchable error for the running
    state), the hard one (``timeouts.kill``). Each cancels the running visit's
    :class:`CancelScope`, which stops its functions and delays."""

    def __init__(self, stop: threading.Event | None) -> None:
        self._user_stop = stop
        self._lock = threading.Lock()
        self._scope = CancelScope()
        #: Set on any reason: ends a wait between reruns.
        self._wake = threading.Event()
        #: Set on stop and kill: ends the calls of ``async`` actions.
        self.async_stop = threading.Event()
        self._ended = threading.Event()
        self.stopped = False
        self.killed = False
        self._soft = False
        self._timers: list[threading.Timer] = []

    def start(self, interrupt_sec: float | None, kill_sec: float | None) -> None:
        if kill_sec is None and interrupt_sec is not None:
            kill_sec = interrupt_sec + KILL_AFTER_INTERRUPT_SEC
        for seconds, action in ((interrupt_sec, self._interrupt), (kill_sec, self._kill)):
            if seconds is not None:
                timer = threading.Timer(max(0.0, seconds), action)
                timer.daemon = True
                timer.start()
                self._timers.append(timer)
        if self._user_stop is not None:
            threading.Thread(target=self._relay, name="direktiv-stop", daemon=True).start()

    def close(self) -> None:
        self._ended.set()
        for timer in self._timers:
            timer.cancel()

    def _relay(self) -> None:
        assert self._user_stop is not None
        while not self._ended.is_set():
            if self._user_stop.wait(_POLL):
                self._fire("stop")
                return

    def _interrupt(self) -> None:
        self._fire("soft")

    def _kill(self) -> None:
        self._fire("kill")

    def _fire(self, reason: str) -> None:
        with self._lock:
            if reason == "stop":
                self.stopped = True
            elif reason == "kill":
                self.killed = True
            else:
                self._soft = True
            scope = self._scope
        if reason != "soft":
            self.async_stop.set()
        self._wake.set()
        scope.cancel()

    def new_scope(self) -> CancelScope:
        """The next visit's scope: born cancelled when a reason is pending."""
        scope = CancelScope()
        with self._lock:
            self._scope = scope
            pending = self.stopped or self.killed or self._soft
        if pending:
            scope.cancel()
        return scope

    @property
    def soft_pending(self) -> bool:
        return self._soft

    def take_soft(self) -> bool:
        """Whether the soft timeout fired and was not yet given to a state (it is now)."""
        with self._lock:
            soft, self._soft = self._soft, False
        return soft

    def sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)


class StepLog:
    """Each state's log: the lines of its ``log`` and its functions' standard error,
    every visit's, kept in the store as the step's ``stdout`` log (from any thread)."""

    def __init__(self, records: RunRecords, run_id: str, ttl: float | None) -> None:
        self._records, self._run_id, self._ttl = records, run_id, ttl
        self._lock = threading.Lock()
        self._texts: dict[str, str] = {}

    def add(self, state_id: str, text: str) -> None:
        line = text if text.endswith("\n") else text + "\n"
        with self._lock:
            kept = (self._texts.get(state_id, "") + line)[-_LOG_KEEP:]
            self._texts[state_id] = kept
            # A log that cannot be kept must not fail the instance.
            with contextlib.suppress(StateboxError):
                self._records.save_log(self._run_id, state_id, kept, ttl=self._ttl)


def record_data(value: Any, what: str, limit: int) -> Any:
    """The instance's ``what`` (its input or output data: an object) as its run record
    keeps it: a copy when its JSON fits ``limit`` bytes, else a string saying it was
    left out (so a record's input or output that is a string was cut)."""
    try:
        size = json_size(value)
    except (ValueError, TypeError, RecursionError):
        size = -1
    if 0 <= size <= limit:
        return copy.deepcopy(value)
    told = "is not JSON" if size < 0 else f"has {size} bytes of JSON"
    return f"[statebox: the {what} {told}: more than the {limit} a run record keeps]"


class RecordSaver:
    """Saves an instance's run record. One that does not fit the store's value limit
    even with its texts cut (:meth:`.records.RunRecords.save`) — an instance that
    visited thousands of states — is saved with its latest visits only, as many as fit
    (halving), the record's error saying how many were left out; the record itself
    keeps them all."""

    def __init__(self, records: RunRecords, ttl: float | None) -> None:
        self._records, self._ttl = records, ttl
        #: How many of the latest visits fit when the record last did not.
        self._window: int | None = None
        self._saved_at = 0.0

    def save_due(self, record: RunRecord) -> None:
        """Save after a visit: not more often than :data:`SAVE_INTERVAL`; a failure is
        left to the next save (the final one reports a store that keeps failing)."""
        now = time.monotonic()
        if now - self._saved_at < SAVE_INTERVAL:
            return
        self._saved_at = now
        try:
            self.save(record)
        except Exception:
            self._saved_at = 0.0

    def save(self, record: RunRecord) -> None:
        """Save now."""
        while True:
            saved = record
            if self._window is not None and self._window < len(record.steps):
                saved = _latest_steps(record, self._window)
            try:
                self._records.save(saved, ttl=self._ttl)
                return
            except ValueTooLargeError:
                if not saved.steps:
                    raise
                self._window = len(saved.steps) // 2


def _latest_steps(record: RunRecord, window: int) -> RunRecord:
    left_out = len(record.steps) - window
    note = (
        f"the first {left_out} of {len(record.steps)} state visits are left out of this "
        "record to fit the store's value limit"
    )
    saved = dataclasses.replace(record, steps=record.steps[left_out:])
    add_error(saved, note)
    return saved


class Screen:
    """The run's display (None: none), called as ``screen(event, *args)``: a display
    that fails (a closed terminal) is dropped, and the instance goes on."""

    def __init__(self, display: Display | None) -> None:
        self._display = display

    def __call__(self, event: str, *args: Any, **kwargs: Any) -> None:
        if self._display is None:
            return
        try:
            getattr(self._display, event)(*args, **kwargs)
        except (OSError, ValueError):
            self._display = None


def short_json(value: Any) -> str:
    """An action's result as its step record shows it: compact JSON, cut."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= OUTPUT_MAX else text[: OUTPUT_MAX - 1] + "…"


def function_env(wf: Workflow, run_id: str, store_url: str) -> dict[str, str]:
    """A function command's environment: ours, plus what lets it call ``statebox``
    with no flags (as a DAG step's)."""
    env = dict(os.environ)
    env.update(
        STATEBOX_DAG=wf.name,
        STATEBOX_ROOT_DAG=wf.name,
        STATEBOX_RUN_ID=run_id,
        DAG_NAME=wf.name,
        DAG_RUN_ID=run_id,
    )
    if store_url:
        env["STATEBOX_STORE"] = store_url
    return env
