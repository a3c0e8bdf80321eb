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
        # Back to the bytes the user typed: invalid UTF-8 becomes U+FFFD in the engine,
        # exactly as it would from a file.
        return os.fsencode(argument)
