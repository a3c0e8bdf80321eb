"""Dapr keys to statebox keys (statebox.dapr.keys): Dapr's prefixing for every keyPrefix
mode, then the injective, reversible statebox form — property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.core.errors import InvalidReferenceError
from statebox.core.model import validate_key
from statebox.dapr.components import Component
from statebox.dapr.errors import DaprError
from statebox.dapr.keys import KeyMapper, decode_key, encode_key

# Any text, lone surrogates included (JSON's "\ud800" makes one).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
KEYS = st.text(max_size=30).filter(lambda k: "||" not in k and k != "")


def store(key_prefix: str | None = None, name: str = "statestore") -> Component:
    metadata = {} if key_prefix is None else {"keyPrefix": key_prefix}
    return Component(name, "state.sqlite", "v1", metadata, "statestore.yaml")


@given(ANY_TEXT)
def test_encode_decode_round_trip(text: str) -> None:
    stored = encode_key(text)
    assert decode_key(stored) == text
    assert validate_key(stored) == stored  # always a valid statebox key, as it is


@given(ANY_TEXT, ANY_TEXT)
def test_encoding_is_injective(a: str, b: str) -> None:
    if a != b:
        assert encode_key(a) != encode_key(b)


@given(ANY_TEXT)
def test_plain_keys_stay_readable(text: str) -> None:
    try:
        text.encode("utf-8")  # a lone surrogate: never a key (validate_key cannot name it)
        valid = validate_key(text) == text
    except (InvalidReferenceError, UnicodeEncodeError):
        valid = False
    kept = valid and not text.startswith("~")
    assert (encode_key(text) == text) is kept
    if not kept:
        assert encode_key(text).startswith("~")


def test_encoded_forms() -> None:
    assert encode_key("statebox||config_1") == "statebox||config_1"
    assert encode_key("a/b/c.json") == "a/b/c.json"
    assert encode_key(" lead") == "~IGxlYWQ"
    assert encode_key("~tilde") == "~fnRpbGRl"
    assert encode_key("a//b") == "~YS8vYg"
    assert encode_key("../up") == "~Li4vdXA"
    with pytest.raises(ValueError, match="not an encoded Dapr key"):
        decode_key("~not base64!")


@pytest.mark.parametrize(
    ("key_prefix", "app_id", "namespace", "prefix"),
    [
        (None, "myapp", None, "myapp||"),
        ("appid", "myapp", "prod", "myapp||"),
        ("AppID", "myapp", None, "myapp||"),  # the value is read lower-cased, as Dapr does
        ("appid", "", None, ""),  # no app id: no prefix
        ("name", "myapp", None, "statestore||"),
        ("namespace", "myapp", "prod", "prod.myapp||"),
        ("namespace", "myapp", "", "myapp||"),  # no NAMESPACE: Dapr falls back to appid
        ("namespace", "", "prod", ""),
        ("none", "myapp", None, ""),
        ("Shared", "myapp", None, "shared||"),  # any other value: itself, lower-cased
    ],
)
def test_prefixing_for_every_key_prefix_mode(
    key_prefix: str | None, app_id: str, namespace: str | None, prefix: str
) -> None:
    mapper = KeyMapper(store(key_prefix), app_id, namespace=namespace if namespace else "")
    assert mapper.prefix == prefix
    assert mapper.stored_key("config_1") == encode_key(prefix + "config_1")
    assert mapper.dapr_key(mapper.stored_key("config_1")) == "config_1"


def test_the_namespace_mode_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMESPACE", "ns1")
    assert KeyMapper(store("namespace"), "app").prefix == "ns1.app||"
    monkeypatch.delenv("NAMESPACE")
    assert KeyMapper(store("namespace"), "app").prefix == "app||"


def test_the_key_prefix_metadata_name_is_case_insensitive() -> None:
    component = Component("s", "state.redis", "v1", {"KEYPREFIX": "none"}, "f")
    assert KeyMapper(component, "app").stored_key("k") == "k"


@given(st.sampled_from([None, "appid", "name", "namespace", "none", "custom"]), KEYS)
def test_stored_keys_map_back(key_prefix: str | None, key: str) -> None:
    mapper = KeyMapper(store(key_prefix), "app", namespace="ns")
    stored = mapper.stored_key(key)
    assert validate_key(stored) == stored
    assert mapper.dapr_key(stored) == key


@given(KEYS, KEYS)
def test_distinct_dapr_keys_are_distinct_statebox_keys(a: str, b: str) -> None:
    mapper = KeyMapper(store(), "app")
    if a != b:
        assert mapper.stored_key(a) != mapper.stored_key(b)


@given(st.text(max_size=10), st.text(max_size=10))
def test_a_key_holding_the_separator_is_refused(before: str, after: str) -> None:
    key = before + "||" + after
    with pytest.raises(DaprError) as caught:
        KeyMapper(store(), "app").stored_key(key)
    error = caught.value
    assert (error.code, error.http_status, error.grpc_status) == (
        "ERR_MALFORMED_REQUEST",
        400,
        "INVALID_ARGUMENT",
    )
    assert error.message == f"input key/keyPrefix '{key}' can't contain '||'"


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(DaprError, match="cannot be empty"):
        KeyMapper(store("none"), "app").stored_key("")


def test_a_key_written_under_another_prefix_loses_it_as_dapr_does() -> None:
    mapper = KeyMapper(store(), "app")
    assert mapper.dapr_key("other||k") == "k"
    assert mapper.dapr_key("plain") == "plain"
