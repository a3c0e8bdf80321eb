"""Which keyspaces are secret: their values are sealed at rest and masked when shown.

The policy is a list of ``SCOPE/NAMESPACE`` shell globs (``fnmatch``, case-sensitive)
read from ``STATEBOX_SECRET_NAMESPACES`` (comma- or space-separated), plus the
namespaces that are always secret: the Atlan Apps Framework's CREDENTIALS state
(``custom/atlan-{app}-credentials``, where ``statebox.compat.atlan`` keeps credentials).
The CLI, the library and the server read the same variable, so all three seal and mask
the same keyspaces.

A store remembers its secret keyspaces too (``backends/sealing/backend.py``: the
registry in scope ``statebox``, written on the first seal into a keyspace), so a process
without the variable still seals and masks where another process sealed. A policy made
:meth:`SecretPolicy.with_lookup` asks such a registry about a keyspace its patterns do
not name: once, then again at most every :data:`RECHECK_SECONDS` while the answer is no
(a yes is kept). A keyspace found to hold a sealed value is :meth:`~SecretPolicy.learn`-ed.

Pure: no I/O (the registry is asked through the callable a backend gives), no
cryptography. A CLI ``get`` asks :meth:`SecretPolicy.is_secret` once; the answer for a
keyspace whose scope matches no pattern is found without compiling a regular expression
(``fnmatch`` and ``re`` are only touched when a scope matches).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping

from .errors import ConfigurationError, quoted
from .model import Keyspace, Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "BUILTIN_SECRET_PATTERNS",
    "RECHECK_SECONDS",
    "SECRET_NAMESPACES_ENV",
    "SecretPolicy",
    "default_policy",
]

SECRET_NAMESPACES_ENV: Final = "STATEBOX_SECRET_NAMESPACES"
#: Always secret: the Atlan SDK's CREDENTIALS state (``StateType.CREDENTIALS``), kept by
#: ``statebox.compat.atlan`` in ``custom/atlan-{appName}-credentials``.
BUILTIN_SECRET_PATTERNS: Final = ("custom/atlan-*-credentials",)

_MAGIC = frozenset("*?[")
_CACHE_LIMIT = 4096  # keyspaces remembered; a server may see many, each costs one slot
#: How long a "not registered" answer of the store's registry is trusted: a long-lived
#: process (a server, a watch) learns within that time that another process sealed there.
RECHECK_SECONDS: Final = 1.0


def _has_magic(text: str) -> bool:
    return not _MAGIC.isdisjoint(text)


def _matcher(glob: str) -> Callable[[str], bool]:
    """A test of one part (scope or namespace) against ``glob``: string equality when it
    has no wildcard, else ``fnmatch.fnmatchcase`` (imported and compiled only then)."""
    if not _has_magic(glob):
        return glob.__eq__
    import fnmatch
    import re

    return re.compile(fnmatch.translate(glob)).match  # type: ignore[return-value]


def _split(pattern: str) -> tuple[str, str]:
    """``(scope glob, namespace glob)`` of one pattern, or ConfigurationError naming it."""
    scope, slash, namespace = pattern.partition("/")
    why = None
    if not slash or not scope or not namespace:
        why = 'must be SCOPE/NAMESPACE, e.g. "custom/payments" or "dag/*-secrets"'
    elif "/" in namespace:
        why = 'a namespace has no "/"'
    elif not _has_magic(scope) and scope not in {s.value for s in Scope}:
        names = ", ".join(s.value for s in Scope)
        why = f"scope {quoted(scope)} is none of {names}"
    if why is not None:
        raise ConfigurationError(
            f"invalid secret namespace pattern {quoted(pattern)} in {SECRET_NAMESPACES_ENV}: {why}"
        )
    return scope, namespace


class SecretPolicy:
    """The secret keyspaces: ``patterns`` (the builtins first, then the given ones), those
    :meth:`learn`-ed, and, with a ``lookup`` (:meth:`with_lookup`), those it answers yes
    for."""

    __slots__ = ("_cache", "_compiled", "_learned", "_lookup", "_parts", "patterns")

    def __init__(
        self,
        patterns: Iterable[str] = (),
        *,
        lookup: Callable[[Keyspace], bool] | None = None,
    ) -> None:
        given = [p.strip() for p in patterns if p.strip()]
        ordered = dict.fromkeys([*BUILTIN_SECRET_PATTERNS, *given])  # kept once, in order
        self.patterns: tuple[str, ...] = tuple(ordered)
        # Checked now, so a typo fails at start-up rather than leaving a keyspace in clear.
        self._parts = tuple(_split(p) for p in self.patterns)
        self._compiled: list[tuple[Callable[[str], bool], Callable[[str], bool]]] | None = None
        # keyspace -> True (secret), False (not, for good: no lookup) or the monotonic
        # time until which "not secret" holds (then the lookup is asked again).
        self._cache: dict[Keyspace, bool | float] = {}
        self._learned: set[Keyspace] = set()
        self._lookup = lookup

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretPolicy:
        """The policy ``STATEBOX_SECRET_NAMESPACES`` declares (commas or whitespace
        separate patterns), with the builtins."""
        env = os.environ if environ is None else environ
        return cls(env.get(SECRET_NAMESPACES_ENV, "").replace(",", " ").split())

    def with_lookup(self, lookup: Callable[[Keyspace], bool]) -> SecretPolicy:
        """A policy of the same patterns, learning nothing yet, that also treats as secret
        a keyspace ``lookup`` (a store's registry of sealed keyspaces) answers yes for.
        Its own object: what it learns is about that one store."""
        return SecretPolicy(self.patterns, lookup=lookup)

    def learn(self, keyspace: Keyspace) -> None:
        """Treat ``keyspace`` as secret from now on (it was found to hold sealed values)."""
        self._learned.add(keyspace)
        self._cache[keyspace] = True

    def is_secret(self, keyspace: Keyspace) -> bool:
        """Whether ``keyspace``'s values are sealed and masked."""
        known = self._cache.get(keyspace)
        if known is True or known is False:
            return known
        if known is not None and known > time.monotonic():
            return False  # not registered, a moment ago
        answer = keyspace in self._learned or self._decide(keyspace)
        remembered: bool | float = answer
        if not answer and self._lookup is not None:
            if self._lookup(keyspace):
                self._learned.add(keyspace)
                answer = remembered = True
            else:
                remembered = time.monotonic() + RECHECK_SECONDS
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()  # the learned keyspaces stay in _learned
        self._cache[keyspace] = remembered
        return answer

    def _decide(self, keyspace: Keyspace) -> bool:
        scope, namespace = keyspace
        # No wildcard in any scope glob that could match: decided without re (the common
        # case of a CLI start-up on a dag keyspace with only the builtin pattern).
        if not any(_has_magic(scope_glob) or scope_glob == scope for scope_glob, _ in self._parts):
            return False
        if self._compiled is None:
            self._compiled = [(_matcher(s), _matcher(n)) for s, n in self._parts]
        return any(bool(s(scope)) and bool(n(namespace)) for s, n in self._compiled)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretPolicy) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"SecretPolicy({list(self.patterns)!r})"


_default: tuple[str | None, SecretPolicy] | None = None


def default_policy() -> SecretPolicy:
    """The policy of ``os.environ``, parsed again only when the variable changed."""
    global _default
    raw = os.environ.get(SECRET_NAMESPACES_ENV)
    if _default is None or _default[0] != raw:
        _default = (raw, SecretPolicy.from_env())
    return _default[1]
