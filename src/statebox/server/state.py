"""What every request of one server shares: the store, the settings, the metrics, and
how work reaches the store (inline, a writer thread, or worker threads)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..backends.base import Backend, group_commit_of
from ..core.clock import Clock
from ..core.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptEntryError,
    InvalidRequestError,
    StateboxError,
    TooManyRequestsError,
    UnauthenticatedError,
    quoted,
)
from ..core.model import Keyspace, RunContext, resolve_keyspace
from ..core.secrecy import SecretPolicy, default_policy
from ..store import StateStore
from .auth import ANONYMOUS, Principal
from .changes_hub import ChangeHub
from .config import ServerConfig
from .disclosure import REQUEST_ID_HEADER, Disclosure, key_file_words, storage_words
from .metrics import Metrics
from .writer import GroupCommitWriter

if TYPE_CHECKING:
    from ..web import Router
    from ..web.routing import ErrorsAs

__all__ = ["DAPR_TOKEN_HEADER", "JSON", "NO_CONTEXT", "FixedClock", "ServerState", "json_response"]

T = TypeVar("T")
JSON: Final = "application/json"
#: The header Dapr's clients send their API token in: taken as the bearer token when a
#: request has no Authorization header.
DAPR_TOKEN_HEADER: Final = "dapr-api-token"
NO_CONTEXT: Final = RunContext()


class FixedClock:
    """The time a test client sent (test mode only)."""

    __slots__ = ("_now",)

    def __init__(self, now: int) -> None:
        self._now = now

    def now_ns(self) -> int:
        return self._now


class ServerState:
    """What every request shares: the backend, the configuration, the metrics."""

    def __init__(self, store_url: str, backend: Backend, config: ServerConfig, clock: Clock):
        self.store_url = store_url
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        # Watches hold no thread while they wait (changes_hub.py); the looks they take
        # when woken, on a backend read off the loop, share these few threads, so a
        # burst of woken watchers never takes the threads other requests read with.
        self.wait_limiter = anyio.CapacityLimiter(16)
        # A prefix watch's look scans the whole prefix: never on the loop (it would hold
        # up every request), and on two threads of their own, so a burst of scans takes
        # neither the threads other reads use nor a store connection in each of them.
        self.scan_pool = ThreadPoolExecutor(2, thread_name_prefix="statebox-scan")
        self._watches: dict[str, int] = {}  # open watches per principal name
        self.changes: ChangeHub | None = None
        self._keyspaces: dict[tuple[str, str], Keyspace] = {}
        #: The routers the app mounts (``create_app``), and their OpenAPI document once
        #: served.
        self.routers: list[Router] = []
        self.openapi_json: str | None = None
        #: The keyspaces declared secret while serving (an extension's, at start-up):
        #: declared again in the new store a test-mode reset makes.
        self.declared_secret: list[Keyspace] = []
        #: Why the app's start-up (its lifespan: an extension's service) failed, if it did.
        self.startup_error: StateboxError | None = None
        self._attach(backend)

    def _attach(self, backend: Backend) -> None:
        """Serve ``backend``: how its work is run, and no engine of the one before."""
        self.backend = backend
        #: Which keyspaces are secret: the sealed backend's policy (the one it seals
        #: with), else the environment's. Their values are masked in every answer
        #: unless revealed, and the entries API needs a reveal grant on them.
        policy: SecretPolicy | None = getattr(backend, "secret_policy", None)
        self.secret_policy = policy if policy is not None else default_policy()
        if self.changes is not None:
            self.changes.close()
        self.changes = ChangeHub(backend)
        # Only the backend's capabilities decide, never its class. Embedded backends
        # answer a read in microseconds without waiting on a lock (WAL readers never
        # block): a hop to a worker thread would cost more than the read.
        self.inline_reads = backend.capabilities.inline_reads
        # One writer at a time and an fsync per commit (SQLite): the writes of
        # concurrent requests are committed together (group commit), on the loop while
        # the write lock is free, never waiting on it there (see writer.py).
        group = group_commit_of(backend)
        self.writer = GroupCommitWriter(group) if group is not None else None
        self._stores: dict[RunContext, StateStore] = {}

    def reset(self) -> None:
        """Test mode: start again from an empty store (``Backend.reset``: a new
        ``memory://`` store, a new SQLite file in place of the old one), so the
        conformance suite can run through a server's write path, group commit included."""
        if not self.backend.capabilities.test_reset:
            raise InvalidRequestError(
                "reset works only on a store that can be emptied (memory:// or sqlite://)"
            )
        if self.writer is not None:
            self.writer.close()  # its queued writes finish on the old store first
        self._attach(self.backend.reset())
        for keyspace in self.declared_secret:
            self.store_for(NO_CONTEXT).declare_secret_keyspace(keyspace.scope, keyspace.namespace)

    def declare_secret(self, keyspace: Keyspace) -> None:
        """Make ``keyspace`` secret in the store (sealed, masked: the engine's
        ``declare_secret_keyspace``), for every process on it."""
        self.store_for(NO_CONTEXT).declare_secret_keyspace(keyspace.scope, keyspace.namespace)
        if keyspace not in self.declared_secret:
            self.declared_secret.append(keyspace)

    def new_store(self, context: RunContext, clock: Clock) -> StateStore:
        config = self.config
        return StateStore(
            self.backend,
            context=context,
            clock=clock,
            history_limit=config.history_limit,
            json_limit=config.json_limit,
            binary_limit=config.binary_limit,
            # Not the engine's purge every few hundred writes: here that would run inside
            # a group commit on the event loop. The server purges on its own schedule
            # (app.py, alone on the writer thread).
            purge_every=0,
            secret_policy=self.secret_policy,
        )

    def keyspace(self, scope: str, namespace: str) -> Keyspace:
        """A path's scope and namespace, validated (SPEC §1), cached."""
        keyspace = self._keyspaces.get((scope, namespace))
        if keyspace is None:
            if len(self._keyspaces) >= 4096:
                self._keyspaces.clear()
            keyspace = resolve_keyspace(scope, namespace, NO_CONTEXT)
            self._keyspaces[(scope, namespace)] = keyspace
        return keyspace

    def store_for(self, context: RunContext) -> StateStore:
        """One engine per caller context, kept: its resolved keyspaces stay cached."""
        store = self._stores.get(context)
        if store is None:
            if len(self._stores) >= 1024:
                self._stores.clear()
            store = self._stores[context] = self.new_store(context, self.clock)
        return store

    async def read(self, fn: Callable[[], T]) -> T:
        if self.inline_reads:
            return fn()
        return await anyio.to_thread.run_sync(fn)

    async def write(self, fn: Callable[[], T], *, alone: bool = False) -> T:
        """Run a write off the event loop. ``alone``: may take long (a transform), so
        it must not share a transaction with other callers' writes."""
        if self.writer is not None:
            return await self.writer.submit(fn, alone=alone)
        return await anyio.to_thread.run_sync(fn)

    async def watch(
        self,
        keyspace: Keyspace,
        look: Callable[[], T],
        ready: Callable[[T], bool],
        timeout: float,
        *,
        scans: bool = False,
    ) -> T:
        """``look()`` (a read of ``keyspace``, no waiting), then again each time the store
        may have changed, until ``ready`` says yes or ``timeout`` seconds pass; returns
        the last look. It waits on the event loop (no thread), and a client that leaves
        cancels it at once. ``scans``: each look reads a whole prefix (as many entries as
        it holds), so it is never run on the loop, however fast the backend's reads."""
        hub = self.changes
        assert hub is not None  # set by _attach
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            mark = hub.mark(keyspace)  # before the look: no change after it is missed
            if scans:
                result = await self.scan(look)
            elif self.inline_reads:
                result = look()
            else:
                result = await anyio.to_thread.run_sync(look, limiter=self.wait_limiter)
            remaining = deadline - time.monotonic()
            if ready(result) or remaining <= 0:
                return result
            await hub.wait(mark, remaining)

    async def scan(self, fn: Callable[[], T]) -> T:
        """``fn()`` (a read of a whole prefix) on the scan threads."""
        return await asyncio.get_running_loop().run_in_executor(self.scan_pool, fn)

    @contextmanager
    def watch_slot(self, principal: Principal) -> Iterator[None]:
        """Count one open watch (long poll or event stream) of ``principal`` while inside;
        over ``max_watches_per_token`` it is refused (429)."""
        limit = self.config.max_watches_per_token
        held = self._watches.get(principal.name, 0)
        if held >= limit:
            who = f"token {quoted(principal.name)}" if principal.name else "this server"
            raise TooManyRequestsError(
                f"too many open watches for {who}: at most {limit} at once (the server's "
                "--max-watches-per-token); close one, or wait for one to end"
            )
        self._watches[principal.name] = held + 1
        try:
            yield
        finally:
            left = self._watches[principal.name] - 1
            if left:
                self._watches[principal.name] = left
            else:
                del self._watches[principal.name]

    def authenticate(self, request: Request) -> Principal:
        """The principal of the request's bearer token: ``Authorization: Bearer T``, or,
        without an Authorization header, ``dapr-api-token: T`` (what Dapr's clients
        send)."""
        tokens = self.config.tokens
        if tokens is None:
            return ANONYMOUS
        header = request.headers.get("authorization")
        if header is None:
            dapr = request.headers.get(DAPR_TOKEN_HEADER)
            if dapr is not None and dapr.strip():
                return self.authenticate_token(dapr.strip())
            header = ""
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise UnauthenticatedError("missing bearer token: send 'Authorization: Bearer <token>'")
        return self.authenticate_token(secret.strip())

    def authenticate_token(self, token: str | None) -> Principal:
        """The principal of a raw ``token`` (one a service received), as a bearer token
        is authenticated: without tokens, the anonymous principal."""
        tokens = self.config.tokens
        if tokens is None:
            return ANONYMOUS
        if token is None or not token.strip():
            raise UnauthenticatedError(f"missing token: send it as {DAPR_TOKEN_HEADER}")
        principal = tokens.authenticate(token.strip())
        if principal is None:
            raise UnauthenticatedError("invalid bearer token")
        return principal

    def _disclosure(self) -> Disclosure:
        # No store URL, host or path (the secret key file's included) reaches a client:
        # those errors carry a request id instead, and the server's log has the details
        # (disclosure.py).
        return Disclosure(
            storage_words(self.store_url, self.backend) + key_file_words(self.backend)
        )

    def _count(self, exc: StateboxError) -> None:
        if isinstance(exc, ConflictError):
            self.metrics.conflicts += 1
        elif isinstance(exc, (BackendUnavailableError, CorruptEntryError)):
            self.metrics.backend_errors += 1

    def error_response(self, exc: StateboxError, request_id: str | None = None) -> Response:
        self._count(exc)
        headers = {"www-authenticate": "Bearer"} if isinstance(exc, UnauthenticatedError) else None
        body, request_id = self._disclosure().body(exc, request_id)
        if request_id is not None:
            headers = {**(headers or {}), REQUEST_ID_HEADER: request_id}
        return json_response(body, exc.http_status, headers)

    def error_message(self, exc: StateboxError, request_id: str | None = None) -> str:
        """The message a client may see for ``exc`` (counted in the metrics as an
        answered error is), for a face that answers it in its own body; what is
        withheld is logged under a request id the message names."""
        return self._disclosed(exc, request_id)[0]

    def _disclosed(self, exc: StateboxError, request_id: str | None) -> tuple[str, str | None]:
        """Counted and disclosed by what it stands for: a face's own error (Dapr's)
        may translate a statebox error, kept as its ``cause``; that one is counted,
        and logged under a request id when its details are withheld."""
        cause = getattr(exc, "cause", None)
        root = cause if isinstance(cause, StateboxError) else exc
        self._count(root)
        disclosure = self._disclosure()
        if root is not exc and disclosure.withheld(root) is None:
            return exc.message, None  # the face's own words for it
        return disclosure.disclosed(root, request_id)

    def error_as(
        self, errors_as: ErrorsAs, exc: StateboxError, request_id: str | None = None
    ) -> Response:
        """``exc`` answered by a route's own ``errors_as``, with the disclosed message
        (and the ``X-Request-Id`` header when details were withheld)."""
        message, request_id = self._disclosed(exc, request_id)
        response = errors_as(exc, message)
        if request_id is not None and REQUEST_ID_HEADER not in response.headers:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response


def json_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(text, status_code=status, media_type=JSON, headers=headers)
