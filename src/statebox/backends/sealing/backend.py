"""``SealedBackend``: secret keyspaces encrypted at rest, as one layer over any backend.

The layer sits between the engine and a backend and speaks the backend contract
(``backends/base.py``) on both sides. For a keyspace the :class:`SecretPolicy` does not
name, every call goes straight through. For a secret keyspace:

- each Put is sealed (``cipher.py``) for the version the backend will give it: the
  associated data names scope, namespace, key and version, so a ciphertext moved to
  another entry or version fails authentication. A guarded Put (``expected_version`` E,
  or ``create_only``) gets version E + 1 (or 1). An unguarded Put's version is read in
  the same call and the layer adds the guard ``expected_version=<what it read>`` (0:
  missing, which an expired entry is); a later Put of the same key in the batch follows
  from the ones before it (a Delete leaves the key missing: the next Put is version 1).
  A conflict on a guard the layer added means another writer came between the read and
  the write: the layer reads again and retries, so the caller gets the last-writer-wins
  write it asked for. A conflict on the caller's own guard propagates unchanged, with
  its flat index (the layer never adds or removes a mutation).
- reads (``get``, ``scan``, ``history``, ``get_version``) open each sealed value with
  the associated data of its own version and give back the value's content type and
  bytes (``scan`` without values reads and opens them too, then drops the bytes: the
  hash and content type are known only then).
- the hash the engine sees is keyed (HMAC under the key that sealed the value,
  ``cipher.keyed_hash``),
  so a hash reveals nothing about a low-entropy secret; it is computed, never stored.
  The backend stores the SHA-256 of the sealed bytes as any entry's hash, so its own
  checks hold (the file backend verifies a record against it). History records are
  written by the backend from the sealed Put: the storage never holds a secret value in
  clear, history included.

Secrecy is kept in the store, not only in each process's ``STATEBOX_SECRET_NAMESPACES``:

- the registry: before the first seal into a keyspace (once per keyspace and layer) the
  layer makes sure the store holds an entry ``SCOPE/NAMESPACE`` in :data:`REGISTRY`
  (scope ``statebox``, statebox's own records), written by the inner backend as a
  create-only Put. The layer's policy (:meth:`SecretPolicy.with_lookup`, the object the
  engine masks by) asks the registry about a keyspace its patterns do not name before
  that keyspace is first used: a registered keyspace is sealed and masked by every
  process, with or without the variable.
- a read never hands out ciphertext: an entry stored sealed is opened whatever the
  policy says, and its keyspace is then learned as secret.
- a write to a keyspace taken for plain that replaced a sealed value (another process
  sealed there after this one looked at the registry) learns the keyspace and re-seals
  what it just wrote at once (``_writes.reseal_after_race``): only that race leaves a
  value in clear, in one history record.

Deletes, leases, change tokens, expiry, keyspace listing and deletion, group commit and
anything else the backend has pass through unchanged. An entry of a secret keyspace that
is not sealed (written before its namespace was declared secret) is read as it is;
``statebox secrets rotate`` seals it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from ...core.errors import (
    BackendUnavailableError,
    ConfigurationError,
    CorruptEntryError,
    SecretKeyError,
    quoted,
)
from ...core.model import Keyspace
from ...core.records import Applied, Entry, HistoryRecord, KeyImport, Mutation, WriteContext
from ...core.secrecy import SecretPolicy, default_policy
from ..base import Backend, GroupCommit, KeyspaceInfo, Lease, group_commit_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, TypeVar

    from .keyring import Keyring

    T = TypeVar("T")
    E = TypeVar("E", Entry, HistoryRecord)

__all__ = ["REGISTRY", "SEALED_CONTENT_TYPE", "SealedBackend", "registry_key", "seal_backend"]

#: The content type a sealed value is stored with (its own is inside the ciphertext).
#: Defined here, not in ``cipher.py`` (which re-exports it): every read of a secret
#: keyspace compares against it, and ``cipher`` is imported only when one is sealed.
SEALED_CONTENT_TYPE: Final = "application/vnd.statebox.sealed"
#: The store's registry of its secret keyspaces: one entry, key ``SCOPE/NAMESPACE``
#: (:func:`registry_key`), for each keyspace a value was ever sealed into.
REGISTRY: Final = Keyspace("statebox", "secret-keyspaces")
#: The wrapper's own attributes; any other is the inner backend's (``__setattr__``).
_OWN: Final = frozenset({"inner", "policy", "environ", "url", "capabilities", "registered"})


#: The longest registry key written as ``SCOPE/NAMESPACE`` (UTF-8 bytes): a longer one
#: would not fit every store (the file store's key limit is about 125 bytes).
_DIRECT_KEY_BYTES: Final = 64


def registry_key(keyspace: Keyspace) -> str:
    """The key of ``keyspace``'s entry in :data:`REGISTRY`: ``SCOPE/NAMESPACE``, a valid
    key (a namespace holds no ``/`` and is never ``.`` or ``..``); past 64 bytes
    ``SCOPE/sha256/`` and 32 hex digits of the namespace's SHA-256 (three segments: never
    the short form of another namespace)."""
    key = f"{keyspace.scope}/{keyspace.namespace}"
    if len(key.encode()) <= _DIRECT_KEY_BYTES:
        return key
    from ...core.values import sha256_hex

    return f"{keyspace.scope}/sha256/{sha256_hex(keyspace.namespace.encode())[:32]}"


class SealedBackend(Backend):
    """``inner`` with the values of the keyspaces ``policy`` names sealed at rest."""

    def __init__(
        self,
        inner: Backend,
        policy: SecretPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.inner = inner
        if policy is None:  # the environment's, as the keys are
            policy = default_policy() if environ is None else SecretPolicy.from_env(environ)
        #: ``policy``'s patterns and this store's registry: the object the engine asks
        #: (``secret_policy``), so what the layer learns is masked too.
        self.policy = policy.with_lookup(self._in_registry)
        #: The keyspaces known to be in the registry (``_writes.register``).
        self.registered: set[Keyspace] = set()
        #: Where the keys are read from (``STATEBOX_SECRET_KEY`` …): None = os.environ.
        self.environ = environ
        self.url = inner.url
        # The inner backend's promises are this one's: the server reads them from the
        # instance (a class attribute on every other backend, hence not set as one).
        self.__dict__["capabilities"] = inner.capabilities

    @property
    def secret_policy(self) -> SecretPolicy:
        return self.policy

    def __getattr__(self, name: str) -> Any:
        # Only for names this class lacks (a SQLite backend's path, say).
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # A name this class lacks is the inner backend's, to set as to read (a test
        # that patches a SQL backend's _apply_one through the store's backend).
        inner = self.__dict__.get("inner")
        if inner is None or name in _OWN or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            setattr(inner, name, value)

    def __delattr__(self, name: str) -> None:
        # As __setattr__: the undoing of such a patch.
        inner = self.__dict__.get("inner")
        if inner is None or name in _OWN or hasattr(type(self), name):
            object.__delattr__(self, name)
        else:
            delattr(inner, name)

    def __repr__(self) -> str:
        return f"SealedBackend({self.inner!r})"

    def _in_registry(self, keyspace: Keyspace) -> bool:
        """Whether the store's registry names ``keyspace`` (one read of the inner backend;
        the policy asks, on the keyspace's first use and at most once a second after a
        no)."""
        if keyspace == REGISTRY:
            return False
        if self.inner.get(REGISTRY, registry_key(keyspace), time.time_ns()) is None:
            return False
        self.registered.add(keyspace)
        return True

    # -- keys and values ---------------------------------------------------------------

    def keyring(self, *, create: bool) -> Keyring | None:
        """The keys now (a rotation replacing the key file is picked up)."""
        from .keyring import load_keyring

        return load_keyring(self.environ, create=create)

    def sealing_keyring(self) -> Keyring:
        """The keys to seal with: the key file is created when there is none."""
        ring = self.keyring(create=True)
        if ring is None:  # load_keyring creates the file: only a broken one gets here
            raise SecretKeyError("no secret key to seal with")
        return ring

    def open_entry(self, keyspace: Keyspace, entry: E) -> E:
        """``entry`` (or a history record) as the engine sees it: its value opened and
        its hash keyed, when sealed (an entry stored in clear is given as it is)."""
        return self._open(keyspace, entry)

    def _open(self, keyspace: Keyspace, item: E) -> E:
        if item.content_type != SEALED_CONTENT_TYPE:
            return item
        from .cipher import keyed_hash, open_value

        content_type, data, key = open_value(
            self.keyring(create=False), keyspace, item.key, item.version, item.data
        )
        digest = keyed_hash(key, keyspace, item.key, content_type, data)
        return item._replace(data=data, content_type=content_type, hash=digest)

    # -- reads -------------------------------------------------------------------------
    # A value stored sealed is opened whatever the policy says (a process without
    # STATEBOX_SECRET_NAMESPACES never gets ciphertext as a value), and its keyspace is
    # learned as secret. The registry is asked by the policy itself, on the keyspace's
    # first use by anyone who asks it (the engine, to mask; the server, to guard).

    def _learned(self, keyspace: Keyspace, item: E) -> E:
        self.policy.learn(keyspace)
        return self._open(keyspace, item)

    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
        entry = self.inner.get(keyspace, key, now)
        if entry is None or entry.content_type != SEALED_CONTENT_TYPE:
            return entry
        return self._learned(keyspace, entry)

    def scan(
        self,
        keyspace: Keyspace,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        include_values: bool,
        now: int,
    ) -> list[Entry]:
        if not self.policy.is_secret(keyspace):
            entries = self.inner.scan(
                keyspace, prefix, after=after, limit=limit, include_values=include_values, now=now
            )
            if all(entry.content_type != SEALED_CONTENT_TYPE for entry in entries):
                return entries
            self.policy.learn(keyspace)  # sealed by another process: read as secret
            if include_values:
                return [self._open(keyspace, entry) for entry in entries]
        # With the values even when not asked for: a sealed entry's keyed hash and its
        # content type are known only once it is opened.
        entries = self.inner.scan(
            keyspace, prefix, after=after, limit=limit, include_values=True, now=now
        )
        opened = [self._open(keyspace, entry) for entry in entries]
        return opened if include_values else [entry._replace(data=b"") for entry in opened]

    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]:
        records = self.inner.history(keyspace, key, limit)
        if all(record.content_type != SEALED_CONTENT_TYPE for record in records):
            return records
        self.policy.learn(keyspace)
        from ._history import open_history

        return open_history(self, keyspace, records)

    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None:
        record = self.inner.get_version(keyspace, key, version)
        if record is None or record.content_type != SEALED_CONTENT_TYPE:
            return record
        return self._learned(keyspace, record)

    # -- writes ------------------------------------------------------------------------

    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        if not self.policy.is_secret(keyspace):
            applied = self.inner.apply(keyspace, mutations, ctx)
            if all(
                a.previous is None or a.previous.content_type != SEALED_CONTENT_TYPE
                for a in applied
            ):
                return applied
            from ._writes import reseal_after_race

            return reseal_after_race(self, keyspace, mutations, applied, ctx)
        from ._writes import apply_sealed

        return apply_sealed(self, [(keyspace, mutations)], ctx, single=True)[0]

    def apply_batch(
        self, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        if any(self.policy.is_secret(keyspace) for keyspace, _ in batches):
            from ._writes import apply_sealed

            return apply_sealed(self, batches, ctx, single=False)
        results = self.inner.apply_batch(batches, ctx)
        if all(
            a.previous is None or a.previous.content_type != SEALED_CONTENT_TYPE
            for applied in results
            for a in applied
        ):
            return results
        from ._writes import reseal_after_race

        return [
            reseal_after_race(self, keyspace, mutations, applied, ctx)
            for (keyspace, mutations), applied in zip(batches, results, strict=True)
        ]

    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool, now: int
    ) -> list[str]:
        """Straight through for a plain keyspace; a secret one's values sealed first
        (``_import``)."""
        if not self.policy.is_secret(keyspace):
            return self.inner.import_keys(keyspace, items, replace=replace, now=now)
        from ._import import import_sealed

        return import_sealed(self, keyspace, items, replace=replace, now=now)

    def previous_entry(self, keyspace: Keyspace, entry: Entry | None) -> Entry | None:
        """The entry a write replaced, opened. The write is done whatever happens here:
        one that cannot be opened (sealed under a lost key: the write replaced it) is
        reported without its value rather than failing a committed write."""
        if entry is None:
            return None
        try:
            return self._open(keyspace, entry)
        except (SecretKeyError, CorruptEntryError):
            return entry._replace(data=b"")

    def declare_secret(self, keyspace: Keyspace, ctx: WriteContext) -> None:
        """Make ``keyspace`` secret in the store: its entry in :data:`REGISTRY` (so every
        process seals and masks it from then on) and this layer's policy. Idempotent.
        The key is loaded (created when there is none) first: a store that cannot seal
        is refused now, not at the first write. Entries written in clear before stay as
        they are until ``statebox secrets rotate`` seals them."""
        if keyspace == REGISTRY:
            raise ConfigurationError(
                f"scope {quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)} is "
                "statebox's registry of secret keyspaces: it cannot be secret itself"
            )
        self.sealing_keyring()
        from ._writes import register

        register(self, keyspace, ctx)
        self.registered.add(keyspace)
        self.policy.learn(keyspace)

    # -- passed through ----------------------------------------------------------------

    def close(self) -> None:
        self.inner.close()

    def reset(self) -> Backend:
        return SealedBackend(self.inner.reset(), self.policy, self.environ)

    def acquire_lease(self, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
        return self.inner.acquire_lease(name, holder, ttl_ns, now)

    def renew_lease(self, name: str, holder: str, token: int, ttl_ns: int, now: int) -> Lease:
        return self.inner.renew_lease(name, holder, token, ttl_ns, now)

    def release_lease(self, name: str, holder: str, token: int, now: int) -> bool:
        return self.inner.release_lease(name, holder, token, now)

    def get_lease(self, name: str, now: int) -> Lease | None:
        return self.inner.get_lease(name, now)

    def list_leases(self, now: int, after: str | None, limit: int) -> list[Lease]:
        return self.inner.list_leases(now, after, limit)

    def change_token(self, keyspace: Keyspace) -> int:
        return self.inner.change_token(keyspace)

    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int:
        return self.inner.wait_for_change(keyspace, token, timeout)

    def store_change_token(self) -> int | None:
        return self.inner.store_change_token()

    def wait_for_store_change(self, token: int, timeout: float) -> int:
        return self.inner.wait_for_store_change(token, timeout)

    def purge_expired(self, now: int, limit: int = 1000) -> int:
        return self.inner.purge_expired(now, limit)

    def list_keyspaces(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]:
        return self.inner.list_keyspaces(scope, after=after, limit=limit, now=now)

    def delete_keyspace(self, keyspace: Keyspace, ctx: WriteContext) -> int:
        return self.inner.delete_keyspace(keyspace, ctx)

    # -- group commit (when the inner backend has it: capabilities.group_commit) --------

    def _group(self) -> GroupCommit:
        group = group_commit_of(self.inner)
        if group is None:
            raise AttributeError(f"{type(self.inner).__name__} has no group commit")
        return group

    @property
    def timeout(self) -> float:
        return self._group().timeout

    def write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        return self._group().write_together(calls)

    def try_write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception] | None:
        return self._group().try_write_together(calls)

    def locked_error(self) -> BackendUnavailableError:
        return self._group().locked_error()


def seal_backend(
    backend: Backend,
    policy: SecretPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> Backend:
    """``backend`` with its secret keyspaces sealed: unchanged when it seals them itself
    (the remote store, whose server holds the key) or is sealed already."""
    if backend.capabilities.seals_secrets or isinstance(backend, SealedBackend):
        return backend
    return SealedBackend(backend, policy, environ)
