"""The wire format shared by the server and the remote store (``http://`` backend).

Both sides encode and decode entries, history records, leases, errors and the run context
here, once; nothing here does I/O or imports the web framework, so the remote store
needs only its HTTP client.

Values travel as JSON: a JSON entry's normalized text is embedded verbatim as ``value``
(a binary entry's bytes as base64 with ``"encoding": "base64"``). A receiver that needs
the exact stored bytes parses with :func:`loads_exact`, which keeps every number literal
as written, and normalizes again: normalization is idempotent, so it gets the very bytes
the sender stored, and checks them against ``hash`` — unless the entry says
``"keyedHash": true``: the value of a secret keyspace, whose hash is an HMAC under the
server's key (:mod:`statebox.backends.sealing`), which the receiver cannot recompute.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, unquote

from ..core.clock import format_timestamp, parse_timestamp
from ..core.envelope import dumps_envelope
from ..core.envelope import value_fields as envelope_value_fields
from ..core.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptEntryError,
    InvalidRequestError,
    StateboxError,
    UnauthenticatedError,
    error_class,
    quoted,
    worded,
)
from ..core.exactjson import ENVELOPE, loads_exact
from ..core.model import UpdatedBy
from ..core.operations import expected_version, operation_fields, operation_name
from ..core.params import MAX_SECONDS, fencing, float_seconds, format_seconds, ttl
from ..core.records import Entry, HistoryRecord, Lease
from ..core.results import StoredValue
from ..core.values import JSON_CONTENT_TYPE, Blob, RawJSON, check_depth, normalize, sha256_hex

__all__ = [
    "CONTEXT_HEADERS",
    "NOW_HEADER",
    "MAX_SECONDS",
    "ENVELOPE",
    "decode_entry",
    "decode_lease",
    "decode_record",
    "entry_json",
    "error_body",
    "http_param",
    "error_from_body",
    "float_seconds",
    "format_seconds",
    "check_op_count",
    "batch_operation",
    "transaction_operation",
    "loads_exact",
    "record_json",
    "updated_by_from_headers",
    "updated_by_headers",
    "value_fields",
    "value_from_wire",
]

#: The client's clock, in ns since the epoch; honoured only by a server in test mode.
NOW_HEADER: Final = "x-statebox-now"
#: The run context a write records in ``updatedBy`` (values percent-encoded UTF-8).
CONTEXT_HEADERS: Final = {
    "dag_name": "x-statebox-dag",
    "dag_run_id": "x-statebox-run-id",
    "step_name": "x-statebox-step",
    "attempt_id": "x-statebox-attempt-id",
}


# --- exact JSON -----------------------------------------------------------------------

# The one exact-number parser lives in the core (statebox.core.exactjson); the wire's
# callers import it from here with the rest of the protocol.


def check_op_count(count: int, limit: int) -> None:
    """Refuse a transaction of more than ``limit`` operations (``--max-txn-ops``)."""
    if count > limit:
        raise InvalidRequestError(
            f"too many operations in one transaction: {count} exceeds max_txn_ops "
            f"{limit} (the server's --max-txn-ops)"
        )


def batch_operation(raw: bytes) -> Any:
    """One operation of a request body's list (``{"ops": [...]}``) as :func:`loads_exact`
    parses it, except that its JSON ``value`` stays text (:class:`RawJSON`), normalized
    when it is applied, one at a time: 128 values of 1 MiB never become millions of
    Python objects at once (gigabytes, and seconds of garbage collection holding the
    interpreter's lock). Raises ``ValueError`` as :func:`loads_exact` does.

    ``msgspec`` finds the value's span without building it. It is the server's (its
    ``[server]`` extra): only the server's routes call this. The command line and the
    remote store never do — ``statebox txn`` parses its operations with
    :func:`loads_exact` (one small list, read once) and neither loads ``msgspec``.
    """
    import msgspec

    try:
        fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:  # not an object: the operation's reader names it
        return loads_exact(bytes(raw))
    raw_value = "value" in fields and "encoding" not in fields  # base64 stays a string
    return {
        name: RawJSON(bytes(item)) if raw_value and name == "value" else loads_exact(bytes(item))
        for name, item in fields.items()
    }


def transaction_operation(op: object, index: int) -> dict[str, Any]:
    """One operation of a transaction as every face hands it to the engine, read by the
    rules of JSON: the server's ``POST /v1/txn`` (from :func:`batch_operation`) and the
    CLI's ``statebox txn`` (from :func:`loads_exact`) both read theirs here, so they
    accept and refuse alike.

    ``op`` is the operation as parsed (numbers exact; a JSON ``value`` may still be
    text). Its fields are checked as every operation's
    (:func:`~statebox.core.operations.operation_fields`), then read: a base64 ``value``
    (``"encoding"``) as its :class:`Blob`; ``fencing`` only as ``{"lease", "token"}``
    (:func:`~statebox.core.params.fencing`: the list a Python caller may give is no
    JSON form), as a :class:`~statebox.core.records.Fence`; ``expected_version`` of 0
    or more; ``ttl`` exact and positive, as the float seconds the engine takes. Errors
    name the operation as the engine does (``transaction operation 0 (set "t")``); the
    engine checks the rest (the key, the value's limits).
    """
    where = f"transaction operation {index}"
    wire_value = isinstance(op, Mapping) and "encoding" in op
    kind, fields = operation_fields(op, where, wire_value=wire_value)
    try:
        read: dict[str, Any] = {"op": kind, **fields}
        if fields.get("fencing") is not None:
            read["fencing"] = fencing(fields["fencing"], '"fencing"')
        if fields.get("expected_version") is not None:
            read["expected_version"] = expected_version(fields["expected_version"])
        if fields.get("ttl") is not None:
            read["ttl"] = ttl(fields["ttl"], '"ttl"')
        if wire_value:
            read["value"] = value_from_wire(fields)
            del read["encoding"]
            read.pop("contentType", None)
    except InvalidRequestError as exc:
        # A field's refusal, of its own kind, said of the operation (never of a face's
        # own parameter: the error carries none).
        name = operation_name(where, kind, fields["key"])
        raise InvalidRequestError(f"{name}: {exc.message}") from None
    return read


# --- values -----------------------------------------------------------------------------
#
# One encoding of a value on the wire, and one decoding: a JSON value is embedded as
# itself; bytes travel as base64 with their contentType and "encoding": "base64".


def value_from_wire(obj: Mapping[str, Any], field: str = "value") -> Any:
    """The value in ``obj``: its JSON ``value``, or a :class:`Blob` from its base64 form
    (``contentType``, ``"encoding": "base64"``) — the one decoding of a wire value, for
    request bodies and for the entries a server sends back alike."""
    if field not in obj:
        raise InvalidRequestError(f"missing field {quoted(field)}")
    value = obj[field]
    encoding = obj.get("encoding")
    if encoding is None:
        return value
    if encoding != "base64" or not isinstance(value, str):
        raise InvalidRequestError(
            f'invalid encoding {quoted(encoding)}: the only one is "base64", with a string value'
        )
    content_type = obj.get("contentType", "application/octet-stream")
    if not isinstance(content_type, str):
        raise InvalidRequestError('invalid "contentType": must be a string')
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(f"invalid base64 in {quoted(field)}: {exc}") from exc
    return Blob(data, content_type)


def value_fields(data: bytes, content_type: str) -> dict[str, Any]:
    """``{"value": <embedded JSON>}``, or for bytes ``{"value": base64, "contentType",
    "encoding": "base64"}`` — what :func:`value_from_wire` reads back. The one encoding
    of a wire value is the envelopes' (:func:`statebox.core.envelope.value_fields`, in
    the core: the server's answers use it), for the wire's entries and mutations too."""
    return envelope_value_fields(StoredValue(data, content_type))


def _value_bytes(
    obj: Mapping[str, Any], content_type: str, digest: str, known: Mapping[str, bytes]
) -> bytes:
    """The exact stored bytes of a wire entry (``b""`` when it came without its value).

    ``known`` maps hashes to bytes the receiver already has (the values it just wrote),
    which spares normalizing them again.
    """
    if "value" not in obj:
        return b""
    if digest in known:
        return known[digest]
    try:
        value = value_from_wire(obj)
    except InvalidRequestError as exc:
        raise CorruptEntryError(f"the server sent a malformed value: {exc.message}") from None
    if isinstance(value, Blob):
        data, actual = value.data, sha256_hex(value.data)
    elif content_type == JSON_CONTENT_TYPE:
        normalized = normalize(value, limit=1 << 62)
        data, actual = normalized.data, normalized.hash
    else:
        raise CorruptEntryError(
            f"entry with content type {quoted(content_type)} came without base64"
        )
    if actual != digest and obj.get("keyedHash") is not True:
        raise CorruptEntryError("an entry's value does not match its hash: refusing it")
    return data


# --- entries, records, leases ---------------------------------------------------------


_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _with_value(head: dict[str, Any], data: bytes, content_type: str) -> str:
    """``head`` as JSON, with the value appended: JSON embedded verbatim (no re-encoding:
    the hot path of every read), bytes in their wire form (:func:`value_fields`)."""
    if content_type == JSON_CONTENT_TYPE:
        text: str = _dumps(head)
        return f'{text[:-1]},"value":{data.decode("utf-8")}}}'
    return str(_dumps({**head, **value_fields(data, content_type)}))


def _head(item: Entry | HistoryRecord) -> dict[str, Any]:
    """The fields an entry and a history record share, in the order they are sent."""
    return {
        "key": item.key,
        "version": item.version,
        "hash": item.hash,
        "contentType": item.content_type,
        "createdAt": format_timestamp(item.created_at),
        "updatedAt": format_timestamp(item.updated_at),
        "updatedBy": item.updated_by.to_dict(),
    }


def entry_json(entry: Entry, *, include_value: bool = True, keyed_hash: bool = False) -> str:
    """One entry as the entries API sends it (``value`` last); ``keyed_hash``: of a
    secret keyspace, its hash keyed (``"keyedHash": true``)."""
    head = _head(entry)
    if entry.expires_at is not None:
        head["expiresAt"] = format_timestamp(entry.expires_at)
    if keyed_hash:
        head["keyedHash"] = True
    if not include_value:
        return str(_dumps(head))
    return _with_value(head, entry.data, entry.content_type)


def record_json(record: HistoryRecord, *, keyed_hash: bool = False) -> str:
    """One history record: like an entry, with ``deleted: true`` and no value for a
    deletion."""
    head = _head(record)
    if keyed_hash:
        head["keyedHash"] = True
    if record.deleted:
        head["deleted"] = True
        return str(_dumps(head))
    return _with_value(head, record.data, record.content_type)


def _int(obj: Mapping[str, Any], field: str) -> int:
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorruptEntryError(f"field {quoted(field)} is not an integer: {quoted(value)}")
    return value


def _problem(exc: Exception) -> str:
    """What was wrong with a decoded object, without Python's reprs (``KeyError('key')``)."""
    if isinstance(exc, KeyError) and exc.args:
        return f"missing field {quoted(exc.args[0])}"
    return str(exc) or type(exc).__name__


def decode_entry(obj: Mapping[str, Any], known: Mapping[str, bytes] | None = None) -> Entry:
    try:
        content_type = str(obj["contentType"])
        expires = obj.get("expiresAt")
        return Entry(
            key=str(obj["key"]),
            version=_int(obj, "version"),
            hash=str(obj["hash"]),
            data=_value_bytes(obj, content_type, str(obj["hash"]), known or {}),
            content_type=content_type,
            created_at=parse_timestamp(obj["createdAt"]),
            updated_at=parse_timestamp(obj["updatedAt"]),
            updated_by=UpdatedBy.from_dict(obj.get("updatedBy") or {}),
            expires_at=None if expires is None else parse_timestamp(expires),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CorruptEntryError(f"the server sent a malformed entry: {_problem(exc)}") from exc


def decode_record(obj: Mapping[str, Any]) -> HistoryRecord:
    try:
        content_type = str(obj["contentType"])
        deleted = obj.get("deleted", False) is True
        return HistoryRecord(
            key=str(obj["key"]),
            version=_int(obj, "version"),
            hash=str(obj["hash"]),
            data=b"" if deleted else _value_bytes(obj, content_type, str(obj["hash"]), {}),
            content_type=content_type,
            created_at=parse_timestamp(obj["createdAt"]),
            updated_at=parse_timestamp(obj["updatedAt"]),
            updated_by=UpdatedBy.from_dict(obj.get("updatedBy") or {}),
            deleted=deleted,
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CorruptEntryError(
            f"the server sent a malformed history record: {_problem(exc)}"
        ) from exc


def decode_lease(obj: Mapping[str, Any]) -> Lease:
    try:
        return Lease(
            name=str(obj["name"]),
            holder=str(obj["holder"]),
            token=_int(obj, "token"),
            expires_at=parse_timestamp(obj["expiresAt"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptEntryError(f"the server sent a malformed lease: {_problem(exc)}") from exc


# --- the run context ------------------------------------------------------------------


def updated_by_headers(who: UpdatedBy) -> dict[str, str]:
    """Headers carrying who writes (percent-encoded: header values are ASCII)."""
    return {
        header: quote(getattr(who, field), safe="")
        for field, header in CONTEXT_HEADERS.items()
        if getattr(who, field)
    }


def updated_by_from_headers(headers: Mapping[str, str], principal: str) -> UpdatedBy:
    """The writer as the server records it: the client's context, the server's principal."""
    fields = {
        field: unquote(headers.get(header, ""), errors="replace")
        for field, header in CONTEXT_HEADERS.items()
    }
    return UpdatedBy(principal=principal, **fields)


# --- errors ---------------------------------------------------------------------------


#: The engine's parameters that HTTP takes as body fields; the others are query parameters.
_BODY_FIELDS: Final = {
    "jq": "jq",
    "merge": "merge",
    "patch": "patch",
    "to_version": "version",
    "ttl": "ttl",
    "token": "token",
    "holder": "holder",
    "fencing": "fencing",
}


def http_param(param: str) -> str:
    """A parameter the engine names as the HTTP API spells it: a body field (``"jq"``)
    or a query parameter (``?limit=``)."""
    field = _BODY_FIELDS.get(param)
    return f"the {quoted(field)} field" if field is not None else f"?{param}="


def error_body(exc: StateboxError) -> str:
    """``{"error": {"kind", "message", ...}}`` — conflicts add ``index`` and ``currentVersion``.
    The message names parameters as HTTP does (:func:`http_param`)."""
    inner: dict[str, Any] = {"kind": exc.kind, "message": worded(exc, http_param)}
    if isinstance(exc, ConflictError):
        inner["index"] = exc.index
        inner["currentVersion"] = exc.current_version
    return dumps_envelope({"error": inner})


def error_from_body(status: int, body: bytes, where: str) -> StateboxError:
    """The exception a server's error response stands for."""
    try:
        check_depth(body, "error body")
        inner = json.loads(body)["error"]
        kind, message = str(inner["kind"]), str(inner["message"])
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace").strip()
        if status in (502, 503, 504):
            return BackendUnavailableError(f"{where} answered HTTP {status}: {text}")
        return StateboxError(f"{where} answered HTTP {status}: {text}")
    if status == 401:
        return UnauthenticatedError(
            f"{where} refused the request: {message} (set STATEBOX_TOKEN to a valid token)"
        )
    cls = error_class(kind)
    if issubclass(cls, ConflictError):
        index, current = inner.get("index", 0), inner.get("currentVersion", 0)
        return cls(
            message,
            index=index if isinstance(index, int) else 0,
            current_version=current if isinstance(current, int) else 0,
        )
    return cls(message)
