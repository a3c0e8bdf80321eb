"""Cron schedules: when a DAG's ``schedule`` occurs.

``schedule`` is a cron expression or a list of them, in croniter's syntax: five fields,
or six with a trailing seconds field, ``@hourly`` …; six fields that only read with the
seconds first (``30 0 9 * * MON``, as Quartz and robfig/cron write them) are read that
way. A ``CRON_TZ=Zone`` or ``TZ=Zone`` prefix picks the time zone, else the local one.

One reading of an expression serves both the loader, which checks it
(:func:`cron_readable`, ``statebox validate``), and the scheduler, which computes its
occurrences (:class:`CronSchedule`; a DAG's several expressions together:
:class:`Occurrences`), so that the two never disagree on what a schedule says. Times
are epoch seconds. croniter and dateutil (croniter's own dependency) are imported when
a schedule is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from ..core.clock import format_timestamp
from ..core.errors import InvalidValueError, quoted

__all__ = ["CronSchedule", "Occurrences", "cron_readable", "iso", "split_zone"]


def _untyped(module: str) -> Any:
    """croniter and dateutil, imported when a schedule is read: neither ships type
    information."""
    import importlib

    return importlib.import_module(module)


def split_zone(expression: str) -> tuple[str | None, str]:
    """The zone a ``CRON_TZ=Zone`` / ``TZ=Zone`` prefix names (None without a prefix,
    ``""`` for an empty name), and the cron expression after it."""
    text = expression.strip()
    parts = text.split(None, 1)
    if parts and parts[0].startswith(("CRON_TZ=", "TZ=")):
        return parts[0].partition("=")[2], parts[1].strip() if len(parts) > 1 else ""
    return None, text


def _seconds_first(text: str) -> bool | None:
    """How croniter reads ``text``: False with any seconds field last, True with it
    first, None when it is no cron expression."""
    croniter = _untyped("croniter").croniter
    if not text:
        return None
    if croniter.is_valid(text):
        return False
    if croniter.is_valid(text, second_at_beginning=True):
        return True
    return None


def cron_readable(expression: str) -> bool:
    """Whether ``expression`` is a cron expression, its zone prefix (if any) naming a
    zone; whether that zone exists is the scheduler's to find out (:class:`CronSchedule`)."""
    zone, text = split_zone(expression)
    return zone != "" and _seconds_first(text) is not None


def iso(epoch: int) -> str:
    """An occurrence (whole epoch seconds) as RFC 3339 UTC: ``2026-05-25T10:00:00Z``."""
    return format_timestamp(epoch * 1_000_000_000)


class CronSchedule:
    """One cron expression (croniter's syntax; a trailing sixth field is seconds), with
    an optional ``CRON_TZ=Zone`` / ``TZ=Zone`` prefix. Times are epoch seconds."""

    def __init__(self, expression: str, *, where: str | None = None) -> None:
        self.expression = expression
        zone: tzinfo | None = None
        name, text = split_zone(expression)
        if name is not None:
            zone = _untyped("dateutil.tz").gettz(name) if name else None
            if zone is None:
                raise InvalidValueError(_bad(where, expression, f"unknown time zone {name!r}"))
        seconds_first = _seconds_first(text)
        if seconds_first is None:
            raise InvalidValueError(_bad(where, expression, "not a valid cron expression"))
        self._seconds_first = seconds_first
        self._text = text
        self._zone = zone if zone is not None else _untyped("dateutil.tz").tzlocal()

    def _iter(self, t: float) -> Any:
        start = datetime.fromtimestamp(t, self._zone)
        croniter = _untyped("croniter").croniter
        return croniter(self._text, start, second_at_beginning=self._seconds_first)

    def next_after(self, t: float) -> int:
        """The first occurrence strictly after ``t``."""
        return round(float(self._iter(t).get_next(float)))

    def prev_before(self, t: float) -> int:
        """The last occurrence strictly before ``t``."""
        return round(float(self._iter(t).get_prev(float)))

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r})"


class Occurrences:
    """When one DAG occurs: every occurrence of any of its cron expressions."""

    def __init__(self, expressions: Sequence[str], *, where: str | None = None) -> None:
        self.crons = [CronSchedule(expression, where=where) for expression in expressions]

    def next_after(self, t: float) -> int:
        """The first occurrence strictly after ``t``."""
        return min(cron.next_after(t) for cron in self.crons)

    def prev_before(self, t: float) -> int:
        """The last occurrence strictly before ``t``."""
        return max(cron.prev_before(t) for cron in self.crons)


def _bad(where: str | None, expression: str, problem: str) -> str:
    prefix = f"{where}: " if where else ""
    return f"{prefix}schedule {quoted(expression)}: {problem}"
