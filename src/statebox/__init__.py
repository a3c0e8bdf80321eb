"""statebox — persistent state for workflows.

Small JSON values (cursors, checkpoints, last-seen ids, previous responses, counters)
that outlive a workflow run: addressed by scope, namespace and key, normalized, hashed,
versioned, and guarded by optimistic concurrency.

    >>> import statebox
    >>> with statebox.open_store("memory://", context=statebox.RunContext(dag="feed")) as s:
    ...     s.set("cursor", {"last_id": 1}).version
    1
"""

from __future__ import annotations

from .aio import AsyncStateStore, open_async_store
from .backends.base import Backend, Capabilities
from .clock import Clock, ManualClock, SystemClock
from .errors import (
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    CorruptEntryError,
    FencingError,
    InvalidReferenceError,
    InvalidValueError,
    NotFoundError,
    PermissionDeniedError,
    StateboxError,
    ValueTooLargeError,
)
from .model import Keyspace, RunContext, Scope, UpdatedBy
from .results import (
    DeleteResult,
    DiffResult,
    GetResult,
    HistoryResult,
    ListEntry,
    ListResult,
    SetResult,
    StoredValue,
)
from .store import MISSING, StateStore, open_store
from .values import Blob, RawJSON, normalize

__version__ = "0.1.0"

__all__ = [
    "MISSING",
    "AsyncStateStore",
    "Backend",
    "BackendUnavailableError",
    "Blob",
    "Capabilities",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "CorruptEntryError",
    "DeleteResult",
    "DiffResult",
    "FencingError",
    "GetResult",
    "HistoryResult",
    "InvalidReferenceError",
    "InvalidValueError",
    "Keyspace",
    "ListEntry",
    "ListResult",
    "ManualClock",
    "NotFoundError",
    "PermissionDeniedError",
    "RawJSON",
    "RunContext",
    "Scope",
    "SetResult",
    "StateStore",
    "StateboxError",
    "StoredValue",
    "SystemClock",
    "UpdatedBy",
    "ValueTooLargeError",
    "__version__",
    "normalize",
    "open_async_store",
    "open_store",
]
