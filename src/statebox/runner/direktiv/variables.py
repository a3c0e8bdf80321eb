"""Direktiv's variables on a statebox store: one :class:`Variables` per instance.

Scopes map to statebox's (:data:`SCOPES`): ``instance`` → ``run`` (namespace: the
instance id), ``workflow`` → ``dag`` (namespace: the workflow's name), ``namespace`` →
``global`` (its default namespace). ``system`` is read-only: ``instance``, ``uuid``,
``epoch`` (and ``trace``, empty: statebox has no tracing).

Reading (:meth:`Variables.get`) decodes as Direktiv's getter (``pkg/flow/states/getter.go``):
a missing or empty variable is null; a JSON entry is its value; a binary or text entry is
its bytes parsed as JSON when they parse, else the base64 of the bytes.

Writing (:meth:`Variables.plan_set`) encodes as Direktiv's setter (``setter.go``), the
*literal* ``mimeType`` deciding: ``application/octet-stream`` with a string value stores
the base64-decoded bytes as a binary entry; ``text/plain`` (or ``text/plain;
charset=utf-8``) stores the text (a non-string as Go's ``fmt.Sprint`` writes it);
anything else stores a JSON entry. Only null deletes: Direktiv v0.8+ also deletes on
``0``, ``{}``, ``[]`` and ``""`` (and on empty text or bytes); statebox stores those.

No lost updates: :meth:`Variables.get` (and :meth:`Variables.read_raw`, an action's
``files:`` and ``/var`` reads) remembers the version it read of each variable
(0 when missing), and a later write of that variable by the same instance is guarded by
it: when another instance wrote it meanwhile, :meth:`Variables.write` writes nothing and
raises :class:`~.errors.VarConflict` (the engine then re-runs the states since the
getter, or raises the conflict to the workflow). Variables never read are written
unguarded (the last writer wins, as in Direktiv).

All or nothing across scopes: a write's variables, whatever their scopes, are written
in ONE statebox transaction across keyspaces (:meth:`StateStore.transaction_across`,
one part per keyspace, in the order instance, workflow, namespace): every variable this
instance read guarded by the version it read, the others unguarded. A failed guard
anywhere writes nothing anywhere — no scope's part is ever visible without the others —
and is a :class:`~.errors.VarConflict` naming each guarded variable found changed.

Secrets: a variable of a secret keyspace (:mod:`statebox.core.secrecy`) is read as it
is — the instance asked for it — and every value read from or written to one is
registered with the instance's masker (:mod:`..masking`), which keeps it out of the
run record, the logs and the display.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ...core.errors import InvalidValueError, ValueTooLargeError, quoted
from ...core.model import RunContext
from ...core.results import StoredValue
from ...core.values import Blob
from ...store import StateStore
from ..masking import Masker
from ._gofmt import b64decode_strict, go_json, go_sprint, json_or_base64
from ._varwrite import SCOPES, apply_writes
from .errors import INVALID_BASE64, INVALID_KEY, INVALID_SCOPE, INVALID_VALUE, DirektivError
from .names import NAME_RE, is_name

__all__ = [
    "OCTET_STREAM",
    "SCOPES",
    "VarWrite",
    "Variables",
    "check_key",
    "check_scope",
    "decode_bytes",
]

OCTET_STREAM: Final = "application/octet-stream"
_TEXT_TYPES: Final = ("text/plain", "text/plain; charset=utf-8")


@dataclass(frozen=True, slots=True)
class VarWrite:
    """One variable to write: ``value`` is a JSON value or a :class:`Blob`; ``delete``
    removes it instead. ``mime_type`` is the setter's (evaluated) ``mimeType``, ``""``
    when none was given; a JSON entry is stored as ``application/json`` whatever it is."""

    scope: str
    key: str
    value: Any = None
    delete: bool = False
    mime_type: str = ""


def check_scope(scope: Any, *, system: bool = False) -> str:
    """``scope`` when it is one of Direktiv's (``system`` too when reading)."""
    if scope in SCOPES or (system and scope == "system"):
        return str(scope)
    allowed = ", ".join([*SCOPES, *(["system"] if system else [])])
    raise DirektivError(
        INVALID_SCOPE, f"invalid variable scope {quoted(scope)}: must be one of {allowed}"
    )


def check_key(key: Any) -> str:
    """``key`` when it follows Direktiv's name rule."""
    if isinstance(key, str) and is_name(key):
        return key
    raise DirektivError(
        INVALID_KEY, f"variable key must match regex: {NAME_RE.pattern} (got: {go_sprint(key)})"
    )


def decode_bytes(data: bytes) -> Any:
    """Direktiv's reading of a variable's bytes: empty → null; else the JSON value they
    are, read as Go reads it, or their base64 (:func:`._gofmt.json_or_base64`)."""
    return json_or_base64(data) if data else None


class Variables:
    """The variables of one instance of ``workflow``: read, encoded, written guarded.

    Thread-safe: an action's ``/var`` endpoint and ``out/`` collection may write while
    another branch of a ``parallel`` state reads.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        workflow: str,
        instance_id: str,
        masker: Masker | None = None,
    ) -> None:
        self.workflow = workflow
        self.instance_id = instance_id
        #: Told of every value read from or written to a secret keyspace.
        self.masker = Masker() if masker is None else masker
        self.store = store.with_context(
            RunContext(dag=workflow, root_dag=workflow, run_id=instance_id)
        )
        self._lock = threading.RLock()
        self._guards: dict[tuple[str, str], int] = {}

    # -- reading -----------------------------------------------------------------------

    def get(self, scope: str, key: Any) -> Any:
        """A getter's value of ``key`` in ``scope`` (see the module docstring); the
        version read becomes the guard of later writes of it."""
        scope = check_scope(scope, system=True)
        if scope == "system":
            return self._system(key)
        stored = self._read(scope, check_key(key))
        if stored is None:
            return None
        if stored.is_json:
            return stored.parse()
        return decode_bytes(stored.data)

    def _read(self, scope: str, key: str) -> StoredValue | None:
        """The stored entry (None when missing or empty); the version read (0 when
        missing) becomes the guard of later writes of it."""
        result = self.store.get(key, scope=SCOPES[scope])
        with self._lock:
            self._guards[(scope, key)] = result.version if result.found else 0
        if result.found and result.stored is not None and result.stored.secret:
            self.masker.add_stored(result.stored)
        return result.stored if result.found else None

    def _system(self, key: Any) -> Any:
        if key == "instance":
            return self.instance_id
        if key == "uuid":
            return str(uuid.uuid4())
        if key == "epoch":
            return int(time.time())
        if key == "trace":
            return ""
        # An internal error in Direktiv: the instance fails, no catch applies.
        raise DirektivError(
            INVALID_KEY,
            f"unknown system key {go_sprint(key)} (known: instance, uuid, epoch, trace)",
            catchable=False,
        )

    def read_raw(self, scope: str, key: str) -> tuple[bytes, str] | None:
        """The stored bytes and content type (a JSON entry: its JSON text,
        ``application/json``), or None when missing — an action's ``files:`` and its
        ``/var`` endpoint read so. Like :meth:`get`, the version read becomes the guard
        of later writes of it (through ``out/``, ``/var``, a setter)."""
        stored = self._read(check_scope(scope), check_key(key))
        if stored is None:
            return None
        return stored.data, stored.content_type

    # -- writing -----------------------------------------------------------------------

    def plan_set(
        self,
        scope: str,
        key: Any,
        value: Any,
        mime_type: Any = None,
        *,
        mime_literal: Any = ...,
    ) -> VarWrite:
        """Encode one setter variable as Direktiv does (nothing is written).

        ``mime_type`` is the evaluated ``mimeType`` (None or a non-string: none); the
        choice between base64, text and JSON is made on ``mime_literal``, the
        ``mimeType`` as written in the file, as Direktiv makes it (default: the same).
        """
        scope = check_scope(scope)
        key = check_key(key)
        mime = mime_type if isinstance(mime_type, str) else ""
        literal = mime_type if mime_literal is ... else mime_literal
        if value is None:
            return VarWrite(scope, key, None, delete=True, mime_type=mime)
        if literal == OCTET_STREAM and isinstance(value, str):
            return VarWrite(scope, key, Blob(_b64decode(value, key), OCTET_STREAM), mime_type=mime)
        if literal in _TEXT_TYPES:
            text = go_sprint(value).encode("utf-8", "replace")
            return VarWrite(scope, key, Blob(text, str(literal)), mime_type=mime)
        if literal == OCTET_STREAM:
            # Direktiv marshals a non-string to JSON and stores those bytes, as binary.
            return VarWrite(
                scope, key, Blob(go_json(value).encode("utf-8"), OCTET_STREAM), mime_type=mime
            )
        return VarWrite(scope, key, value, mime_type=mime)

    def write(self, writes: Sequence[VarWrite]) -> None:
        """Write ``writes`` all or nothing, each variable this instance read guarded by
        the version it read. Raises :class:`VarConflict` (nothing written) when one was
        written by someone else since."""
        self._apply(list(writes))

    def write_raw(self, writes: Sequence[tuple[str, str, bytes, str]]) -> None:
        """Write raw ``(scope, key, bytes, content_type)`` entries (content type ``""``:
        ``application/octet-stream``), all or nothing as :meth:`write`."""
        planned = [
            VarWrite(
                check_scope(scope),
                check_key(key),
                Blob(bytes(data), content_type or OCTET_STREAM),
                mime_type=content_type,
            )
            for scope, key, data, content_type in writes
        ]
        self._apply(planned)

    def _apply(self, writes: list[VarWrite]) -> None:
        # The last write of a variable wins, as in Direktiv's one SQL transaction.
        last: dict[tuple[str, str], VarWrite] = {}
        for one in writes:
            check_scope(one.scope)
            check_key(one.key)
            last.pop((one.scope, one.key), None)
            last[(one.scope, one.key)] = one
        if not last:
            return
        for one in last.values():
            if not one.delete:
                self._check_storable(one)
        with self._lock:
            guards = {k: v for k, v in self._guards.items() if k in last}
            written = apply_writes(self.store, list(last.values()), guards)
            for scope_key, version in written.items():
                if scope_key in self._guards:
                    self._guards[scope_key] = version

    def _check_storable(self, one: VarWrite) -> None:
        try:
            normalized = self.store.normalize(one.value)
        except (InvalidValueError, ValueTooLargeError) as exc:
            raise DirektivError(
                INVALID_VALUE,
                f"cannot store {one.scope} variable {quoted(one.key)}: {exc.message}",
            ) from None
        keyspace = self.store.keyspace(SCOPES[one.scope])
        if self.store.secret_policy.is_secret(keyspace):  # a secret from now on
            self.masker.add_stored(StoredValue(normalized.data, normalized.content_type))


def _b64decode(text: str, key: str) -> bytes:
    try:
        return b64decode_strict(text)
    except ValueError as exc:
        raise DirektivError(
            INVALID_BASE64,
            f"could not decode variable {quoted(key)}: its value is {exc}",
            catchable=False,
        ) from None
