"""The rules of ``Backend.import_keys`` every backend shares: the batch's validation and
the decision, per key, between created, same, conflict and replaced.

A backend reads what it stores for the key — its entry row, expired or not, and the
signature of its kept history — inside its own atomic section, asks :func:`outcome`, and
writes the item verbatim when the answer is created or replaced (``base.py`` documents
the contract). Imported on the first import: the CLI's ``get`` never loads it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from ..core.errors import InvalidRequestError, quoted
from ..core.records import (
    IMPORT_CONFLICT,
    IMPORT_CREATED,
    IMPORT_REPLACED,
    IMPORT_SAME,
    Entry,
    HistoryRecord,
    KeyImport,
)

__all__ = ["Signature", "check_imports", "outcome", "signature", "written"]

#: What "the same history" compares: each record's (version, hash, deleted), newest first.
Signature = list[tuple[int, str, bool]]


def signature(records: Iterable[HistoryRecord]) -> Signature:
    return [(r.version, r.hash, r.deleted) for r in records]


def check_imports(items: Sequence[KeyImport]) -> None:
    """Refuse a batch (:class:`InvalidRequestError`, before anything is written) whose
    records name another key, whose versions are below 1 or whose history is not newest
    first, or that names a key twice."""
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"import item {index} (key {quoted(item.key)})"
        if not isinstance(item.key, str) or not item.key:
            raise InvalidRequestError(f"import item {index}: the key must be a non-empty string")
        if item.key in seen:
            raise InvalidRequestError(f"{where}: the key appears twice in one import batch")
        seen.add(item.key)
        records: list[Entry | HistoryRecord] = list(item.history)
        if item.current is not None:
            records.insert(0, item.current)
        for record in records:
            if record.key != item.key:
                raise InvalidRequestError(
                    f"{where}: a record of key {quoted(record.key)} is in it; every record "
                    "must be of the item's key"
                )
            if isinstance(record.version, bool) or record.version < 1:
                raise InvalidRequestError(
                    f"{where}: version {record.version} is not a version (they start at 1)"
                )
        versions = [record.version for record in item.history]
        for newer, older in itertools.pairwise(versions):
            # A key deleted (or expired) and written again begins at version 1, so version
            # 1 may follow any version; elsewhere newest first means never increasing.
            if older > newer and newer != 1:
                raise InvalidRequestError(
                    f"{where}: its history must be newest first (versions never increasing "
                    f"but where the key began again at 1), but version {older} follows "
                    f"version {newer}"
                )


def outcome(
    stored: Entry | None, kept: Signature, item: KeyImport, now: int, *, replace: bool
) -> str:
    """What importing ``item`` does where the key has the entry row ``stored`` (live or
    expired; None: none) and kept history ``kept``: ``same`` (nothing to write),
    ``created`` or ``replaced`` (write the item), ``conflict`` (leave the key)."""
    live = stored if stored is not None and stored.is_live(now) else None
    current = item.current
    if current is not None:
        if live is not None and (live.version, live.hash) == (current.version, current.hash):
            return IMPORT_SAME
    elif live is None and kept == signature(item.history):
        return IMPORT_SAME
    if live is None and not kept:
        return IMPORT_CREATED  # an expired row is replaced: it was as good as missing
    return IMPORT_REPLACED if replace else IMPORT_CONFLICT


def written(result: str) -> bool:
    """Whether an outcome writes the item."""
    return result in (IMPORT_CREATED, IMPORT_REPLACED)
