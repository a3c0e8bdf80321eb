"""The bytes of a record (and of a binary entry's file), and their parser. No I/O here.

A JSON entry is Dagu's record, byte for byte what Dagu's ``json.Marshal`` of its entry
writes: compact, fields in the order ``scope, namespace, key, value, version, hash,
created_at, updated_at, updated_by`` (``updated_by`` and its fields omitted when empty),
``value`` the normalized bytes embedded as they are, timestamps RFC 3339 UTC with up to 9
fractional digits, strings escaped as Go escapes them. Parsing accepts that flat record
and also Dagu's newer envelope ``{"id","encoding":"json","data":{...record...},...}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from ...core.clock import format_timestamp, parse_timestamp
from ...core.errors import CorruptEntryError, quoted
from ...core.model import Keyspace, UpdatedBy
from ...core.values import (
    DEFAULT_BINARY_LIMIT,
    DEFAULT_JSON_LIMIT,
    JSON_CONTENT_TYPE,
    RawJSON,
    check_depth,
    normalize,
)
from ..base import Entry

__all__ = [
    "MAX_BLOB_BYTES",
    "MAX_RECORD_BYTES",
    "Stored",
    "decode_record",
    "encode_blob",
    "encode_record",
    "go_string",
]

# The largest files a reader opens: a value at the default limit (Dagu's own, for JSON)
# plus room for the other fields. Anything bigger was not written by statebox or Dagu and
# is refused unread; a write that would make one is refused before it starts.
_SLACK: Final = 256 * 1024
MAX_RECORD_BYTES: Final = DEFAULT_JSON_LIMIT + _SLACK
MAX_BLOB_BYTES: Final = 4 * -(-DEFAULT_BINARY_LIMIT // 3) + _SLACK  # base64 grows 4/3

# Printable ASCII that Go's encoder writes as is: everything but " \ < > &.
_GO_PLAIN: Final = re.compile(r"[ !#-%'-;=?-\[\]-~]*\Z")
_WS: Final = re.compile(r"[ \t\n\r]*")
_STRING_LITERAL: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
_HAS_WS: Final = re.compile(r"[ \t\n\r]")
# For records json.loads refuses: integers too long for int() stay literals.
_LENIENT: Final = json.JSONDecoder(parse_int=lambda s: int(s) if len(s) < 4000 else s)
# The stdlib's (C) scanners, which typeshed does not declare: they give each member's
# value *and* where it ends, so the stored value's exact bytes can be kept.
_scan_once: Any = getattr(_LENIENT, "scan_once")  # noqa: B009
scanstring: Any = getattr(json.decoder, "scanstring")  # noqa: B009


def go_string(text: str) -> str:
    """``text`` as Go's ``encoding/json`` writes a string (SPEC §2 escaping)."""
    if _GO_PLAIN.match(text):
        return f'"{text}"'
    return normalize(text).data.decode("utf-8")


def _updated_by_json(who: UpdatedBy) -> str:
    # Dagu's UpdateSource: these four fields, in this order, each omitted when empty.
    fields = [
        ("dag_name", who.dag_name),
        ("dag_run_id", who.dag_run_id),
        ("attempt_id", who.attempt_id),
        ("step_name", who.step_name),
    ]
    body = ",".join(f'"{name}":{go_string(value)}' for name, value in fields if value)
    return f',"updated_by":{{{body}}}' if body else ""


def _head(keyspace: Keyspace, key: str) -> str:
    return (
        f'{{"scope":{go_string(keyspace.scope)},"namespace":{go_string(keyspace.namespace)},'
        f'"key":{go_string(key)}'
    )


def _tail(entry: Entry) -> str:
    return (
        f',"version":{entry.version},"hash":"{entry.hash}",'
        f'"created_at":"{format_timestamp(entry.created_at)}",'
        f'"updated_at":"{format_timestamp(entry.updated_at)}"'
        f"{_updated_by_json(entry.updated_by)}}}"
    )


def encode_record(keyspace: Keyspace, key: str, entry: Entry) -> bytes:
    """A JSON entry as the Dagu record file (principal and TTL live in the meta file)."""
    return b"".join(
        (
            _head(keyspace, key).encode(),
            b',"value":',
            entry.data,
            _tail(entry).encode(),
        )
    )


def encode_blob(keyspace: Keyspace, key: str, entry: Entry) -> bytes:
    """A binary entry: the same fields, with ``content_type`` and base64 ``data``."""
    data = base64.b64encode(entry.data).decode("ascii")
    return (
        f"{_head(keyspace, key)},"
        f'"content_type":{go_string(entry.content_type)},"data_base64":"{data}"{_tail(entry)}'
    ).encode()


@dataclass(frozen=True, slots=True)
class Stored:
    """What a record or blob file says, including the identity it claims (which the
    reader compares with its file name)."""

    scope: str
    namespace: str
    key: str
    version: int
    hash: str
    data: bytes
    content_type: str
    created_at: int
    updated_at: int
    updated_by: UpdatedBy


def _members(text: str, start: int) -> tuple[dict[str, tuple[Any, int, int]], int]:
    """Each member of the JSON object at ``text[start:]``: (value, start, end) of its value."""
    pos = _WS.match(text, start).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    members: dict[str, tuple[Any, int, int]] = {}
    if text[pos : pos + 1] == "}":
        return members, pos + 1
    while True:
        if text[pos : pos + 1] != '"':
            raise ValueError(f"expected a member name at character {pos}")
        name, pos = scanstring(text, pos + 1)
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] != ":":
            raise ValueError(f"expected ':' at character {pos}")
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        try:
            value, end = _scan_once(text, pos)
        except StopIteration:
            raise ValueError(f"expected a value at character {pos}") from None
        members[name] = (value, pos, end)
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] == ",":
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif text[pos : pos + 1] == "}":
            return members, pos + 1
        else:
            raise ValueError(f"expected ',' or '}}' at character {pos}")


def _compact_value(raw: str) -> bytes:
    # Dagu writes values compact; a hand-edited record may not be.
    if _HAS_WS.search(raw) and _HAS_WS.search(_STRING_LITERAL.sub("", raw)):
        return normalize(RawJSON(raw)).data
    return raw.encode("utf-8")


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise ValueError(f"{quoted(name)} is not a string")
    return value


def _updated_by(who: object) -> UpdatedBy:
    # Not UpdatedBy.from_dict: the record holds Dagu's UpdateSource, four snake_case
    # fields. The principal lives in statebox's meta file, trusted only while it matches
    # the record's version (_reads.load); one in a record Dagu or a hand edit wrote is
    # ignored, as are from_dict's camelCase spellings.
    if not isinstance(who, dict):
        return UpdatedBy()

    def text(name: str) -> str:
        value = who.get(name)
        return value if isinstance(value, str) else ""

    return UpdatedBy(
        dag_name=text("dag_name"),
        dag_run_id=text("dag_run_id"),
        step_name=text("step_name"),
        attempt_id=text("attempt_id"),
    )


def _value_bytes(text: str, fields: dict[str, Any]) -> bytes:
    """The stored value's exact bytes. Fast path: in a record laid out as Dagu and
    statebox write it, the value sits between the first ``"value":`` and the last
    ``,"version":`` (inside strings those quotes would be escaped); the hash confirms it."""
    start, end = text.find('"value":'), text.rfind(',"version":')
    if 0 <= start < end:
        candidate = text[start + len('"value":') : end].encode("utf-8")
        if hashlib.sha256(candidate).hexdigest() == fields.get("hash"):
            return candidate
    members, _ = _members(text, 0)
    if "data" in members and "encoding" in members:
        members, _ = _members(text, members["data"][1])
    _, start, stop = members["value"]
    return _compact_value(text[start:stop])


def decode_record(raw: bytes, path: str) -> Stored:
    """Parse a Dagu record (flat or enveloped) or a blob file; else CorruptEntryError."""
    try:
        # {"data": {"value": ...}} at most around the value; too deep is a ValueError
        check_depth(raw, "record file", envelope=2)
        text = raw.decode("utf-8")
        try:
            fields = json.loads(text)
        except ValueError:  # e.g. an integer literal longer than int() takes
            fields = _LENIENT.decode(text)
        if isinstance(fields, dict) and "encoding" in fields and "data" in fields:
            if fields["encoding"] != "json":  # Dagu's persis envelope
                raise ValueError(f"unsupported encoding {quoted(fields['encoding'])}")
            fields = fields["data"]
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        version = fields["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"invalid version {quoted(version)}")
        if "value" in fields:
            data, content_type = _value_bytes(text, fields), JSON_CONTENT_TYPE
        else:
            data = base64.b64decode(_text(fields, "data_base64"), validate=True)
            content_type = _text(fields, "content_type")
        return Stored(
            scope=_text(fields, "scope"),
            namespace=_text(fields, "namespace"),
            key=_text(fields, "key"),
            version=version,
            hash=_text(fields, "hash"),
            data=data,
            content_type=content_type,
            created_at=parse_timestamp(_text(fields, "created_at")),
            updated_at=parse_timestamp(_text(fields, "updated_at")),
            updated_by=_updated_by(fields.get("updated_by")),
        )
    except (KeyError, ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise CorruptEntryError(
            f"cannot parse the record file {path}: {exc}; it is left untouched: "
            "repair or remove it by hand"
        ) from exc
