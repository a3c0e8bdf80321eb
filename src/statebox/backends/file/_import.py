"""``import_keys`` of the file store: whole keys, verbatim, under the locks and journal
every write uses.

It holds the lock buckets (and Dagu's record locks) of every key of the batch, reads
each key as a write does (its record, expired or not, and its kept history), decides
with :func:`.._imports.outcome`, and plans the files of the keys it writes — the record
and the whole history log, both replaced (``FilePlan.add_import``) — before changing any.
A batch that changes more than one file commits through one journal, so a crash leaves
each key as it was or fully imported, never a record beside another version's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...core.model import Keyspace
from ...core.records import KeyImport
from .._imports import check_imports, outcome, signature, written
from ._reads import kept_history, load
from ._writes import FilePlan

if TYPE_CHECKING:
    from .backend import FileBackend

__all__ = ["import_keys"]


def import_keys(
    backend: FileBackend,
    keyspace: Keyspace,
    items: Sequence[KeyImport],
    *,
    replace: bool,
    now: int,
) -> list[str]:
    check_imports(items)
    layout = backend._layout
    # Every key's paths first: a key too long for a file name is refused before any lock.
    paths = {item.key: layout.key_paths(keyspace, item.key) for item in items}
    buckets = {p.bucket for p in paths.values()}
    records = [p.record_id for p in paths.values() if p.dagu]
    outcomes: list[str] = []
    with backend._locked(buckets, records):
        files = FilePlan()
        for item in items:
            where = paths[item.key]
            loaded = load(where, item.key, for_write=True)
            kept = kept_history(where, item.key, loaded.entry)
            result = outcome(loaded.entry, signature(kept), item, now, replace=replace)
            outcomes.append(result)
            if written(result):
                files.add_import(keyspace, item.key, where, loaded, item.current, item.history)
        if not files.ops:
            return outcomes
        syncs = backend._commit(buckets, files)
    syncs.flush()  # durable before we return, without holding the locks meanwhile
    return outcomes
