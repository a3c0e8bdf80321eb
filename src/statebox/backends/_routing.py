"""Rendezvous (highest-random-weight) routing of keyspaces to coordinators (SPEC §6).

For a keyspace with routing key ``scope + "\\0" + namespace`` every coordinator id gets
the score SHA-256(``routingKey + "\\0" + id``) (UTF-8), compared as a big-endian number;
the highest score wins, a tie goes to the smaller id. Every client that lists the same
coordinators — in any order — sends a keyspace to the same one, and removing a
coordinator moves only the keyspaces it owned. A coordinator's id is its URL exactly as
written in the store URL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["choose", "lease_routing_key", "score"]


def score(routing_key: str, coordinator: str) -> bytes:
    """The coordinator's score for a routing key (bytes compare as big-endian numbers)."""
    return hashlib.sha256(f"{routing_key}\0{coordinator}".encode()).digest()


def choose(routing_key: str, coordinators: Iterable[str]) -> str:
    """The coordinator that owns ``routing_key``."""
    best: str | None = None
    best_score = b""
    for coordinator in sorted(coordinators):  # ascending: on a tie the first (smaller) stays
        candidate = score(routing_key, coordinator)
        if best is None or candidate > best_score:
            best, best_score = coordinator, candidate
    if best is None:
        raise ValueError("no coordinators to choose from")
    return best


def lease_routing_key(name: str) -> str:
    """Leases are routed as if they were the keyspace (``lease``, name)."""
    return f"lease\0{name}"
