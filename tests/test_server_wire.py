"""The wire format the server and the remote store share: exact in both directions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox import InvalidRequestError, RawJSON, UpdatedBy, normalize
from statebox.backends.base import Entry, HistoryRecord
from statebox.core.errors import (
    ConflictError,
    CorruptEntryError,
    FencingError,
    NotFoundError,
    StateboxError,
)
from statebox.core.params import seconds_ns
from statebox.wire.codec import (
    decode_entry,
    decode_record,
    entry_json,
    error_body,
    error_from_body,
    float_seconds,
    format_seconds,
    loads_exact,
    record_json,
)

json_text = st.recursive(
    st.one_of(
        st.sampled_from(["null", "true", "false", "1.2300", "1E5", "-0", "1e-7", "-0.0"]),
        st.sampled_from(["9007199254740993", "2.50E+3", '"<&>\\u2028"']),
        st.integers().map(str),
        st.text().map(json.dumps),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.text(max_size=5), inner, max_size=4).map(
            lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=12,
)


@given(json_text)
def test_normalized_values_survive_the_wire_byte_for_byte(text: str) -> None:
    stored = normalize(RawJSON(text))
    # what the receiver does with an embedded value: parse exactly, normalize again
    again = normalize(loads_exact(stored.data))
    assert (again.data, again.hash) == (stored.data, stored.hash)


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_seconds_are_exact_to_the_nanosecond(ns: int) -> None:
    assert seconds_ns(loads_exact(format_seconds(ns)), "ttl") == ns
    assert seconds_ns(format_seconds(ns), "ttl") == ns  # as a query string, too


@given(st.integers(min_value=1, max_value=8 * 10**15))
def test_float_seconds_give_back_the_nanoseconds(ns: int) -> None:
    # exact up to 2**23 s (97 days), where a double still resolves nanoseconds
    assert int(float_seconds(ns) * 1_000_000_000) == ns


@given(st.integers(min_value=8 * 10**15, max_value=10**18))
def test_longer_float_seconds_are_off_by_a_few_nanoseconds_at_most(ns: int) -> None:
    assert abs(int(float_seconds(ns) * 1_000_000_000) - ns) <= 128


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", True, None, [], "1e10"])
def test_bad_durations_are_refused_by_name(bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="invalid ttl"):
        seconds_ns(bad, "ttl")


def entry(data: bytes, content_type: str = "application/json", **kw: Any) -> Entry:
    value = normalize(RawJSON(data)) if content_type == "application/json" else None
    return Entry(
        key="a/ключ",
        version=3,
        hash=value.hash if value else normalize_blob_hash(data),
        data=value.data if value else data,
        content_type=content_type,
        created_at=1_767_225_600_123_456_789,
        updated_at=1_767_225_601_000_000_000,
        updated_by=UpdatedBy(dag_name="d", dag_run_id="r", principal="p"),
        **kw,
    )


def normalize_blob_hash(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "original",
    [
        entry(b'{"x": [1.50, -0, "<&>"]}'),
        entry(b"null", expires_at=1_767_225_700_000_000_001),
        entry(bytes(range(256)), "application/gzip"),
    ],
)
def test_entries_round_trip(original: Entry) -> None:
    assert decode_entry(loads_exact(entry_json(original))) == original
    bare = decode_entry(loads_exact(entry_json(original, include_value=False)))
    assert bare.data == b"" and bare.hash == original.hash


def test_history_records_round_trip() -> None:
    live = HistoryRecord("k", 2, normalize(1).hash, b"1", "application/json", 1, 2, UpdatedBy())
    gone = HistoryRecord("k", 2, "h", b"", "application/json", 1, 3, UpdatedBy(), deleted=True)
    for record in (live, gone):
        assert decode_record(loads_exact(record_json(record))) == record


def test_a_value_that_does_not_match_its_hash_is_refused() -> None:
    sent = json.loads(entry_json(entry(b"1")))
    sent["value"] = 2
    with pytest.raises(CorruptEntryError, match="does not match its hash"):
        decode_entry(loads_exact(json.dumps(sent)))


def test_errors_cross_the_wire_with_their_kind() -> None:
    conflict = FencingError("stale", index=2, current_version=7)
    back = error_from_body(409, error_body(conflict).encode(), "http://x")
    assert type(back) is FencingError
    assert (back.message, back.index, back.current_version) == ("stale", 2, 7)
    assert type(error_from_body(404, error_body(NotFoundError("m")).encode(), "x")) is (
        NotFoundError
    )
    assert type(error_from_body(409, b"<html>", "x")) not in (ConflictError,)
    # a 409 that is not a statebox error body is no conflict: only a plain StateboxError
    # that names the status and the coordinator
    odd = error_from_body(409, b"<html>", "http://x")
    assert type(odd) is StateboxError
    assert "HTTP 409" in str(odd) and str(odd).startswith("http://x ")
