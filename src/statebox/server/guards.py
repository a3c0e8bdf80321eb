"""What the key routes share: versions as ETags, If-Match / If-None-Match as guards
(412 when a header's guard fails, 409 when the query's or body's does), and fencing
authorized before any write (:func:`~statebox.server.routes_leases.authorize_fence`)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from msgspec import Meta
from starlette.responses import Response

from ..core import params
from ..core.envelope import envelope_json
from ..core.errors import ConflictError, FencingError, InvalidRequestError, quoted
from ..core.leases import Fencing
from ..core.results import SetResult
from ..web import Flag, Query
from .call import Call
from .routes_leases import authorize_fence
from .state import json_response

__all__ = [
    "ETAG",
    "GUARD",
    "KEY_PATH",
    "NEEDS_REVEAL",
    "Reveal",
    "RevealQuery",
    "authorized_fencing",
    "doc",
    "etag",
    "fencing_query",
    "guarded_write",
    "no_create_only",
    "preconditions",
    "written",
]

KEY_PATH: Final = "/{scope}/{namespace}/{key:path}"
#: The answer header of a route that reads or writes one version.
ETAG: Final = {"ETag": "The version, quoted."}
GUARD: Final = "Guard (409 on conflict; 0: the key must not exist)."


#: The description of a route whose answer depends on the stored value (diff, update).
NEEDS_REVEAL: Final = (
    "On a secret keyspace this needs a grant with reveal: true there (else 403), with "
    "?reveal=true or without: its answer depends on the stored value, so it would confirm "
    "a guess of it. Set, delete and transactions need only the write grant."
)


def etag(version: int) -> dict[str, str]:
    return {"etag": f'"{version}"'}


def fencing_query(call: Call, lease: str | None, token: int | None) -> Fencing | None:
    fencing = params.fencing_parts(lease, token, "?lease=", "?token=")
    if fencing is not None:
        authorize_fence(call, fencing[0])
    return fencing


def authorized_fencing(call: Call, fencing: Fencing | None) -> Fencing | None:
    if fencing is not None:
        authorize_fence(call, fencing[0])
    return fencing


def preconditions(call: Call, body_version: int | None) -> tuple[int | None, bool, bool]:
    """``(expected_version, create_only_from_header, guarded_by_header)``."""
    headers = call.headers
    expected = body_version
    if_match, if_none_match = headers.get("if-match"), headers.get("if-none-match")
    if if_match is not None:
        text = if_match.strip().removeprefix("W/")
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        if not (text.isascii() and text.isdigit()):  # "²" is a digit int() refuses
            raise InvalidRequestError(
                f"invalid If-Match {quoted(if_match)}: send the ETag of the version you read, "
                'e.g. "3"'
            )
        if body_version is not None:
            raise InvalidRequestError("give an expected version or If-Match, not both")
        expected = params.expected_version(text, "If-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise InvalidRequestError('If-None-Match on a write must be "*" (create only)')
    header = if_match is not None or if_none_match is not None
    return expected, if_none_match is not None, header


def no_create_only(create_only: bool, what: str) -> None:
    if create_only:
        raise InvalidRequestError(f"If-None-Match does not apply to {what}")


async def guarded_write(call: Call, header: bool, fn: Any, *, alone: bool = False) -> Any:
    try:
        return await call.state.write(fn, alone=alone)
    except FencingError:
        raise
    except ConflictError as exc:
        if header:
            raise exc.as_precondition_failed() from exc
        raise


def written(result: SetResult, reveal: bool = False) -> Response:
    return json_response(envelope_json(result, reveal), headers=etag(result.version))


def doc(text: str) -> Meta:
    return Meta(description=text)


#: ``?reveal=true`` of a route that answers values (checked by ``Call.reveal``).
Reveal = Annotated[
    Flag,
    doc(
        "Show the values of a secret keyspace instead of masking them (needs a grant "
        "with reveal: true on it, else 403)."
    ),
]


class RevealQuery(Query):
    """The query of a write that answers the value it wrote (update, rollback, diff)."""

    reveal: Reveal = False
