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

import sys as _sys
import typing as _typing

# The names below are loaded on first use (PEP 562), so ``import statebox`` stays cheap:
# the command line starts in tens of milliseconds and never imports asyncio.
if _typing.TYPE_CHECKING:
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
        InvalidRequestError,
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
        LeaseResult,
        ListEntry,
        ListResult,
        SetResult,
        StoredValue,
        TransactionResult,
        WatchEvent,
        WatchResult,
    )
    from .store import MISSING, StateStore, open_store
    from .transactions import DeleteOp, SetOp
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
    "DeleteOp",
    "DeleteResult",
    "DiffResult",
    "FencingError",
    "GetResult",
    "HistoryResult",
    "InvalidReferenceError",
    "InvalidRequestError",
    "InvalidValueError",
    "Keyspace",
    "LeaseResult",
    "ListEntry",
    "ListResult",
    "ManualClock",
    "NotFoundError",
    "PermissionDeniedError",
    "RawJSON",
    "RunContext",
    "Scope",
    "SetOp",
    "SetResult",
    "StateStore",
    "StateboxError",
    "StoredValue",
    "SystemClock",
    "TransactionResult",
    "UpdatedBy",
    "ValueTooLargeError",
    "WatchEvent",
    "WatchResult",
    "__version__",
    "normalize",
    "open_async_store",
    "open_store",
]

# name -> the module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "MISSING": ".store",
    "StateStore": ".store",
    "open_store": ".store",
    "AsyncStateStore": ".aio",
    "open_async_store": ".aio",
    "Backend": ".backends.base",
    "Capabilities": ".backends.base",
    "Clock": ".clock",
    "ManualClock": ".clock",
    "SystemClock": ".clock",
    "BackendUnavailableError": ".errors",
    "ConfigurationError": ".errors",
    "ConflictError": ".errors",
    "CorruptEntryError": ".errors",
    "FencingError": ".errors",
    "InvalidReferenceError": ".errors",
    "InvalidRequestError": ".errors",
    "InvalidValueError": ".errors",
    "NotFoundError": ".errors",
    "PermissionDeniedError": ".errors",
    "StateboxError": ".errors",
    "ValueTooLargeError": ".errors",
    "Keyspace": ".model",
    "RunContext": ".model",
    "Scope": ".model",
    "UpdatedBy": ".model",
    "DeleteResult": ".results",
    "DiffResult": ".results",
    "GetResult": ".results",
    "HistoryResult": ".results",
    "ListEntry": ".results",
    "ListResult": ".results",
    "SetResult": ".results",
    "StoredValue": ".results",
    "LeaseResult": ".results",
    "TransactionResult": ".results",
    "WatchEvent": ".results",
    "WatchResult": ".results",
    "SetOp": ".transactions",
    "DeleteOp": ".transactions",
    "Blob": ".values",
    "RawJSON": ".values",
    "normalize": ".values",
}


def _import_module(name: str, package: str) -> object:
    """``importlib.import_module(name, package)`` for a relative ``name``, without
    importing importlib (a cost every command-line start-up would pay)."""
    absolute = package + name
    __import__(absolute)
    return _sys.modules[absolute]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        if not name.startswith("_"):  # ``statebox.errors`` without importing it first
            try:
                return _import_module(f".{name}", __name__)
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module 'statebox' has no attribute {name!r}")
    value = getattr(_import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
