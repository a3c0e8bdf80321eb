"""The records a backend stores and the mutations it applies: plain data, no behaviour.

The backend contract (:mod:`statebox.backends.base`) is written in these types, and the
version rules (:mod:`.versions`), the wire protocol and the engine read and build them;
they live here, below all of those, so that none of them has to import a backend.
"""

from __future__ import annotations

from .model import UpdatedBy
from .values import NormalizedValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:  # typing.NamedTuple's classes, built faster (a CLI start defines them)
    from ._tuples import NamedTuple

__all__ = [
    "Applied",
    "Delete",
    "Entry",
    "Fence",
    "HistoryRecord",
    "IMPORT_CONFLICT",
    "IMPORT_CREATED",
    "IMPORT_OUTCOMES",
    "IMPORT_REPLACED",
    "IMPORT_SAME",
    "KeyImport",
    "Lease",
    "Mutation",
    "Put",
    "WriteContext",
]


class Entry(NamedTuple):
    """One stored entry: the current version of a key."""

    key: str
    version: int
    hash: str
    data: bytes
    content_type: str
    created_at: int  # ns since the epoch, UTC
    updated_at: int
    updated_by: UpdatedBy = UpdatedBy()
    expires_at: int | None = None

    def is_live(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now


class HistoryRecord(NamedTuple):
    """One past (or the current) version of a key, or the deletion of one."""

    key: str
    version: int
    hash: str
    data: bytes
    content_type: str
    created_at: int
    updated_at: int
    updated_by: UpdatedBy
    deleted: bool = False


class Fence(NamedTuple):
    """A lease's fencing token carried by a write (SPEC §5, leases)."""

    lease: str
    token: int


class Lease(NamedTuple):
    """A lease on a name: who holds it, until when, and its fencing token."""

    name: str
    holder: str
    token: int
    expires_at: int  # ns since the epoch, UTC

    def is_live(self, now: int) -> bool:
        return self.expires_at > now


class Put(NamedTuple):
    key: str
    value: NormalizedValue
    expected_version: int | None = None
    create_only: bool = False
    expires_at: int | None = None
    fence: Fence | None = None


class Delete(NamedTuple):
    key: str
    expected_version: int | None = None
    fence: Fence | None = None


Mutation = Put | Delete


class WriteContext(NamedTuple):
    now: int
    updated_by: UpdatedBy
    history_limit: int = 10


class Applied(NamedTuple):
    """What one mutation did: the live entry before it and the entry after it."""

    previous: Entry | None
    current: Entry | None  # None after a delete


class KeyImport(NamedTuple):
    """One key's whole state, as a dump carries it: the live entry (None when the key is
    deleted or expired) and its kept history, newest first (as Backend.history returns)."""

    key: str
    current: Entry | None
    history: tuple[HistoryRecord, ...] = ()


# What ``Backend.import_keys`` did with each key (plain strings: they go on the wire and
# into a load's report as they are).
#: The key had no entry and no history (or only an expired entry): written as given.
IMPORT_CREATED = "created"
#: The destination already holds exactly this (same version and hash): nothing written.
IMPORT_SAME = "same"
#: The destination holds something else: left as it was (``replace`` not asked).
IMPORT_CONFLICT = "conflict"
#: The destination held something else, dropped for what was given (``replace=True``).
IMPORT_REPLACED = "replaced"
IMPORT_OUTCOMES = (IMPORT_CREATED, IMPORT_SAME, IMPORT_CONFLICT, IMPORT_REPLACED)
