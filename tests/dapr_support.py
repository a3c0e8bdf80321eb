"""A real :class:`~statebox.web.extension.Caller` over a real StateStore, for the Dapr
core's tests: grants are sets of keyspaces (``"*"`` for all), reads and writes run inline
(what was asked to run ``alone`` is recorded), transactions hold ``max_txn_ops``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from statebox import StateStore
from statebox.core.errors import PermissionDeniedError
from statebox.core.model import Keyspace
from statebox.server.writer import is_big_batch
from statebox.wire.codec import check_op_count

T = TypeVar("T")

Grant = Iterable[Keyspace] | str


def _grant(grant: Grant) -> set[Keyspace] | None:
    return None if grant == "*" else set(grant)  # type: ignore[arg-type]


class StoreCaller:
    """The engine acting for a principal whose grants are ``read``, ``write`` and
    ``reveal`` (keyspaces, or ``"*"``). Records what it was asked to authorize."""

    def __init__(
        self,
        store: StateStore,
        *,
        read: Grant = "*",
        write: Grant = "*",
        reveal: Grant = "*",
        max_txn_ops: int = 128,
    ) -> None:
        self._store = store
        self._max_txn_ops = max_txn_ops
        self._grants = {"read": _grant(read), "write": _grant(write)}
        self._reveal = _grant(reveal)
        self.asked: list[tuple[str, Keyspace]] = []
        self.reads = 0
        self.writes = 0
        #: Per read and per write, whether it was asked to run alone (off the loop).
        self.alone_reads: list[bool] = []
        self.alone_writes: list[bool] = []

    def authorize(self, access: str, keyspace: Keyspace) -> None:
        self.asked.append((access, keyspace))
        allowed = self._grants[access]
        if allowed is not None and keyspace not in allowed:
            raise PermissionDeniedError(
                f"no {access} grant on scope {keyspace.scope}, namespace {keyspace.namespace}"
            )

    def secret(self, keyspace: Keyspace) -> bool:
        return self._store.secret_policy.is_secret(keyspace)

    def authorize_reveal(self, keyspace: Keyspace, what: str = "", hint: str = "") -> None:
        self.asked.append(("reveal", keyspace))
        if self._reveal is not None and keyspace not in self._reveal:
            raise PermissionDeniedError(
                f"{what or 'this'} needs the reveal grant on scope {keyspace.scope}, "
                f"namespace {keyspace.namespace}"
            )

    def store(self) -> StateStore:
        return self._store

    def reader(self) -> StateStore:
        return self._store

    async def read(self, work: Callable[[], T], *, alone: bool = False) -> T:
        self.reads += 1
        self.alone_reads.append(alone)
        return work()

    async def write(self, work: Callable[[], T], *, alone: bool = False) -> T:
        self.writes += 1
        self.alone_writes.append(alone)
        return work()

    def batch(self, count: int, size: int = 0) -> bool:
        """The server's rules: over ``max_txn_ops`` refused, big as the writer says."""
        check_op_count(count, self._max_txn_ops)
        return is_big_batch(count, size)

    @property
    def max_txn_ops(self) -> int:
        return self._max_txn_ops
