"""``import_keys`` into a secret keyspace (``SealedBackend.import_keys``): every value
sealed as ``apply`` seals it, then handed to the inner backend.

Each value — the entry's and every history record's — is sealed for its own version
(the associated data names scope, namespace, key and version, as for a write), stored
with the SHA-256 of the sealed bytes and the sealed content type. A record of the same
version and bytes as the entry shares its ciphertext, as a write's record does. A
deletion record carries the stored hash of the entry it deleted (the nearest older
record of its version and hash), as the layer's own deletions do (``_history``).

"Same" cannot be the inner backend's comparison: the stored hash of a sealed value is
that of its ciphertext, new with every nonce, and the hash a dump carries is keyed (or
plain SHA-256 from a store that did not seal). So the layer decides it first, on the
opened values — same version, content type and bytes (for a deleted key: the same
history, record by record) — and sends the inner backend only the other keys, whose
outcome (created, conflict or replaced) it decides in its own atomic section. A key
another importer wrote between the two is a conflict there, never a torn key.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...core.model import Keyspace, UpdatedBy
from ...core.records import IMPORT_SAME, Entry, HistoryRecord, KeyImport, WriteContext
from ...core.values import sha256_hex
from .._imports import check_imports
from .backend import SEALED_CONTENT_TYPE, SealedBackend
from .cipher import seal_value
from .keyring import Keyring

__all__ = ["import_sealed"]

#: What identifies a value's ciphertext: (version, content type, bytes).
_Plain = tuple[int, str, bytes]


def import_sealed(
    layer: SealedBackend,
    keyspace: Keyspace,
    items: Sequence[KeyImport],
    *,
    replace: bool,
    now: int,
) -> list[str]:
    check_imports(items)  # before anything is sealed or written
    ring = layer.sealing_keyring()  # no key: refused before anything is written
    outcomes: list[str | None] = []
    sent: list[KeyImport] = []
    for item in items:
        if _same(layer, keyspace, item, now):
            outcomes.append(IMPORT_SAME)
        else:
            outcomes.append(None)
            sent.append(_sealed(ring, keyspace, item))
    if not sent:
        return [str(result) for result in outcomes]
    from ._writes import register

    register(layer, keyspace, WriteContext(now, UpdatedBy()))
    answered = iter(layer.inner.import_keys(keyspace, sent, replace=replace, now=now))
    layer.registered.add(keyspace)
    return [result if result is not None else next(answered) for result in outcomes]


def _plain(record: Entry | HistoryRecord) -> _Plain:
    return (record.version, record.content_type, record.data)


def _same(layer: SealedBackend, keyspace: Keyspace, item: KeyImport, now: int) -> bool:
    """Whether the store holds exactly ``item`` (opened values compared)."""
    live = layer.get(keyspace, item.key, now)
    if item.current is not None:
        return live is not None and _plain(live) == _plain(item.current)
    if live is not None:
        return False
    kept = layer.history(keyspace, item.key, 0)

    def shape(record: HistoryRecord) -> tuple[int, bool, str, bytes]:
        # A deletion record holds no value: its version says what it deleted.
        if record.deleted:
            return (record.version, True, "", b"")
        return (record.version, False, record.content_type, record.data)

    return [shape(r) for r in kept] == [shape(r) for r in item.history]


def _sealed(ring: Keyring, keyspace: Keyspace, item: KeyImport) -> KeyImport:
    """``item`` with every value sealed (one ciphertext per distinct plain value)."""
    sealed: dict[_Plain, tuple[bytes, str]] = {}

    def seal(record: Entry | HistoryRecord) -> tuple[bytes, str]:
        plain = _plain(record)
        found = sealed.get(plain)
        if found is None:
            data = seal_value(ring, keyspace, item.key, *plain)
            found = sealed[plain] = (data, sha256_hex(data))
        return found

    current = None
    if item.current is not None:
        data, digest = seal(item.current)
        current = item.current._replace(data=data, hash=digest, content_type=SEALED_CONTENT_TYPE)
    history: list[HistoryRecord] = []
    records = item.history
    for index, record in enumerate(records):
        if not record.deleted:
            data, digest = seal(record)
            history.append(
                record._replace(data=data, hash=digest, content_type=SEALED_CONTENT_TYPE)
            )
            continue
        same = (record.version, record.hash)
        deleted = next(
            (r for r in records[index + 1 :] if not r.deleted and (r.version, r.hash) == same),
            None,
        )
        if deleted is None:  # what it deleted is not kept: the marker stays as given
            history.append(record)
            continue
        _, digest = seal(deleted)
        history.append(record._replace(hash=digest, content_type=SEALED_CONTENT_TYPE))
    return KeyImport(item.key, current, tuple(history))
