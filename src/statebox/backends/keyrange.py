"""Byte-order key ranges shared by every backend that lists by prefix."""

from __future__ import annotations

__all__ = ["prefix_upper_bound"]


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    ``None`` when there is none (empty prefix, or all ``0xff``): list to the end.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
