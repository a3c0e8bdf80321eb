"""Bearer tokens and what they may touch.

A tokens file (YAML, or JSON when it ends in ``.json``) lists every token::

    tokens:
      - name: feed-worker                 # recorded as updatedBy.principal
        sha256: 5e884898da28047151d0...   # hex SHA-256 of the secret (preferred), or
        # secret: the-secret-itself       # the secret in clear
        grants:
          - {access: write, scope: dag, namespace: "feed-*"}
          - {access: read, scope: "*", namespace: shared}
          - {access: read, scope: custom, namespace: "atlan-*-credentials", reveal: true}

``access`` is ``read`` or ``write`` (write includes read); ``scope`` and ``namespace``
are glob patterns (``*``, ``?``, ``[...]``, matched case-sensitively), ``*`` when left
out. Leases are authorized as scope ``lease`` with the lease name as namespace; fencing
a write with a lease needs a read grant on it, besides the write grant on the keyspace.
The store-wide operations (``purge``) need a write grant on ``*``/``*``; listing the
keyspaces (``GET /v1/keyspaces``) shows each token only those it has a read grant on, and
deleting a whole keyspace needs a write grant on it.

``reveal: true`` (default false) lets the grant's keyspaces that are secret
(:mod:`statebox.core.secrecy`) show their values: ``?reveal=true`` on the routes that
answer values, the entries API (``/v1/entries``, ``/v1/records``), which the remote
store reads plaintext through, and ``diff`` and ``update`` (whose answers depend on the
stored value). Without it a secret value is answered masked, and asking to reveal it,
a diff or an update there is a 403. The anonymous caller (a server without tokens) may reveal.

Presented secrets are hashed and compared with every token's digest in constant time
(:func:`hmac.compare_digest`); no secret is ever logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final

from ..core.errors import ConfigurationError, quoted
from ..core.install import extra_hint
from ..core.model import Keyspace

__all__ = ["ANONYMOUS", "Access", "Grant", "Principal", "TokenRegistry", "load_tokens"]

_HEX64: Final = re.compile(r"[0-9a-f]{64}")
LEASE_SCOPE: Final = "lease"


class Access(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Grant:
    access: Access
    scope: str = "*"
    namespace: str = "*"
    #: The values of its secret keyspaces may be shown (``?reveal=true``, entries API).
    reveal: bool = False

    def allows(self, access: Access, scope: str, namespace: str) -> bool:
        if access is Access.WRITE and self.access is not Access.WRITE:
            return False
        return fnmatchcase(scope, self.scope) and fnmatchcase(namespace, self.namespace)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name and grants; the anonymous one may do anything."""

    name: str
    grants: tuple[Grant, ...]
    unrestricted: bool = False

    def can(self, access: Access, keyspace: Keyspace) -> bool:
        if self.unrestricted:
            return True
        return any(g.allows(access, keyspace.scope, keyspace.namespace) for g in self.grants)

    def can_reveal(self, keyspace: Keyspace) -> bool:
        """A grant with ``reveal: true`` on ``keyspace`` (any access: each reads)."""
        if self.unrestricted:
            return True
        return any(
            g.reveal and g.allows(Access.READ, keyspace.scope, keyspace.namespace)
            for g in self.grants
        )

    def can_everything(self, access: Access) -> bool:
        """A grant on every scope and namespace (store-wide operations need one)."""
        if self.unrestricted:
            return True
        return any(
            g.scope == "*" and g.namespace == "*" and (access is Access.READ or g.access == access)
            for g in self.grants
        )


#: The caller when the server runs without tokens (loopback, or ``--insecure``).
ANONYMOUS: Final = Principal("", (), unrestricted=True)


@dataclass(frozen=True, slots=True)
class _Token:
    digest: bytes
    principal: Principal


class TokenRegistry:
    """The tokens of one tokens file."""

    def __init__(self, tokens: Sequence[tuple[bytes, Principal]]) -> None:
        self._tokens = tuple(_Token(digest, principal) for digest, principal in tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, secret: str) -> Principal | None:
        """The principal whose secret this is, or ``None``; constant time per token."""
        presented = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for token in self._tokens:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(presented, token.digest):
                found = token.principal
        return found

    @classmethod
    def from_data(cls, data: Any, source: str) -> TokenRegistry:
        if not isinstance(data, Mapping) or not isinstance(data.get("tokens"), list):
            raise ConfigurationError(f"{source}: expected a mapping with a list under 'tokens'")
        tokens: list[tuple[bytes, Principal]] = []
        names: set[str] = set()
        for index, item in enumerate(data["tokens"]):
            where = f"{source}: tokens[{index}]"
            if not isinstance(item, Mapping):
                raise ConfigurationError(f"{where}: expected a mapping")
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ConfigurationError(f"{where}: 'name' must be a non-empty string")
            if name in names:
                raise ConfigurationError(f"{where}: duplicate token name {quoted(name)}")
            names.add(name)
            tokens.append((_digest(item, f"{where} ({name})"), _principal(item, name, where)))
        return cls(tokens)


def _digest(item: Mapping[str, Any], where: str) -> bytes:
    secret, digest = item.get("secret"), item.get("sha256")
    if (secret is None) == (digest is None):
        raise ConfigurationError(f"{where}: give exactly one of 'secret' and 'sha256'")
    if secret is not None:
        if not isinstance(secret, str) or len(secret) < 16:
            raise ConfigurationError(f"{where}: 'secret' must be a string of 16 characters or more")
        return hashlib.sha256(secret.encode()).digest()
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
        raise ConfigurationError(f"{where}: 'sha256' must be 64 hexadecimal digits")
    return bytes.fromhex(digest)


def _principal(item: Mapping[str, Any], name: str, where: str) -> Principal:
    raw = item.get("grants")
    if not isinstance(raw, list):
        raise ConfigurationError(f"{where}: 'grants' must be a list")
    grants: list[Grant] = []
    for number, grant in enumerate(raw):
        here = f"{where}.grants[{number}]"
        if not isinstance(grant, Mapping):
            raise ConfigurationError(f"{here}: expected a mapping")
        unknown = set(grant) - {"access", "scope", "namespace", "reveal"}
        if unknown:
            raise ConfigurationError(f"{here}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            access = Access(str(grant.get("access")))
        except ValueError:
            raise ConfigurationError(f"{here}: 'access' must be 'read' or 'write'") from None
        scope, namespace = grant.get("scope", "*"), grant.get("namespace", "*")
        if (
            not isinstance(scope, str)
            or not isinstance(namespace, str)
            or not scope
            or not namespace
        ):
            raise ConfigurationError(f"{here}: 'scope' and 'namespace' must be non-empty strings")
        reveal = grant.get("reveal", False)
        if not isinstance(reveal, bool):
            raise ConfigurationError(f"{here}: 'reveal' must be true or false")
        grants.append(Grant(access, scope, namespace, reveal))
    return Principal(name, tuple(grants))


def load_tokens(path: str | Path) -> TokenRegistry:
    """Read a tokens file (``.json``: JSON; anything else: YAML)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read tokens file {file}: {exc.strerror}") from exc
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(f"tokens file {file} is not valid JSON: {exc}") from exc
    else:
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigurationError(
                f"tokens file {file} is YAML, which needs PyYAML (or use a .json tokens "
                f"file): run: {extra_hint('server')}"
            ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"tokens file {file} is not valid YAML: {exc}") from exc
    registry = TokenRegistry.from_data(data, str(file))
    if not len(registry):
        raise ConfigurationError(f"tokens file {file} lists no tokens")
    return registry
