"""ISO 8601 durations as Direktiv reads them: ``PT5S``, ``PT1M30S``, ``P1D``, ``P2W``.

Direktiv v0.10 parses every duration (a delay state's ``duration``, an action's
``timeout``, ``retries.delay``, ``timeouts.interrupt`` / ``kill``) with
``github.com/senseyeio/duration``, whose whole grammar is one regular expression::

    P(nY)?(nM)?(nW)?(nD)?(T(nH)?(nM)?(nS)?)?

with ``n`` decimal digits, and then shifts the clock by it. This module accepts that
grammar with two differences, both only ever widening it:

- the seconds may have a decimal fraction (``PT0.5S``, as ISO 8601 allows on the
  smallest part): Go's parser refuses it, but short waits are what tests and local runs
  want, and a file Direktiv accepts reads the same here;
- years, months and weeks are fixed lengths (365, 30 and 7 days), where Go adds them to
  the calendar (``time.AddDate``): the same but for leap days and month lengths.

As in Go, every part is optional: ``P`` and ``PT`` are valid and zero long.
"""

from __future__ import annotations

import re
from typing import Final

from ...core.errors import quoted

__all__ = ["parse_duration"]

_PATTERN: Final = re.compile(
    r"P(?:(?P<year>\d+)Y)?(?:(?P<month>\d+)M)?(?:(?P<week>\d+)W)?(?:(?P<day>\d+)D)?"
    r"(?:T(?:(?P<hour>\d+)H)?(?:(?P<minute>\d+)M)?(?:(?P<second>\d+(?:\.\d+)?)S)?)?",
    re.ASCII,
)
_DAY: Final = 86400.0
#: Seconds in each part (years and months as fixed lengths: see the module docstring).
_SECONDS: Final = {
    "year": 365 * _DAY,
    "month": 30 * _DAY,
    "week": 7 * _DAY,
    "day": _DAY,
    "hour": 3600.0,
    "minute": 60.0,
    "second": 1.0,
}


def parse_duration(text: str) -> float:
    """The number of seconds of the ISO 8601 duration ``text`` (``PT1M30S`` → 90.0).

    Raises ValueError naming the text and the form expected when it is not one.
    """
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string like PT30S, got {type(text).__name__}")
    match = _PATTERN.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ValueError(
            f"invalid ISO 8601 duration {quoted(shown)}: write P, then days as nD (or nY nM nW), "
            "then T and nH nM nS, e.g. PT30S, PT1M30S, P1D, PT0.5S"
        )
    total = 0.0
    for part, value in match.groupdict().items():
        if value is not None:
            total += float(value) * _SECONDS[part]
    return total
