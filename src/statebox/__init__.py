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

# The names below are loaded on first use (PEP 562), so ``import statebox`` stays cheap:
# the command line starts in tens of milliseconds and never imports asyncio (nor typing).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .aio import AsyncStateStore, open_async_store
    from .backends.base import Backend, Capabilities
    from .core.clock import Clock, ManualClock, SystemClock
    from .core.errors import (
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
    from .core.model import Keyspace, RunContext, Scope, UpdatedBy
    from .core.results import (
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
    from .core.values import Blob, RawJSON, normalize
    from .store import MISSING, StateStore, open_store
    from .transactions import DeleteOp, SetOp

del TYPE_CHECKING  # not one of the package's names

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
    "Clock": ".core.clock",
    "ManualClock": ".core.clock",
    "SystemClock": ".core.clock",
    "BackendUnavailableError": ".core.errors",
    "ConfigurationError": ".core.errors",
    "ConflictError": ".core.errors",
    "CorruptEntryError": ".core.errors",
    "FencingError": ".core.errors",
    "InvalidReferenceError": ".core.errors",
    "InvalidRequestError": ".core.errors",
    "InvalidValueError": ".core.errors",
    "NotFoundError": ".core.errors",
    "PermissionDeniedError": ".core.errors",
    "StateboxError": ".core.errors",
    "ValueTooLargeError": ".core.errors",
    "Keyspace": ".core.model",
    "RunContext": ".core.model",
    "Scope": ".core.model",
    "UpdatedBy": ".core.model",
    "DeleteResult": ".core.results",
    "DiffResult": ".core.results",
    "GetResult": ".core.results",
    "HistoryResult": ".core.results",
    "ListEntry": ".core.results",
    "ListResult": ".core.results",
    "SetResult": ".core.results",
    "StoredValue": ".core.results",
    "LeaseResult": ".core.results",
    "TransactionResult": ".core.results",
    "WatchEvent": ".core.results",
    "WatchResult": ".core.results",
    "SetOp": ".transactions",
    "DeleteOp": ".transactions",
    "Blob": ".core.values",
    "RawJSON": ".core.values",
    "normalize": ".core.values",
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
        if not name.startswith("_"):  # ``statebox.core.errors`` without importing it first
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
