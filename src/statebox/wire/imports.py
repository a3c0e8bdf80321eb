"""Imports on the wire: what the ``http://`` backend sends to ``POST /v1/import/{scope}/
{namespace}`` (``Backend.import_keys``) and what the server's route reads back, side by
side so the two cannot drift.

    {"replace": false, "items": [
      {"key": "a", "current": {<entry>} | null, "history": [{<record>}, ...]}, ...]}
    -> {"outcomes": ["created", "same", ...]}

An entry and a record are the entries API's (:func:`~.codec.entry_json`,
:func:`~.codec.record_json`): timestamps RFC 3339 with nanoseconds, ``expiresAt``
absolute (an import copies times as they are), a JSON value embedded verbatim, bytes as
base64. The server checks each value against its hash, as the remote store checks what
a server sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.envelope import dumps_envelope
from ..core.errors import BackendUnavailableError, CorruptEntryError, InvalidRequestError
from ..core.records import IMPORT_OUTCOMES, Entry, HistoryRecord, KeyImport
from .codec import decode_entry, decode_record, entry_json, record_json

__all__ = ["import_body", "import_item_from_wire", "item_fields", "outcomes_from_wire"]


def item_fields(item: KeyImport, *, keyed_hash: bool = False) -> str:
    """The item's members, without the braces: ``"key":…,"current":…,"history":[…]``
    (a dump line, ``statebox.transfer``, puts its keyspace in front of them);
    ``keyed_hash``: of a secret keyspace, its hashes keyed."""
    current = "null" if item.current is None else entry_json(item.current, keyed_hash=keyed_hash)
    history = ",".join(record_json(record, keyed_hash=keyed_hash) for record in item.history)
    return f'"key":{dumps_envelope(item.key)},"current":{current},"history":[{history}]'


def import_body(items: Sequence[KeyImport], *, replace: bool) -> str:
    items_json = ",".join(f"{{{item_fields(item)}}}" for item in items)
    return f'{{"replace":{"true" if replace else "false"},"items":[{items_json}]}}'


def _refused(where: str, exc: CorruptEntryError) -> InvalidRequestError:
    # The codec's words are the client's ("the server sent ..."): here the client sent it.
    message = exc.message.replace("the server sent ", "").replace("refusing it", "refused")
    return InvalidRequestError(f"{where}: {message}")


def import_item_from_wire(obj: Any, where: str, *, also: frozenset[str] = frozenset()) -> KeyImport:
    """One item (parsed with exact numbers), or :class:`InvalidRequestError` naming
    ``where`` it was (``items[3]``, ``line 7 of state.jsonl``); ``also``: the other
    members the caller reads from ``obj`` itself (a dump line's keyspace)."""
    if not isinstance(obj, Mapping):
        raise InvalidRequestError(f"{where} must be an object")
    unknown = set(obj) - {"key", "current", "history"} - also
    if unknown:
        raise InvalidRequestError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    key, current, history = obj.get("key"), obj.get("current"), obj.get("history", [])
    if not isinstance(key, str) or not key:
        raise InvalidRequestError(f'{where} needs "key": a non-empty string')
    if current is not None and not isinstance(current, Mapping):
        raise InvalidRequestError(f'{where}: "current" must be an entry or null')
    if not isinstance(history, list) or not all(isinstance(r, Mapping) for r in history):
        raise InvalidRequestError(f'{where}: "history" must be a list of records')
    try:
        entry: Entry | None = None if current is None else decode_entry(current)
        records: tuple[HistoryRecord, ...] = tuple(decode_record(r) for r in history)
    except CorruptEntryError as exc:
        raise _refused(where, exc) from None
    except OverflowError:
        raise InvalidRequestError(f"{where}: a timestamp is out of range") from None
    return KeyImport(key, entry, records)


def outcomes_from_wire(data: Any, count: int) -> list[str]:
    """The answer's ``outcomes``: one known outcome per item sent."""
    outcomes = data.get("outcomes") if isinstance(data, Mapping) else None
    if (
        not isinstance(outcomes, list)
        or len(outcomes) != count
        or any(o not in IMPORT_OUTCOMES for o in outcomes)
    ):
        raise BackendUnavailableError(
            f"statebox server answered an import of {count} keys with {str(data)[:200]}"
        )
    return [str(o) for o in outcomes]
