"""Dapr's secrets API over a secret store's keyspace (``custom/dapr-STORE``, secret).

A secret is an entry of the keyspace, its Dapr key the entry's key (stored as
:func:`~statebox.dapr.keys.encode_key` gives it; no app-id prefix: Dapr prefixes state
keys only). Its value is a JSON object of strings (``{"password": "x"}``: the secret's
fields, as a multi-valued Dapr secret) or a JSON string ``s`` (``{KEY: s}``, as Dapr's
single-valued stores answer). Anything else is ``ERR_SECRET_GET``, naming the key, never
the value. Reading needs ``read`` on the keyspace and the reveal grant: Dapr answers the
real values.

The bulk read answers every secret of the store, read on a worker thread a page of
:data:`SECRETS_PAGE` entries at a time (the event loop keeps serving meanwhile), and at
most :data:`MAX_BULK_SECRETS` secrets of :data:`MAX_BULK_SECRET_BYTES` bytes of values in
all: past either, ``ERR_SECRET_GET`` asks for the secrets one at a time (never a silently
cut answer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ..core.results import StoredValue
from .errors import SECRET_GET, DaprError, translated
from .keys import decode_key, encode_key

if TYPE_CHECKING:
    from ..web.extension import Caller
    from .state_api import DaprContext

__all__ = [
    "MAX_BULK_SECRETS",
    "MAX_BULK_SECRET_BYTES",
    "SECRETS_PAGE",
    "get_bulk_secret",
    "get_secret",
]

#: The most secrets one bulk read answers.
MAX_BULK_SECRETS: Final = 10_000
#: The most bytes of stored values one bulk read answers.
MAX_BULK_SECRET_BYTES: Final = 16 * 1024 * 1024
#: Entries read from the store at a time in a bulk read.
SECRETS_PAGE: Final = 256


def _fields(key: str, stored: StoredValue, store: str) -> dict[str, str]:
    value: Any = None
    if stored.is_json:
        value = json.loads(stored.data)
    if isinstance(value, str):
        return {key: value}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    raise DaprError(
        SECRET_GET,
        f"failed getting secret with key {key} from secret store {store}: its value is "
        "neither a JSON object of strings nor a JSON string",
        500,
        "INTERNAL",
    )


async def get_secret(
    caller: Caller, dapr: DaprContext, store: str, key: str, metadata: Mapping[str, str]
) -> dict[str, str]:
    """The secret ``key``'s fields; a missing one is ``ERR_SECRET_GET`` (500)."""
    ks = dapr.components.secret_store(store).keyspace
    context = f"failed getting secret with key {key} from secret store {store}"
    if not key:
        raise DaprError(SECRET_GET, f"{context}: the key is empty", 500, "INTERNAL")
    stored_key = encode_key(key)
    with translated(SECRET_GET, context):
        caller.authorize("read", ks)
        caller.authorize_reveal(ks, what="a Dapr secret read")
        result = await caller.read(
            lambda: caller.reader().get(stored_key, scope=ks.scope, namespace=ks.namespace)
        )
    if not result.found or result.stored is None:
        raise DaprError(SECRET_GET, f"{context}: secret {key} not found", 500, "INTERNAL")
    return _fields(key, result.stored, store)


async def get_bulk_secret(
    caller: Caller, dapr: DaprContext, store: str, metadata: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Every secret of the store: key → fields."""
    ks = dapr.components.secret_store(store).keyspace
    context = f"failed getting secrets from secret store {store}"
    too_many = DaprError(
        SECRET_GET,
        f"{context}: it holds more than {MAX_BULK_SECRETS} secrets or "
        f"{MAX_BULK_SECRET_BYTES} bytes of them, more than one bulk read answers: get "
        "them one at a time",
        500,
        "INTERNAL",
    )

    def work() -> dict[str, dict[str, str]]:
        reader = caller.reader()
        secrets: dict[str, dict[str, str]] = {}
        size = 0
        after: str | None = None
        while True:
            page = reader.list(
                scope=ks.scope,
                namespace=ks.namespace,
                include_values=True,
                limit=SECRETS_PAGE,
                after=after,
            ).entries
            for entry in page:
                if entry.stored is None:
                    continue
                try:
                    key = decode_key(entry.key)
                except ValueError:
                    key = entry.key
                size += len(entry.stored.data)
                if len(secrets) >= MAX_BULK_SECRETS or size > MAX_BULK_SECRET_BYTES:
                    raise too_many
                secrets[key] = _fields(key, entry.stored, store)
            if len(page) < SECRETS_PAGE:
                return secrets
            after = page[-1].key

    with translated(SECRET_GET, context):
        caller.authorize("read", ks)
        caller.authorize_reveal(ks, what="a Dapr bulk secret read")
        return await caller.read(work, alone=True)
