"""Time: an injectable clock (so tests never sleep) and RFC 3339 formatting."""

from __future__ import annotations

import functools
import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:  # a plain base class at run time: typing is not imported at CLI start-up
    Protocol = object

__all__ = ["Clock", "ManualClock", "SystemClock", "format_timestamp", "parse_timestamp"]

NS_PER_SECOND = 1_000_000_000


@functools.cache
def _rfc3339_utc() -> re.Pattern[str]:
    """What format_timestamp (and Dagu) write, parsed by parse_timestamp's fast path;
    compiled on first use (a quarter of a millisecond a CLI start-up need not pay)."""
    return re.compile(
        r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z\Z"
    )


_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that moves only when told to: for tests of TTL and leases."""

    def __init__(self, start_ns: int = 1_767_225_600 * NS_PER_SECOND) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * NS_PER_SECOND)


def format_timestamp(ns: int) -> str:
    """RFC 3339 UTC with up to 9 fractional digits, trailing zeros trimmed, ``Z``."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    text = _whole_seconds(seconds)
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


@functools.lru_cache(maxsize=4096)
def _whole_seconds(seconds: int) -> str:
    # Cached: entries written close together share their seconds, and formatting the
    # date dominated encoding an entry for the server and the file backend.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def parse_timestamp(text: str) -> int:
    """The inverse of :func:`format_timestamp`; also accepts offsets like ``+02:00``.
    An invalid date or time (such as February 31) is a ValueError."""
    match = _rfc3339_utc().match(text)
    if match is not None:  # the file backend parses two per entry it reads
        seconds = _utc_seconds(*map(int, match.group(1, 2, 3, 4, 5, 6)))
        if seconds is not None:
            fraction = match.group(7)
            return seconds * NS_PER_SECOND + (int(fraction.ljust(9, "0")) if fraction else 0)
    from datetime import UTC, datetime

    body, frac_ns = text, 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        body = head + rest
    moment = datetime.fromisoformat(body.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_SECOND + frac_ns


def _utc_seconds(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> int | None:
    """Seconds since the epoch of a UTC date and time, or None unless every field is in
    range (the caller's general path then refuses it, or accepts it, as datetime does):
    cheaper than importing datetime or calendar, or building a datetime."""
    if not (year >= 1 and 1 <= month <= 12 and hour < 24 and minute < 60 and second < 60):
        return None
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month] + leap:
        return None
    # Days from 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's
    # days_from_civil): years start on March 1, so a leap day ends its year.
    y = year - (month <= 2)
    era, year_of_era = divmod(y, 400)
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146_097 + day_of_era - 719_468
    return days * 86_400 + hour * 3_600 + minute * 60 + second
