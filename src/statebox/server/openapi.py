"""The OpenAPI 3.1 description of the API, served at ``/openapi.json``.

Written by hand next to the routes (a test checks that both list the same operations,
and a schemathesis run checks every answer against it).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["build_schema"]

JSON: Final = "application/json"

_SCOPE = {
    "name": "scope",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["dag", "root_dag", "run", "global", "custom"]},
    "description": "The entry's scope (SPEC §1).",
}
_NAMESPACE = {
    "name": "namespace",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "The namespace (no '/' or '\\\\', not '.' or '..').",
}
_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "The key; '/' separates levels and is sent unencoded.",
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": schema,
        "description": description,
    }


# Every backend stores versions, tokens and limits in 64 bits; larger numbers are a 400.
_INT64_MAX: Final = 2**63 - 1
_INT = {"type": "integer", "minimum": -(2**63), "maximum": _INT64_MAX}
_INT0 = {"type": "integer", "minimum": 0, "maximum": _INT64_MAX}
_INT1 = {"type": "integer", "minimum": 1, "maximum": _INT64_MAX}
_BOOL = {"type": "boolean"}
_SECONDS = {"type": "number", "exclusiveMinimum": 0}
_LEASE_TTL = {"type": "number", "minimum": 1e-9}  # at least a nanosecond once rounded
_IF_MATCH = _header(
    "If-Match",
    'Write only if the entry is at this version (its ETag, "3").',
    {"type": "string", "pattern": r'^\s*(W/)?("[0-9]{1,18}"|[0-9]{1,18})\s*$'},
)
_IF_NONE_MATCH = _header(
    "If-None-Match", "`*`: write only if the key does not exist.", {"type": "string", "enum": ["*"]}
)
_FENCING = {
    "type": "object",
    "required": ["lease", "token"],
    "properties": {"lease": {"type": "string"}, "token": _INT},
    "additionalProperties": False,
}
_ANY: dict[str, Any] = {}
_ETAG = {"ETag": {"schema": {"type": "string"}, "description": "The version, quoted."}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _closed(required: list[str], **properties: Any) -> dict[str, Any]:
    """A request body object: the server refuses fields it does not know (400)."""
    return {**_object(required, **properties), "additionalProperties": False}


_ADDRESS = {
    "operation": {"type": "string"},
    "scope": {"type": "string"},
    "namespace": {"type": "string"},
}
_VALUE_FIELDS = {
    "value": _ANY,
    "contentType": {"type": "string"},
    "encoding": {"type": "string", "enum": ["base64"]},
}
_TIMES = {
    "createdAt": {"type": "string"},
    "updatedAt": {"type": "string"},
    "updatedBy": {"type": "object", "additionalProperties": {"type": "string"}},
}
#: Only on an entry with a TTL (history: on its current version).
_EXPIRES = {"expiresAt": {"type": "string"}}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object(
        ["error"],
        error=_object(
            ["kind", "message"],
            kind={"type": "string"},
            message={"type": "string"},
            index=_INT,
            currentVersion=_INT,
        ),
    ),
    "GetResult": _object(
        ["operation", "scope", "namespace", "key", "found"],
        **_ADDRESS,
        key={"type": "string"},
        found=_BOOL,
        version=_INT1,
        hash={"type": "string"},
        **_EXPIRES,
        **_VALUE_FIELDS,
    ),
    "SetResult": _object(
        ["operation", "scope", "namespace", "key", "version", "hash", "created"],
        **_ADDRESS,
        key={"type": "string"},
        version=_INT1,
        hash={"type": "string"},
        created=_BOOL,
        **_VALUE_FIELDS,
    ),
    "DiffResult": _object(
        ["operation", "scope", "namespace", "key", "changed", "foundPrevious", "current"],
        **_ADDRESS,
        key={"type": "string"},
        changed=_BOOL,
        foundPrevious=_BOOL,
        previousVersion=_INT1,
        version=_INT1,
        hash={"type": "string"},
        previous=_ANY,
        current=_ANY,
    ),
    "DeleteResult": _object(
        ["operation", "scope", "namespace", "key", "deleted"],
        **_ADDRESS,
        key={"type": "string"},
        deleted=_BOOL,
    ),
    "ListResult": _object(
        ["operation", "scope", "namespace", "entries"],
        **_ADDRESS,
        prefix={"type": "string"},
        entries={
            "type": "array",
            "items": _object(
                ["scope", "namespace", "key", "version", "hash", "createdAt", "updatedAt"],
                scope={"type": "string"},
                namespace={"type": "string"},
                key={"type": "string"},
                version=_INT1,
                hash={"type": "string"},
                **_TIMES,
                **_EXPIRES,
                **_VALUE_FIELDS,
            ),
        },
    ),
    "HistoryResult": _object(
        ["operation", "scope", "namespace", "key", "versions"],
        **_ADDRESS,
        key={"type": "string"},
        versions={
            "type": "array",
            "items": _object(
                ["version", "hash", "createdAt", "updatedAt", "updatedBy"],
                version=_INT1,
                hash={"type": "string"},
                deleted=_BOOL,
                **_TIMES,
                **_EXPIRES,
                **_VALUE_FIELDS,
            ),
        },
    ),
    "KeyspacesResult": _object(
        ["operation", "keyspaces"],
        operation={"type": "string"},
        scope={"type": "string"},
        keyspaces={
            "type": "array",
            "items": _object(
                ["scope", "namespace", "entries", "updatedAt"],
                scope={"type": "string"},
                namespace={"type": "string"},
                entries=_INT1,
                updatedAt={"type": "string"},
            ),
        },
        next={"type": "string"},
    ),
    "KeyspaceDeleteResult": _object(
        ["operation", "scope", "namespace", "deleted"], **_ADDRESS, deleted=_INT0
    ),
    "TransactionResult": _object(
        ["operation", "scope", "namespace", "results"],
        **_ADDRESS,
        results={"type": "array", "items": _object(["index", "operation", "key"])},
    ),
    "LeaseResult": _object(
        ["operation", "action", "name", "holder", "token", "expiresAt"],
        operation={"type": "string"},
        action={"type": "string"},
        name={"type": "string"},
        holder={"type": "string"},
        token=_INT1,
        expiresAt={"type": "string"},
        released=_BOOL,
    ),
    "WatchResult": _object(
        ["operation", "scope", "namespace", "events", "timedOut"],
        **_ADDRESS,
        key={"type": "string"},
        prefix={"type": "string"},
        events={
            "type": "array",
            "items": _object(
                ["key", "event", "previousVersion", "version", "deleted"],
                key={"type": "string"},
                event={"type": "string", "enum": ["created", "updated", "deleted"]},
                previousVersion=_INT0,
                version=_INT0,
                hash={"type": "string"},
                deleted=_BOOL,
                **_VALUE_FIELDS,
            ),
        },
        timedOut=_BOOL,
    ),
    "Entry": _object(
        ["key", "version", "hash", "contentType", "createdAt", "updatedAt", "updatedBy"],
        key={"type": "string"},
        version=_INT1,
        hash={"type": "string"},
        contentType={"type": "string"},
        value=_ANY,
        encoding={"type": "string", "enum": ["base64"]},
        expiresAt={"type": "string"},
        deleted=_BOOL,
        **_TIMES,
    ),
    # expectedVersion and createOnly are accepted as aliases of the snake_case names.
    "Operation": {"oneOf": [_ref("SetOperation"), _ref("DeleteOperation")]},
    "SetOperation": _closed(
        ["op", "key", "value"],
        op={"const": "set"},
        key={"type": "string"},
        **_VALUE_FIELDS,
        expected_version=_INT,
        expectedVersion=_INT,
        create_only=_BOOL,
        createOnly=_BOOL,
        ttl={"type": "number"},
        fencing=_FENCING,
    ),
    "DeleteOperation": _closed(
        ["op", "key"],
        op={"const": "delete"},
        key={"type": "string"},
        expected_version=_INT,
        expectedVersion=_INT,
        fencing=_FENCING,
    ),
}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _answers(
    ok: str | dict[str, Any], *errors: int, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema = _ref(ok) if isinstance(ok, str) else ok
    success: dict[str, Any] = {"description": "OK", "content": {JSON: {"schema": schema}}}
    if headers:
        success["headers"] = headers
    out: dict[str, Any] = {"200": success}
    # Any operation may meet bad input, a missing or refused token (or a refused Origin),
    # an unroutable path, a Host this server does not answer to, a body over the limit,
    # or storage that is down.
    for status in sorted({400, 401, 403, 404, 413, 421, 422, 500, 503, *errors}):
        out[str(status)] = _error(status)
    return out


def _error(status: int) -> dict[str, Any]:
    return {"description": _REASONS[status], "content": {JSON: {"schema": _ref("Error")}}}


_REASONS: Final = {
    400: "Invalid reference or request",
    401: "Missing or invalid bearer token",
    403: "The token has no grant for this scope and namespace, or the Origin is not allowed",
    404: "Not found",
    408: "The request head (--header-timeout) or body (--body-timeout) did not arrive in "
    "time; the connection is closed",
    409: "Conflict: a version guard or a fence failed; nothing was written",
    412: "Precondition failed: If-Match / If-None-Match did not hold",
    413: "Request body or value too large, or too many operations in one transaction",
    415: "The body is not JSON (Content-Type must be application/json)",
    421: "The Host header names a host this server does not answer to",
    422: "Invalid value (also: JSON nested too deep)",
    429: "Too many open watches for this token",
    431: "The request line and headers are over --max-header-bytes; the connection is closed",
    500: "A stored record is corrupt",
    503: "The storage backend is unavailable, or the server has --max-connections "
    "connections open (that connection is closed)",
}

#: What any request may meet before it reaches its operation, from the connection limits
#: (:mod:`statebox.server.protocol`), which answer and close: merged into every operation.
_CONNECTION_LEVEL: Final = (408, 431, 503)


def _with_connection_level(paths: dict[str, Any]) -> dict[str, Any]:
    shared = {str(status): _error(status) for status in _CONNECTION_LEVEL}
    for methods in paths.values():
        for operation in methods.values():
            merged = {**shared, **operation["responses"]}  # an operation's own text wins
            operation["responses"] = dict(sorted(merged.items()))
    return paths


def _op(summary: str, responses: dict[str, Any], *params: dict[str, Any], **extra: Any) -> Any:
    if "requestBody" in extra:  # a body that is not JSON (a form, text/plain) is refused
        responses = {**responses, "415": _error(415)}
    out: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        out["parameters"] = list(params)
    out.update(extra)
    return out


def _paths() -> dict[str, Any]:
    keyed = (_SCOPE, _NAMESPACE, _KEY)
    spaced = (_SCOPE, _NAMESPACE)
    set_body = {
        "required": True,
        "description": "The value: JSON, or any other content type stored as bytes.",
        "content": {
            JSON: {"schema": _ANY},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    fence_query = (
        _query("lease", {"type": "string"}, "Fenced write: the lease name."),
        _query("token", _INT1, "Fenced write: the lease's fencing token."),
    )
    return {
        "/v1/kv/{scope}/{namespace}/{key}": {
            "get": _op(
                "get: read one entry (or a past version)",
                _answers("GetResult", headers=_ETAG),
                *keyed,
                _query("default", {"type": "string"}, "JSON text answered when missing."),
                _query("required", _BOOL, "Missing is 404 (wins over default)."),
                _query("version", _INT1, "A past version from the history."),
            ),
            "put": _op(
                "set: write one entry",
                _answers("SetResult", 409, 412, headers=_ETAG),
                *keyed,
                _query("expected_version", _INT, "Guard (409 on conflict)."),
                _query("create_only", _BOOL, "Conflict if the key exists (409)."),
                _query("ttl", _SECONDS, "Expire after this many seconds."),
                *fence_query,
                _IF_MATCH,
                _IF_NONE_MATCH,
                requestBody=set_body,
            ),
            "delete": _op(
                "delete: remove one entry (missing is not an error)",
                _answers("DeleteResult", 409, 412),
                *keyed,
                _query("expected_version", _INT, "Guard (409 on conflict)."),
                *fence_query,
                _IF_MATCH,
            ),
        },
        "/v1/kv/{scope}/{namespace}": {
            "get": _op(
                "list: entries by key prefix, ascending by bytes",
                _answers("ListResult"),
                *spaced,
                _query("prefix", {"type": "string"}, "A plain byte prefix of the keys."),
                _query("limit", _INT0, "At most this many (0: all)."),
                _query("after", {"type": "string", "minLength": 1}, "Continue after this key."),
                _query("include_values", _BOOL, "Include each value."),
            ),
            "delete": _op(
                "delete a keyspace: every entry of it at once (a write grant on it)",
                _answers("KeyspaceDeleteResult"),
                *spaced,
            ),
        },
        "/v1/keyspaces": {
            "get": _op(
                "keyspaces: those with live entries that the token may read, paged",
                _answers("KeyspacesResult"),
                _query(
                    "scope",
                    {"type": "string", "enum": ["dag", "root_dag", "run", "global", "custom"]},
                    "Only this scope.",
                ),
                _query("limit", _INT0, "At most this many (0: all)."),
                _query(
                    "after",
                    {"type": "string", "pattern": "^(dag|root_dag|run|global|custom)/[^/\\\\]+$"},
                    "Continue after this SCOPE/NAMESPACE (the previous page's next).",
                ),
            )
        },
        "/v1/diff/{scope}/{namespace}/{key}": {
            "post": _op(
                "diff: compare by hash, write when changed",
                _answers("DiffResult", 409, 412),
                *keyed,
                _IF_MATCH,
                requestBody=_fields_body(
                    "value",
                    "encoding",
                    "contentType",
                    "update",
                    "expected_version",
                    required=["value"],
                ),
            )
        },
        "/v1/update/{scope}/{namespace}/{key}": {
            "post": _op(
                "update: atomic read-modify-write with jq, a merge patch or a JSON patch",
                _answers("SetResult", 409, 412, headers=_ETAG),
                *keyed,
                _IF_MATCH,
                requestBody=_fields_body(
                    "jq",
                    "merge",
                    "patch",
                    "default",
                    "ttl",
                    "expected_version",
                    "fencing",
                    # exactly one transform
                    one_of=[{"required": [name]} for name in ("jq", "merge", "patch")],
                ),
            )
        },
        "/v1/rollback/{scope}/{namespace}/{key}": {
            "post": _op(
                "rollback: write a kept past version back as a new version",
                _answers("SetResult", 409, 412, headers=_ETAG),
                *keyed,
                _IF_MATCH,
                requestBody=_fields_body(
                    "version", "expected_version", "fencing", required=["version"]
                ),
            )
        },
        "/v1/history/{scope}/{namespace}/{key}": {
            "get": _op(
                "history: kept versions, newest first, deletions included",
                _answers("HistoryResult"),
                *keyed,
                _query("limit", _INT0, "At most this many (0: all kept)."),
                _query("include_values", _BOOL, "Include each version's value."),
            )
        },
        "/v1/txn/{scope}/{namespace}": {
            "post": _op(
                "transaction: set/delete operations, all or nothing",
                _answers("TransactionResult", 409),
                *spaced,
                requestBody=_body(
                    _closed(
                        ["ops"],
                        ops={"type": "array", "items": _ref("Operation")},
                        fencing=_FENCING,
                    )
                ),
            )
        },
        "/v1/watch/{scope}/{namespace}": {
            "get": _op(
                "watch (long poll): wait until a key or a prefix changes",
                _answers("WatchResult", 429),
                *spaced,
                *_WATCH_QUERY,
                _WAIT_TIMEOUT,
            )
        },
        "/v1/events/{scope}/{namespace}": {
            "get": _op(
                "watch (server-sent events): every change as it happens",
                {
                    **_answers("WatchResult", 429),
                    "200": {
                        "description": "An event stream: event created|updated|deleted, "
                        "data: the event's envelope",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                },
                *spaced,
                *_WATCH_QUERY,
                _WAIT_TIMEOUT,
            )
        },
        **_lease_paths(),
        "/v1/purge": {
            "post": _op(
                "purge expired entries now (needs a write grant on every namespace)",
                _answers(
                    _object(["operation", "purged"], operation={"type": "string"}, purged=_INT0)
                ),
                requestBody=_body(_closed([], limit=_INT1)),
            )
        },
        **_entry_paths(keyed, spaced),
        **_meta_paths(),
    }


_UPDATE_FIELDS: Final[dict[str, Any]] = {
    **_VALUE_FIELDS,
    "update": _BOOL,
    "expected_version": _INT,
    "jq": {"type": "string"},
    "merge": _ANY,
    "patch": {"type": "array", "items": {"type": "object"}},
    "default": _ANY,
    "ttl": _SECONDS,
    "fencing": _FENCING,
    "version": _INT1,
}


def _fields_body(
    *names: str, required: list[str] | None = None, one_of: list[Any] | None = None
) -> dict[str, Any]:
    schema = _closed(required or [], **{n: _UPDATE_FIELDS[n] for n in names})
    if one_of:
        schema["oneOf"] = one_of
    return _body(schema)


# No maximum here: a longer wait is cut to the server's --max-wait (60 s by default).
_WAIT_TIMEOUT: Final = _query(
    "timeout", {"type": "number", "minimum": 0}, "Seconds (at most the server's --max-wait)."
)
_WATCH_QUERY: Final = (
    _query("key", {"type": "string"}, "Watch this key (or give prefix)."),
    _query("prefix", {"type": "string"}, "Watch every key under this prefix."),
    _query("after_version", _INT0, "The version already known."),
    _query("include_values", _BOOL, "Include the new values."),
)


def _lease_paths() -> dict[str, Any]:
    name = {"type": "string", "minLength": 1}
    holder = {"type": "string", "minLength": 1}
    token = {"holder": holder, "token": _INT1}
    return {
        "/v1/leases/acquire": {
            "post": _op(
                "acquire a lease (409 while another holder's lease is live)",
                _answers("LeaseResult", 409),
                requestBody=_body(
                    _closed(["name", "ttl"], name=name, ttl=_LEASE_TTL, holder=holder)
                ),
            )
        },
        "/v1/leases/renew": {
            "post": _op(
                "renew a live lease",
                _answers("LeaseResult", 409),
                requestBody=_body(
                    _closed(["name", "ttl", "holder", "token"], name=name, ttl=_LEASE_TTL, **token)
                ),
            )
        },
        "/v1/leases/release": {
            "post": _op(
                "release a lease early",
                _answers("LeaseResult", 409),
                requestBody=_body(_closed(["name", "holder", "token"], name=name, **token)),
            )
        },
        "/v1/leases/{name}": {
            "get": _op(
                "the latest lease on a name (404: never acquired)",
                _answers("LeaseResult"),
                {"name": "name", "in": "path", "required": True, "schema": name},
            )
        },
    }


def _entry_paths(keyed: tuple[Any, ...], spaced: tuple[Any, ...]) -> dict[str, Any]:
    entries = {"type": "array", "items": _ref("Entry")}
    maybe_entry = {"oneOf": [_ref("Entry"), {"type": "null"}]}
    return {
        "/v1/entries/{scope}/{namespace}/{key}": {
            "get": _op(
                "entries API: one whole entry (404 when missing)",
                _answers(_object(["entry"], entry=_ref("Entry"))),
                *keyed,
            )
        },
        "/v1/entries/{scope}/{namespace}": {
            "get": _op(
                "entries API: whole entries by prefix",
                _answers(_object(["entries"], entries=entries)),
                *spaced,
                _query("prefix", {"type": "string"}, "Key prefix."),
                _query("after", {"type": "string", "minLength": 1}, "Continue after this key."),
                _query("limit", _INT0, "At most this many (0: all)."),
                _query("include_values", _BOOL, "Include the values."),
            )
        },
        "/v1/records/{scope}/{namespace}/{key}": {
            "get": _op(
                "entries API: history records (or the one of a version)",
                _answers(_object(["records"], records=entries)),
                *keyed,
                _query("limit", _INT0, "At most this many (0: all)."),
                _query("version", _INT1, "Only the newest record of this version."),
            )
        },
        "/v1/apply/{scope}/{namespace}": {
            "post": _op(
                "entries API: apply mutations all or nothing; answers the entries before "
                "and after each",
                _answers(
                    _object(
                        ["results"],
                        results={
                            "type": "array",
                            "items": _object(
                                ["previous", "current"], previous=maybe_entry, current=maybe_entry
                            ),
                        },
                    ),
                    409,
                ),
                *spaced,
                requestBody=_body(
                    _closed(
                        ["ops"],
                        ops={"type": "array", "minItems": 1, "items": _ref("Operation")},
                    )
                ),
            )
        },
        "/v1/changes/{scope}/{namespace}": {
            "get": _op(
                "entries API: the change token; with after=, wait until it moves",
                _answers(_object(["token"], token=_INT), 429),
                *spaced,
                _query("after", _INT, "Wait until the token differs."),
                _WAIT_TIMEOUT,
            )
        },
    }


def _meta_paths() -> dict[str, Any]:
    text = {"schema": {"type": "string"}}
    # Public, but a foreign Host or Origin is refused here too (a web page must not read
    # even the metrics).
    refused = {"403": _error(403), "421": _error(421)}
    return {
        "/healthz": {
            "get": {
                "summary": "liveness and storage check",
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {JSON: {"schema": _object(["ok"])}}},
                    "503": {
                        "description": "storage unavailable, or the server has "
                        "--max-connections connections open",
                        "content": {JSON: {"schema": _ref("Error")}},
                    },
                    **refused,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": text}},
                    **refused,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {JSON: {"schema": {}}}},
                    **refused,
                },
            }
        },
        "/docs": {
            "get": {
                "summary": "interactive documentation",
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {"text/html": text}},
                    **refused,
                },
            }
        },
    }


def build_schema(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "statebox",
            "version": version,
            "description": "Persistent state for workflows: every operation of the statebox "
            "engine over HTTP. Answers are the operations' JSON envelopes; errors are "
            '{"error": {"kind", "message"}}.',
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": _with_connection_level(_paths()),
    }
