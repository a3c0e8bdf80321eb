"""One parser per concept (issue #13 item 3): exact-number JSON, a value on the wire, a
mutation on the wire, fencing — each read (and written) in one place.

The source checks walk the package's syntax trees, so a second implementation fails
here by name; the properties check that each encoder and its decoder are inverses.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import statebox
from statebox import InvalidValueError, open_store
from statebox.core.envelope import dumps_envelope
from statebox.core.exactjson import NumberLiteral, loads_exact, parse_literals
from statebox.core.model import RunContext
from statebox.core.records import Delete, Fence, Mutation, Put
from statebox.core.values import JSON_CONTENT_TYPE, Blob, RawJSON, normalize, normalize_blob
from statebox.wire.codec import batch_operation, value_fields, value_from_wire
from statebox.wire.mutations import mutation_from_wire, mutation_to_wire

PACKAGE = Path(statebox.__file__).parent


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def _calls(tree: ast.Module) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


# --- exact-number JSON ------------------------------------------------------------------

#: Modules that still hook a JSON parser's numbers, and why they may.
_OTHER_NUMBER_HOOKS = {
    # Dagu's record files: the value's text is kept verbatim by span (no numbers are
    # read from it); only over-long integers in the record's own fields stay text.
    "backends/file/_codec.py",
    # Direktiv's reading of JSON (runner/direktiv/_gofmt.go_loads): every number Go's
    # float64, as a Direktiv workflow sees it — a different concept from statebox's
    # exact-number JSON, read there and only there for the whole Direktiv runner.
    "runner/direktiv/_gofmt.py",
}


def test_only_the_core_parser_hooks_json_numbers() -> None:
    """``parse_float=`` / ``parse_int=`` (keeping number literals) appear in
    ``core/exactjson.py`` only: no module parses exact-number JSON its own way."""
    hooking = {
        name
        for name, tree in _modules()
        for call in _calls(tree)
        if any(kw.arg in ("parse_float", "parse_int") for kw in call.keywords)
    }
    assert hooking == {"core/exactjson.py", *_OTHER_NUMBER_HOOKS}


def test_no_module_defines_a_second_literal_number_type() -> None:
    subclasses_decimal = {
        name
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(getattr(base, "id", getattr(base, "attr", "")) == "Decimal" for base in node.bases)
    }
    assert subclasses_decimal == {"core/_jsonnumber.py"}


_JSON_NUMBERS = st.from_regex(
    r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@given(_JSON_NUMBERS)
def test_loads_exact_keeps_every_number_literal(literal: str) -> None:
    parsed = loads_exact(f"[{literal}]")[0]
    if isinstance(parsed, int):
        assert str(parsed) == literal  # a plain integer (never -0)
    else:
        assert str(parsed) == literal  # a JsonNumber: the literal as written
    assert normalize(loads_exact(literal)).data.decode() == literal


_JSON_TEXTS = st.recursive(
    st.sampled_from(["null", "true", "false"])
    | _JSON_NUMBERS
    | st.text(max_size=8).map(json.dumps),
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: f"[{','.join(items)}]")
        | st.dictionaries(st.text(max_size=5), inner, max_size=4).map(
            lambda members: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}"
        )
    ),
    max_leaves=12,
)


@given(_JSON_TEXTS)
def test_both_shapes_of_the_parser_normalize_alike(text: str) -> None:
    """What the wire reads (``loads_exact``) normalizes to the very bytes the text does
    (``parse_literals``, normalization's own reading): one parser, two shapes of number."""
    assert normalize(loads_exact(text)) == normalize(RawJSON(text))


def test_the_parser_refuses_what_json_does_not_allow() -> None:
    for text in ("NaN", "[Infinity]", "-Infinity"):
        with pytest.raises(ValueError, match="is not valid JSON"):
            loads_exact(text)
        with pytest.raises(InvalidValueError):
            parse_literals(text)
    huge = "9" * 5000
    assert str(loads_exact(huge)) == huge
    literal = parse_literals(f"[{huge}, -0]")
    assert [n.literal for n in literal if isinstance(n, NumberLiteral)] == [huge, "-0"]
    with pytest.raises(ValueError, match="nested"):
        loads_exact("[" * 300 + "]" * 300)


# --- a value on the wire ----------------------------------------------------------------


_CONTENT_TYPES = st.sampled_from(["application/octet-stream", "text/plain", "image/png"])


@given(st.binary(max_size=64), _CONTENT_TYPES)
def test_a_binary_value_goes_over_the_wire_and_back(data: bytes, content_type: str) -> None:
    sent = loads_exact(dumps_envelope(value_fields(data, content_type)))
    assert value_from_wire(sent) == Blob(data, content_type)


@given(_JSON_TEXTS)
def test_a_json_value_goes_over_the_wire_and_back(text: str) -> None:
    stored = normalize(RawJSON(text))
    sent = loads_exact(dumps_envelope(value_fields(stored.data, JSON_CONTENT_TYPE)))
    assert normalize(value_from_wire(sent)) == stored


#: ``base64``'s and ``binascii``'s coders, by direction.
_BASE64_CODERS = {
    "b64encode": "b64encode",
    "urlsafe_b64encode": "b64encode",
    "urlsafe_b64decode": "b64decode",
    "b2a_base64": "b64encode",
    "b64decode": "b64decode",
    "a2b_base64": "b64decode",
}


def test_only_the_envelope_encodes_and_only_the_wire_decodes_base64() -> None:
    """A value's base64 form is written by ``core/envelope.py`` (the server's answers;
    the wire's entries and mutations call it) and read by ``wire/codec.py`` only. The
    file store keeps its own on disk, Dagu's format. The Direktiv runner's
    ``_gofmt.py`` is the one other: Direktiv's representation of bytes (base64 text in
    place of bytes that are not JSON, ``StdEncoding``'s strict decoding) is not
    statebox's wire envelope. The Dapr face's ``keys.py`` encodes keys, not values: a
    Dapr key that is no valid statebox key is kept as ``~`` and its base64url. The
    sealing layer's ``keyring.py`` reads and writes secret keys (base64url text), never
    values."""
    coders: dict[str, set[str]] = {"b64encode": set(), "b64decode": set()}
    for name, tree in _modules():
        for call in _calls(tree):
            direction = _BASE64_CODERS.get(_called_name(call))
            if direction and not name.startswith("backends/file/"):
                coders[direction].add(name)
    direktiv = "runner/direktiv/_gofmt.py"
    keys = {"dapr/keys.py", "backends/sealing/keyring.py"}
    assert coders == {
        "b64encode": {"core/envelope.py", direktiv, *keys},
        "b64decode": {"wire/codec.py", direktiv, *keys},
    }


# --- a mutation on the wire -------------------------------------------------------------

NOW = 1_700_000_000 * 10**9

_KEYS = st.from_regex(r"[a-z][a-z0-9/_-]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda key: "//" not in key
)
_FENCES = st.none() | st.builds(
    Fence, st.from_regex(r"[a-z][a-z0-9:-]{0,8}", fullmatch=True), st.integers(1, 2**63 - 1)
)
_GUARDS = st.none() | st.integers(-(2**63), 2**63 - 1)
_VALUES = _JSON_TEXTS.map(lambda text: normalize(RawJSON(text))) | st.builds(
    normalize_blob, st.binary(max_size=32), _CONTENT_TYPES
)
_MUTATIONS: st.SearchStrategy[Mutation] = st.builds(
    Put,
    _KEYS,
    _VALUES,
    _GUARDS,
    st.booleans(),
    st.none() | st.integers(NOW - 10**18, NOW + 10**18),  # past expiries too
    _FENCES,
) | st.builds(Delete, _KEYS, _GUARDS, _FENCES)


@given(_MUTATIONS, st.integers(NOW - 10**12, NOW + 10**12))
def test_a_mutation_goes_over_the_wire_and_back(mutation: Mutation, now: int) -> None:
    """What the http:// backend sends, the server's raw route reads back as the very
    mutation — parsed whole, or as the route does (the value kept as text)."""
    text = dumps_envelope(mutation_to_wire(mutation, now))
    whole = mutation_from_wire(loads_exact(text), 0, now, normalize)
    batched = mutation_from_wire(batch_operation(text.encode()), 0, now, normalize)
    assert whole == batched == mutation


def test_mutations_are_made_by_the_engine_and_the_wire_only() -> None:
    """A face never builds a mutation itself: the engine makes them from operations
    (``WritesMixin._to_mutation``; ``update``, ``rollback`` and ``diff`` from what they
    read), the raw route reads them with ``wire/mutations.py``, and a backend may
    spell a keyspace's deletion as deletes."""
    makers = {
        name
        for name, tree in _modules()
        for call in _calls(tree)
        if _called_name(call) in ("Put", "Delete")
    }
    engine_and_wire = {"store.py", "store_writes.py", "wire/mutations.py"}
    assert {name for name in makers if not name.startswith("backends/")} == engine_and_wire


def _refusal(raw: Any) -> str:
    with pytest.raises(statebox.StateboxError) as info:
        mutation_from_wire(raw, 3, NOW, normalize)
    return info.value.message


def test_a_wire_operation_is_checked_field_by_field() -> None:
    set_op = {"op": "set", "key": "k", "value": 1}
    assert _refusal([1]).startswith("operation 3: must be an object")
    assert _refusal({**set_op, "op": "put"}).startswith('operation 3: "op" must be')
    assert "unknown field(s)" in _refusal({**set_op, "history_limit": 0})
    assert '"value" is required' in _refusal({"op": "set", "key": "k"})
    assert _refusal({**set_op, "expected_version": "3"}).startswith(
        'operation 3 (set): invalid "expected_version" "3": must be an integer'
    )
    assert "out of range" in _refusal({**set_op, "expected_version": 2**63})
    assert '"ttl"' in _refusal({**set_op, "ttl": "soon"})
    assert "invalid base64" in _refusal({**set_op, "value": "!", "encoding": "base64"})
    # The fencing: exactly {"lease", "token"}, a valid name, a token in 64 bits.
    for fencing in (
        {"lease": "job", "token": 1, "extra": 0},
        {"lease": "job"},
        {"lease": "", "token": 1},
        {"lease": "job", "token": 0},
        {"lease": "job", "token": 2**63},
        {"lease": "job", "token": True},
        ["job", 1],
    ):
        message = _refusal({"op": "delete", "key": "k", "fencing": fencing})
        assert message.startswith('operation 3 (delete): invalid "fencing"'), message


def test_the_raw_route_refuses_a_fencing_it_used_to_let_through() -> None:
    """``POST /v1/apply`` read its fencing as ``(lease, token)`` from whatever object
    came, extra members and all, and never checked the token's range: a bad fencing
    reached the backend. It is now refused as a malformed request, before any write."""
    from starlette.testclient import TestClient

    from statebox.server import create_app

    with TestClient(create_app("memory://"), base_url="http://127.0.0.1") as client:
        for fencing in (
            {"lease": "job", "token": 1, "note": "ignored before"},
            {"lease": "job", "token": 2**64},
        ):
            ops = [{"op": "set", "key": "k", "value": 1, "fencing": fencing}]
            answer = client.post("/v1/apply/custom/n", json={"ops": ops})
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["kind"] == "invalid_request"
            assert error["message"].startswith('operation 0 (set): invalid "fencing"')
        assert client.get("/v1/entries/custom/n/k").status_code == 404  # nothing written


# --- fencing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fencing",
    [("job", 2**63), ("job", True), ("job", -1), ("", 1), (None, 1)],
)
def test_every_write_refuses_a_fencing_out_of_what_backends_store(
    fencing: Any, tmp_path: Path
) -> None:
    """A token past the 64 bits the backends store used to reach the backend (and be
    refused there as a stale fence, exit 4 instead of 2); every write path checks its
    fencing in one place now (``core.leases.as_fence``), before anything is written."""
    with open_store(f"sqlite:///{tmp_path / 's.db'}", context=RunContext()) as store:
        writes = (
            lambda: store.set("k", 1, fencing=fencing, namespace="n"),
            lambda: store.delete("k", fencing=fencing, namespace="n"),
            lambda: store.transaction(
                [{"op": "set", "key": "k", "value": 1}], fencing=fencing, namespace="n"
            ),
            lambda: store.update("k", merge={"a": 1}, fencing=fencing, namespace="n"),
        )
        for write in writes:
            with pytest.raises(InvalidValueError, match="fencing"):
                write()
        assert not store.get("k", namespace="n").found


def test_a_transaction_reads_an_operations_fencing_object_by_the_faces_rule() -> None:
    with open_store("memory://", context=RunContext()) as store:
        lease = store.acquire_lease("job", 60)
        ok = {
            "op": "set",
            "key": "k",
            "value": 1,
            "fencing": {"lease": "job", "token": lease.token},
        }
        assert store.transaction([ok], namespace="n").results[0].version == 1
        extra = {**ok, "fencing": {"lease": "job", "token": lease.token, "x": 1}}
        with pytest.raises(InvalidValueError, match=r'operation 0 \(set "k"\): invalid "fencing"'):
            store.transaction([extra], namespace="n")
