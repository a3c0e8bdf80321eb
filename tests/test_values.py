"""Normalization (SPEC §2): Dagu/Go byte-compatibility, limits, and properties."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox import Blob, InvalidValueError, RawJSON, ValueTooLargeError, normalize


def norm(value: Any) -> bytes:
    return normalize(value).data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"b": 1, "a": 2}', b'{"a":2,"b":1}'),
        (
            '{"a": {"z": [3, {"y": 1, "x": 2}], "b": null}}',
            b'{"a":{"b":null,"z":[3,{"x":2,"y":1}]}}',
        ),
        ('{"a": 1, "a": 2, "b": 0, "a": 3}', b'{"a":3,"b":0}'),
        (
            "[1.2300, 1E5, 9007199254740993, -0, 1e-7, 0.0, -0.0]",
            b"[1.2300,1E5,9007199254740993,-0,1e-7,0.0,-0.0]",
        ),
        ("123456789012345678901234567890", b"123456789012345678901234567890"),
        ('"a\\"b\\\\c\\/d"', b'"a\\"b\\\\c/d"'),
        ('"\\n\\r\\t\\b\\f"', b'"\\n\\r\\t\\b\\f"'),
        ('"\\u0000\\u001f\\u0001\\u007f"', b'"\\u0000\\u001f\\u0001\x7f"'),
        ('"<>&"', b'"\\u003c\\u003e\\u0026"'),
        ('"\\u2028\\u2029"', b'"\\u2028\\u2029"'),
        ('"\u2028"', b'"\\u2028"'),
        ('"é😀/"', '"é😀/"'.encode()),
        ('"\\u00e9\\ud83d\\ude00"', '"é😀"'.encode()),
        ('"\\ud800"', '"\ufffd"'.encode()),
        ('"\\udc00x\\ud800"', '"\ufffdx\ufffd"'.encode()),
        ('{"\\u003c": "k"}', b'{"\\u003c":"k"}'),
        ("  true \n", b"true"),
        ("null", b"null"),
        ("[]", b"[]"),
        ("{}", b"{}"),
    ],
)
def test_go_compatible_normal_form(text: str, expected: bytes) -> None:
    assert norm(RawJSON(text)) == expected
    assert norm(RawJSON(text.encode())) == expected


def test_object_keys_sort_by_code_point() -> None:
    keys = ["b", "B", "a", "é", "😀", "\uffff", "aa", ""]
    text = json.dumps({k: 1 for k in keys})
    out = json.loads(norm(RawJSON(text)))
    assert list(out) == sorted(keys)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'"\xff"', '"\ufffd"'),
        (b'"a\xc3"', '"a\ufffd"'),
        (b'"\xe2\x82A"', '"\ufffd\ufffdA"'),  # Go replaces each invalid byte
        (b'"\xed\xa0\x80"', '"\ufffd\ufffd\ufffd"'),  # an encoded surrogate
    ],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes, expected: str) -> None:
    assert norm(RawJSON(raw)) == expected.encode()


@pytest.mark.parametrize("text", ["1 2", "{} {}", '"a" "b"', "[1] x"])
def test_more_than_one_value_is_rejected(text: str) -> None:
    with pytest.raises(InvalidValueError, match="more than one JSON value"):
        normalize(RawJSON(text))


@pytest.mark.parametrize(
    "text",
    ["", "   ", "NaN", "Infinity", "-Infinity", "[1,]", "{'a':1}", "01", "+1", ".5", "1.", '"\t"'],
)
def test_invalid_json_is_rejected(text: str) -> None:
    with pytest.raises(InvalidValueError, match="invalid JSON"):
        normalize(RawJSON(text))


def test_python_values() -> None:
    assert norm({"b": [1, 2.5, True, None], "a": "<"}) == b'{"a":"\\u003c","b":[1,2.5,true,null]}'
    assert norm(Decimal("1.2300")) == b"1.2300"
    assert norm({"price": Decimal("10.00"), "t": (1, 2)}) == b'{"price":10.00,"t":[1,2]}'
    assert norm("plain string") == b'"plain string"'
    for bad in (float("nan"), float("inf"), {"x": object()}, {1, 2, object()}):
        with pytest.raises(InvalidValueError):
            normalize(bad)


def test_hash_is_sha256_of_the_normalized_bytes() -> None:
    value = normalize(RawJSON('{ "b":1, "a":2 }'))
    assert value.hash == hashlib.sha256(b'{"a":2,"b":1}').hexdigest()
    assert len(value.hash) == 64 and value.hash == value.hash.lower()


def test_the_first_small_values_are_hashed_without_openssl() -> None:
    """A process hashes its first few small values with the interpreter's own SHA-256
    (hashlib loads OpenSSL: milliseconds of a CLI write), then everything with hashlib;
    the digests are the same."""
    code = """
import hashlib as reference  # the expected digests (loaded only after the checks)
import sys
from statebox.core import values
del sys.modules["hashlib"]
seen = []
for size in [0, 1, 100, 16384] * 2 + [5, 16385, 7]:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    seen.append((values.sha256_hex(data), "hashlib" in sys.modules))
    assert seen[-1][0] == reference.sha256(data).hexdigest(), size
print([loaded for _, loaded in seen])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Eight small values without hashlib; then every value with it.
    assert done.stdout.split() == ["[False,"] + ["False,"] * 7 + ["True,"] * 2 + ["True]"]


def test_size_limit_before_and_after_normalization() -> None:
    with pytest.raises(ValueTooLargeError, match="value too large: 1048580 bytes exceeds 1048576"):
        normalize(RawJSON('"' + "<" * 174_763 + '"'))
    normalize(RawJSON('"' + "<" * 174_762 + '"'))  # 1048574 bytes normalized: fits
    with pytest.raises(ValueTooLargeError, match="value too large: 1048577 bytes exceeds 1048576"):
        normalize(RawJSON(b'"' + b"a" * 1_048_575 + b'"'))
    # whitespace counts on input, even though normalization would remove it
    with pytest.raises(ValueTooLargeError, match="exceeds 1048576"):
        normalize(RawJSON(" " * 1_048_577 + "1"))
    with pytest.raises(ValueTooLargeError, match="exceeds 10"):
        normalize(RawJSON("[1,2,3,4,5,6]"), limit=10)


def test_blobs_are_hashed_as_bytes_with_their_own_limit() -> None:
    value = normalize(Blob(b"\x00\x01binary", "application/octet-stream"))
    assert value.data == b"\x00\x01binary"
    assert value.hash == hashlib.sha256(b"\x00\x01binary").hexdigest()
    assert value.content_type == "application/octet-stream"
    normalize(Blob(b"x" * 2_000_000, "text/plain"))  # over the JSON limit, under 32 MiB
    with pytest.raises(ValueTooLargeError, match="33554433 bytes exceeds 33554432"):
        normalize(Blob(b"x" * (32 * 1_048_576 + 1), "text/plain"))
    with pytest.raises(InvalidValueError, match="content type"):
        normalize(Blob(b"x", ""))


def test_huge_integers_keep_their_digits() -> None:
    digits = "9" * 5000
    assert norm(RawJSON(f"[{digits}]")) == f"[{digits}]".encode()


# --- properties ------------------------------------------------------------------------

number_literals = st.one_of(
    st.integers().map(str),
    st.sampled_from(["-0", "0.0", "-0.0", "1E5", "1e-5", "1.2300", "2.5E+10", "9007199254740993"]),
    st.builds(
        lambda i, f, e: f"{i}.{f}{e}",
        st.integers(-(10**20), 10**20),
        st.text("0123456789", min_size=1, max_size=12),
        st.sampled_from(["", "e3", "E-7", "e+12"]),
    ),
)
json_text_leaves = st.one_of(
    st.just("null"), st.just("true"), st.just("false"), number_literals, st.text().map(json.dumps)
)


def _render(node: Any, rng: random.Random) -> str:
    """Render a tree of (kind, items) as JSON text with random whitespace and key order."""
    ws = lambda: rng.choice(["", " ", "\n", "\t", "  \r\n"])  # noqa: E731
    if isinstance(node, str):
        return node
    kind, items = node
    if kind == "list":
        return "[" + ",".join(ws() + _render(v, rng) + ws() for v in items) + "]"
    pairs = list(items.items())
    rng.shuffle(pairs)
    return (
        "{"
        + ",".join(f"{ws()}{json.dumps(k)}{ws()}:{ws()}{_render(v, rng)}" for k, v in pairs)
        + "}"
    )


json_trees = st.recursive(
    json_text_leaves,
    lambda children: st.one_of(
        st.tuples(st.just("list"), st.lists(children, max_size=4)),
        st.tuples(st.just("dict"), st.dictionaries(st.text(max_size=5), children, max_size=4)),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_trees, st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_independent_of_key_order_and_whitespace(
    tree: Any, r1: random.Random, r2: random.Random
) -> None:
    assert norm(RawJSON(_render(tree, r1))) == norm(RawJSON(_render(tree, r2)))


@settings(max_examples=300, deadline=None)
@given(json_trees, st.randoms(use_true_random=False))
def test_idempotent(tree: Any, rng: random.Random) -> None:
    once = norm(RawJSON(_render(tree, rng)))
    assert norm(RawJSON(once)) == once
    assert normalize(RawJSON(once)).hash == hashlib.sha256(once).hexdigest()


@settings(max_examples=300, deadline=None)
@given(st.lists(number_literals, min_size=1, max_size=8))
def test_every_number_literal_is_preserved(literals: list[str]) -> None:
    text = "[" + " , ".join(literals) + "]"
    assert norm(RawJSON(text)) == ("[" + ",".join(literals) + "]").encode()
    obj = "{" + ",".join(f'"k{i}": {lit}' for i, lit in enumerate(literals)) + "}"
    out = norm(RawJSON(obj)).decode()
    for i, lit in enumerate(literals):
        assert f'"k{i}":{lit}' in out


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_strings_round_trip_through_go_escaping(text: str) -> None:
    out = norm(RawJSON(json.dumps(text)))
    assert not any(c in out for c in b"<>&")
    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    assert json.loads(out) == expected


def test_python_values_take_the_same_normal_form_as_their_json_text() -> None:
    cases: list[Any] = [
        {10: "a", 9: "b"},  # non-string keys sort as their JSON strings
        {"b": {"y": 1.5, "x": [1e16, -0.0, 1e-7]}, "a": "<\u2028>"},
        {"k": "\ud800", "j": "x"},
        [(1, 2), {"z": None}],
        {True: 1, "a": 2} if False else {"a": 2},
    ]
    for value in cases:
        text = json.dumps(value, ensure_ascii=False)
        assert norm(value) == norm(RawJSON(text)), value
    assert norm({10: "a", 9: "b"}) == b'{"10":"a","9":"b"}'


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(),
        ),
        lambda c: st.one_of(
            st.lists(c, max_size=4), st.dictionaries(st.text(max_size=4), c, max_size=4)
        ),
        max_leaves=10,
    )
)
def test_python_fast_path_matches_the_text_path(value: Any) -> None:
    assert norm(value) == norm(RawJSON(json.dumps(value, ensure_ascii=False)))
