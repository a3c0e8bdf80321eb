"""References in DAG files (issue #14, "References"): ``${params.x}``, ``${env.X}``,
``${NAME}``, ``${NAME.path}``, step properties, ``$1``, escapes; rendering (strings raw,
objects and arrays compact JSON, numbers by their literal); ``with`` trees, typed."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox.core.exactjson import loads_exact
from statebox.core.values import normalize
from statebox.runner.refs import (
    RefContext,
    Reference,
    StepView,
    find_references,
    render_json,
    render_text,
    render_with,
)

# The output of the seed's `state.get` step (`output: CURSOR`).
CURSOR = (
    '{"operation":"get","scope":"dag","namespace":"feed-sync","key":"cursors/feed",'
    '"found":true,"version":3,"hash":"ab","value":{"last_id":1000000,"ratio":0.1,'
    '"exp":1E5,"big":123456789012345678901234567890123,"neg":-0,"name":"a b",'
    '"none":null,"ok":true,"items":[10,{"k":"v"},"x y"],"with space":{"é":"ü"}}}'
)


def make_ctx(**overrides: Any) -> RefContext:
    fields: dict[str, Any] = {
        "params": {"env_name": "prod", "count": "7", "SHARED": "from-param"},
        "positional": ["first", "second"],
        "env": {"HOME": "/home/u", "MODE": "daily", "SHARED": "from-env", "JSONENV": '{"a":1}'},
        "outputs": {"CURSOR": CURSOR, "LAST_ID": "123", "SHARED": "from-output", "TXT": "hi"},
        "steps": {
            "load": StepView(output=CURSOR, stdout="/logs/load.out", stderr=None, exit_code=0),
            "load cursor": StepView(
                output=CURSOR, stdout="/logs/load.out", stderr=None, exit_code=0
            ),
            "check": StepView(
                output=None, stdout="/logs/check.out", stderr="/logs/check.err", exit_code=4
            ),
        },
    }
    fields.update(overrides)
    return RefContext(**fields)


CTX = make_ctx()


def text(source: str, *, shell: bool = False) -> str:
    return render_text(source, CTX, shell=shell)


# --- each form -------------------------------------------------------------------------


def test_params_and_env() -> None:
    assert text("deploy ${params.env_name} as ${env.MODE}") == "deploy prod as daily"
    assert text("${params.env_name}", shell=True) == "prod"
    assert text("${env.HOME}", shell=True) == "/home/u"


def test_a_missing_param_or_env_is_left_as_written() -> None:
    assert text("${params.nope} ${env.NOPE}") == "${params.nope} ${env.NOPE}"
    assert text("${params.nope}", shell=True) == "${params.nope}"


def test_a_name_is_an_output_then_a_param_then_an_env_var() -> None:
    assert text("${SHARED}") == "from-output"
    assert render_text("${SHARED}", make_ctx(outputs={}), shell=False) == "from-param"
    assert render_text("$SHARED", make_ctx(outputs={}, params={}), shell=False) == "from-env"
    assert text("$LAST_ID/${LAST_ID}") == "123/123"


def test_in_run_other_variables_are_left_to_the_shell() -> None:
    # Outputs and params are substituted; $HOME, ${MODE} (env), $(…), ${X:-d} stay.
    source = 'echo $LAST_ID ${count} $HOME ${MODE} "$(date)" ${X:-d} ${#HOME} $$ $?'
    assert text(source, shell=True) == 'echo 123 7 $HOME ${MODE} "$(date)" ${X:-d} ${#HOME} $$ $?'
    # Outside run, env variables are resolved, and unknown ones left as written.
    assert text("$HOME ${MODE} $UNKNOWN ${UNKNOWN}") == "/home/u daily $UNKNOWN ${UNKNOWN}"


def test_the_shell_expands_what_was_left_to_it() -> None:
    command = text('printf "%s|%s|%s" "$LAST_ID" "${MODE}" "${params.env_name}"', shell=True)
    done = subprocess.run(
        ["sh", "-c", command], env={"MODE": "daily"}, capture_output=True, text=True, check=True
    )
    assert done.stdout == "123|daily|prod"


def test_json_paths_render_numbers_by_their_literal() -> None:
    assert text("${CURSOR.value.last_id}") == "1000000"  # not 1e+06
    assert text("${CURSOR.value.ratio}") == "0.1"
    assert text("${CURSOR.value.exp}") == "1E5"
    assert text("${CURSOR.value.big}") == "123456789012345678901234567890123"
    assert text("${CURSOR.value.neg}") == "-0"
    assert text("${CURSOR.version}") == "3"


def test_json_paths_render_strings_raw_objects_compact_and_literals() -> None:
    assert text("${CURSOR.value.name}") == "a b"
    assert text("${CURSOR.value.items}") == '[10,{"k":"v"},"x y"]'
    assert text('${CURSOR.value["with space"]}') == '{"é":"ü"}'  # not \u00e9
    assert text("${CURSOR.value.ok} ${CURSOR.found}") == "true true"
    assert text("${CURSOR.value.none}") == "null"  # not Dagu's <nil>


def test_jq_path_forms() -> None:
    assert text("${CURSOR.value.items[0]}") == "10"
    assert text("${CURSOR.value.items[1].k}") == "v"
    assert text("${CURSOR.value.items[-1]}") == "x y"
    assert text('${CURSOR.value."with space"."é"}') == "ü"
    assert text('${CURSOR.value."with space".é}') == '${CURSOR.value."with space".é}'  # jq: no
    assert text('${CURSOR.value.["name"]}') == "a b"
    assert text("${CURSOR.value.items.[0]}") == "10"
    assert render_text("${ARR.[1]}", make_ctx(outputs={"ARR": "[1,2]"}), shell=False) == "2"


def test_a_missing_field_is_null_as_in_jq() -> None:
    assert text("${CURSOR.value.nope}") == "null"
    assert text("${CURSOR.value.nope.deeper}") == "null"
    assert text("${CURSOR.value.items[99]}") == "null"


def test_a_path_that_cannot_apply_is_left_as_written() -> None:
    # jq type errors: a field of a string, an index of an object.
    assert text("${CURSOR.value.name.x}") == "${CURSOR.value.name.x}"
    assert text("${CURSOR.value[0]}") == "${CURSOR.value[0]}"
    # Text that is not JSON; a name that is nothing.
    assert text("${TXT.x}") == "${TXT.x}"
    assert text("${NOPE.x}") == "${NOPE.x}"


def test_a_path_into_a_param_or_env_var() -> None:
    assert text("${JSONENV.a}") == "1"
    ctx = make_ctx(params={"cfg": '{"n":5}'})
    assert render_text("${cfg.n}", ctx, shell=True) == "5"


def test_other_jq_runs_in_jq_first_result() -> None:
    assert text("${CURSOR.value.items | length}") == "3"
    assert text("${CURSOR.value.items[]}") == "10"  # the first of several results
    assert text("${CURSOR.value.items | .[") == "${CURSOR.value.items | .["  # no closing }
    assert text("${CURSOR.value | nosuchfunction}") == "${CURSOR.value | nosuchfunction}"


def test_step_properties() -> None:
    assert text("${load.output}") == CURSOR
    assert text("${load.stdout}") == "/logs/load.out"  # the log file's path, as in Dagu
    assert text("${check.stderr}") == "/logs/check.err"
    assert text("${check.exit_code} ${check.exitCode}") == "4 4"
    assert text("${load.output.value.last_id}") == "1000000"
    assert text("${load.stdout:1:4}") == "logs"
    assert text("${load.stdout:6}") == "load.out"


def test_missing_step_properties_are_left_as_written() -> None:
    assert text("${check.output}") == "${check.output}"  # no output: configured
    assert text("${load.stderr}") == "${load.stderr}"  # no log
    assert text("${nostep.exit_code}") == "${nostep.exit_code}"
    assert text("${load.stdout:x}") == "${load.stdout:x}"


def test_positional_params() -> None:
    assert text("$1 ${2}") == "first second"
    assert text("$1 ${2}", shell=True) == "first second"
    # No third: left for the shell ($3 expands to its own positional there).
    assert text("$3 ${3} $0", shell=True) == "$3 ${3} $0"
    assert text("$1abc") == "$1abc"  # not $1 followed by text (Dagu)
    ten = make_ctx(positional=[str(n) for n in range(1, 11)])
    assert render_text("$10", ten, shell=True) == "10"


def test_single_quoted_variables_are_left_as_written() -> None:
    assert text("awk '{print $1}' $1", shell=True) == "awk '{print $1}' first"
    assert text("echo '$LAST_ID' $LAST_ID", shell=True) == "echo '$LAST_ID' 123"
    # Dagu-owned and dotted references are not protected by quotes.
    assert text("'${params.env_name}' '${CURSOR.value.last_id}'") == "'prod' '1000000'"


def test_a_double_quoted_reference_is_json_escaped() -> None:
    ctx = make_ctx(outputs={"MSG": 'say "hi"\\now'})
    assert render_text('{"m":"${MSG}"}', ctx, shell=False) == '{"m":"say \\"hi\\"\\\\now"}'
    json.loads(render_text('{"m":"${MSG}"}', ctx, shell=False))
    assert render_text("m=${MSG}", ctx, shell=False) == 'm=say "hi"\\now'
    # In a shell, the double-quoted word is the value again.
    command = render_text('printf %s "${MSG}"', ctx, shell=True)
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert done.stdout == 'say "hi"\\now'


def test_seed_feed_sync_fetch_command() -> None:
    command = 'echo --after "${CURSOR.value.last_id}"'
    assert text(command, shell=True) == 'echo --after "1000000"'


def test_inserted_values_are_not_scanned_again() -> None:
    ctx = make_ctx(outputs={"A": "${B}", "B": "no"}, params={"p": "$1"})
    assert render_text("${A} ${params.p}", ctx, shell=False) == "${B} $1"


# --- escapes ---------------------------------------------------------------------------


def test_escapes_outside_run() -> None:
    assert text(r"\${params.env_name} \${LAST_ID} \$HOME \${CURSOR.value}") == (
        "${params.env_name} ${LAST_ID} $HOME ${CURSOR.value}"
    )
    # An even run of backslashes escapes nothing; an odd one loses one backslash.
    assert text(r"\\${params.env_name}") == r"\\prod"
    assert text(r"\\\${params.env_name}") == r"\\${params.env_name}"
    assert text("\\$") == "$"


def test_escapes_in_run() -> None:
    # Dagu's own forms lose the escape; the shell's own \$ is left to the shell.
    source = r"echo \${params.env_name} \${CURSOR.value.x} \${LAST_ID} \$HOME \$1"
    assert text(source, shell=True) == (
        r"echo ${params.env_name} ${CURSOR.value.x} \${LAST_ID} \$HOME \$1"
    )
    command = text(r'printf %s "\${LAST_ID}-\$HOME-\$1"', shell=True)
    done = subprocess.run(
        ["sh", "-c", command], env={"HOME": "/h"}, capture_output=True, text=True, check=True
    )
    assert done.stdout == "${LAST_ID}-$HOME-$1"


def test_escaped_references_are_not_found() -> None:
    assert find_references(r"\${params.x} \$HOME \\\${y}") == []


# --- find_references -------------------------------------------------------------------


def test_find_references() -> None:
    source = "a ${params.x} ${env.X} $HOME $1 ${2} ${C.v[0]} ${load.output} ${X:-d} $(c)"
    found = find_references(source)
    assert [(r.name, r.path, r.text) for r in found] == [
        ("params", ".x", "${params.x}"),
        ("env", ".X", "${env.X}"),
        ("HOME", None, "$HOME"),
        ("1", None, "$1"),
        ("2", None, "${2}"),
        ("C", ".v[0]", "${C.v[0]}"),
        ("load", ".output", "${load.output}"),
    ]
    assert [r.braced for r in found] == [True, True, False, False, True, True, True]
    assert [r.positional for r in found] == [False, False, False, True, True, False, False]
    assert all(source[r.start : r.end] == r.text for r in found)
    assert find_references("no references") == []


# --- render_json -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("raw text", "raw text"),
        ({"a": [1, "é", None]}, '{"a":[1,"é",null]}'),
        ([], "[]"),
        (1000000, "1000000"),
        (10**40, str(10**40)),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0.1, "0.1"),
        (Decimal("1.2300"), "1.2300"),
        (loads_exact("1E+06"), "1E+06"),
        ({"n": loads_exact("2.50"), "m": [loads_exact("-0")]}, '{"n":2.50,"m":[-0]}'),
    ],
)
def test_render_json(value: Any, rendered: str) -> None:
    assert render_json(value) == rendered


# --- render_with -----------------------------------------------------------------------

WITH = {
    "key": "cursors/${params.env_name}",
    "expected_version": "${CURSOR.version}",
    "value": {"last_id": "${LAST_ID}", "count": 3, "on": True, "list": ["${TXT}", None, 1.5]},
    "${TXT}": "keys are not rendered",
}


def test_with_string_leaves_stay_strings() -> None:
    assert render_with(WITH, CTX, typed=False) == {
        "key": "cursors/prod",
        "expected_version": "3",  # "7" or a reference: a string, as Dagu takes it
        "value": {"last_id": "123", "count": 3, "on": True, "list": ["hi", None, 1.5]},
        "${TXT}": "keys are not rendered",
    }


def test_with_typed_references_keep_their_json_type() -> None:
    rendered = render_with(
        {
            **WITH,
            "ratio": "${CURSOR.value.ratio}",
            "big": "${CURSOR.value.big}",
            "obj": "${CURSOR.value.items}",
            "none": "${CURSOR.value.none}",
            "exit": "${check.exit_code}",
            "param": "${params.count}",
            "log": "${load.stdout}",
            "text": "${TXT}",
            "missing": "${NOPE}",
            "mixed": "id-${LAST_ID}",
        },
        CTX,
        typed=True,
    )
    assert rendered["expected_version"] == 3
    assert rendered["value"]["last_id"] == 123  # a cursor stays a number
    assert rendered["value"]["list"] == ["hi", None, 1.5]
    assert rendered["key"] == "cursors/prod"
    assert rendered["big"] == 123456789012345678901234567890123
    assert str(rendered["ratio"]) == "0.1"
    assert rendered["obj"] == [10, {"k": "v"}, "x y"]
    assert rendered["none"] is None
    assert rendered["exit"] == 4
    assert rendered["param"] == "7"  # a parameter has no JSON type: a string
    assert rendered["log"] == "/logs/load.out"
    assert rendered["text"] == "hi"  # an output that is not JSON: its text
    assert rendered["missing"] == "${NOPE}"
    assert rendered["mixed"] == "id-123"


def test_typed_numbers_are_stored_by_their_literal() -> None:
    rendered = render_with(
        {"v": {"r": "${CURSOR.value.ratio}", "e": "${CURSOR.value.exp}", "n": "${LAST_ID}"}},
        CTX,
        typed=True,
    )
    assert normalize(rendered["v"]).data == b'{"e":1E5,"n":123,"r":0.1}'


def test_seed_change_detection_condition_value() -> None:
    diff = '{"operation":"diff","changed":true,"foundPrevious":true}'
    ctx = make_ctx(outputs={"DIFF": diff})
    assert render_text("${DIFF.changed}", ctx, shell=False) == "true"


# --- properties ------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(st.text().filter(lambda s: "$" not in s))
def test_text_without_dollar_renders_to_itself(source: str) -> None:
    assert render_text(source, CTX, shell=False) == source
    assert render_text(source, CTX, shell=True) == source
    assert find_references(source) == []


@given(
    st.text(alphabet=st.characters(blacklist_characters="}\\$")),
    st.text(alphabet=st.characters(blacklist_characters="\\$")),
    st.text(alphabet=st.characters(blacklist_characters="\\$")),
)
def test_an_escaped_reference_renders_to_the_literal(inner: str, before: str, after: str) -> None:
    # Outside run the escape always gives the literal ${…}, whatever is inside.
    source = before + "\\${" + inner + "}" + after
    assert render_text(source, CTX, shell=False) == before + "${" + inner + "}" + after


@given(st.sampled_from(["params.env_name", "env.HOME", "CURSOR.value", "load.output"]))
def test_an_escaped_dagu_reference_renders_to_the_literal_in_run(inner: str) -> None:
    assert render_text("\\${" + inner + "}", CTX, shell=True) == "${" + inner + "}"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_render_json_parses_back_to_the_value(value: Any) -> None:
    rendered = render_json(value)
    if isinstance(value, str):
        assert rendered == value
    else:
        assert json.loads(rendered) == value


@given(st.integers())
def test_integers_render_as_their_decimal_literal(number: int) -> None:
    assert render_json(number) == str(number)
    assert render_json([number]) == f"[{number}]"


@given(JSON_VALUES.filter(lambda v: not isinstance(v, str)))
def test_an_output_path_renders_what_it_selects(value: Any) -> None:
    document = json.dumps({"v": value}, separators=(",", ":"), ensure_ascii=False)
    ctx = make_ctx(outputs={"OUT": document})
    rendered = render_text("${OUT.v}", ctx, shell=False)
    assert json.loads(rendered) == value
    # Re-parsed exactly, the literals are those of the output.
    assert rendered == render_json(
        loads_exact(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    )


PIECES = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_characters="$\\{}'\""), max_size=6),
        NAMES.map(lambda n: "$" + n),
        NAMES.map(lambda n: "${" + n + "}"),
        st.sampled_from(["${params.x}", "${env.HOME}", "$1", "${2}", "${C.v[0]}", "${X:-d}"]),
        NAMES.map(lambda n: "\\${" + n + "}"),
        st.sampled_from(["$", "{", "}", "\\", "'", '"']),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(PIECES)
def test_reference_spans_cover_exactly_their_texts(pieces: list[str]) -> None:
    source = "".join(pieces)
    found = find_references(source)
    previous_end = 0
    for ref in found:
        assert isinstance(ref, Reference)
        assert source[ref.start : ref.end] == ref.text
        assert ref.text.startswith("$")
        assert ref.start >= previous_end  # in order, never overlapping
        previous_end = ref.end
        if ref.braced:
            assert ref.text.endswith("}")
        # Each reference, alone, is found again as itself.
        assert find_references(ref.text) == [
            Reference(ref.name, ref.path, 0, len(ref.text), ref.text)
        ]
