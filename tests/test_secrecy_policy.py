"""Which keyspaces are secret (statebox.core.secrecy, issue #16): the builtin Atlan
CREDENTIALS namespaces, and the ``SCOPE/NAMESPACE`` globs of STATEBOX_SECRET_NAMESPACES."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.core import secrecy
from statebox.core.errors import ConfigurationError
from statebox.core.model import Keyspace
from statebox.core.secrecy import (
    BUILTIN_SECRET_PATTERNS,
    SECRET_NAMESPACES_ENV,
    SecretPolicy,
    default_policy,
)


def test_the_atlan_credentials_namespaces_are_always_secret() -> None:
    policy = SecretPolicy()
    assert policy.patterns == BUILTIN_SECRET_PATTERNS == ("custom/atlan-*-credentials",)
    assert policy.is_secret(Keyspace("custom", "atlan-default-credentials"))
    assert policy.is_secret(Keyspace("custom", "atlan-my-app-credentials"))
    assert not policy.is_secret(Keyspace("custom", "atlan-default-workflows"))
    assert not policy.is_secret(Keyspace("dag", "atlan-default-credentials"))
    assert not policy.is_secret(Keyspace("custom", "atlan-default-credentials-old"))
    # Given patterns add to the builtins, never replace them.
    assert SecretPolicy(["dag/x"]).is_secret(Keyspace("custom", "atlan-a-credentials"))


def test_the_variable_takes_globs_separated_by_commas_or_spaces() -> None:
    policy = SecretPolicy.from_env(
        {SECRET_NAMESPACES_ENV: "custom/payments, dag/*-secrets\tglobal/_  run/r[0-9]"}
    )
    assert policy.patterns == (
        "custom/atlan-*-credentials",
        "custom/payments",
        "dag/*-secrets",
        "global/_",
        "run/r[0-9]",
    )
    secret = [
        Keyspace("custom", "payments"),
        Keyspace("dag", "feed-secrets"),
        Keyspace("global", "_"),
        Keyspace("run", "r7"),
    ]
    clear = [
        Keyspace("custom", "payments2"),
        Keyspace("custom", "Payments"),  # case-sensitive, as keyspaces are
        Keyspace("dag", "secrets-feed"),
        Keyspace("root_dag", "feed-secrets"),
        Keyspace("run", "rx"),
    ]
    assert [policy.is_secret(ks) for ks in secret] == [True] * len(secret)
    assert [policy.is_secret(ks) for ks in clear] == [False] * len(clear)


def test_every_keyspace_and_a_wildcard_scope() -> None:
    every = SecretPolicy(["*/*"])
    assert every.is_secret(Keyspace("dag", "d")) and every.is_secret(Keyspace("statebox", "x"))
    anyscope = SecretPolicy(["*/vault"])
    assert anyscope.is_secret(Keyspace("run", "vault"))
    assert not anyscope.is_secret(Keyspace("run", "vaults"))


def test_an_unset_or_empty_variable_leaves_the_builtins() -> None:
    assert SecretPolicy.from_env({}).patterns == BUILTIN_SECRET_PATTERNS
    assert SecretPolicy.from_env({SECRET_NAMESPACES_ENV: " , "}).patterns == (
        BUILTIN_SECRET_PATTERNS
    )
    # a repeated pattern is kept once
    assert SecretPolicy(["custom/atlan-*-credentials", "dag/a", "dag/a"]).patterns == (
        "custom/atlan-*-credentials",
        "dag/a",
    )


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("payments", "must be SCOPE/NAMESPACE"),
        ("custom/", "must be SCOPE/NAMESPACE"),
        ("/payments", "must be SCOPE/NAMESPACE"),
        ("custom/a/b", 'a namespace has no "/"'),
        ("dags/feed", 'scope "dags" is none of dag, root_dag, run, global, custom, statebox'),
        ("Custom/x", 'scope "Custom" is none of'),
    ],
)
def test_a_bad_pattern_is_refused_naming_it_and_the_variable(pattern: str, why: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SecretPolicy.from_env({SECRET_NAMESPACES_ENV: f"custom/ok {pattern}"})
    message = str(caught.value)
    assert json.dumps(pattern) in message
    assert SECRET_NAMESPACES_ENV in message
    assert why in message
    assert caught.value.exit_code == 2


def test_the_default_policy_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_NAMESPACES_ENV, raising=False)
    first = default_policy()
    assert first.patterns == BUILTIN_SECRET_PATTERNS
    assert default_policy() is first  # not parsed again while the value is the same
    monkeypatch.setenv(SECRET_NAMESPACES_ENV, "dag/vault")
    changed = default_policy()
    assert changed.is_secret(Keyspace("dag", "vault"))
    assert default_policy() is changed
    monkeypatch.setenv(SECRET_NAMESPACES_ENV, "bad")
    with pytest.raises(ConfigurationError, match="bad"):
        default_policy()


def test_policies_compare_by_their_patterns() -> None:
    assert SecretPolicy(["dag/a"]) == SecretPolicy(["dag/a"])
    assert SecretPolicy(["dag/a"]) != SecretPolicy(["dag/b"])
    assert len({SecretPolicy(["dag/a"]), SecretPolicy(["dag/a"])}) == 1
    assert "dag/a" in repr(SecretPolicy(["dag/a"]))


def test_the_answer_is_remembered_per_keyspace_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(secrecy, "_CACHE_LIMIT", 3)
    policy = SecretPolicy(["dag/s*"])
    answers = [policy.is_secret(Keyspace("dag", f"s{i}")) for i in range(10)]
    assert answers == [True] * 10
    assert len(policy._cache) <= 3
    assert policy.is_secret(Keyspace("dag", "x")) is False


def test_a_keyspace_of_another_scope_is_decided_without_fnmatch_or_re() -> None:
    """A CLI ``get`` of a dag keyspace asks once; with only the builtin (custom) pattern
    the answer needs no regular expression."""
    code = (
        "import sys\n"
        "from statebox.core.secrecy import SecretPolicy\n"
        "from statebox.core.model import Keyspace\n"
        "before = set(sys.modules)\n"
        "assert not SecretPolicy().is_secret(Keyspace('dag', 'feed'))\n"
        "assert not SecretPolicy(['custom/x', 'global/_']).is_secret(Keyspace('run', 'r'))\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.replace("'", '"')) == []


_part = st.text(alphabet="ab*?[]!-_", min_size=1, max_size=6)
_name = st.text(alphabet="ab-_", min_size=1, max_size=6)


@given(_part, _part, st.sampled_from(["dag", "custom", "run"]), _name)
def test_a_pattern_matches_as_fnmatchcase_on_scope_and_namespace(
    scope_glob: str, namespace_glob: str, scope: str, namespace: str
) -> None:
    if "*" not in scope_glob and "?" not in scope_glob and "[" not in scope_glob:
        scope_glob = "dag"  # a scope without a wildcard must name a scope
    policy = SecretPolicy([f"{scope_glob}/{namespace_glob}"])
    expected = fnmatch.fnmatchcase(scope, scope_glob) and fnmatch.fnmatchcase(
        namespace, namespace_glob
    )
    builtin = scope == "custom" and fnmatch.fnmatchcase(namespace, "atlan-*-credentials")
    assert policy.is_secret(Keyspace(scope, namespace)) == (expected or builtin)


def test_a_policy_with_a_lookup_asks_it_only_where_its_patterns_say_no() -> None:
    """A sealed store's policy: the patterns, then the store's registry (the lookup),
    then what it learned; each store's policy its own object."""
    asked: list[Keyspace] = []

    def lookup(keyspace: Keyspace) -> bool:
        asked.append(keyspace)
        return keyspace.namespace == "registered"

    base = SecretPolicy(["custom/declared"])
    policy = base.with_lookup(lookup)
    assert policy is not base and policy.patterns == base.patterns
    assert policy.is_secret(Keyspace("custom", "declared")) and asked == []
    assert policy.is_secret(Keyspace("custom", "registered"))
    assert not policy.is_secret(Keyspace("custom", "other"))
    assert not policy.is_secret(Keyspace("custom", "other"))  # remembered for a moment
    assert asked == [Keyspace("custom", "registered"), Keyspace("custom", "other")]
    policy.learn(Keyspace("dag", "found-sealed"))
    assert policy.is_secret(Keyspace("dag", "found-sealed")) and len(asked) == 2
    # The base policy and another store's learned nothing of this store's.
    assert not base.is_secret(Keyspace("custom", "registered"))
    assert not base.is_secret(Keyspace("dag", "found-sealed"))
    assert not base.with_lookup(lambda _: False).is_secret(Keyspace("dag", "found-sealed"))
