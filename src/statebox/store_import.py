"""The engine's side of ``StateStore.import_keys``: the items checked and made consistent
before a backend writes them verbatim (``Backend.import_keys``, ``backends/base.py``).

A backend trusts what it imports; what it stores must read back everywhere. So here:

- every key is a valid key, every value within the store's limits, a JSON value valid
  UTF-8 JSON (a file store embeds it as it is in a Dagu record), timestamps within
  64 bits;
- every hash is made the SHA-256 of its bytes, the hash any store reports for a plain
  value and the one the file store checks on every read. A dump of a secret keyspace
  carries hashes keyed with its store's key, which no other store (or key) can check;
  a deletion record carries the hash of the version it deleted, so it gets that
  record's new hash (the nearest older record of its version and old hash).

The batch itself (records of the item's key, versions, order, repeated keys) is checked
by the backend, in its atomic section (``backends/_imports.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .core.errors import InvalidReferenceError, InvalidRequestError, InvalidValueError, quoted
from .core.exactjson import parse_literals
from .core.model import validate_key
from .core.records import Entry, HistoryRecord, KeyImport
from .core.values import JSON_CONTENT_TYPE, sha256_hex

__all__ = ["prepared"]

_INT64 = 2**63 - 1


def prepared(items: Sequence[KeyImport], *, json_limit: int, binary_limit: int) -> list[KeyImport]:
    """``items`` checked (:class:`InvalidRequestError` naming the item) and rehashed."""
    return [_item(item, index, json_limit, binary_limit) for index, item in enumerate(items)]


def _item(item: KeyImport, index: int, json_limit: int, binary_limit: int) -> KeyImport:
    if not isinstance(item, KeyImport):
        raise InvalidRequestError(f"import item {index} is not a KeyImport")
    where = f"import item {index} (key {quoted(item.key)})"
    try:
        key = validate_key(item.key)
    except InvalidReferenceError as exc:
        raise InvalidRequestError(f"import item {index}: {exc.message}") from None
    if key != item.key:
        raise InvalidRequestError(f"{where}: the key must be given trimmed")
    rehashed: dict[tuple[int, str], str] = {}  # (version, old hash) -> new hash

    def check(record: Entry | HistoryRecord) -> str:
        for name in ("created_at", "updated_at", "version"):
            value = getattr(record, name)
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _INT64:
                raise InvalidRequestError(f"{where}: {name} must be a 64-bit integer")
        if record.deleted if isinstance(record, HistoryRecord) else False:
            return record.hash
        _check_value(record, where, json_limit, binary_limit)
        digest = sha256_hex(record.data)
        rehashed.setdefault((record.version, record.hash), digest)
        return digest

    # Oldest first: a deletion record's deleted version comes before it.
    history = list(item.history)
    for position in range(len(history) - 1, -1, -1):
        record = history[position]
        if record.deleted:
            digest = rehashed.get((record.version, record.hash), record.hash)
            check(record)
            history[position] = record._replace(hash=digest)
        else:
            history[position] = record._replace(hash=check(record))
    current = item.current
    if current is not None:
        if current.expires_at is not None and (
            isinstance(current.expires_at, bool)
            or not isinstance(current.expires_at, int)
            or abs(current.expires_at) > _INT64
        ):
            raise InvalidRequestError(f"{where}: expires_at must be a 64-bit integer")
        current = current._replace(hash=check(current))
    return KeyImport(key, current, tuple(history))


def _check_value(
    record: Entry | HistoryRecord, where: str, json_limit: int, binary_limit: int
) -> None:
    data = record.data
    if not isinstance(data, bytes) or not isinstance(record.content_type, str):
        raise InvalidRequestError(f"{where}: a value must be bytes with a content type")
    if record.content_type != JSON_CONTENT_TYPE:
        if len(data) > binary_limit:
            raise InvalidRequestError(
                f"{where}: version {record.version} has {len(data)} bytes, over the "
                f"store's binary limit of {binary_limit}"
            )
        return
    if len(data) > json_limit:
        raise InvalidRequestError(
            f"{where}: version {record.version} has {len(data)} bytes of JSON, over the "
            f"store's JSON limit of {json_limit}"
        )
    try:
        parse_literals(data.decode("utf-8"))  # refuses NaN and Infinity, as every write does
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{where}: version {record.version} is not valid JSON: {exc}"
        ) from None
    except InvalidValueError as exc:
        raise InvalidRequestError(
            f"{where}: version {record.version} is not valid JSON: {exc.message}"
        ) from None
