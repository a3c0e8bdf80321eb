"""Direktiv's errors: a code (``direktiv.jq.badCommand``, ``statebox.var.conflict``,
a function's own ``Direktiv-ErrorCode``) and a message, catchable or not.

A catchable error moves the instance to the first ``catch`` entry of the state whose
pattern matches the code, with ``.error = {"code", "msg"}`` in the data; an uncatchable
one (or a catchable one no entry matches) ends the instance ``failed``.
"""

from __future__ import annotations

import re
from typing import Final

from ...core.errors import StateboxError

__all__ = [
    "ALL_FAILED",
    "BAD_COMMAND",
    "CANCELLED",
    "CANCELLED_PARENT",
    "CONTAINER_FAILED",
    "EXECUTION_FAILED",
    "FILES_FAILED",
    "FILES_REFUSED",
    "FUNCTION_NOT_FOUND",
    "HARD_TIMEOUT",
    "INTERNAL",
    "INVALID_BASE64",
    "INVALID_KEY",
    "INVALID_SCOPE",
    "INVALID_VALUE",
    "MULTIPLE_ERRORS",
    "NOT_ARRAY",
    "NOT_OBJECT",
    "NOT_STRING",
    "RETRIES_EXCEEDED",
    "SCHEMA_FAILED",
    "SECRET_NOT_FOUND",
    "TIMEOUT",
    "VAR_CONFLICT",
    "DirektivError",
    "VarConflict",
    "code_matches",
    "pattern_regex",
]

# -- Direktiv's own codes -------------------------------------------------------------

#: A jq expression that does not compile, fails, or yields null or no value.
BAD_COMMAND: Final = "direktiv.jq.badCommand"
#: A ``transform`` (or another expression that must give an object) gave something else.
NOT_OBJECT: Final = "direktiv.jq.notObject"
#: A setter's ``key`` expression gave something other than a string.
NOT_STRING: Final = "direktiv.jq.notString"
#: A validate state's subject does not match its schema.
SCHEMA_FAILED: Final = "direktiv.schema.failed"
#: An action (or the instance) ran past its timeout.
TIMEOUT: Final = "direktiv.cancels.timeout.soft"
#: The instance ran past its hard timeout (uncatchable).
HARD_TIMEOUT: Final = "direktiv.cancels.timeout.hard"
#: The instance is stopping (uncatchable when a function call sees it).
CANCELLED: Final = "direktiv.cancels.api"
#: A branch of a ``parallel`` state stopped because another one failed.
CANCELLED_PARENT: Final = "direktiv.cancels.parent"
#: A key that breaks the name rule.
INVALID_KEY: Final = "direktiv.var.invalidKey"
#: A scope that is none of Direktiv's.
INVALID_SCOPE: Final = "direktiv.var.invalidScope"
#: Something went wrong inside (uncatchable).
INTERNAL: Final = "direktiv.internal.error"
#: A secret an action names is not set.
SECRET_NOT_FOUND: Final = "direktiv.secrets.notFound"
#: An action names a function the workflow does not declare.
FUNCTION_NOT_FOUND: Final = "direktiv.function.notFound"
#: A retried error came again once ``max_attempts`` retries were spent.
RETRIES_EXCEEDED: Final = "direktiv.retries.exceeded"
#: A ``foreach`` state's ``array`` is not an array.
NOT_ARRAY: Final = "direktiv.foreach.badArray"
#: Every branch of a ``parallel`` state (mode ``or``) failed.
ALL_FAILED: Final = "direktiv.parallel.allFailed"
#: An ``error`` state raised more than one error.
MULTIPLE_ERRORS: Final = "direktiv.workflow.multipleErrors"
#: A ``cmd`` function exited non-zero (Direktiv's command server's code).
EXECUTION_FAILED: Final = "io.direktiv.error.execution"
#: A ``url`` function replied non-2xx without a ``Direktiv-ErrorCode`` (the sidecar's).
CONTAINER_FAILED: Final = "container failed"

# -- statebox's codes -----------------------------------------------------------------

#: A setter's version guard failed and the instance could not run the states since
#: the getter again (an action stood between them).
VAR_CONFLICT: Final = "statebox.var.conflict"
#: ``application/octet-stream`` with a string that is not base64 (an internal,
#: uncatchable error in Direktiv; statebox names it).
INVALID_BASE64: Final = "statebox.var.invalidBase64"
#: A value statebox cannot store (over the size limit, not JSON).
INVALID_VALUE: Final = "statebox.var.invalidValue"
#: An archive (or name) that would write outside its place, a link, a device, too big.
FILES_REFUSED: Final = "statebox.files.refused"
#: A variable that is not what its ``type`` says, an ``out/`` name that is not a
#: variable name, or the disk refusing a write.
FILES_FAILED: Final = "statebox.files.failed"


def pattern_regex(pattern: str) -> re.Pattern[str] | None:
    """A ``catch.error`` / ``retries.codes`` pattern compiled as Direktiv compiles it
    (``engine.go``): ``*`` alone is ``.*``, any other text is a regular expression as it
    is (so ``*.execution`` does not compile); None when it does not compile."""
    try:
        return re.compile(".*" if pattern == "*" else pattern)
    except re.error:
        return None


def code_matches(pattern: str, code: str) -> bool:
    """Whether an error ``code`` matches a ``catch``/``retries`` pattern as Direktiv
    matches it: unanchored (``regexp.MatchString``); a pattern that does not compile
    matches nothing (Go ignores the error)."""
    regex = pattern_regex(pattern)
    return regex is not None and regex.search(code) is not None


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
