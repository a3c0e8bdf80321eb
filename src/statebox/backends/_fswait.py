"""Waiting for a change token without spinning: idle costs nothing (issue #19).

The SQLite and file backends keep their change token in a file — SQLite's
``PRAGMA data_version`` moves when the database or its WAL is written, the file
backend's counter is one small file — so a watcher need not ask every few milliseconds.
:func:`wait_for_token` sleeps until the token's files are written, then re-reads the
token (the token stays what the backend says; a file event only says *when* to look):

- **Linux:** an ``inotify`` watch on the directory holding those files, for writes
  (``IN_MODIFY``), files created or renamed into place (``IN_CREATE``,
  ``IN_MOVED_TO``: a new WAL, a restored database). Not ``IN_CLOSE_WRITE``: SQLite opens
  read-write even to read, so every reader's ``close`` would wake every watcher, and
  every change is a write anyway. The directory is watched, not the files, because the
  WAL comes and goes. Each waiting call has an inotify instance of its own, so any
  number of threads wait at once, each reading its own events. Closing an instance
  costs the kernel a grace period (about 10 ms, during which ``close`` blocks, which
  would delay every change that ends a wait): so an instance is kept when its wait ends,
  up to :data:`KEEP_IDLE` of them per process, for the next wait — on the same directory
  as it is, else moved there (``inotify_rm_watch`` + ``inotify_add_watch``, cheap). What
  was queued on it meanwhile is discarded before the token is read. A forked child
  closes its copies (the parent's queues).
- **Settling:** the first write of a commit wakes the waiter before the commit is
  visible — SQLite writes the WAL frames, syncs, and only then publishes them in the
  shared-memory index, which raises no event. So after an event the waiter sleeps (its
  events only drained, not waking it) and re-reads the token at growing intervals
  (:data:`SETTLE_FIRST` to :data:`SETTLE_MOST`) for :data:`SETTLE` seconds, even when
  no further event comes.
- **Safety re-check:** the token is re-read every :data:`SAFETY_RECHECK` seconds while
  nothing happens, for whatever raises no event (a write through a shared mapping,
  an overflowed event queue).
- **Fallback:** where inotify cannot be used (not Linux, the per-user limit of inotify
  instances or watches reached, the directory gone), the token is polled at
  :data:`POLL_FIRST` right after the wait starts — so right after a change — growing to
  :data:`POLL_MOST` while idle, so a change still arrives within about 45 ms.

``STATEBOX_WATCH_POLL`` (a diagnostic, read at each wait) chooses: unset or ``auto`` —
the above; ``backoff`` — the fallback even where inotify works; a fixed interval such
as ``5ms`` or ``0.005`` (seconds) — plain polling at that interval, what statebox did
before issue #19 (the baseline of ``bench/bench_watch_idle.py``).
"""

from __future__ import annotations

import math
import os
import random
import select
import struct
import sys
import threading
import time
from collections.abc import Callable, Collection
from typing import Final

from ..core.errors import ConfigurationError, quoted

__all__ = ["POLL_ENV", "wait_for_token"]

POLL_ENV: Final = "STATEBOX_WATCH_POLL"
#: While inotify reports nothing, the token is re-read this often anyway.
SAFETY_RECHECK: Final = 1.0
#: After an event, the token is re-read for this long (a commit becomes visible after
#: its last write: see the module docstring), first SETTLE_FIRST after the event, the
#: interval doubling up to SETTLE_MOST.
SETTLE: Final = 0.5
SETTLE_FIRST: Final = 0.002
SETTLE_SPREAD: Final = 0.004
SETTLE_MOST: Final = 0.02
#: The fallback's polling: every POLL_FIRST seconds at first, POLL_GROWTH times longer
#: after each look, up to POLL_MOST.
POLL_FIRST: Final = 0.005
POLL_MOST: Final = 0.04
POLL_GROWTH: Final = 1.5
#: Idle inotify instances a process keeps for its next waits (see the docstring). Each
#: counts against the user's fs.inotify.max_user_instances (often 128).
KEEP_IDLE: Final = 4

# <sys/inotify.h>
_IN_MODIFY: Final = 0x00000002
_IN_MOVED_TO: Final = 0x00000080
_IN_CREATE: Final = 0x00000100
_IN_DELETE_SELF: Final = 0x00000400
_IN_MOVE_SELF: Final = 0x00000800
_IN_Q_OVERFLOW: Final = 0x00004000
_IN_IGNORED: Final = 0x00008000
_IN_ONLYDIR: Final = 0x01000000
_IN_NONBLOCK: Final = os.O_NONBLOCK
_IN_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0o2000000)
_MASK: Final = (
    _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
)
#: The watch is gone (the directory was removed or moved away): poll instead.
_GONE: Final = _IN_IGNORED | _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class _Instance:
    """An inotify instance (non-blocking) and its one watch: ``wd`` on ``directory``."""

    __slots__ = ("directory", "fd", "wd")

    def __init__(self, fd: int, directory: str, wd: int) -> None:
        self.fd, self.directory, self.wd = fd, directory, wd


_kept: list[_Instance] = []
_kept_lock = threading.Lock()
_Libc = Callable[..., int]
_inotify: tuple[_Libc, _Libc, _Libc] | None = None  # init1, add_watch, rm_watch
_looked_up = False


def wait_for_token(
    read: Callable[[], int],
    token: int,
    timeout: float,
    directory: str,
    names: Collection[str],
) -> int:
    """Wait until ``read()`` differs from ``token`` or ``timeout`` seconds pass; return
    what ``read()`` gave last. ``names`` are the files in ``directory`` whose writes
    may move the token."""
    deadline = time.monotonic() + max(timeout, 0.0)
    mode = _mode()
    if isinstance(mode, float):
        return _poll(read, token, deadline, mode, mode)
    instance = _take(directory or ".") if mode == "auto" else None
    if instance is None:
        return _poll(read, token, deadline, POLL_FIRST, POLL_MOST)
    try:
        seen = _wait(instance, read, token, deadline, {os.fsencode(name) for name in names})
    except BaseException:  # an error from read(), an interrupt: the instance is fine
        _give_back(instance)
        raise
    if seen is None:  # the watch ended (the directory went away): poll for the rest
        os.close(instance.fd)
        return _poll(read, token, deadline, POLL_FIRST, POLL_MOST)
    _give_back(instance)
    return seen


def _mode() -> str | float:
    """``"auto"``, ``"backoff"``, or a fixed polling interval in seconds."""
    text = os.environ.get(POLL_ENV, "").strip().lower()
    if text in ("", "auto", "backoff"):
        return text or "auto"
    number = text.removesuffix("ms").removesuffix("s").strip()
    try:
        seconds = float(number) / (1000 if text.endswith("ms") else 1)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 60:  # also rejects nan and inf
        raise ConfigurationError(
            f"invalid {POLL_ENV}={quoted(text)}: use auto, backoff, or a polling interval "
            "such as 5ms or 0.005 (seconds, at most 60)"
        )
    return seconds


def _poll(read: Callable[[], int], token: int, deadline: float, first: float, most: float) -> int:
    interval = first
    while True:
        current = read()
        remaining = deadline - time.monotonic()
        if current != token or remaining <= 0:
            return current
        time.sleep(min(interval, remaining))
        interval = min(interval * POLL_GROWTH, most)


# -- inotify instances ----------------------------------------------------------------


def _libc() -> tuple[_Libc, _Libc, _Libc] | None:
    """inotify_init1, inotify_add_watch and inotify_rm_watch, or None where there are
    none. Two threads may both look them up the first time: they find the same."""
    global _inotify, _looked_up
    if not _looked_up:
        if sys.platform.startswith("linux"):
            import ctypes  # only here: the CLI's other commands never pay for it

            try:
                libc = ctypes.CDLL(None)
                init, add, rm = libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
            except (OSError, AttributeError):  # no such symbols (an unusual libc)
                pass
            else:
                init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
                add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
                add.restype = ctypes.c_int
                rm.argtypes, rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                _inotify = (init, add, rm)
        _looked_up = True
    return _inotify


def _take(directory: str) -> _Instance | None:
    """An instance watching ``directory`` with nothing queued: a kept one (on that
    directory if one is), or a new one. None where there can be none (no inotify;
    EMFILE: fs.inotify.max_user_instances reached; ENOSPC: max_user_watches; no such
    directory)."""
    calls = _libc()
    if calls is None:
        return None
    init, add, rm = calls
    with _kept_lock:
        same = [kept for kept in _kept if kept.directory == directory]
        instance = same[-1] if same else _kept[-1] if _kept else None
        if instance is not None:
            _kept.remove(instance)
    if instance is None:
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return None
        instance = _Instance(fd, directory, -1)
    elif instance.directory != directory:
        rm(instance.fd, instance.wd)  # fails harmlessly if the watch ended already
        instance.wd = -1
    if instance.wd < 0:
        instance.directory, instance.wd = directory, add(instance.fd, os.fsencode(directory), _MASK)
        if instance.wd < 0:
            os.close(instance.fd)
            return None
    if _drain(instance, set())[1]:  # its watch ended while kept: start afresh
        os.close(instance.fd)
        return _take(directory)
    return instance


def _give_back(instance: _Instance) -> None:
    with _kept_lock:
        if len(_kept) < KEEP_IDLE:
            _kept.append(instance)
            return
    os.close(instance.fd)  # beyond what is kept: pays the kernel's grace period


def _forget_kept() -> None:
    """In a forked child: the kept instances share their event queues with the parent."""
    global _kept_lock
    _kept_lock = threading.Lock()
    for instance in _kept:
        os.close(instance.fd)
    _kept.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_kept)


def _wait(
    instance: _Instance, read: Callable[[], int], token: int, deadline: float, names: set[bytes]
) -> int | None:
    """What ``read()`` gave last, or None when the watch ended before that."""
    poller = select.poll()
    poller.register(instance.fd, select.POLLIN)
    settle_until = 0.0
    interval = SETTLE_FIRST
    # The watch exists before this first read: a write after it raises an event.
    current = read()
    next_look = time.monotonic() + SAFETY_RECHECK
    while True:
        now = time.monotonic()
        if current != token or now >= deadline:
            return current
        if now < settle_until:
            # Settling: the commit that wrote is about to be visible. Sleep, not poll:
            # its further writes would wake every waiter again and again (and with many
            # waiters, that storm of wake-ups would slow the writer itself).
            time.sleep(min(interval, deadline - now))
            interval = min(interval * 2, SETTLE_MOST)
            relevant, gone = _drain(instance, names)
        else:
            pause = min(next_look, deadline) - now
            if pause > 0 and poller.poll(math.ceil(pause * 1000)):
                relevant, gone = _drain(instance, names)
                if relevant and not gone:  # the first look a little later, not now
                    settle_until = time.monotonic() + SETTLE
                    # At random within SETTLE_SPREAD: many waiters woken by one write
                    # would otherwise all read at once, and SQLite's readers then
                    # contend for its few read marks (and back off, by milliseconds).
                    interval = SETTLE_FIRST + random.random() * SETTLE_SPREAD
                    continue
                if not gone:
                    continue  # another file of the directory: no news
            else:  # the safety re-check (or the deadline)
                relevant = gone = False
                next_look = now + SAFETY_RECHECK
        if gone:
            return None
        if relevant:
            settle_until = time.monotonic() + SETTLE
        current = read()


def _drain(instance: _Instance, names: set[bytes]) -> tuple[bool, bool]:
    """Read every pending event: (one concerned ``names`` or may have, the watch ended).
    Events of an earlier watch of the instance (another ``wd``) are ignored."""
    relevant = gone = False
    while True:
        try:
            data = os.read(instance.fd, 64 * 1024)
        except BlockingIOError:
            return relevant, gone
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & _IN_Q_OVERFLOW:  # events were lost: any may have been ours
                relevant = True
            elif wd != instance.wd:
                continue
            elif mask & _GONE:
                gone = True
            elif name in names:
                relevant = True
