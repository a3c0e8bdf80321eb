"""One rule per parameter for every face (issue #13 item 3): :mod:`statebox.core.params`.

First the rules themselves (property tests: what they accept round-trips exactly, and
every spelling they refuse is refused); then the same bad inputs through the CLI, the
HTTP API and the library: the same refusal, each face naming the parameter its own way
(``--version``, ``?version=``, ``version``), with the same words after the name.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox import ConflictError, InvalidValueError, RunContext, StateStore, open_store
from statebox.core import params
from statebox.core.errors import InvalidReferenceError, InvalidRequestError
from statebox.core.records import Fence
from statebox.wire import codec

MAX_NS = params.MAX_SECONDS * 1_000_000_000


def refused(call: Any, *args: Any, kind: type[Exception] = InvalidRequestError) -> str:
    """The message ``call(*args)`` is refused with (of ``kind``)."""
    with pytest.raises(kind) as info:
        call(*args)
    message = str(info.value)
    assert "'" not in message  # values quoted as JSON, never as Python reprs
    return message


# --- integers -------------------------------------------------------------------------


@given(st.integers(params.INT64_MIN, params.INT64_MAX))
def test_integers_in_64_bits_round_trip_as_text_and_as_ints(value: int) -> None:
    assert params.integer(str(value), "n") == value
    assert params.integer(value, "n") == value


@given(st.integers(params.INT64_MAX + 1) | st.integers(max_value=params.INT64_MIN - 1))
def test_integers_beyond_64_bits_are_out_of_range(value: int) -> None:
    assert "out of range" in refused(params.integer, str(value), "--limit")
    assert "out of range" in refused(params.integer, value, "limit")


def test_integers_of_any_length_are_refused_at_once() -> None:
    huge = "9" * 100_000  # int() would refuse it (4300 digits); it is out of range
    message = refused(params.limit, huge, "?limit=")
    assert "out of range" in message and len(message) < 200
    assert "out of range" in refused(params.integer, 10**5000, "limit")
    assert params.integer("0" * 100 + "7", "n") == 7  # leading zeros are digits too


_NON_ASCII_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())


@st.composite
def _misspelt_integers(draw: st.DrawFn) -> str:
    """Text ``int()`` reads as an integer, in a spelling no face accepts."""
    digits = str(draw(st.integers(0, 10**12)))
    mangle = draw(st.sampled_from(["underscore", "space", "plus", "script", "newline"]))
    if mangle == "underscore" and len(digits) > 1:
        at = draw(st.integers(1, len(digits) - 1))
        return f"{digits[:at]}_{digits[at:]}"
    if mangle == "plus":
        return f"+{digits}"
    if mangle == "script":
        at = draw(st.integers(0, len(digits) - 1))
        return digits[:at] + draw(_NON_ASCII_DIGITS) + digits[at + 1 :]
    if mangle == "newline":
        return f"{digits}\n"
    return draw(st.sampled_from([f" {digits}", f"{digits} ", f"\t{digits}"]))


@given(_misspelt_integers())
def test_every_other_spelling_of_an_integer_is_refused(text: str) -> None:
    int(text)  # Python would take it
    message = refused(params.integer, text, "--limit")
    assert message.startswith(f"invalid --limit {json.dumps(text, ensure_ascii=False)}:")
    assert "must be an integer" in message


@pytest.mark.parametrize("bad", [True, False, 1.0, Decimal(1), None, [1], "", "-", "1e3", "0x1"])
def test_integers_are_ints_or_digits_only(bad: object) -> None:
    assert "must be an integer" in refused(params.integer, bad, '"limit"')


def test_each_integer_rule_says_what_is_allowed() -> None:
    assert refused(params.version, "0", "--version") == "invalid --version 0: must be 1 or more"
    assert refused(params.expected_version, -1, "?expected_version=") == (
        "invalid ?expected_version= -1: must be 0 or more"
    )
    assert refused(params.limit, -1, '"limit"') == (
        'invalid "limit" -1: must be 0 (no limit) or more'
    )
    assert refused(params.token, "0", "--token") == "invalid --token 0: must be 1 or more"
    assert params.expected_version("0", "n") == 0 and params.limit("0", "n") == 0


# --- seconds --------------------------------------------------------------------------


@given(st.integers(-MAX_NS, MAX_NS))
def test_seconds_round_trip_exactly_to_the_nanosecond(ns: int) -> None:
    text = params.format_seconds(ns)
    assert params.seconds_ns(text, "ttl") == ns
    assert params.seconds_ns(Decimal(text), "ttl") == ns
    assert params.seconds_ns(codec.loads_exact(text), "ttl") == ns  # a JSON body's number


@given(
    st.decimals(
        min_value=-params.MAX_SECONDS,
        max_value=params.MAX_SECONDS,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_seconds_are_truncated_past_the_nanosecond_as_decimal_does(number: Decimal) -> None:
    with decimal.localcontext(prec=200):
        expected = int(number.scaleb(9))
    assert params.seconds_ns(number, "ttl") == expected
    assert params.seconds_ns(str(number), "ttl") == expected  # "1E+3" is JSON too


@given(st.floats(-params.MAX_SECONDS, params.MAX_SECONDS, allow_nan=False))
def test_a_float_counts_as_the_decimal_it_prints_as(number: float) -> None:
    with decimal.localcontext(prec=200):
        expected = int(Decimal(repr(number)).scaleb(9))
    assert params.seconds_ns(number, "ttl") == expected


@pytest.mark.parametrize(
    "bad",
    [
        "1_000", " 5", "5 ", "+5", "inf", "-inf", "Infinity", "nan", "NaN", "0x10", ".5", "5.",
        "01", "1e", "1e+", "--1", "", "\u0661", "1,5", True, None, [1], {"s": 1},
        float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity"),
    ],
)  # fmt: skip
def test_seconds_are_json_numbers_only(bad: object) -> None:
    message = refused(params.seconds_ns, bad, "?ttl=")
    assert message.startswith("invalid ?ttl= ")
    assert "number of seconds" in message


@given(st.text(max_size=12))
def test_seconds_text_is_accepted_exactly_when_it_is_one_json_number(text: str) -> None:
    try:
        is_number = type(json.loads(text)) in (int, float) and text == text.strip()
    except ValueError:
        is_number = False
    is_number = is_number and text not in ("NaN", "Infinity", "-Infinity")
    try:
        params.seconds_ns(text, "ttl")
    except InvalidRequestError as exc:
        assert not is_number or "at most" in str(exc), text
    else:
        assert is_number, text


@pytest.mark.parametrize(
    "over",
    [
        params.format_seconds(MAX_NS + 1),
        str(params.MAX_SECONDS) + ".000000000000001",
        "1e10",
        "-1e10",
        "1e999999999999999999999",
        10**30,
        1e300,
        Decimal("1E+400"),
    ],
)
def test_seconds_beyond_100_years_are_refused(over: object) -> None:
    assert "at most 3153600000 seconds" in refused(params.seconds_ns, over, "ttl")


def test_seconds_keep_every_digit_of_long_text() -> None:
    assert params.seconds_ns("0." + "0" * 5000 + "1", "ttl") == 0
    assert params.seconds_ns("1." + "9" * 5000, "ttl") == 1_999_999_999
    assert params.seconds_ns("1e-999999999999", "ttl") == 0
    assert params.seconds_ns(str(params.MAX_SECONDS) + ".0" + "0" * 5000, "ttl") == MAX_NS


@given(st.integers(1, 8 * 10**15))
def test_a_ttl_is_the_float_the_engine_turns_back_into_the_exact_ns(ns: int) -> None:
    seconds = params.ttl(params.format_seconds(ns), "--ttl")
    assert int(seconds * 1_000_000_000) == ns


@given(st.integers(8 * 10**15, MAX_NS))
def test_a_longer_ttl_is_off_by_a_few_ns_at_most(ns: int) -> None:
    seconds = params.ttl(params.format_seconds(ns), "--ttl")
    # within two steps of a double there (256 ns at 10**18 ns, 1024 ns at 100 years);
    # the product may round into the next binade, whose steps are twice as long
    assert abs(int(seconds * 1_000_000_000) - ns) <= 2 * math.ulp(2 * float(ns))


@given(st.integers(-MAX_NS, 0))
def test_a_ttl_is_more_than_0(ns: int) -> None:
    message = refused(params.ttl, params.format_seconds(ns), "--ttl")
    assert "must be a positive number of seconds" in message
    assert "positive" in refused(params.ttl, "1e-10", "--ttl")  # no whole nanosecond


def test_seconds_have_one_parser_and_one_bound() -> None:
    assert codec.float_seconds is params.float_seconds
    assert codec.format_seconds is params.format_seconds
    assert codec.MAX_SECONDS == params.MAX_SECONDS == 100 * 365 * 24 * 3600


# --- flags, fencing, cursors ----------------------------------------------------------


def test_flags() -> None:
    for yes in ("", "1", "true", "YES", "True"):
        assert params.flag(yes, "?x=") is True
    for no in ("0", "false", "No"):
        assert params.flag(no, "?x=") is False
    assert "must be true or false" in refused(params.flag, "maybe", "?include_values=")


def test_fencing_from_a_body_and_from_two_parts() -> None:
    assert params.fencing(None, '"fencing"') is None
    assert params.fencing({"lease": " job ", "token": 3}, '"fencing"') == Fence("job", 3)
    for bad in ({"lease": "job"}, {"lease": "job", "token": 1, "x": 1}, ["job", 1], "job:1"):
        assert refused(params.fencing, bad, '"fencing"').startswith('invalid "fencing" ')
    assert "integer" in refused(params.fencing, {"lease": "job", "token": "3"}, '"fencing"')
    assert "1 or more" in refused(params.fencing, {"lease": "job", "token": 0}, '"fencing"')
    assert params.fencing_parts(None, None, "?lease=", "?token=") is None
    assert params.fencing_parts("job", "7", "?lease=", "?token=") == Fence("job", 7)
    for lease, token in (("job", None), (None, "7")):
        message = refused(params.fencing_parts, lease, token, "?lease=", "?token=")
        assert "needs both ?lease= and ?token=" in message
    assert refused(params.fencing_parts, " ", "7", "?lease=", "?token=").startswith(
        'invalid ?lease= " "'
    )
    assert "must be an integer" in refused(params.fencing_parts, "job", "7_0", "a", "?token=")


def test_cursors() -> None:
    assert params.after_key(" a/b ", "--after") == "a/b"
    message = refused(params.after_key, "a//b", "--after", kind=InvalidReferenceError)
    assert message.startswith('invalid --after "a//b": ')
    assert params.after_keyspace("dag/x", "?after=").namespace == "x"
    for bad in ("dag", "bogus/x", "dag/"):
        message = refused(params.after_keyspace, bad, "?after=", kind=InvalidReferenceError)
        assert message.startswith(f"invalid ?after= {json.dumps(bad)}: ")


# --- every face alike -----------------------------------------------------------------

_BIG = "1" + "0" * 30

#: (what, the CLI's argv, the HTTP method and path, the face-free rest of the message).
CASES = [
    ("--version", ["get", "k", "--version", "0"], ("GET", "/v1/kv/dag/d/k?version=0"),
     "0: must be 1 or more"),
    ("--version", ["get", "k", "--version", "-1"], ("GET", "/v1/kv/dag/d/k?version=-1"),
     "-1: must be 1 or more"),
    ("--limit", ["list", "--limit", _BIG], ("GET", f"/v1/kv/dag/d?limit={_BIG}"),
     f'"{_BIG}": out of range (from 0 to 9223372036854775807)'),
    ("--limit", ["history", "k", "--limit", "-1"], ("GET", "/v1/history/dag/d/k?limit=-1"),
     "-1: must be 0 (no limit) or more"),
    ("--limit", ["list", "--limit", "1_0"], ("GET", "/v1/kv/dag/d?limit=1_0"),
     '"1_0": must be an integer'),
    ("--ttl", ["set", "k", "1", "--ttl", "1_000"], ("PUT", "/v1/kv/dag/d/k?ttl=1_000"),
     '"1_000": must be a number of seconds'),
    ("--ttl", ["set", "k", "1", "--ttl", "nan"], ("PUT", "/v1/kv/dag/d/k?ttl=nan"),
     '"nan": must be a number of seconds'),
    ("--ttl", ["set", "k", "1", "--ttl", "0"], ("PUT", "/v1/kv/dag/d/k?ttl=0"),
     '"0": must be a positive number of seconds'),
    ("--ttl", ["set", "k", "1", "--ttl", "-5"], ("PUT", "/v1/kv/dag/d/k?ttl=-5"),
     '"-5": must be a positive number of seconds'),
    ("--expected-version", ["set", "k", "1", "--expected-version", "1_0"],
     ("PUT", "/v1/kv/dag/d/k?expected_version=1_0"), '"1_0": must be an integer'),
]  # fmt: skip


def _http_name(option: str) -> str:
    return f"?{option.removeprefix('--').replace('-', '_')}="


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    from statebox.cli import main

    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("STATEBOX_DAG", "d")

    def run(argv: list[str]) -> tuple[int, str]:
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0 or captured.out == ""
        return code, captured.err

    return run


@pytest.fixture(scope="module")
def http() -> Iterator[Any]:
    from starlette.testclient import TestClient

    from statebox.server.app import create_app

    with TestClient(create_app("memory://"), base_url="http://localhost") as client:
        yield client


@pytest.mark.parametrize(("option", "argv", "request_line", "rest"), CASES)
def test_the_cli_and_http_refuse_alike(
    cli: Any, http: Any, option: str, argv: list[str], request_line: tuple[str, str], rest: str
) -> None:
    code, err = cli(argv)
    assert code == 2, err
    assert err.startswith(f"Error: invalid {option} {rest}"), err
    assert err.count("\n") == 1
    method, path = request_line
    response = http.request(method, path, content=b"1")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["kind"] == "invalid_request"
    assert error["message"].startswith(f"invalid {_http_name(option)} {rest}")
    assert err.removeprefix(f"Error: invalid {option}").rstrip("\n") == error[
        "message"
    ].removeprefix(f"invalid {_http_name(option)}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "k", "1", "--fencing", "job:0"], "invalid --fencing TOKEN 0: must be 1 or more"),
        (["set", "k", "1", "--fencing", "job:1_0"], 'invalid --fencing TOKEN "1_0": must be an'),
        (["set", "k", "1", "--fencing", "job"], 'invalid --fencing "job": use LEASE:TOKEN'),
        (["lease", "renew", "job", "--token", "0", "--holder", "h", "--ttl", "5"],
         "invalid --token 0: must be 1 or more"),
        (["lease", "acquire", "job", "--ttl", "inf"], 'invalid --ttl "inf": must be a number'),
        (["lease", "acquire", "job", "--ttl", "1_0"], 'invalid --ttl "1_0": must be a number'),
        (["rollback", "k", "--to-version", "0"], "invalid --to-version 0: must be 1 or more"),
        (["watch", "k", "--timeout", "nan"], 'invalid --timeout "nan": must be a number'),
        (["watch", "k", "--after-version", "1_0"], 'invalid --after-version "1_0": must be an'),
        (["keyspaces", "--limit", " 5"], 'invalid --limit " 5": must be an integer'),
        (["keyspaces", "--after", "dag"], 'invalid --after "dag": must be SCOPE/NAMESPACE'),
        (["purge", "--limit", _BIG], f'invalid --limit "{_BIG}": out of range'),
    ],
)  # fmt: skip
def test_every_numeric_option_of_the_cli_is_read_by_the_shared_rules(
    cli: Any, argv: list[str], message: str
) -> None:
    code, err = cli(argv)
    assert code == 2, err
    assert err.startswith(f"Error: {message}"), err


def test_good_values_still_work_on_every_face(cli: Any, http: Any) -> None:
    assert cli(["set", "k", "1", "--ttl", "1.5", "--expected-version", "0"])[0] == 0
    assert cli(["get", "k", "--version", "1"])[0] == 0
    assert cli(["list", "--limit", str(params.INT64_MAX)])[0] == 0
    assert http.put("/v1/kv/dag/d/k?ttl=1.5&expected_version=0", content=b"1").status_code == 200
    assert http.get("/v1/kv/dag/d/k?version=1").json()["found"] is True
    assert http.get(f"/v1/kv/dag/d?limit={params.INT64_MAX}").status_code == 200


# --- the library: the same rules, the library's kind ---------------------------------


@pytest.fixture
def library() -> Iterator[StateStore]:
    from statebox import RunContext, open_store

    with open_store("memory://", context=RunContext(dag="d")) as store:
        yield store


def test_the_library_refuses_by_the_same_rules_as_invalid_values(library: StateStore) -> None:
    def refusal(call: Any) -> InvalidValueError:
        with pytest.raises(InvalidValueError) as info:
            call()
        return info.value

    version = refusal(lambda: library.get("k", version=0))
    assert (version.message, version.params) == (
        "invalid version 0: must be 1 or more",
        ("version",),
    )
    limit = refusal(lambda: library.list(limit=2**63))
    assert (
        limit.message
        == "invalid limit 9223372036854775808: out of range (from 0 to 9223372036854775807)"
    )
    text_limit = refusal(lambda: library.history("k", limit="10"))  # type: ignore[arg-type]
    assert "must be an integer" in text_limit.message
    for bad in (float("nan"), float("inf"), 0, -5, 1e-10, 1e300, "5", True):
        error = refusal(lambda bad=bad: library.set("k", 1, ttl=bad))
        assert error.message.startswith("invalid ttl ") and error.params == ("ttl",)
        refusal(lambda bad=bad: library.acquire_lease("job", bad))
    rollback = refusal(lambda: library.rollback("k", 0))
    assert (rollback.message, rollback.params) == (
        "invalid version 0: must be 1 or more",
        ("to_version",),
    )
    token = refusal(lambda: library.release_lease("job", token=0, holder="h"))
    assert token.message == "invalid lease token 0: must be 1 or more"
    text_expected = refusal(lambda: library.set("k", 1, expected_version="1"))  # type: ignore[arg-type]
    assert "expected version" in text_expected.message
    assert not library.get("k").found


def test_a_negative_expected_version_stays_a_conflict_in_the_library(library: StateStore) -> None:
    # The faces refuse it as malformed; the library keeps its meaning: a version no key
    # is at (tests/test_conformance.py pins it for every backend).
    with pytest.raises(ConflictError):
        library.set("k", 1, expected_version=-1)


def test_a_wait_is_0_or_more_seconds_on_every_face() -> None:
    """One rule for a watch's timeout (params.wait): the CLI's --timeout, HTTP's
    ?timeout= and the library's timeout= (which had taken an endless float("inf"))."""
    assert params.wait("0", "--timeout") == 0.0
    assert params.wait("2.5", "?timeout=") == 2.5
    assert "0 or more seconds" in refused(params.wait, "-1", "--timeout")
    assert "1_0" in refused(params.wait, "1_0", "?timeout=")
    store = open_store("memory://", context=RunContext(dag="d"))
    for endless in (float("inf"), float("nan"), -1):
        with pytest.raises(InvalidValueError, match="invalid timeout"):
            store.watch("k", timeout=endless)
    assert store.watch("k", timeout=0).timed_out
