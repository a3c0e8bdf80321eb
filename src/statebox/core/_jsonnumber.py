"""The numbers :func:`statebox.core.exactjson.loads_exact` gives: apart from the parser,
so that importing the parser (normalization, on every CLI start) imports no ``decimal``."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["JsonNumber"]


class JsonNumber(Decimal):
    """A JSON number literal kept exactly as written (``1.2300``, ``1E5``, ``-0``).

    A :class:`~decimal.Decimal`, so a reader may compute with it (a ttl) and
    :func:`statebox.core.values.normalize` accepts it, writing ``str()`` of it — the
    literal itself — back unchanged.
    """

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, literal: str) -> JsonNumber:
        self = super().__new__(cls, literal)
        self.literal = literal
        return self

    def __str__(self) -> str:
        return self.literal

    def __repr__(self) -> str:
        return f"JsonNumber({self.literal!r})"
