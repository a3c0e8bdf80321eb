"""parse_timestamp: its fast path for the ``…Z`` form agrees with datetime's parsing;
format_timestamp (its whole seconds cached) writes what datetime would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.core.clock import NS_PER_SECOND, format_timestamp, parse_timestamp


def expected_ns(moment: datetime, fraction: str) -> int:
    seconds = (moment.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        seconds=1
    )
    return seconds * NS_PER_SECOND + int(fraction.ljust(9, "0") or "0")


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.text("0123456789", max_size=9),
)
def test_the_z_form_is_read_as_datetime_reads_it(moment: datetime, fraction: str) -> None:
    moment = moment.replace(microsecond=0)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    text += f".{fraction}Z" if fraction else "Z"
    assert parse_timestamp(text) == expected_ns(moment, fraction)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-31T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_an_impossible_date_or_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-02-29T12:00:00.5Z", 1_709_208_000_500_000_000),
        ("2000-02-29T00:00:00Z", 951_782_400 * NS_PER_SECOND),
        ("1969-12-31T23:59:59.999999999Z", -1),
        ("2026-05-25T13:00:00.123456789+02:00", 1_779_706_800_123_456_789),
    ],
)
def test_known_instants(text: str, ns: int) -> None:
    assert parse_timestamp(text) == ns


def test_round_trips_format_timestamp() -> None:
    for ns in (0, 1, 1_767_225_600 * NS_PER_SECOND + 120_000_000, 4_102_444_799_999_999_999):
        assert parse_timestamp(format_timestamp(ns)) == ns


@given(st.integers(min_value=0, max_value=253_402_300_799 * NS_PER_SECOND))  # to 9999
def test_format_timestamp_writes_what_datetime_would(ns: int) -> None:
    seconds, frac = divmod(ns, NS_PER_SECOND)
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    assert format_timestamp(ns) == format_timestamp(ns) == f"{whole}{fraction}Z"
