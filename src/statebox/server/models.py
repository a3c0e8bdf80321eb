"""What the API's answers look like, and the parameters many routes share: the models
the OpenAPI document is generated from (:mod:`.openapi`).

The answers themselves are the engine's envelopes (``envelope_json(result)``, the line
the CLI prints); these models describe them, and the schemathesis run
(tests/test_schemathesis.py) checks every answer against them. A field with a default
may be absent; ``UNSET`` marks one that is absent rather than null.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..web import Int64, Version
from ..web.fields import After

__all__ = [
    "OPERATIONS_SCHEMA",
    "SCOPES",
    "AppliedBatches",
    "AppliedResult",
    "ChangeToken",
    "DeleteOperation",
    "DeleteResult",
    "DiffResult",
    "Entries",
    "Entry",
    "Error",
    "Fence",
    "GetResult",
    "HistoryResult",
    "IfMatch",
    "KeyPath",
    "KeyspaceDeleteResult",
    "KeyspacesResult",
    "LeasePath",
    "LeaseResult",
    "ListResult",
    "OneEntry",
    "Preconditions",
    "PurgeResult",
    "Records",
    "SetOperation",
    "SetResult",
    "SpacePath",
    "TransactionResult",
    "WatchResult",
]

Scope = Literal["dag", "root_dag", "run", "global", "custom", "statebox"]
SCOPES: tuple[str, ...] = typing.get_args(Scope)
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
#: Set (true) when ``value`` is a secret keyspace's, masked as ``"***"``: asked without
#: ``?reveal=true``.
Masked = (
    Annotated[bool, Meta(description='The value is secret and masked ("***"); see ?reveal=true.')]
    | UnsetType
)


# --- parameters -------------------------------------------------------------------------


class SpacePath(msgspec.Struct):
    scope: Annotated[Scope, Meta(description="The entry's scope (SPEC §1).")]
    namespace: Annotated[
        str, Meta(min_length=1, description="The namespace (no '/' or '\\', not '.' or '..').")
    ]


class KeyPath(SpacePath):
    key: Annotated[
        str, Meta(min_length=1, description="The key; '/' separates levels and is sent unencoded.")
    ]


class LeasePath(msgspec.Struct):
    name: Annotated[str, Meta(min_length=1, description="The lease's name.")]


class Preconditions(msgspec.Struct, kw_only=True):
    """A write's guards as HTTP headers (412 when they do not hold)."""

    if_match: (
        Annotated[
            str,
            Meta(
                pattern=r'^\s*(W/)?("[0-9]{1,18}"|[0-9]{1,18})\s*$',
                description='Write only if the entry is at this version (its ETag, "3").',
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="If-Match")
    if_none_match: (
        Annotated[Literal["*"], Meta(description="`*`: write only if the key does not exist.")]
        | None
    ) = msgspec.field(default=None, name="If-None-Match")


class IfMatch(msgspec.Struct, kw_only=True):
    """The guard of a write that cannot create (412 when it does not hold)."""

    if_match: (
        Annotated[
            str,
            Meta(
                pattern=r'^\s*(W/)?("[0-9]{1,18}"|[0-9]{1,18})\s*$',
                description='Write only if the entry is at this version (its ETag, "3").',
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="If-Match")


# --- errors -----------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, kw_only=True):
    kind: str
    message: str
    index: Int64 | UnsetType = UNSET
    currentVersion: Int64 | UnsetType = UNSET


class Error(msgspec.Struct):
    """Every refusal: `{"error": {"kind", "message"}}` (`index`: the operation of a
    transaction; `currentVersion`: on a conflict)."""

    error: ErrorDetail


# --- SPEC §4 and §5 envelopes -------------------------------------------------------------


class _Addressed(msgspec.Struct, kw_only=True):
    operation: str
    scope: str
    namespace: str


class GetResult(_Addressed):
    key: str
    found: bool
    version: Version | UnsetType = UNSET
    hash: str | UnsetType = UNSET
    expiresAt: str | UnsetType = UNSET
    value: Any = UNSET
    contentType: str | UnsetType = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    masked: Masked = UNSET


class SetResult(_Addressed):
    key: str
    version: Version
    hash: str
    created: bool
    value: Any = UNSET
    contentType: str | UnsetType = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    masked: Masked = UNSET


class DiffResult(_Addressed):
    key: str
    changed: bool
    foundPrevious: bool
    current: Any
    previousVersion: Version | UnsetType = UNSET
    version: Version | UnsetType = UNSET
    hash: str | UnsetType = UNSET
    previous: Any = UNSET
    masked: Masked = UNSET


class DeleteResult(_Addressed):
    key: str
    deleted: bool


class ListedEntry(msgspec.Struct, kw_only=True):
    scope: str
    namespace: str
    key: str
    version: Version
    hash: str
    createdAt: str
    updatedAt: str
    updatedBy: dict[str, str] | UnsetType = UNSET
    expiresAt: str | UnsetType = UNSET
    value: Any = UNSET
    contentType: str | UnsetType = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    masked: Masked = UNSET


class ListResult(_Addressed):
    entries: list[ListedEntry]
    prefix: str | UnsetType = UNSET


class HistoryVersion(msgspec.Struct, kw_only=True):
    version: Version
    hash: str
    createdAt: str
    updatedAt: str
    updatedBy: dict[str, str]
    deleted: bool | UnsetType = UNSET
    expiresAt: str | UnsetType = UNSET
    value: Any = UNSET
    contentType: str | UnsetType = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    masked: Masked = UNSET


class HistoryResult(_Addressed):
    key: str
    versions: list[HistoryVersion]


class KeyspaceInfo(msgspec.Struct, kw_only=True):
    scope: str
    namespace: str
    entries: Annotated[int, Meta(ge=1)]
    updatedAt: str


class KeyspacesResult(msgspec.Struct, kw_only=True):
    operation: str
    keyspaces: list[KeyspaceInfo]
    scope: str | UnsetType = UNSET
    next: str | UnsetType = UNSET


class KeyspaceDeleteResult(_Addressed):
    deleted: Count


class TransactionStep(msgspec.Struct, kw_only=True):
    index: Count
    operation: str
    key: str


class TransactionResult(_Addressed):
    results: list[TransactionStep]


class LeaseResult(msgspec.Struct, kw_only=True):
    operation: str
    action: str
    name: str
    holder: str
    token: Version
    expiresAt: str
    released: bool | UnsetType = UNSET


class WatchEvent(msgspec.Struct, kw_only=True):
    key: str
    event: Literal["created", "updated", "deleted"]
    previousVersion: Count
    version: Count
    deleted: bool
    hash: str | UnsetType = UNSET
    value: Any = UNSET
    contentType: str | UnsetType = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    masked: Masked = UNSET


class WatchResult(_Addressed):
    events: list[WatchEvent]
    timedOut: bool
    key: str | UnsetType = UNSET
    prefix: str | UnsetType = UNSET


class PurgeResult(msgspec.Struct):
    operation: str
    purged: Count


# --- the entries API (the remote store's protocol) ----------------------------------------


class Entry(msgspec.Struct, kw_only=True):
    """A whole entry, as the backend contract holds it."""

    key: str
    version: Version
    hash: str
    contentType: str
    createdAt: str
    updatedAt: str
    updatedBy: dict[str, str]
    value: Any = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    expiresAt: str | UnsetType = UNSET
    deleted: bool | UnsetType = UNSET
    keyedHash: (
        Annotated[
            bool,
            Meta(
                description="Of a secret keyspace: the hash is keyed with the server's key "
                "(the receiver cannot check the value against it)."
            ),
        ]
        | UnsetType
    ) = UNSET


class OneEntry(msgspec.Struct):
    entry: Entry


class Entries(msgspec.Struct):
    entries: list[Entry]


class Records(msgspec.Struct):
    records: list[Entry]


class AppliedEntry(msgspec.Struct):
    previous: Entry | None
    current: Entry | None


class AppliedResult(msgspec.Struct):
    results: list[AppliedEntry]


class AppliedBatches(msgspec.Struct):
    """Each batch's results, in the order of the request's batches."""

    batches: list[AppliedResult]


class ChangeToken(msgspec.Struct):
    token: Int64


# --- transaction operations (documented here; read by wire.codec.transaction_operation) --


class Fence(msgspec.Struct, forbid_unknown_fields=True):
    """A fenced write: the lease and the token its acquire returned."""

    lease: Annotated[str, Meta(min_length=1)]
    token: Annotated[int, Meta(ge=1, le=2**63 - 1)]


class SetOperation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Set `key` to `value` (`expectedVersion` and `createOnly` are accepted as
    aliases of the snake_case names)."""

    op: Literal["set"]
    key: str
    value: Any
    contentType: str | UnsetType = UNSET
    encoding: Literal["base64"] | UnsetType = UNSET
    expected_version: After | UnsetType = UNSET
    expectedVersion: After | UnsetType = UNSET
    create_only: bool | UnsetType = UNSET
    createOnly: bool | UnsetType = UNSET
    ttl: float | UnsetType = UNSET
    fencing: Fence | UnsetType = UNSET


class DeleteOperation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Delete `key` (missing is not an error)."""

    op: Literal["delete"]
    key: str
    expected_version: After | UnsetType = UNSET
    expectedVersion: After | UnsetType = UNSET
    fencing: Fence | UnsetType = UNSET


#: A list of operations as the schema shows it (each one set or delete).
OPERATIONS_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"$ref": "#/components/schemas/SetOperation"},
        {"$ref": "#/components/schemas/DeleteOperation"},
    ]
}
