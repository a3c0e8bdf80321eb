"""The bytes of statebox's own files beside Dagu's records: meta files (TTL and
principal), history log lines and leases. No I/O here."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from ...core.errors import CorruptEntryError
from ...core.model import UpdatedBy
from ...core.values import JSON_CONTENT_TYPE, check_depth
from ..base import HistoryRecord, Lease
from ._codec import Stored

__all__ = [
    "MAX_META_BYTES",
    "Meta",
    "decode_history_line",
    "decode_lease",
    "decode_meta",
    "encode_history_line",
    "encode_lease",
    "encode_meta",
]


# --- meta: what a Dagu record cannot hold ---------------------------------------------

#: A meta file holds two small entries; anything bigger is refused unread.
MAX_META_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Meta:
    """TTL and principal of one version, valid only while the record is that version."""

    version: int
    updated_at: int
    expires_at: int | None
    principal: str

    def matches(self, stored: Stored) -> bool:
        return self.version == stored.version and self.updated_at == stored.updated_at


def encode_meta(metas: list[Meta]) -> bytes:
    items = [
        {"version": m.version, "updated_at": m.updated_at, "expires_at": m.expires_at}
        | ({"principal": m.principal} if m.principal else {})
        for m in metas
    ]
    return json.dumps({"entries": items}, ensure_ascii=False, separators=(",", ":")).encode()


def decode_meta(raw: bytes, path: str) -> list[Meta]:
    try:
        return [
            Meta(
                int(item["version"]),
                int(item["updated_at"]),
                None if item["expires_at"] is None else int(item["expires_at"]),
                str(item.get("principal", "")),
            )
            for item in json.loads(raw)["entries"]
        ]
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptEntryError(f"cannot parse the meta file {path}: {exc}") from exc


# --- history: one JSON line per kept version ------------------------------------------


def encode_history_line(record: HistoryRecord, seq: int, keep: int) -> str:
    """``seq`` numbers the log's lines; ``keep`` is how many lines this write keeps."""
    is_json = record.content_type == JSON_CONTENT_TYPE
    line = {
        "n": seq,
        "k": keep,
        "v": record.version,
        "h": record.hash,
        "t": record.content_type,
        "d": record.data.decode("utf-8") if is_json else base64.b64encode(record.data).decode(),
        "c": record.created_at,
        "u": record.updated_at,
        "by": record.updated_by.to_dict(),
        "x": record.deleted,
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def decode_history_line(line: str, key: str) -> tuple[HistoryRecord, int, int]:
    """The record, its sequence number and its keep count; ValueError when malformed."""
    try:
        check_depth(line, "history line")  # a NestingTooDeepError is a ValueError
        item = json.loads(line)
        is_json = item["t"] == JSON_CONTENT_TYPE
        record = HistoryRecord(
            key=key,
            version=int(item["v"]),
            hash=str(item["h"]),
            data=item["d"].encode("utf-8") if is_json else base64.b64decode(item["d"]),
            content_type=str(item["t"]),
            created_at=int(item["c"]),
            updated_at=int(item["u"]),
            updated_by=UpdatedBy.from_dict(item["by"]),
            deleted=bool(item["x"]),
        )
        return record, int(item["n"]), int(item["k"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed history line: {exc}") from exc


# --- leases ---------------------------------------------------------------------------


def encode_lease(lease: Lease) -> bytes:
    body = {"holder": lease.holder, "token": lease.token, "expires_at": lease.expires_at}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def decode_lease(raw: bytes, name: str, path: str) -> Lease:
    try:
        check_depth(raw, "lease file")
        item = json.loads(raw)
        return Lease(name, str(item["holder"]), int(item["token"]), int(item["expires_at"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptEntryError(f"cannot parse the lease file {path}: {exc}") from exc
