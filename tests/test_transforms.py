"""The transforms of ``update`` on their own: RFC 7386, RFC 6902, jq with its time bound,
and number literals kept where the transform left them alone."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox import InvalidValueError, RawJSON, normalize
from statebox import _jq as jq_runner
from statebox.transforms import (
    JqTransform,
    JsonPatch,
    MergePatch,
    make_transform,
    restore_literals,
)


def norm(text: str) -> str:
    return normalize(RawJSON(text)).data.decode()


# --- RFC 7386, Appendix A: every example -------------------------------------------------

RFC_7386_EXAMPLES = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"a":1,"e":null}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7386_EXAMPLES)
def test_merge_patch_rfc_7386_examples(target: str, patch: str, expected: str) -> None:
    assert MergePatch.from_text(norm(patch)).apply(norm(target)) == norm(expected)


def test_merge_patch_keeps_the_literals_of_both_documents() -> None:
    out = MergePatch.from_text('{"b":1.50,"c":{"d":-0}}').apply('{"a":1E5,"c":{"e":1.0}}')
    assert out == '{"a":1E5,"b":1.50,"c":{"d":-0,"e":1.0}}'


# --- RFC 6902 ------------------------------------------------------------------------------


def test_json_patch_operations() -> None:
    ops = json.dumps(
        [
            {"op": "add", "path": "/list/1", "value": "x"},
            {"op": "remove", "path": "/gone"},
            {"op": "replace", "path": "/n", "value": 2},
            {"op": "copy", "from": "/n", "path": "/m"},
            {"op": "move", "from": "/list", "path": "/moved"},
            {"op": "test", "path": "/m", "value": 2},
        ]
    )
    out = JsonPatch.from_text(ops).apply('{"gone":true,"list":[1,2],"n":1}')
    assert out == '{"m":2,"moved":[1,"x",2],"n":2}'


def test_json_patch_is_all_or_nothing_and_names_the_failing_operation() -> None:
    patch = JsonPatch.from_text('[{"op":"add","path":"/a","value":1},{"op":"bogus","path":"/"}]')
    with pytest.raises(InvalidValueError, match=r"JSON patch operation 1 .*bogus"):
        patch.apply("{}")


def test_json_patch_keeps_the_literals_it_adds() -> None:
    """A patch's values were parsed through floats: ``1.2345678901234567890123`` was
    stored as ``1.2345678901234567``. Its values and the document now keep their
    literals, as a merge patch's always did."""
    ops = norm(
        '[{"op": "add", "path": "/v", "value": 1.2345678901234567890123},'
        ' {"op": "add", "path": "/list/-", "value": {"n": 1E400, "z": -0}},'
        ' {"op": "replace", "path": "/a", "value": 1.000},'
        ' {"op": "copy", "from": "/v", "path": "/w"},'
        ' {"op": "move", "from": "/f", "path": "/g"}]'
    )
    out = JsonPatch.from_text(ops).apply('{"a":1.0,"f":1.2300,"list":[2.50]}')
    assert out == (
        '{"a":1.000,"g":1.2300,"list":[2.50,{"n":1E400,"z":-0}],'
        '"v":1.2345678901234567890123,"w":1.2345678901234567890123}'
    )


def test_update_with_a_json_patch_keeps_its_literals() -> None:
    from decimal import Decimal

    from statebox import open_store

    with open_store("memory://") as store:
        literal = "1.2345678901234567890123"
        for key, patch in (
            ("raw", RawJSON(f'[{{"op": "add", "path": "/v", "value": {literal}}}]')),
            ("data", [{"op": "add", "path": "/v", "value": Decimal(literal)}]),
        ):
            store.update(key, patch=patch, default=RawJSON('{"kept": 1.50}'), namespace="n")
            stored = store.get(key, namespace="n").stored
            assert stored is not None and stored.text == f'{{"kept":1.50,"v":{literal}}}'


def test_json_patch_tests_numbers_exactly() -> None:
    """``test`` compares numbers by value (``1`` is ``1.0`` and ``1.00``), exactly: not
    as the doubles they round to."""
    ops = (
        '[{"op": "test", "path": "/a", "value": 1.00}, {"op": "test", "path": "/b",'
        ' "value": [1.5, {"x": 0, "y": "s"}]}, {"op": "test", "path": "", "value": '
        '{"a": 1, "b": [1.50, {"x": -0, "y": "s"}], "c": 1E2}}]'
    )
    document = '{"a":1,"b":[1.50,{"x":-0,"y":"s"}],"c":100}'
    assert JsonPatch.from_text(ops).apply(document) == document
    for value in ("0.1", "1.0000000000000000000001", "1E400"):
        patch = JsonPatch.from_text(f'[{{"op": "test", "path": "/a", "value": {value}}}]')
        with pytest.raises(InvalidValueError, match='the value at "/a" is not the tested value'):
            patch.apply(
                '{"a":0.1000000000000000055511151231257827}' if value == "0.1" else '{"a":1}'
            )


@pytest.mark.parametrize("text", ['{"op":"add"}', "[1]", '"x"'])
def test_json_patch_must_be_a_list_of_objects(text: str) -> None:
    with pytest.raises(InvalidValueError, match="must be a list of operation objects"):
        JsonPatch.from_text(text)


# --- jq ------------------------------------------------------------------------------------


def test_jq_computes_and_keeps_untouched_literals() -> None:
    before = '{"big":9007199254740993,"f":1.2300,"list":[1.0,2.50],"n":1}'
    out = JqTransform(".n += 1 | .list += [3.0]").apply(before)
    # 3.0 is new: jq prints it as 3; the rest is as it was written
    assert out == '{"big":9007199254740993,"f":1.2300,"list":[1.0,2.50,3],"n":2}'


def test_jq_output_is_normalized() -> None:
    assert (
        JqTransform('{"z": "<&>", "a": "é"}').apply("null")
        == '{"a":"é","z":"\\u003c\\u0026\\u003e"}'
    )


def test_jq_time_bound_abandons_a_runaway_expression() -> None:
    started = time.monotonic()
    with pytest.raises(InvalidValueError, match=r"ran longer than 0\.3s and was abandoned"):
        JqTransform("last(range(1e15))", timeout=0.3).apply("null")
    assert time.monotonic() - started < 5
    # the killed worker is replaced: the next expression runs normally
    assert JqTransform(".a").apply('{"a":[1]}') == "[1]"


def test_an_infinite_generator_is_refused_without_running_forever() -> None:
    with pytest.raises(InvalidValueError, match="more than one value"):
        JqTransform("repeat(1)", timeout=10).apply("null")


def test_workers_that_died_while_idle_are_replaced() -> None:
    # several idle workers, all killed from outside
    threads = [threading.Thread(target=JqTransform(".").apply, args=("1",)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert jq_runner._POOL._idle
    for worker in list(jq_runner._POOL._idle):
        worker.proc.kill()
        worker.proc.wait()
    assert JqTransform(". + 1").apply("1") == "2"


def test_jq_runs_concurrently_from_threads() -> None:
    results: dict[int, str] = {}

    def work(i: int) -> None:
        for _ in range(10):
            results[i] = JqTransform(f". + {i}").apply("100")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: str(100 + i) for i in range(6)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_starts_its_own_workers() -> None:
    JqTransform(".").apply("1")  # the parent has workers
    pid = os.fork()
    if pid == 0:  # the child: must not talk to the parent's workers
        try:
            ok = JqTransform(". * 2").apply("21") == "42"
        finally:
            jq_runner._POOL.shutdown()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert JqTransform(". * 3").apply("2") == "6"


def test_make_transform_wants_exactly_one() -> None:
    with pytest.raises(
        InvalidValueError, match=r"got a merge patch and a JSON patch \(jq=, merge= or patch=\)$"
    ):
        make_transform(jq=None, merge_text="{}", patch_text="[]", jq_timeout=1)
    assert isinstance(
        make_transform(jq="", merge_text=None, patch_text=None, jq_timeout=1), JqTransform
    )


# --- number literals -----------------------------------------------------------------------


def test_restore_literals_only_where_the_number_is_unchanged() -> None:
    from statebox.core.exactjson import parse_literals
    from statebox.core.values import _encode

    old = parse_literals('{"a":1.50,"b":[1E2,7],"c":2.0}')
    new = json.loads('{"a":1.5,"b":[100,8],"c":3,"d":1.5}')
    assert _encode(restore_literals(new, old), True) == '{"a":1.50,"b":[1E2,8],"c":3,"d":1.5}'


def _number_literals() -> st.SearchStrategy[str]:
    digits = st.integers(min_value=0, max_value=10**30).map(str)
    fraction = st.text("0123456789", min_size=1, max_size=12)
    exponent = st.tuples(st.sampled_from(["e", "E", "e+", "E-", "e-"]), st.integers(0, 300))
    return st.builds(
        lambda sign, whole, frac, exp: (
            sign + whole + ("." + frac if frac else "") + (f"{exp[0]}{exp[1]}" if exp else "")
        ),
        st.sampled_from(["", "-"]),
        digits,
        st.none() | fraction,
        st.none() | exponent,
    )


def _json_texts() -> st.SearchStrategy[str]:
    scalars = st.one_of(
        _number_literals(),
        st.sampled_from(["true", "false", "null"]),
        st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
            st.dictionaries(st.text(max_size=4), inner, max_size=4).map(
                lambda d: (
                    "{"
                    + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in d.items())
                    + "}"
                )
            ),
        ),
        max_leaves=12,
    )


@settings(max_examples=150, deadline=None)
@given(_json_texts())
def test_identity_transforms_keep_the_stored_bytes(text: str) -> None:
    stored = norm(text)
    assert JqTransform(".").apply(stored) == stored
    assert JsonPatch.from_text("[]").apply(stored) == stored
    if stored.startswith("{"):
        assert MergePatch.from_text("{}").apply(stored) == stored


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(max_size=3), st.integers() | st.none() | st.text(max_size=3)),
    st.dictionaries(st.text(max_size=3), st.integers() | st.none() | st.text(max_size=3)),
)
def test_merge_patch_agrees_with_its_definition(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    expected = {**target, **patch}
    expected = {k: v for k, v in expected.items() if not (k in patch and patch[k] is None)}
    out = MergePatch.from_text(norm(json.dumps(patch))).apply(norm(json.dumps(target)))
    assert json.loads(out) == expected
