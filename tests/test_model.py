"""Addressing (SPEC §1): run context sources, validation, and key round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox import InvalidReferenceError, RunContext, StateStore, open_store
from statebox.core.model import validate_key, validate_namespace, validate_prefix


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "STATEBOX_DAG": "d",
                "STATEBOX_ROOT_DAG": "r",
                "STATEBOX_RUN_ID": "1",
                "STATEBOX_STEP": "s",
            },
            RunContext("d", "r", "1", "s"),
        ),
        (
            {"DAG_NAME": "dagu-dag", "DAG_RUN_ID": "dr", "DAG_RUN_STEP_NAME": "st"},
            RunContext("dagu-dag", None, "dr", "st"),
        ),
        (
            {
                "AIRFLOW_CTX_DAG_ID": "af",
                "AIRFLOW_CTX_DAG_RUN_ID": "ar",
                "AIRFLOW_CTX_TASK_ID": "t",
            },
            RunContext("af", None, "ar", "t"),
        ),
        (
            {"GITHUB_WORKFLOW": "ci", "GITHUB_RUN_ID": "42", "GITHUB_JOB": "build"},
            RunContext("ci", None, "42", "build"),
        ),
        (
            {"STATEBOX_DAG": "mine", "DAG_NAME": "theirs", "GITHUB_RUN_ID": "7"},
            RunContext("mine", None, "7", None),
        ),
        ({"STATEBOX_DAG": "  ", "DAG_NAME": "fallback"}, RunContext("fallback")),
        ({}, RunContext()),
    ],
)
def test_run_context_from_env(env: dict[str, str], expected: RunContext) -> None:
    assert RunContext.from_env(env) == expected


def test_open_store_reads_the_context_from_the_environment() -> None:
    env = {"DAG_NAME": "from-dagu", "DAG_RUN_ID": "r9", "STATEBOX_STORE": "memory://"}
    with open_store(environ=env) as store:
        assert store.set("k", 1).keyspace.namespace == "from-dagu"
        assert store.set("k", 1, scope="run").keyspace.namespace == "r9"
        assert store.get("k").updated_by.dag_run_id == "r9"


def test_merged_overrides_only_given_fields() -> None:
    base = RunContext("d", "r", "1", "s")
    assert base.merged(dag="x", step=None) == RunContext("x", "r", "1", "s")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ""), ("  ", ""), ("a", "a"), ("a/", "a/"), ("a/b/", "a/b/"), (" cur ", "cur")],
)
def test_valid_prefixes(prefix: str, expected: str) -> None:
    assert validate_prefix(prefix) == expected


def test_lone_surrogates_are_rejected() -> None:
    with pytest.raises(InvalidReferenceError, match="lone surrogate"):
        validate_key("a\ud800")
    with pytest.raises(InvalidReferenceError, match="lone surrogate"):
        validate_namespace("\udcff")
    # Beside other non-ASCII text too: the message shows both, the surrogate escaped.
    with pytest.raises(InvalidReferenceError, match='"\u00c2\\\\ud800"'):
        validate_key("\u00c2\ud800")


segment = st.text(min_size=1, max_size=8).filter(
    lambda s: (
        s.strip() == s
        and "/" not in s
        and "\\" not in s
        and s not in (".", "..")
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    )
)
valid_keys = st.lists(segment, min_size=1, max_size=4).map("/".join)


@settings(max_examples=200, deadline=None)
@given(valid_keys)
def test_valid_keys_validate_to_themselves(key: str) -> None:
    assert validate_key(key) == key
    assert validate_prefix(key) == key
    assert validate_prefix(key + "/") == key + "/"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        valid_keys.map(lambda k: "/" + k),
        valid_keys.map(lambda k: k + "/"),
        st.tuples(valid_keys, valid_keys).map(lambda t: t[0] + "//" + t[1]),
        st.tuples(valid_keys, st.sampled_from([".", ".."])).map(lambda t: t[0] + "/" + t[1]),
        st.tuples(st.sampled_from([".", ".."]), valid_keys).map(lambda t: t[0] + "/" + t[1]),
        st.tuples(valid_keys, valid_keys).map(lambda t: t[0] + "\\" + t[1]),
        st.text(alphabet=" \t\n", max_size=3),
    )
)
def test_invalid_keys_are_always_rejected(key: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid key"):
        validate_key(key)


@pytest.fixture(scope="module")
def roundtrip_store(tmp_path_factory: pytest.TempPathFactory) -> StateStore:
    path = tmp_path_factory.mktemp("roundtrip") / "state.db"
    return open_store(f"sqlite:///{path}", context=RunContext(dag="prop"))


@settings(max_examples=150, deadline=None)
@given(valid_keys, st.integers())
def test_valid_keys_round_trip_through_a_store(
    roundtrip_store: StateStore, key: str, n: int
) -> None:
    store = roundtrip_store
    store.set(key, n)
    assert store.get(key).value == n
    assert key in [e.key for e in store.list(key).entries]
    assert store.delete(key).deleted
