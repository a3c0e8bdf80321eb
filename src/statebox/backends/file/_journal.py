"""Intent journals: how a write that changes several files stays all-or-nothing.

Before touching any file, the writer (holding every lock bucket involved) writes the
complete list of file operations to ``statebox/journal/<buckets>-<id>.txn`` — temp file,
fsync, rename, fsync of the directory. Only then does it run them, and it removes the
journal (durably) when all are done. Every operation is idempotent, so whoever finds a
journal whose owner died rolls it forward by running it again. The file name carries the
journal's lock buckets as a bitmap, so a reader knows which keys it covers without
opening it; it is orphaned exactly when its buckets can be locked.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ...core.errors import CorruptEntryError, quoted
from ._dirs import list_dir
from ._fsio import Syncs, read_file, remove_file, replace_file
from ._history import append_lines
from ._layout import BUCKETS, SIDE

__all__ = [
    "Op",
    "buckets_of",
    "finish",
    "pending",
    "read_journal",
    "record_ids",
    "run_ops",
    "write_journal",
]

SUFFIX = ".txn"
_BITMAP_CHARS = BUCKETS // 4
_NAME = re.compile(rf"[0-9a-f]{{{_BITMAP_CHARS}}}-[0-9a-f]{{12}}\{SUFFIX}\Z")


@dataclass(frozen=True, slots=True)
class Op:
    """One idempotent file operation: replace a file, remove it, or append log lines."""

    kind: Literal["write", "remove", "append"]
    path: str
    data: bytes = b""
    lines: tuple[str, ...] = ()
    #: A written record's mtime (its updated_at), as Dagu sets it.
    mtime_ns: int | None = None


def run_ops(ops: Iterable[Op], durable: bool, syncs: Syncs | None = None) -> None:
    """Run ``ops`` in order; with ``syncs``, directory and log fsyncs are left to it."""
    for op in ops:
        if op.kind == "write":
            replace_file(op.path, op.data, durable, syncs, op.mtime_ns)
        elif op.kind == "remove":
            # The directories a record's removal empties are removed once its per-key
            # Dagu lock (in the key's own directory) is released (_dagulock).
            remove_file(op.path, durable, syncs)
        else:
            append_lines(op.path, list(op.lines), durable, syncs)


def record_ids(ops: Iterable[Op], root: str) -> list[str]:
    """Dagu's record ids of the record files ``ops`` touch (to take Dagu's locks): those
    in ``<root>/v1/``, not the reserved scope's (``<root>/statebox/v1/``, which Dagu
    never reads)."""
    ids = []
    for op in ops:
        if op.path.endswith(".json"):
            relative = os.path.relpath(op.path, root)
            parts = relative.split("/")
            if len(parts) == 4 and parts[0] == "v1":
                ids.append(relative[: -len(".json")])
    return ids


def _name(buckets: Iterable[int]) -> str:
    bitmap = sum(1 << b for b in set(buckets))
    return f"{bitmap:0{_BITMAP_CHARS}x}-{secrets.token_hex(6)}{SUFFIX}"


def buckets_of(name: str) -> frozenset[int]:
    bitmap = int(name[:_BITMAP_CHARS], 16)
    return frozenset(b for b in range(BUCKETS) if bitmap >> b & 1)


def pending(directory: str) -> list[str]:
    """Names of the journals present (their owners may be alive or dead)."""
    # A symlinked journal directory is refused: journals found there are never run.
    return [name for name in list_dir(directory) if _NAME.match(name)]


def write_journal(
    directory: str, root: str, buckets: Iterable[int], ops: list[Op], durable: bool
) -> str:
    """Durably record ``ops``; returns the journal's path."""
    body = [
        {
            "op": op.kind,
            "path": os.path.relpath(op.path, root),
            **({"data": op.data.decode("utf-8")} if op.kind == "write" else {}),
            **({"lines": list(op.lines)} if op.kind == "append" else {}),
            **({"mtime": op.mtime_ns} if op.mtime_ns is not None else {}),
        }
        for op in ops
    ]
    path = os.path.join(directory, _name(buckets))
    replace_file(path, json.dumps({"ops": body}, ensure_ascii=False).encode("utf-8"), durable)
    return path


def read_journal(path: str, root: str) -> list[Op] | None:
    """The journal's operations, or None when it is gone (its owner finished)."""
    raw = read_file(path)
    if raw is None:
        return None
    try:
        return [
            Op(
                kind=item["op"],
                path=os.path.join(root, _inside(item["path"])),
                data=item.get("data", "").encode("utf-8"),
                lines=tuple(item.get("lines", ())),
                mtime_ns=None if item.get("mtime") is None else int(item["mtime"]),
            )
            for item in json.loads(raw)["ops"]
        ]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        # Journals are fsynced before they are renamed into place: this is damage.
        raise CorruptEntryError(
            f"cannot parse the transaction journal {path}: {exc}; writes to the keys it "
            "covers are blocked until it is repaired or removed by hand"
        ) from exc


def _inside(relative: str) -> str:
    """A journal's file path, if it names a file of the store (a journal planted in the
    directory must not make whoever rolls it forward write elsewhere)."""
    parts = relative.split("/")
    if (
        os.path.normpath(relative) != relative
        or parts[0] not in ("v1", SIDE)
        or ".." in parts
        or len(parts) < 3
    ):
        raise ValueError(f"the path {quoted(relative)} is not a file of the store")
    return relative


def finish(path: str, durable: bool) -> None:
    """Remove a completed journal, durably: it must not come back after a crash."""
    remove_file(path, durable)
