"""Direktiv's jq(...) walk (runner/direktiv/expressions.py) against real jq workers.

The rules are Direktiv v0.10's ``pkg/jqer/jqer.go`` with the flags ``pkg/flow/jq.go``
sets: strings trimmed, exactly one ``jq(...)`` keeps its JSON type, mixes concatenate
(non-strings as Go's json.Marshal writes them), null or no value is
``direktiv.jq.badCommand``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statebox.runner.direktiv._gofmt import go_json, go_loads, go_sprint
from statebox.runner.direktiv.errors import BAD_COMMAND, NOT_OBJECT, DirektivError
from statebox.runner.direktiv.expressions import (
    evaluate,
    evaluate_object,
    find_expressions,
    truthy,
)

# Each example runs jq in a worker process: keep the counts modest.
JQ_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SAFE_INT = st.integers(min_value=-(2**53), max_value=2**53)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | SAFE_INT
    # No -0.0: C jq's Python binding hands a zero back as an integer, so -0 comes back
    # as 0 (gojq keeps -0). The parse of jq's text keeps it (test_negative_zero_...).
    | st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f + 0.0)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
NO_OPENER = st.text(max_size=40).filter(lambda s: "jq(" not in s and "js(" not in s)


def _bad(tree: Any, data: Any) -> str:
    with pytest.raises(DirektivError) as info:
        evaluate(tree, data)
    assert info.value.code == BAD_COMMAND
    assert info.value.catchable
    return info.value.message


# -- find_expressions: the lexer ---------------------------------------------------------


@given(NO_OPENER)
def test_text_without_an_opener_is_one_text_token(text: str) -> None:
    assert find_expressions(text) == ([("text", text)] if text else [])


@given(st.text(alphabet="jqs()x \"'", max_size=30))
def test_tokens_put_back_together_give_the_text(text: str) -> None:
    try:
        tokens = find_expressions(text)
    except ValueError as exc:
        assert str(exc) == "jq/js script missing bracket"
        return
    rebuilt = "".join(body if kind == "text" else f"{kind}({body})" for kind, body in tokens)
    assert rebuilt == text
    assert all(body for kind, body in tokens if kind == "text")


def test_brackets_are_counted_without_regard_for_quotes() -> None:
    assert find_expressions("a jq(f(1) | g) b") == [
        ("text", "a "),
        ("jq", "f(1) | g"),
        ("text", " b"),
    ]
    # As Direktiv's lexer: the ")" inside the string closes the expression.
    assert find_expressions('jq(")")') == [("jq", '"'), ("text", '")')]
    assert find_expressions("xjjq(.a)js(1)") == [("text", "xj"), ("jq", ".a"), ("js", "1")]
    with pytest.raises(ValueError, match="missing bracket"):
        find_expressions("jq(.a")
    with pytest.raises(ValueError, match="missing bracket"):
        find_expressions("ok jq((.a)")


# -- evaluate: the walk ------------------------------------------------------------------


@JQ_SETTINGS
@given(NO_OPENER)
def test_text_evaluates_to_itself_trimmed(text: str) -> None:
    assert evaluate(text, {"a": 1}) == text.strip(GO_SPACE)


def test_trimming_is_gos_white_space_not_pythons() -> None:
    # Python's str.strip() also removes U+001C..U+001F; Go's TrimSpace does not.
    assert evaluate("\x1c a \u3000", {}) == "\x1c a"
    assert evaluate("\u00a0\u2028jq(.a)\u205f", {"a": 2}) == 2


@JQ_SETTINGS
@given(JSON_VALUES.filter(lambda v: v is not None))
def test_exactly_one_expression_keeps_the_json_type(value: Any) -> None:
    result = evaluate("  jq(.v)\n", {"v": value})
    # jq writes 1.0 as 1: numbers compare by value, every other kind by kind too.
    assert result == value
    assert _kinds(result) == _kinds(value)


def _kinds(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_kinds(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    return "number" if isinstance(value, (int, float)) else type(value).__name__


@JQ_SETTINGS
@given(st.text(max_size=20), SAFE_INT, JSON_VALUES.filter(lambda v: isinstance(v, (dict, list))))
def test_mixed_strings_concatenate_non_strings_as_go_json(text: str, number: int, obj: Any) -> None:
    data = {"s": text, "n": number, "o": obj}
    assert evaluate("s=jq(.s);n=jq(.n)", data) == f"s={text};n={number}"
    assert evaluate("o:jq(.o)", data) == "o:" + go_json(obj)
    assert evaluate("jq(.n)jq(.n)", data) == f"{number}{number}"


def test_negative_zero_is_read_as_go_reads_it() -> None:
    """Direktiv reads every number as a float64: ``-0`` is -0.0, written back ``-0``
    (the integer hook used to make it 0); an integer beyond 2**53 is the float64 it is."""
    assert go_json(go_loads("[-0, -0.0, 9007199254740993]")) == "[-0,-0,9007199254740992]"


def test_maps_and_lists_are_walked_and_other_scalars_pass() -> None:
    data = {"a": 1, "b": "x", "c": [True, None]}
    tree = {"one": "jq(.a)", "list": ["jq(.b)", 2, False, None, {"deep": "jq(.c)"}], "jq(.a)": 3.5}
    assert evaluate(tree, data) == {
        "one": 1,
        "list": ["x", 2, False, None, {"deep": [True, None]}],
        "jq(.a)": 3.5,  # keys are never evaluated
    }
    assert evaluate(None, data) is None
    assert evaluate(7, data) == 7
    assert evaluate("", data) == ""
    assert evaluate("  ", data) == ""


def test_go_json_and_go_sprint_write_numbers_as_go_does() -> None:
    assert go_json({"b": 1e21, "a": 1e-7, "c": 0.5, "d": 1e20, "e": "<&>"}) == (
        '{"a":1e-7,"b":1e+21,"c":0.5,"d":100000000000000000000,"e":"\\u003c\\u0026\\u003e"}'
    )
    assert go_json(-0.0) == "-0"
    assert evaluate("big=jq(.n)", {"n": 1e21}) == "big=1e+21"
    assert go_sprint(None) == "<nil>"
    assert go_sprint(1e6) == "1e+06"
    assert go_sprint(123456.5) == "123456.5"
    assert go_sprint(0.00001) == "1e-05"
    assert go_sprint({"b": 1, "a": "x", "c": [1, "y", None]}) == "map[a:x b:1 c:[1 y <nil>]]"
    assert go_sprint(True) == "true"


def test_data_that_is_not_an_object_is_seen_as_an_empty_object() -> None:
    # Direktiv decodes the data into a map before the walk; a failed decode leaves {}.
    assert evaluate("jq(.)", [1, 2]) == {}
    assert evaluate("jq(.)", 5) == {}
    assert evaluate("jq(. == null)", None) is True


# -- errors ------------------------------------------------------------------------------


def test_null_and_no_value_are_bad_commands() -> None:
    assert "error in jq query .missing: no results" in _bad("jq(.missing)", {})
    assert "error in jq query empty: no results" in _bad("jq(empty)", {})
    assert "multiple outputs" in _bad("jq(.a[])", {"a": [1, 2]})


def test_compile_and_runtime_errors_name_the_expression_and_its_place() -> None:
    message = _bad({"x": ["ok", 'jq(.a | error("boom"))']}, {"a": 1})
    assert message.startswith("failed to evaluate jq/js: error in 'x': error in element 1: ")
    assert 'error executing jq query .a | error("boom")' in message and "boom" in message
    assert "error executing jq query .a | | .b" in _bad("jq(.a | | .b)", {})
    assert "missing bracket" in _bad("jq(.a", {})
    assert "js(...) is not supported" in _bad("js(return 1)", {})


def test_a_runaway_expression_is_stopped() -> None:
    with pytest.raises(DirektivError) as info:
        evaluate("jq(def f: f; f)", {}, timeout=0.5)
    assert info.value.code == BAD_COMMAND
    assert "longer than" in info.value.message


def test_a_result_over_the_limit_is_refused() -> None:
    with pytest.raises(DirektivError) as info:
        evaluate("jq([range(100000)])", {}, limit=1000)
    assert info.value.code == BAD_COMMAND
    assert "too large" in info.value.message


def test_evaluate_object_requires_an_object() -> None:
    assert evaluate_object({"a": "jq(.x)"}, {"x": 1}) == {"a": 1}
    assert evaluate_object("jq(.)", {"x": 1}) == {"x": 1}
    for tree in ("jq(.x)", "text", ["jq(.)"]):
        with pytest.raises(DirektivError) as info:
            evaluate_object(tree, {"x": 1})
        assert info.value.code == NOT_OBJECT
        assert info.value.message == "the `jq` or `js` command produced a non-object output"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False), (False, False), (0, False), (0.0, False), ("", False), ([], False),
        ({}, False), (True, True), (1, True), (-0.5, True), ("false", True), ([0], True),
        ({"a": None}, True),
    ],
)  # fmt: skip
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
