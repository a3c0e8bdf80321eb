"""Time: an injectable clock (so tests never sleep) and RFC 3339 formatting."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "format_timestamp", "parse_timestamp"]

NS_PER_SECOND = 1_000_000_000


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
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def parse_timestamp(text: str) -> int:
    """The inverse of :func:`format_timestamp`; also accepts offsets like ``+02:00``."""
    body, frac_ns = text, 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        body = head + rest
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(body.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_SECOND + frac_ns
