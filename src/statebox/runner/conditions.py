"""Preconditions, and matching a step's output against patterns, as Dagu does.

Dagu (``internal/runtime/condition.go``, ``internal/cmn/stringutil/matcher.go``, spec
023):

* A value is read line by line as Go's ``bufio.Scanner`` reads it: lines end at ``\\n``,
  a ``\\r`` before it is dropped, a final ``\\n`` ends the last line (it does not start
  an empty one). An empty value has no line: there, a pattern matches when it matches
  the empty string.
* ``expected``: met when one line *equals* it; ``re:PATTERN``: when the regular
  expression is found in one line (not anchored: write ``^…$`` to anchor).
* ``continue_on.output``: a pattern matches when one line *contains* it (Dagu compares
  output loosely, conditions exactly); ``re:`` as above.
* Regular expressions are Python's (``re``): Go's RE2 syntax for everything RE2 and
  Python share (classes, ``(?i)``, anchors, groups); an invalid one is an error, never a
  silent mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final

from ..core.errors import InvalidValueError, quoted
from .model import Precondition
from .refs import RefContext, render_text

__all__ = ["expected_matches", "output_matches", "preconditions_met"]

_RE: Final = "re:"


def _lines(text: str) -> list[str]:
    """``text``'s lines as Go's ``bufio.ScanLines`` gives them."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidValueError(
            f"invalid regular expression {quoted(_RE + pattern)}: {exc}"
        ) from exc


def _matches(text: str, patterns: Sequence[str], *, exact: bool) -> bool:
    regexes = [_compile(p[len(_RE) :]) for p in patterns if p.startswith(_RE)]
    literals = [p for p in patterns if not p.startswith(_RE)]
    lines = _lines(text)
    if not lines:  # an empty value: the empty string is all there is to match
        return "" in literals or any(r.search("") for r in regexes)
    for line in lines:
        if exact:
            if line in literals:
                return True
        elif any(literal in line for literal in literals):
            return True
        if any(r.search(line) for r in regexes):
            return True
    return False


def expected_matches(value: str, expected: str) -> bool:
    """Whether one line of ``value`` equals ``expected`` or, for ``re:PATTERN``, holds a
    match of the regular expression (unanchored). Raises
    :class:`~statebox.core.errors.InvalidValueError` for an invalid expression."""
    return _matches(value, (expected,), exact=True)


def output_matches(output: str, patterns: Sequence[str]) -> bool:
    """``continue_on.output``: whether one line of ``output`` contains one of
    ``patterns`` or, for ``re:PATTERN``, holds a match of it (unanchored). Raises
    :class:`~statebox.core.errors.InvalidValueError` for an invalid expression."""
    return _matches(output, patterns, exact=False) if patterns else False


def preconditions_met(
    preconditions: Sequence[Precondition],
    ctx: RefContext,
    *,
    run_shell: Callable[[str], int],
) -> bool:
    """Whether every precondition holds (a list is an AND).

    A precondition with ``expected`` compares its rendered ``condition`` (references
    substituted as in a ``with`` string: it is data, never run) with ``expected``; one
    without is a shell command, rendered as a ``run`` command is (the shell expands its
    own variables) and given to ``run_shell``, which runs it in the step's shell,
    environment and working directory and returns its exit code: met on 0 (a command
    that cannot start — ``OSError`` — is not met). ``negate`` inverts the outcome.

    As Dagu, every precondition is evaluated, in order, even after one was not met (a
    command check may have side effects; none is skipped silently). An evaluation error
    — an invalid ``re:`` expression — raises
    :class:`~statebox.core.errors.InvalidValueError` (the step fails, it is not
    skipped), after the others ran; ``negate`` never turns it into success.
    """
    met = True
    error: InvalidValueError | None = None
    for precondition in preconditions:
        try:
            outcome = _holds(precondition, ctx, run_shell)
        except InvalidValueError as exc:
            if error is None:
                error = _located(precondition, exc)
            continue
        if outcome == precondition.negate:
            met = False
    if error is not None:
        raise error
    return met


def _holds(precondition: Precondition, ctx: RefContext, run_shell: Callable[[str], int]) -> bool:
    """The outcome before ``negate``."""
    if precondition.expected is None:
        command = render_text(precondition.condition, ctx, shell=True)
        try:
            return run_shell(command) == 0
        except OSError:
            return False
    value = render_text(precondition.condition, ctx, shell=False)
    return expected_matches(value, precondition.expected)


def _located(precondition: Precondition, exc: InvalidValueError) -> InvalidValueError:
    where = f"{precondition.where}: " if precondition.where is not None else ""
    located = InvalidValueError(
        f"{where}precondition {quoted(precondition.condition)} cannot be evaluated: {exc.message}"
    )
    located.__cause__ = exc
    return located
