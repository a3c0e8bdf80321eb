"""What the entries API (:mod:`.routes_raw`) shows of a secret keyspace.

Those routes carry plaintext — the remote store reads and writes through them, and its
server holds the key — so on a secret keyspace (:mod:`statebox.core.secrecy`) the routes
that answer values need a grant with ``reveal: true`` there (else 403), and an apply
answers a caller without it the entries before and after without their values (the entry
before would show a value it may not see). Entries of a secret keyspace say
``"keyedHash": true``: their hash is an HMAC under the server's key, which the receiver
cannot recompute to check the value against (:func:`statebox.wire.codec.decode_entry`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import Applied, Entry
from ..core.model import Keyspace
from ..wire.codec import entry_json
from .call import Call

__all__ = ["ShownEntries", "secret_values"]


def secret_values(call: Call, keyspace: Keyspace, what: str) -> bool:
    """Whether ``keyspace`` is secret (its entries' hashes keyed): then a 403 unless the
    caller may reveal its values, which ``what`` answers."""
    secret = call.secret(keyspace)
    if secret:
        call.authorize_reveal(keyspace, what)
    return secret


def _entry_or_null(entry: Entry | None, shown: bool, keyed: bool) -> str:
    return "null" if entry is None else entry_json(entry, include_value=shown, keyed_hash=keyed)


class ShownEntries:
    """How an apply answers the entries of each of its keyspaces (in the request's
    order): with their values, except a secret keyspace's to a caller who may not
    reveal them."""

    def __init__(self, call: Call, keyspaces: Sequence[Keyspace]) -> None:
        self.keyed = [call.secret(ks) for ks in keyspaces]
        self.values = [
            not keyed or call.principal.can_reveal(ks)
            for ks, keyed in zip(keyspaces, self.keyed, strict=True)
        ]

    def applied_json(self, number: int, applied: list[Applied]) -> str:
        """The answer (``{"results": [...]}``) of the ``number``-th keyspace's apply."""
        shown, keyed = self.values[number], self.keyed[number]
        results = ",".join(
            f'{{"previous":{_entry_or_null(a.previous, shown, keyed)},'
            f'"current":{_entry_or_null(a.current, shown, keyed)}}}'
            for a in applied
        )
        return f'{{"results":[{results}]}}'
