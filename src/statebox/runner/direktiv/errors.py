"""Direktiv's errors: a code (``direktiv.jq.badCommand``, ``statebox.var.conflict``,
a function's own ``Direktiv-ErrorCode``) and a message, catchable or not.

A catchable error moves the instance to the first ``catch`` entry of the state whose
pattern matches the code, with ``.error = {"code", "msg"}`` in the data; an uncatchable
one (or a catchable one no entry matches) ends the instance ``failed``.
"""

from __future__ import annotations

from typing import Final

from ...core.errors import StateboxError

__all__ = [
    "BAD_COMMAND",
    "SCHEMA_FAILED",
    "TIMEOUT",
    "VAR_CONFLICT",
    "DirektivError",
    "VarConflict",
]

#: A jq expression that does not compile, fails, or yields null or no value.
BAD_COMMAND: Final = "direktiv.jq.badCommand"
#: A validate state's subject does not match its schema.
SCHEMA_FAILED: Final = "direktiv.schema.failed"
#: An action (or the instance) ran past its timeout.
TIMEOUT: Final = "direktiv.cancels.timeout.soft"
#: A setter's version guard failed and the instance could not run the states since
#: the getter again (an action stood between them).
VAR_CONFLICT: Final = "statebox.var.conflict"


class DirektivError(StateboxError):
    """An error a workflow sees: ``code`` and ``message``; ``catchable`` says whether a
    ``catch`` may handle it."""

    def __init__(self, code: str, message: str, *, catchable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.catchable = catchable

    def as_data(self) -> dict[str, str]:
        """What the instance data holds at ``.error``."""
        return {"code": self.code, "msg": self.message}


class VarConflict(DirektivError):
    """A guarded write of variables found a newer version than the instance read:
    nothing was written. ``keys`` names each ``(scope, key)`` that conflicted, in
    Direktiv's scope words."""

    def __init__(self, keys: list[tuple[str, str]], message: str) -> None:
        super().__init__(VAR_CONFLICT, message)
        self.keys = keys
