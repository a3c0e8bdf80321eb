"""Direktiv's name rule: variable names, state ids and function ids
(``pkg/model``'s ``RegexVarKey``, anchored at both ends).

:func:`is_name` checks a whole text with ``fullmatch``, so no trailing newline slips
through (Python's ``$`` also matches before a final ``\\n``; Go's does not).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["NAME_RE", "NAME_RULE", "is_name"]

#: Direktiv's name pattern, as Direktiv writes it (its messages quote it).
NAME_RE: Final = re.compile(r"^(([a-zA-Z][a-zA-Z0-9_\-\.]*[a-zA-Z0-9])|([a-zA-Z]))$")
#: What :data:`NAME_RE` asks, for messages.
NAME_RULE: Final = (
    "letters, digits, _, - and . only, starting with a letter and ending with a letter or digit"
)


def is_name(text: Any) -> bool:
    """Whether ``text`` is a string that follows Direktiv's name rule, all of it."""
    return isinstance(text, str) and NAME_RE.fullmatch(text) is not None
