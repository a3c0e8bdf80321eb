"""Finding the ``${…}`` / ``$NAME`` / ``$1`` references of a text: the one scanner that
both the loader (checking them) and the renderer (substituting them) use.

:func:`tokens` walks a text left to right and yields each reference with its kind
(``${params.x}``, ``${env.X}``, ``$1``, ``${NAME}`` / ``$NAME``, ``${NAME.path}``),
whether it is escaped (an odd run of backslashes before its ``$``), and the ``${…}``
spans that are shell syntax rather than references (``${X:-d}``, ``${#X}``).
:class:`SingleQuotes` tells which offsets lie in a single-quoted span, by Dagu's rule.
:func:`find_references` is the public view: the references, escaped ones and shell
spans left out. The rules themselves are told in :mod:`.refs`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

__all__ = [
    "DOLLAR",
    "ENV",
    "NAME",
    "OWNED",
    "PARAMS",
    "PATH",
    "PLAIN",
    "POSITIONAL",
    "SPAN",
    "Reference",
    "SingleQuotes",
    "Token",
    "escaped",
    "find_references",
    "tokens",
    "unescape",
]


class Reference(NamedTuple):
    """One reference in a text.

    ``name`` is what it reads: ``"params"`` / ``"env"`` for ``${params.x}`` /
    ``${env.X}`` (``path`` ``".x"`` / ``".X"``), a variable or step name
    (``${CURSOR.value.id}``: ``"CURSOR"``, path ``".value.id"``; ``${load.output}``:
    ``"load"``, path ``".output"``), or digits for a positional parameter (``$1``:
    ``"1"``). ``path`` is None for ``${NAME}``, ``$NAME``, ``$1``. ``text`` is
    ``source[start:end]``.

    A loader checking references statically can hold a reference with a ``path`` whose
    name is neither ``params`` nor ``env`` to an output variable or step id: a bare
    ``$NAME`` may always be an environment variable (``$HOME``).
    """

    name: str
    path: str | None
    start: int
    end: int
    text: str

    @property
    def braced(self) -> bool:
        """Written ``${…}`` (not ``$NAME`` / ``$1``)."""
        return self.text.startswith("${")

    @property
    def positional(self) -> bool:
        """A positional parameter (``$1``, ``${2}``)."""
        return self.name.isdigit()


#: A variable or step name.
NAME: Final = r"[A-Za-z_][A-Za-z0-9_]*"
# What may stand between "${" and "}": a namespaced reference, a positional parameter,
# a name, a name with a jq path. Anything else (${X:-d}, ${#X}) is shell syntax.
_BRACED: Final = re.compile(
    rf"(?:(?P<ns>params|env)\.(?P<nsname>{NAME})|(?P<digits>[0-9]+)"
    rf"|(?P<name>{NAME})(?P<path>\..+)?)\Z",
    re.DOTALL,
)
_UNBRACED: Final = re.compile(rf"(?P<name>{NAME})|(?P<digits>[0-9]+)(?![A-Za-z_])")

# Token kinds.
PARAMS: Final = "params"
ENV: Final = "env"
POSITIONAL: Final = "positional"
PLAIN: Final = "plain"
PATH: Final = "path"
#: ``${…}`` that is no reference (shell syntax): copied as written.
SPAN: Final = "span"
#: A lone ``$`` (escaped, followed by nothing a reference could be).
DOLLAR: Final = "dollar"
#: Dagu-owned forms: resolved even in ``run``, their escape removed there too.
OWNED: Final = frozenset({PARAMS, ENV, PATH})


class Token(NamedTuple):
    kind: str
    start: int
    end: int
    name: str
    path: str | None
    braced: bool
    escaped: bool


def tokens(text: str, *, shell: bool) -> Iterator[Token]:
    """The references (and escaped dollars, and ``${…}`` spans that are not references)
    of ``text``, left to right. After an escaped ``$`` scanning goes on right after it
    (``shell=False``: the ``$`` is a literal, what follows is text) or after the span
    it would have opened (``shell=True``: the shell sees it all, as written)."""
    find = text.find
    pos = 0
    size = len(text)
    while True:
        i = find("$", pos)
        if i < 0 or i + 1 >= size:
            if i >= 0 and escaped(text, i):
                yield Token(DOLLAR, i, i + 1, "", None, False, True)
            return
        is_escaped = escaped(text, i)
        token = _match(text, i, is_escaped)
        if token is None:
            if is_escaped:
                yield Token(DOLLAR, i, i + 1, "", None, False, True)
            pos = i + 1
            continue
        yield token
        pos = token.end if (shell or not is_escaped) else i + 1


def escaped(text: str, dollar: int) -> bool:
    """An odd run of backslashes right before ``text[dollar]``."""
    j = dollar
    while j > 0 and text[j - 1] == "\\":
        j -= 1
    return (dollar - j) % 2 == 1


def _match(text: str, i: int, is_escaped: bool) -> Token | None:
    if text[i + 1] == "{":
        close = text.find("}", i + 2)
        if close <= i + 2:  # no "}", or "${}"
            return None
        end = close + 1
        m = _BRACED.match(text, i + 2, close)
        if m is None:
            return Token(SPAN, i, end, "", None, True, is_escaped)
        if m["ns"] is not None:
            kind = PARAMS if m["ns"] == "params" else ENV
            return Token(kind, i, end, m["ns"], "." + m["nsname"], True, is_escaped)
        if m["digits"] is not None:
            return Token(POSITIONAL, i, end, m["digits"], None, True, is_escaped)
        if m["path"] is not None:
            return Token(PATH, i, end, m["name"], m["path"], True, is_escaped)
        return Token(PLAIN, i, end, m["name"], None, True, is_escaped)
    m = _UNBRACED.match(text, i + 1)
    if m is None:
        return None
    if m["digits"] is not None:
        return Token(POSITIONAL, i, m.end(), m["digits"], None, False, is_escaped)
    return Token(PLAIN, i, m.end(), m["name"], None, False, is_escaped)


def find_references(text: str) -> list[Reference]:
    """Every reference in ``text``, left to right; escaped ones (``\\${…}``) excluded,
    and ``${…}`` that is shell syntax (``${X:-d}``) is none."""
    if "$" not in text:
        return []
    return [
        Reference(t.name, t.path, t.start, t.end, text[t.start : t.end])
        for t in tokens(text, shell=False)
        if not t.escaped and t.kind not in (SPAN, DOLLAR)
    ]


class SingleQuotes:
    """Which offsets of a text lie in a single-quoted span, by Dagu's rule: an unescaped
    ``'`` opens a span (unless right after ``$`` or ``}``) or closes the open one, and a
    reference counts as quoted only when a ``'`` follows it somewhere."""

    def __init__(self, text: str) -> None:
        self.quotes: list[int] = []  # offsets of unescaped quotes
        self.inside: list[bool] = []  # whether a span is open after each of them
        open_ = False
        for i, char in enumerate(text):
            if char != "'" or escaped(text, i):
                continue
            if open_:
                open_ = False
            elif i == 0 or text[i - 1] not in "$}":
                open_ = True
            self.quotes.append(i)
            self.inside.append(open_)

    def quoted(self, start: int, end: int) -> bool:
        from bisect import bisect_left

        before = bisect_left(self.quotes, start)
        if before == 0 or not self.inside[before - 1]:
            return False
        return bisect_left(self.quotes, end) < len(self.quotes)


def unescape(text: str) -> str:
    """Remove the escaping backslash of each escaped ``$`` (an odd run before it)."""
    out: list[str] = []
    last = 0
    i = text.find("$")
    while i >= 0:
        if escaped(text, i):
            out.append(text[last : i - 1])
            last = i
        i = text.find("$", i + 1)
    out.append(text[last:])
    return "".join(out)
