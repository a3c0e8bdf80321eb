"""The dump format: JSON lines, one key per line, after a header line.

::

    {"statebox_dump":1}
    {"scope":"dag","namespace":"feed","secret":false,"key":"cursor",
     "current":{"key":"cursor","version":3,"hash":"…","contentType":"application/json",
                "createdAt":"2026-12-04T08:51:58.123456789Z","updatedAt":"…",
                "updatedBy":{…},"expiresAt":"…","value":{"last_id":123}},
     "history":[{"key":"cursor","version":3,…,"value":…},…]}

(one line each; wrapped here). After its keyspace a line is exactly an item of
``POST /v1/import`` (:mod:`statebox.wire.imports`): the entry and the records are the
entries API's, timestamps RFC 3339 with nanoseconds, a JSON value embedded as the exact
text the store holds (numbers, escapes and key order come back byte for byte), bytes as
base64 with ``"encoding":"base64"``. One format for a key on its way between stores,
over HTTP or through a file, read and checked (each value against its hash) by one
decoder. ``current`` is ``null`` for a key that has history only (deleted).
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ..core.envelope import dumps_envelope
from ..core.errors import InvalidRequestError
from ..core.exactjson import loads_exact
from ..core.model import Keyspace
from ..core.records import Entry, HistoryRecord, KeyImport
from ..wire.imports import import_item_from_wire, item_fields

__all__ = ["FORMAT_VERSION", "HEADER", "DumpRecord", "check_header", "decode_line", "encode_line"]

FORMAT_VERSION = 1
#: The first line of every dump.
HEADER = '{"statebox_dump":1}'
_KEYSPACE_FIELDS = frozenset({"scope", "namespace", "secret"})


class DumpRecord(NamedTuple):
    """One key as a dump carries it: its live entry (``None`` when it has history only)
    and its kept history, newest first, and whether its keyspace is secret."""

    scope: str
    namespace: str
    key: str
    current: Entry | None
    history: tuple[HistoryRecord, ...] = ()
    secret: bool = False

    @property
    def keyspace(self) -> Keyspace:
        return Keyspace(self.scope, self.namespace)


def encode_line(record: DumpRecord) -> str:
    """One dump line for ``record`` (no newline). A secret keyspace's hashes are keyed
    (the sealing layer's), so they are marked so and not checked against the values."""
    head = dumps_envelope(
        {"scope": record.scope, "namespace": record.namespace, "secret": record.secret}
    )
    item = KeyImport(record.key, record.current, record.history)
    return f"{head[:-1]},{item_fields(item, keyed_hash=record.secret)}}}"


def decode_line(line: str, where: str = "dump line") -> DumpRecord:
    """The record of one dump line; InvalidRequestError naming ``where`` when it is not
    one."""
    try:
        fields = loads_exact(line, where)
    except ValueError as exc:
        raise InvalidRequestError(f"{where} is not a statebox dump record: {exc}") from exc
    if not isinstance(fields, dict):
        raise InvalidRequestError(f"{where} is not a statebox dump record: not an object")
    scope, namespace, secret = fields.get("scope"), fields.get("namespace"), fields.get("secret")
    if not isinstance(scope, str) or not isinstance(namespace, str):
        raise InvalidRequestError(
            f'{where} is not a statebox dump record: it needs "scope" and "namespace" strings'
        )
    item = import_item_from_wire(fields, where, also=_KEYSPACE_FIELDS)
    return DumpRecord(scope, namespace, item.key, item.current, item.history, secret is True)


def check_header(line: str, where: str = "the dump") -> None:
    """Refuse a first line that is not a dump header of a version this reads."""
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or "statebox_dump" not in header:
        raise InvalidRequestError(
            f"{where} does not start with a statebox dump header ({HEADER}): is it the "
            "output of 'statebox dump'?"
        )
    if header["statebox_dump"] != FORMAT_VERSION:
        raise InvalidRequestError(
            f"{where} is a statebox dump of format {header['statebox_dump']!r}; this "
            f"statebox reads format {FORMAT_VERSION}"
        )
