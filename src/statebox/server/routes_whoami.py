"""``GET /v1/whoami``: who the caller's token is and what it may do.

Answers ``{"name", "anonymous", "grants": [{"access", "scope", "namespace", "reveal"}]}``
for any valid token (401 without one when the server has tokens), so a client — the web
page — shows only the actions the grants allow. A server without tokens answers the
anonymous caller: ``"name": ""``, ``"anonymous": true`` and one grant that allows
everything (``write`` on ``*``/``*`` with ``reveal``), as that caller may do anything.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.responses import Response

from ..core.envelope import dumps_envelope
from ..web import Answer, Router
from .auth import Access, Grant, Principal
from .call import Call
from .state import json_response

__all__ = ["router"]

router = Router("whoami")

#: The one grant the anonymous caller has, in effect.
_EVERYTHING = Grant(Access.WRITE, "*", "*", reveal=True)


class GrantShown(msgspec.Struct, kw_only=True):
    access: Literal["read", "write"]
    scope: str
    namespace: str
    reveal: bool


class WhoamiResult(msgspec.Struct, kw_only=True):
    name: str
    anonymous: bool
    grants: list[GrantShown]


def whoami_data(principal: Principal) -> dict[str, object]:
    """The answer of ``GET /v1/whoami`` for ``principal``."""
    grants = (_EVERYTHING,) if principal.unrestricted else principal.grants
    return {
        "name": principal.name,
        "anonymous": principal.unrestricted,
        "grants": [
            {
                "access": grant.access.value,
                "scope": grant.scope,
                "namespace": grant.namespace,
                "reveal": grant.reveal,
            }
            for grant in grants
        ],
    }


@router.get(
    "/v1/whoami",
    summary="the calling token: its name and grants",
    responses={200: Answer(WhoamiResult)},
)
async def whoami(call: Call) -> Response:
    return json_response(dumps_envelope(whoami_data(call.principal)))
