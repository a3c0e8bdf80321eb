"""Key rotation: re-seal every live secret entry under the sealing key.

``rotate(backend)`` with a key file: puts a new key first in the file (the old ones stay,
so history sealed under them stays readable), then re-seals every live entry of every
secret keyspace (those the policy names and those the store's registry of secret
keyspaces names) whose value is not sealed under that key (or not sealed at all: written
before its namespace was declared secret). With ``STATEBOX_SECRET_KEY`` it never writes a
key: the operator sets ``STATEBOX_SECRET_KEY="NEW,OLD"`` and rotates with
``new_key=False``, which re-seals under the first key.

Each entry is re-sealed by an ordinary write through the layer: a Put of the same value
guarded by the version that was read, keeping its expiry (so each re-sealed entry gets a
new version, as any write does), and every history record of the key: the write's
history limit is the number of records kept for the key plus one, never less than
``history_limit``, so a rotation trims nothing. A conflict means another writer wrote the key
meanwhile: it is read again, and re-sealed if that writer used an older key. Passes are
repeated until one finds nothing to re-seal. Interrupted, the store is consistent (every
entry is readable: old keys are kept) and running ``rotate(new_key=False)`` finishes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from ...core.errors import ConfigurationError, ConflictError, quoted
from ...core.model import Keyspace, UpdatedBy
from ...core.records import Entry, Put, WriteContext
from ...core.redaction import redact_url
from ...core.values import DEFAULT_HISTORY_LIMIT, NormalizedValue
from ..base import Backend
from ._writes import ATTEMPTS
from .backend import REGISTRY, SEALED_CONTENT_TYPE, SealedBackend, seal_backend
from .keyring import KEY_BYTES, KEY_ENV, Keyring, add_key_to_file, key_file_path, keyring_source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, NamedTuple
else:
    from ...core._tuples import NamedTuple

__all__ = ["ROTATED_BY", "RotateReport", "rotate"]

#: Who the re-sealing writes are recorded as, when the caller names nobody.
ROTATED_BY: Final = UpdatedBy(step_name="statebox secrets rotate")
PAGE: Final = 500
#: Passes over the store before a rotation gives up on writers that keep an old key.
MAX_PASSES: Final = 20


class RotateReport(NamedTuple):
    """What a rotation did."""

    #: The id of the key every secret entry is now sealed under.
    key_id: str
    #: Entries re-sealed (over all passes).
    resealed: int
    #: Secret keyspaces holding live entries, visited by the last pass.
    keyspaces: int
    #: The other keys' ids, still in the keyring (they open history sealed under them).
    previous_key_ids: tuple[str, ...]


def _sealed_layer(backend: Backend, environ: Mapping[str, str] | None) -> SealedBackend:
    if backend.capabilities.seals_secrets:
        raise ConfigurationError(
            f"the store {quoted(redact_url(backend.url))} seals its secrets itself (a statebox "
            "server holds the key): run statebox secrets rotate on the server's host, against "
            "the store the server serves"
        )
    layer = seal_backend(backend, environ=environ)
    assert isinstance(layer, SealedBackend)
    if environ is not None and layer.environ is not environ:
        layer = SealedBackend(layer.inner, layer.policy, environ)
    return layer


def _stale(entry: Entry, ring: Keyring) -> bool:
    """Whether ``entry`` (as stored) needs re-sealing under ``ring``'s primary key."""
    from .cipher import sealed_key_id

    if entry.content_type != SEALED_CONTENT_TYPE:
        return True
    return sealed_key_id(entry.data) != ring.primary_id


class _Rotation:
    def __init__(
        self,
        layer: SealedBackend,
        updated_by: UpdatedBy,
        history_limit: int,
        now: Callable[[], int],
    ) -> None:
        self.layer = layer
        self.inner = layer.inner
        self.updated_by = updated_by
        self.history_limit = history_limit
        self.now = now

    def ring(self) -> Keyring:
        ring = self.layer.keyring(create=True)
        assert ring is not None  # created when missing
        return ring

    def secret_keyspaces(self) -> list[Keyspace]:
        found: list[Keyspace] = []
        after: Keyspace | None = None
        while True:
            page = self.inner.list_keyspaces(None, after=after, limit=PAGE, now=self.now())
            found += [
                info.keyspace
                for info in page
                # the registry's entries stay in clear: they name keyspaces, no secret
                if info.keyspace != REGISTRY and self.layer.policy.is_secret(info.keyspace)
            ]
            if len(page) < PAGE:
                return found
            after = page[-1].keyspace

    def keyspace(self, keyspace: Keyspace) -> int:
        """One pass over ``keyspace``: how many entries were re-sealed."""
        resealed = 0
        after: str | None = None
        while True:
            entries = self.inner.scan(
                keyspace, "", after=after, limit=PAGE, include_values=True, now=self.now()
            )
            ring = self.ring()
            for entry in entries:
                if _stale(entry, ring):
                    resealed += self.entry(keyspace, entry)
            if len(entries) < PAGE:
                return resealed
            after = entries[-1].key

    def keep_all(self, keyspace: Keyspace, key: str) -> int:
        """The history limit of a re-seal of ``key`` that drops none of its records: the
        records kept now, plus the one the re-seal adds (a store keeping no history,
        ``history_limit`` 0 and no records, keeps none)."""
        kept = len(self.inner.history(keyspace, key, 0))
        return max(self.history_limit, kept + 1) if kept else self.history_limit

    def entry(self, keyspace: Keyspace, entry: Entry) -> int:
        """Re-seal one entry (read raw from the inner backend): 1, or 0 when it is gone or
        another writer re-sealed it meanwhile."""
        current: Entry | None = entry
        for _ in range(ATTEMPTS):
            if current is None or not _stale(current, self.ring()):
                return 0
            opened = self.layer.open_entry(keyspace, current)
            value = NormalizedValue(opened.data, opened.content_type, "")
            put = Put(current.key, value, current.version, expires_at=current.expires_at)
            limit = self.keep_all(keyspace, current.key)
            try:
                self.layer.apply(keyspace, [put], WriteContext(self.now(), self.updated_by, limit))
                return 1
            except ConflictError:  # written meanwhile (the Put carries no fence): look again
                current = self.inner.get(keyspace, current.key, self.now())
        raise ConflictError(
            f"key {quoted(entry.key)} (scope {quoted(keyspace.scope)}, namespace "
            f"{quoted(keyspace.namespace)}) kept changing while it was re-sealed: run the "
            "rotation again (statebox secrets rotate --no-new-key)"
        )


def rotate(
    backend: Backend,
    *,
    new_key: bool = True,
    environ: Mapping[str, str] | None = None,
    updated_by: UpdatedBy = ROTATED_BY,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    now: Callable[[], int] = time.time_ns,
) -> RotateReport:
    """Re-seal every live secret entry of ``backend`` (an opened store: a SealedBackend,
    or a plain backend, wrapped here) under the sealing key; with ``new_key``, a new key
    put first in the key file beforehand. ``history_limit``: the least number of records
    a re-sealed key keeps (all it has are kept). See the module's docstring."""
    env = os.environ if environ is None else environ
    layer = _sealed_layer(backend, environ)
    if new_key:
        if keyring_source(env) == "env":
            raise ConfigurationError(
                f"the keys come from {KEY_ENV}, which statebox cannot change: put a new key "
                f'first (export {KEY_ENV}="$(statebox secrets keygen),${KEY_ENV}"), then '
                "rotate with --no-new-key"
            )
        add_key_to_file(key_file_path(env), os.urandom(KEY_BYTES))
    rotation = _Rotation(layer, updated_by, history_limit, now)
    resealed = 0
    # Until a pass finds nothing: a writer that loaded the keys before the new one was
    # added seals with the old key once more, and the next pass re-seals that.
    for _ in range(MAX_PASSES):
        keyspaces = rotation.secret_keyspaces()
        found = sum(rotation.keyspace(keyspace) for keyspace in keyspaces)
        resealed += found
        if not found:
            break
    else:
        raise ConfigurationError(
            f"after {MAX_PASSES} passes, entries are still being sealed under another key "
            f"than {rotation.ring().primary_id}: a writer seals with an old key first (check "
            f"its {KEY_ENV} or key file), then rotate again with --no-new-key"
        )
    ring = rotation.ring()
    return RotateReport(ring.primary_id, resealed, len(keyspaces), ring.key_ids[1:])
