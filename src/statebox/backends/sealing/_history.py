"""The history of a key of a secret keyspace, opened (``SealedBackend.history``)."""

from __future__ import annotations

from ...core.model import Keyspace
from ...core.records import HistoryRecord
from .backend import SEALED_CONTENT_TYPE, SealedBackend

__all__ = ["open_history"]


def open_history(
    layer: SealedBackend, keyspace: Keyspace, records: list[HistoryRecord]
) -> list[HistoryRecord]:
    """``records`` (newest first) opened. A deletion marker holds no value but the
    sealed content type and the stored hash of the entry it deleted: it is given that
    entry's content type and keyed hash. That entry is the nearest older live record
    of the same version and stored hash (a version number repeats after a delete and
    re-create; the stored hash, of random-nonce ciphertext, does not), read when
    ``records`` stop before it."""
    out = []
    for index, record in enumerate(records):
        if not record.deleted:
            out.append(layer.open_entry(keyspace, record))
            continue
        if record.content_type == SEALED_CONTENT_TYPE:
            deleted = _deleted_by(layer, keyspace, record, records[index + 1 :])
            if deleted is not None:
                opened = layer.open_entry(keyspace, deleted)
                record = record._replace(content_type=opened.content_type, hash=opened.hash)
        out.append(record)
    return out


def _deleted_by(
    layer: SealedBackend, keyspace: Keyspace, marker: HistoryRecord, older: list[HistoryRecord]
) -> HistoryRecord | None:
    """The live record (as stored) that the deletion ``marker`` deleted: in ``older``
    (the records after it, newest first), else read; None when no longer kept."""

    def same(record: HistoryRecord) -> bool:
        return not record.deleted and (record.version, record.hash) == (
            marker.version,
            marker.hash,
        )

    nearest = next((record for record in older if not record.deleted), None)
    if nearest is not None and same(nearest):  # the nearest older live record
        return nearest
    found = layer.inner.get_version(keyspace, marker.key, marker.version)
    if found is not None and same(found):
        return found
    # A later entry of the same version is the newest: look through all that is kept.
    return next((r for r in layer.inner.history(keyspace, marker.key, 0) if same(r)), None)
