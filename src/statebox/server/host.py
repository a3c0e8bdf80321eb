"""What the server offers the services an extension runs beside the app
(:class:`statebox.web.Host`): a :class:`~statebox.web.Caller` for a token a service
received (a gRPC call's ``dapr-api-token``), authenticated and authorized exactly as an
HTTP request's bearer token is; the body limit; and the declaration of secret keyspaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..core.errors import StateboxError
from ..core.model import Keyspace, RunContext
from ..store import StateStore
from .auth import Principal
from .call import authorize, authorize_reveal, check_batch, read_on
from .state import NO_CONTEXT, ServerState

__all__ = ["ServerHost", "TokenCaller"]

T = TypeVar("T")


class TokenCaller:
    """The engine acting for ``principal``, as a request's :class:`~.call.Call` does
    (its writes record the principal's name as the writer; no client context headers)."""

    __slots__ = ("_context", "principal", "state")

    def __init__(self, state: ServerState, principal: Principal) -> None:
        self.state = state
        self.principal = principal
        self._context = RunContext(principal=principal.name or None)

    def authorize(self, access: str, keyspace: Keyspace) -> None:
        authorize(self.principal, access, keyspace)

    def secret(self, keyspace: Keyspace) -> bool:
        return self.state.secret_policy.is_secret(keyspace)

    def authorize_reveal(self, keyspace: Keyspace, what: str = "", hint: str = "") -> None:
        authorize_reveal(self.principal, keyspace, what, hint)

    def store(self) -> StateStore:
        return self.state.store_for(self._context)

    def reader(self) -> StateStore:
        return self.state.store_for(NO_CONTEXT)

    async def read(self, work: Callable[[], T], *, alone: bool = False) -> T:
        return await read_on(self.state, work, alone=alone)

    async def write(self, work: Callable[[], T], *, alone: bool = False) -> T:
        return await self.state.write(work, alone=alone)

    def batch(self, count: int, size: int = 0) -> bool:
        """Check ``count`` operations against ``max_txn_ops``; whether they (``size``
        bytes of values: a gRPC call has no request body the server read) are written
        off the event loop."""
        return check_batch(self.state, count, size)

    @property
    def max_txn_ops(self) -> int:
        return self.state.config.max_txn_ops


class ServerHost:
    """The server as a service sees it."""

    __slots__ = ("state",)

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def caller(self, token: str | None) -> TokenCaller:
        """The engine for the principal of ``token`` (an UnauthenticatedError when the
        server has tokens and ``token`` is missing or unknown)."""
        return TokenCaller(self.state, self.state.authenticate_token(token))

    @property
    def max_body_bytes(self) -> int:
        return self.state.config.max_body_bytes

    def declare_secret(self, keyspace: Keyspace) -> None:
        """Declared through the engine (one read of the store's registry, and a write
        the first time): meant for start-up, it blocks while it runs."""
        self.state.declare_secret(keyspace)

    def error_message(self, exc: StateboxError) -> str:
        """The message a client may be told for ``exc`` (no storage location, no key
        file; what is withheld is logged under a request id the message names): the
        gRPC face's answers, as the HTTP faces' are given."""
        return self.state.error_message(exc)


if TYPE_CHECKING:
    from ..web import Caller, Host

    def _a_token_caller_is_a_caller(caller: TokenCaller) -> Caller:
        return caller

    def _the_server_is_a_host(host: ServerHost) -> Host:
        return host
