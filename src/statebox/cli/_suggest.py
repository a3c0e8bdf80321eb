"""Did-you-mean for usage errors: a mistyped command, action, choice or option is
answered with the closest that exists (:mod:`difflib`, as git and the runner's
``validate`` do), in the one ``Error: …`` line every usage error gets (exit code 2).

Loaded only on those error paths: no command that parses imports difflib.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence

from ..core.errors import quoted

__all__ = ["closest", "invalid_choice", "unrecognized"]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, if one is close enough."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def invalid_choice(prog: str, action: argparse.Action, value: object) -> str:
    """The message for ``value`` outside ``action``'s choices (a command's name, an
    action's, ``--format``'s), with the closest choice when one is close."""
    choices = [str(choice) for choice in action.choices or ()]
    guess = closest(str(value), choices)
    hint = f"; did you mean {quoted(guess)}?" if guess else ""
    if isinstance(action, argparse._SubParsersAction):
        what = "a command" if action.dest == "command" else f"an action of {prog}"
        listed = "" if guess else f"; one of: {', '.join(choices)}"
        return (
            f"{prog}: invalid choice: {quoted(value)} is not {what}{hint}{listed} "
            f"(see: {prog} --help)"
        )
    option = "/".join(action.option_strings) or str(action.metavar or action.dest)
    allowed = ", ".join(quoted(choice) for choice in choices)
    return (
        f"{prog}: argument {option}: invalid choice: {quoted(value)} "
        f"(choose from {allowed}){hint} (see: {prog} --help)"
    )


def chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the (sub-)command ``args`` was parsed for: ``statebox lease list``'s
    for ``lease list ...``, found by following each level's chosen name."""
    while True:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            return parser
        name = getattr(args, subparsers[0].dest, None)
        chosen = subparsers[0].choices.get(name) if isinstance(name, str) else None
        if not isinstance(chosen, argparse.ArgumentParser):
            return parser
        parser = chosen


def unrecognized(
    top: argparse.ArgumentParser,
    args: argparse.Namespace,
    extras: Sequence[str],
    common_options: frozenset[str],
) -> str:
    """The message for arguments no parser took: each unknown option with the closest of
    the command's own options, and a common option (``common_options``) the command does
    not read named as such (``lease`` takes no ``--dag``)."""
    parser = chosen_parser(top, args)
    prog = parser.prog
    own = [flag for action in parser._actions for flag in action.option_strings]
    hints: list[str] = []
    for arg in extras:
        if not arg.startswith("-") or arg == "-" or arg == "--":
            continue
        flag = arg.split("=", 1)[0]
        if flag in common_options and flag not in own:
            hints.append(f"{flag} means nothing to {prog}: it is not one of its options")
            continue
        guess = closest(flag, own)
        if guess is not None:
            hints.append(f"did you mean {guess}?")
    message = f"{prog}: unrecognized arguments: {' '.join(extras)}"
    if hints:
        message += "; " + "; ".join(hints)
    return f"{message} (see: {prog} --help)"
