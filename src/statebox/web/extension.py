"""What a face adds to ``statebox serve`` without the server importing it: an
:class:`Extension`.

A face (the Dapr API, say) names a module in the ``statebox.serve_extensions`` entry
point group (:data:`EXTENSION_GROUP`). That module has two functions::

    def add_options(parser: argparse.ArgumentParser) -> None   # cheap imports only
    def extension(args: argparse.Namespace) -> Extension | None

``add_options`` adds the face's options to ``statebox serve`` (``statebox --help`` builds
that parser, so it imports nothing heavy); ``extension`` is called with the parsed
options when the server starts, and says what the face adds (``None``: nothing this
time): routers mounted on the app (as the ``statebox.routers`` entry points add them),
more ports serving the same app, services run beside the app for its lifetime (a gRPC
server), keyspaces to declare secret, and lines to print at start-up.

A route or a service acts on the store through a :class:`Caller`: the engine acting for
one authenticated principal, with that principal's grants. A route's
:class:`~statebox.web.RequestView` is one; a service gets one for a token it received
from :meth:`Host.caller`. Neither ever sees the server itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from .routing import Router

if TYPE_CHECKING:
    from ..core.errors import StateboxError
    from ..core.model import Keyspace
    from ..store import StateStore

__all__ = ["EXTENSION_GROUP", "Caller", "Extension", "Host", "Service"]

T = TypeVar("T")

#: The entry point group naming the modules that extend ``statebox serve``.
EXTENSION_GROUP: Final = "statebox.serve_extensions"


class Caller(Protocol):
    """The engine acting for one authenticated principal."""

    def authorize(self, access: str, keyspace: Keyspace) -> None:
        """A :class:`~statebox.core.errors.PermissionDeniedError` unless the principal
        has the ``access`` grant (``"read"`` or ``"write"``) on ``keyspace``."""
        ...

    def secret(self, keyspace: Keyspace) -> bool:
        """Whether ``keyspace``'s values are secret (sealed at rest, masked in answers)."""
        ...

    def authorize_reveal(self, keyspace: Keyspace, what: str = "", hint: str = "") -> None:
        """A :class:`~statebox.core.errors.PermissionDeniedError` unless the principal
        may see the values of ``keyspace`` (a secret one): ``what`` names the operation
        that needs them, ``hint`` what to do instead."""
        ...

    def store(self) -> StateStore:
        """The engine for a write: it records the principal as the writer."""
        ...

    def reader(self) -> StateStore:
        """The engine for a read."""
        ...

    async def read(self, work: Callable[[], T], *, alone: bool = False) -> T:
        """Run a blocking read where the server runs reads (on some stores, a small
        read runs on the event loop itself); ``alone``: it may take long (many keys, a
        whole keyspace), so it always runs on a worker thread."""
        ...

    async def write(self, work: Callable[[], T], *, alone: bool = False) -> T:
        """Run a blocking write where the server runs writes (on some stores, a small
        write is committed on the event loop with others); ``alone``: it may take long,
        so it runs on the writer thread in a transaction of its own."""
        ...

    def batch(self, count: int, size: int = 0) -> bool:
        """Check a transaction of ``count`` operations against the server's
        ``--max-txn-ops`` (an :class:`~statebox.core.errors.InvalidRequestError` over
        it, before anything is written); whether it, ``size`` bytes of values, is big
        enough to be written off the event loop (``write(..., alone=True)``)."""
        ...

    @property
    def max_txn_ops(self) -> int:
        """The most operations one transaction may have (``--max-txn-ops``)."""
        ...


class Host(Protocol):
    """What the server offers a service it runs."""

    def caller(self, token: str | None) -> Caller:
        """The engine acting for the principal of ``token`` (as an HTTP bearer token is
        authenticated): an :class:`~statebox.core.errors.UnauthenticatedError` for a
        missing or unknown one when the server has tokens; without tokens, the
        anonymous principal, whatever ``token`` is."""
        ...

    @property
    def max_body_bytes(self) -> int:
        """The largest request the server accepts (``--max-body-bytes``)."""
        ...

    def declare_secret(self, keyspace: Keyspace) -> None:
        """Make ``keyspace`` secret from now on: its values sealed at rest and masked in
        statebox's own answers, in this process and in every other one on the store."""
        ...

    def error_message(self, exc: StateboxError) -> str:
        """The message a client may be told for ``exc`` (a face's own error tells what
        it stands for by its ``cause``), as the server's HTTP answers would give it:
        details that may name the server's storage or key are withheld, logged under a
        request id the message names. Counted in the server's metrics as an answered
        error."""
        ...


#: A service the server runs beside the app: entered when the app starts (its lifespan),
#: exited when it stops, before the store is closed.
Service = Callable[[Host], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Extension:
    """What one face adds to ``statebox serve``."""

    #: The face's name, as messages call it (``dapr``).
    name: str
    #: Mounted on the app, beside the server's own routers.
    routers: Sequence[Router] = ()
    #: More ports the same app is served on (same ``--host``, same limits).
    http_ports: Sequence[int] = ()
    #: Run for the app's lifetime (entered in its lifespan, exited at shutdown).
    services: Sequence[Service] = ()
    #: Declared secret at start-up (:meth:`Host.declare_secret`), before any service
    #: starts and before the first request.
    secret_keyspaces: Sequence[Keyspace] = ()
    #: Lines ``serve`` prints to stderr at start-up.
    notices: Sequence[str] = ()
    #: Lines ``serve`` prints to stdout once its ports are bound.
    listening: Sequence[str] = ()
