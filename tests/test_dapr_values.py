"""statebox.dapr.values: what both Dapr faces decide the same way, whether bytes are JSON
(as statebox's engine takes JSON) and a transaction operation's item, with Dapr's code
and its status on each transport."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.core.values import Blob, RawJSON, normalize
from statebox.dapr.state_api import DeleteItem, SaveItem, value_from_bytes
from statebox.dapr.values import OCTET_STREAM, is_json, transaction_item


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1.000000000000000000001}',  # more digits than a float holds
        b"1e400",  # past a float's range
        b"-0",
        b"123456789012345678901234567890",
        b' {"b": 1, "a": [true, null, "x"]} ',
        b'"\\ud800"',  # a lone surrogate escape: the engine takes it
    ],
)
def test_json_the_engine_takes_is_json(data: bytes) -> None:
    assert is_json(data)
    normalize(RawJSON(data))  # and the engine takes it indeed


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"NaN",
        b"Infinity",
        b'{"a":1} trailing',
        b"[1,]",
        b"\x00\x01\xff",
        b'"\xff"',  # not UTF-8: kept as the bytes it is, not repaired
        b"[" * 10_000 + b"]" * 10_000,  # deeper than statebox nests JSON
    ],
)
def test_anything_else_is_not(data: bytes) -> None:
    assert not is_json(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
)
def test_any_json_text_is_json_and_stored_as_json(value: object) -> None:
    data = json.dumps(value).encode()
    assert is_json(data)
    assert isinstance(value_from_bytes(data, {}), RawJSON)


@given(st.binary(max_size=40))
def test_the_faces_store_what_is_json_says(data: bytes) -> None:
    """A value without a content type is JSON exactly when :func:`is_json` says so."""
    stored = value_from_bytes(data, {})
    if is_json(data):
        assert isinstance(stored, RawJSON) and stored.text == data
    else:
        assert stored == Blob(data, OCTET_STREAM)


def test_upsert_and_delete_items() -> None:
    value = RawJSON(b'{"a":1}')
    saved = transaction_item("upsert", "k", value, "3", {"ttlInSeconds": "5"}, "first-write")
    assert saved == SaveItem("k", value, "3", {"ttlInSeconds": "5"}, "first-write")
    assert transaction_item("upsert", "k", None, None, {}, None) == SaveItem("k", RawJSON(b"null"))
    deleted = transaction_item("delete", "k", value, "4", {}, None)
    assert deleted == DeleteItem("k", "4", {}, None)


@pytest.mark.parametrize("operation", ["merge", "Upsert", ""])
def test_an_unknown_operation_is_refused_as_dapr_refuses_it(operation: str) -> None:
    with pytest.raises(Exception) as refused:
        transaction_item(operation, "k", None, None, {}, None)
    error = refused.value
    assert repr(error) == (
        f"DaprError('ERR_NOT_SUPPORTED_STATE_OPERATION', "
        f"'operation type {operation} not supported', 400, 'UNIMPLEMENTED')"
    )
