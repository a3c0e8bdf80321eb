"""JSON arguments: literal text, ``-`` for standard input, ``@path`` for a file.

The bytes go to the engine untouched, as :class:`~statebox.core.values.RawJSON`, so it
normalizes the exact literal the user wrote (``1.2300`` stays ``1.2300``) and applies its
size limit and its replacement of invalid UTF-8. Their nesting is checked here, before
any command parses them, so the error names the argument (``--patch``, ``VALUE``).
"""

from __future__ import annotations

import os
import sys

from ..core.errors import InvalidValueError, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.values import RawJSON

__all__ = ["JsonArgs"]


class JsonArgs:
    """Reads the JSON arguments of one command; standard input can be read only once."""

    def __init__(self) -> None:
        self._stdin_used_by: str | None = None

    def read(self, argument: str, what: str, *, envelope: int = 0) -> RawJSON:
        """``argument`` as JSON text; ``what`` names it in errors (``VALUE``, ``--default``);
        ``envelope``: levels it may nest around the values it carries (``OPS``)."""
        from ..core.values import RawJSON, check_depth  # loaded with the engine anyway

        data = self._bytes(argument, what)
        check_depth(data, what, envelope=envelope)
        return RawJSON(data)

    def _bytes(self, argument: str, what: str) -> bytes:
        if argument == "-":
            if self._stdin_used_by is not None:
                raise InvalidValueError(
                    f"{what} '-': standard input was already read for {self._stdin_used_by}"
                )
            self._stdin_used_by = what
            return sys.stdin.buffer.read()
        if argument.startswith("@"):
            path = argument[1:]
            try:
                with open(path, "rb") as file:
                    return file.read()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise InvalidValueError(
                    f"{what}: cannot read file {quoted(path)}: {reason}"
                ) from exc
        if _is_never_json(argument):
            raise InvalidValueError(_quoting_hint(argument, what))
        # Back to the bytes the user typed: invalid UTF-8 becomes U+FFFD in the engine,
        # exactly as it would from a file.
        return os.fsencode(argument)


# What JSON text starts with, after its whitespace: an object, array, string, number,
# true, false or null. '+' and '.' are left to the engine's message (a number, mistyped).
_JSON_STARTS = frozenset('{["-0123456789tfn+.\ufeff')
_JSON_WHITESPACE = " \t\n\r"


def _is_never_json(argument: str) -> bool:
    """``argument`` is plainly no JSON text: a bare word (``hello``), a sentence, a string
    in single quotes. Only what no JSON text can be is caught, at a glance (the engine
    parses the rest and words its own errors): the shell took the quotes the user
    meant for JSON (``statebox set x "hello"`` passes ``hello``)."""
    text = argument.strip(_JSON_WHITESPACE)
    if not text:
        return True
    if text[0] in "tfn":  # JSON's literals, nothing else, start with these
        return text not in ("true", "false", "null")
    return text[0] not in _JSON_STARTS


def _quoting_hint(argument: str, what: str) -> str:
    """How to write ``argument`` as the JSON string it probably meant, in shell quotes."""
    import json
    import shlex

    text = argument.strip(_JSON_WHITESPACE)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]  # 'hello': single quotes, meant as JSON's
    if len(text) > 60 or "\n" in text:
        shown = quoted(text[:40] + "…")
        return (
            f"{what} is not JSON: it starts with {shown} — a string must be quoted for JSON "
            f"inside the shell's quotes, e.g. '\"text\"', or read from a file with @path"
        )
    as_json = json.dumps(text, ensure_ascii=False)
    given = argument if argument.strip() else "an empty argument"
    return (
        f"{what} is not JSON: {given} — for the string {as_json}, quote it for JSON "
        f"inside shell quotes: {shlex.quote(as_json)}"
    )
