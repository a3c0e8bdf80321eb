"""The writes of :class:`~.backend.SealedBackend` to secret keyspaces: each Put sealed for
the version it will get, conflicts on the guards the layer added retried, the keyspace
put in the store's registry first; and the repair of a write that found a sealed value
where it wrote in clear. Imported on the first such write (the rules: ``backend.py``'s
docstring)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from ...core.errors import BackendUnavailableError, ConflictError, CorruptEntryError, quoted
from ...core.model import Keyspace
from ...core.records import Applied, Delete, Mutation, Put, WriteContext
from ...core.values import NormalizedValue, sha256_hex
from .backend import REGISTRY, SEALED_CONTENT_TYPE, SealedBackend, registry_key
from .cipher import keyed_hash, seal_value
from .keyring import Keyring

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["ATTEMPTS", "apply_sealed", "register", "reseal_after_race"]

#: Attempts of a write whose added guard keeps conflicting, and the pause between them
#: (jittered, doubling from 1 ms up to 50 ms).
ATTEMPTS: Final = 200
_FIRST_PAUSE: Final = 0.001
_LAST_PAUSE: Final = 0.05

_Batches = Sequence[tuple[Keyspace, Sequence[Mutation]]]
#: What a sealed Put gives back in its Applied: (version, content type, data, keyed hash).
_Plain = tuple[int, str, bytes, str] | None


def _pause(attempt: int) -> None:
    import random

    time.sleep(random.uniform(_FIRST_PAUSE, min(_LAST_PAUSE, _FIRST_PAUSE * 2**attempt)))


def _registry_value(keyspace: Keyspace) -> NormalizedValue:
    import json

    data = json.dumps(
        {"namespace": keyspace.namespace, "scope": str(keyspace.scope)},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return NormalizedValue(data, "application/json", sha256_hex(data))


def register(layer: SealedBackend, keyspace: Keyspace, ctx: WriteContext) -> None:
    """Make sure the store's registry names ``keyspace`` (one read; a create-only write
    when it does not: a conflict means another process wrote it first). Written by the
    inner backend, in clear: it says which keyspaces are secret, not what they hold."""
    if keyspace in layer.registered or keyspace == REGISTRY:
        return
    key = registry_key(keyspace)
    if layer.inner.get(REGISTRY, key, ctx.now) is None:
        with contextlib.suppress(ConflictError):  # another process wrote it first
            layer.inner.apply(
                REGISTRY, [Put(key, _registry_value(keyspace), create_only=True)], ctx
            )
    # Not yet added to layer.registered: only once the sealed write committed (inside a
    # group commit a failing write takes this registration back with it).


def apply_sealed(
    layer: SealedBackend, batches: _Batches, ctx: WriteContext, *, single: bool
) -> list[list[Applied]]:
    """``apply`` (``single``: one batch) or ``apply_batch`` through ``layer``, at least
    one batch being of a secret keyspace."""
    policy, inner = layer.policy, layer.inner
    # The keys only when something is sealed: a batch of deletes makes no key file.
    into = [
        keyspace
        for keyspace, ms in batches
        if policy.is_secret(keyspace) and any(isinstance(m, Put) for m in ms)
    ]
    if into:
        layer.sealing_keyring()  # no key: refused before anything is written
    for keyspace in into:
        register(layer, keyspace, ctx)
    for attempt in range(ATTEMPTS):
        ring = layer.sealing_keyring() if into else None
        added: set[int] = set()  # the flat indexes of the guards this layer added
        sealed: list[tuple[Keyspace, Sequence[Mutation]]] = []
        plains: list[list[_Plain] | None] = []
        offset = 0
        for keyspace, mutations in batches:
            if policy.is_secret(keyspace):
                out, plain, guarded = _seal(layer, ring, keyspace, mutations, ctx)
                added.update(offset + index for index in guarded)
                sealed.append((keyspace, out))
                plains.append(plain)
            else:
                sealed.append((keyspace, mutations))
                plains.append(None)
            offset += len(mutations)
        try:
            if single:
                results = [inner.apply(sealed[0][0], sealed[0][1], ctx)]
            else:
                results = inner.apply_batch(sealed, ctx)
        except ConflictError as exc:
            # The caller's own guard or fence (a FencingError may name a Put the layer
            # guarded: its fence failed, not the guard): as the backend reported it.
            if exc.index not in added or exc.kind != ConflictError.kind:
                raise
            if attempt + 1 < ATTEMPTS:
                _pause(attempt)
            continue
        layer.registered.update(into)
        return [
            reseal_after_race(layer, keyspace, mutations, applied, ctx)
            if plain is None
            else _results(layer, keyspace, applied, plain)
            for (keyspace, mutations), applied, plain in zip(batches, results, plains, strict=True)
        ]
    raise BackendUnavailableError(
        f"a write to a secret keyspace conflicted with other writers {ATTEMPTS} times in a "
        "row: the store is too busy; retry"
    )


def reseal_after_race(
    layer: SealedBackend,
    keyspace: Keyspace,
    mutations: Sequence[Mutation],
    applied: list[Applied],
    ctx: WriteContext,
) -> list[Applied]:
    """``applied`` of a write to a keyspace taken for plain; when it replaced a sealed
    value, another process sealed there after this one looked at the registry (or before
    the registry existed): the keyspace is learned, what the write replaced is given
    opened, and each value it left in clear is sealed at once by a Put of the same value
    guarded by the version it got (a new version; a conflict means someone wrote the key
    meanwhile, whose value stands). Only this race leaves a value in clear: in that one
    history record."""
    if all(a.previous is None or a.previous.content_type != SEALED_CONTENT_TYPE for a in applied):
        return applied
    layer.policy.learn(keyspace)
    out = [Applied(layer.previous_entry(keyspace, a.previous), a.current) for a in applied]
    last = {mutation.key: index for index, mutation in enumerate(mutations)}
    for index in sorted(last.values()):
        current = out[index].current
        if current is None or current.content_type == SEALED_CONTENT_TYPE:
            continue
        value = NormalizedValue(current.data, current.content_type, current.hash)
        put = Put(current.key, value, current.version, expires_at=current.expires_at)
        try:
            [resealed] = apply_sealed(layer, [(keyspace, [put])], ctx, single=True)[0]
        except ConflictError:
            continue
        out[index] = Applied(out[index].previous, resealed.current)
    return out


def _seal(
    layer: SealedBackend,
    ring: Keyring | None,
    keyspace: Keyspace,
    mutations: Sequence[Mutation],
    ctx: WriteContext,
) -> tuple[list[Mutation], list[_Plain], list[int]]:
    """The mutations with each Put sealed for the version it will get; what each Put gives
    back; the indexes of the Puts the layer guarded (by the version it read now)."""
    after: dict[str, int] = {}  # each key's version after the mutations so far (0: none)
    out: list[Mutation] = []
    plain: list[_Plain] = []
    guarded: list[int] = []
    for index, mutation in enumerate(mutations):
        key = mutation.key
        if isinstance(mutation, Delete):
            after[key] = 0  # deleted, or a conflict that fails the whole batch
            out.append(mutation)
            plain.append(None)
            continue
        assert isinstance(mutation, Put) and ring is not None
        if mutation.create_only:
            version = 1
        elif mutation.expected_version is not None:
            version = mutation.expected_version + 1  # below 1: a conflict, never stored
        elif key in after:
            version = after[key] + 1
        else:
            current = layer.inner.get(keyspace, key, ctx.now)  # None: missing or expired
            found = current.version if current is not None else 0
            mutation = mutation._replace(expected_version=found)
            guarded.append(index)
            version = found + 1
        after[key] = version
        value = mutation.value
        data = seal_value(ring, keyspace, key, version, value.content_type, value.data)
        # Stored with the SHA-256 of the stored bytes, as any value; the engine is given
        # the keyed hash (_results).
        stored = NormalizedValue(data, SEALED_CONTENT_TYPE, sha256_hex(data))
        out.append(mutation._replace(value=stored))
        digest = keyed_hash(ring.primary, keyspace, key, value.content_type, value.data)
        plain.append((version, value.content_type, value.data, digest))
    return out, plain, guarded


def _results(
    layer: SealedBackend, keyspace: Keyspace, applied: list[Applied], plain: list[_Plain]
) -> list[Applied]:
    out = []
    for outcome, own in zip(applied, plain, strict=True):
        current = outcome.current
        if current is not None and own is not None:
            version, content_type, data, digest = own
            if current.version != version:  # a broken backend or layer: say so
                raise CorruptEntryError(
                    f"key {quoted(current.key)} was sealed for version {version} but stored "
                    f"as version {current.version}: its value cannot be opened"
                )
            current = current._replace(data=data, content_type=content_type, hash=digest)
        out.append(Applied(layer.previous_entry(keyspace, outcome.previous), current))
    return out
