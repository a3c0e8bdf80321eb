"""The argument parser: the common options, one subparser per command, usage errors.

Common options (``--store``, ``--format``, ``--scope``, ``--namespace`` and the run
context) are accepted before *and* after the command: the top-level parser gives them
their defaults, and every command's parser repeats the ones it reads (``add_command``'s
``common``) with ``SUPPRESS`` defaults so that only options actually written after the
command override the ones before it. A command's ``--help`` lists only those.

A mistyped command, action or choice is answered with the closest one
(:mod:`._suggest`, loaded only then).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable, Sequence

from ..core.errors import requoted

__all__ = [
    "COMMON_NAMES",
    "EXIT_CODES",
    "UsageError",
    "add_command",
    "add_reveal_option",
    "checked",
    "new_parser",
    "value_option_strings",
    "version_line",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn, TypeAlias, TypeVar

    #: What a command module's ``register`` receives.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    _T = TypeVar("_T")

PROG = "statebox"

#: The exit codes scripts branch on; printed in the top-level ``--help`` and the README.
EXIT_CODES = """\
exit codes:
  0  success
  1  any other error (backend unavailable, permission denied, corrupt entry)
  2  bad input or configuration (usage, invalid key/scope/namespace, invalid or
     too large value, missing run context, custom scope without --namespace)
  3  not found (get --required)
  4  conflict (--expected-version or --create-only did not hold, a lease is held
     by another, or --fencing was refused because a newer lease holder exists)"""

_TOP_EPILOG = f"""\
examples:
  statebox set cursors/feed '{{"last_id": 123}}' --dag feed-sync
  statebox get cursors/feed --default '{{"last_id": 0}}' --dag feed-sync
  statebox list cursors/ --scope global --format table

VALUE and --default are JSON text; '-' reads it from standard input and '@path' from
a file. The run context comes from --dag/--root-dag/--run-id/--step, else from
STATEBOX_DAG, STATEBOX_ROOT_DAG, STATEBOX_RUN_ID, STATEBOX_STEP (or Dagu's, Airflow's
and GitHub Actions' variables).

{EXIT_CODES}
"""

# argparse only takes "-5" and "-.5" for negative numbers; a JSON VALUE may be any
# JSON number literal ("-1.5e3", "-0"), and none of our options looks like one.
_JSON_NEGATIVE_NUMBER = r"^-(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"


class _NegativeNumberMatcher:
    """``_JSON_NEGATIVE_NUMBER``, compiled only when an argument could match it.

    argparse tries the matcher on every option string it is given (``--store``, ...);
    none starts with ``-`` and a digit, so a start-up that sees no negative number never
    compiles the pattern (a quarter of a millisecond).
    """

    def match(self, text: str) -> re.Match[str] | None:
        if len(text) < 2 or not text[1].isdigit():
            return None  # the pattern needs "-" then a digit
        return re.match(_JSON_NEGATIVE_NUMBER, text)


_NEGATIVE_NUMBER_MATCHER = _NegativeNumberMatcher()


def _as_written(message: str) -> str:
    return message


_ARGPARSE = vars(argparse)
_TRANSLATE = _ARGPARSE["_"]  # gettext.gettext


class _LazyPattern:
    """A pattern compiled when it is first used (by re's cache)."""

    __slots__ = ("_args",)

    def __init__(self, *args: Any) -> None:
        self._args = args

    def __getattr__(self, name: str) -> Any:
        return getattr(re.compile(*self._args), name)


class _LazyRe:
    """argparse's ``re`` while it builds a parser or a help formatter: ``compile()``
    compiles nothing until the pattern is used. A parser compiles one pattern that is
    replaced at once (:data:`_NEGATIVE_NUMBER_MATCHER`), and so does every formatter
    (argparse builds one for each option it adds): two, used only to format help. The
    first compiling of each costs a CLI start-up a twentieth of a millisecond."""

    @staticmethod
    def compile(*args: Any) -> _LazyPattern:
        return _LazyPattern(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


_LAZY_RE = _LazyRe()


class _LazyCompiling:
    """argparse's ``re`` is :class:`_LazyRe` inside the block; leaving restores the
    module itself (a block entered inside another leaves the rest of the outer one
    compiling as usual, which only costs its time)."""

    def __enter__(self) -> None:
        _ARGPARSE["_re"] = _LAZY_RE

    def __exit__(self, *exc_info: object) -> None:
        _ARGPARSE["_re"] = re


class _Untranslated(_LazyCompiling):
    """argparse's own strings as written, while a parser is built (and its patterns
    compiled lazily: :class:`_LazyCompiling`).

    ``ArgumentParser()`` and ``add_subparsers()`` pass their built-in help strings
    ("options", "positional arguments", "show this help message and exit") through
    gettext, whose first look-up imports ``locale`` (over a millisecond of every
    start-up) to find a catalog that is not there. The rest of statebox's help is
    English, so these stay English too; messages argparse formats later (usage, errors)
    still go through gettext as before. Leaving always restores the function argparse
    was imported with, so threads building parsers at once cannot leave it swapped.
    """

    def __enter__(self) -> None:
        super().__enter__()
        _ARGPARSE["_"] = _as_written

    def __exit__(self, *exc_info: object) -> None:
        _ARGPARSE["_"] = _TRANSLATE
        super().__exit__()


@functools.cache
def _terminal_width() -> int:
    # What shutil.get_terminal_size() answers, without importing shutil (and with it bz2
    # and lzma) at every start-up: argparse builds a help formatter for every option.
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
        return 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _terminal_width() - 2 if width is None else width
        with _LazyCompiling():
            super().__init__(prog, indent_increment, max_help_position, width)


class UsageError(Exception):
    """Bad command-line usage: reported as ``Error: …`` with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs: Any) -> None:
        # Scripts depend on exact option names: no silent prefix matching.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        with _Untranslated():
            super().__init__(**kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER_MATCHER  # type: ignore[assignment]

    def error(self, message: str) -> NoReturn:
        # argparse shows values as Python reprs ('x'): quoted here as statebox quotes them.
        raise UsageError(f"{self.prog}: {requoted(message)} (see: {self.prog} --help)")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # A value outside the choices (a command's name, an action's, --format's): the
        # error says which one was probably meant. Checked by difflib, loaded only here.
        if action.choices is not None and value not in action.choices:
            from ._suggest import invalid_choice

            raise UsageError(invalid_choice(self.prog, action, value))
        super()._check_value(action, value)


# (name, flags, keyword arguments) of the common options; "default" is the top-level
# default. A command names the ones it reads in add_command's ``common``.
_COMMON: tuple[tuple[str, tuple[str, ...], dict[str, Any]], ...] = (
    (
        "store",
        ("--store",),
        {
            "metavar": "URL",
            "default": None,
            "help": "store URL (default: $STATEBOX_STORE, else sqlite:///$STATEBOX_HOME/state.db)",
        },
    ),
    (
        "format",
        ("--format",),
        {
            "choices": ("json", "table"),
            "default": "json",
            "help": "json: the one-line JSON result (default); table: readable text for people",
        },
    ),
    (
        "scope",
        ("--scope",),
        {
            "metavar": "SCOPE",
            "default": None,
            "help": "dag (default), root_dag, run, global, custom or statebox (reserved)",
        },
    ),
    (
        "namespace",
        ("--namespace",),
        {
            "metavar": "NS",
            "default": None,
            "help": "namespace (default: from the scope and the run context; "
            "required with --scope custom)",
        },
    ),
    (
        "dag",
        ("--dag",),
        {"metavar": "NAME", "default": None, "help": "workflow name ($STATEBOX_DAG)"},
    ),
    (
        "root_dag",
        ("--root-dag",),
        {"metavar": "NAME", "default": None, "help": "root workflow name ($STATEBOX_ROOT_DAG)"},
    ),
    (
        "run_id",
        ("--run-id",),
        {"metavar": "ID", "default": None, "help": "run id ($STATEBOX_RUN_ID)"},
    ),
    (
        "step",
        ("--step",),
        {"metavar": "NAME", "default": None, "help": "step name ($STATEBOX_STEP)"},
    ),
)

#: The names ``add_command``'s ``common`` takes: each common option by its name, and
#: "context", the whole run context. ``None`` (the default) adds them all.
COMMON_NAMES: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name, _, _ in _COMMON},
    "context": ("dag", "root_dag", "run_id", "step"),
}


def value_option_strings() -> frozenset[str]:
    """The common options that take a value (to find the command name in argv cheaply)."""
    return frozenset(flag for _, flags, _ in _COMMON for flag in flags)


def _add_common(
    parser: argparse.ArgumentParser, *, after_command: bool, names: frozenset[str] | None = None
) -> None:
    """The common options (``names`` only, when given), in one group of the help."""
    chosen = [(flags, kwargs) for name, flags, kwargs in _COMMON if names is None or name in names]
    if not chosen:
        return  # no empty heading in the command's --help
    group = parser.add_argument_group("common options (before or after the command)")
    for flags, kwargs in chosen:
        if after_command:
            kwargs = {**kwargs, "default": argparse.SUPPRESS}
        group.add_argument(*flags, **kwargs)


def _common_names(common: Sequence[str]) -> frozenset[str]:
    names: set[str] = set()
    for name in common:
        if name not in COMMON_NAMES:  # a mistake in a command module, found by any test
            raise ValueError(f"unknown common option {name!r}: one of {sorted(COMMON_NAMES)}")
        names.update(COMMON_NAMES[name])
    return frozenset(names)


def version_line() -> str:
    """``statebox 0.1.0``: the installed distribution's version (its metadata, read only
    when asked: importlib.metadata costs milliseconds no other command pays)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{PROG} {version('statebox')}"
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return f"{PROG} (version unknown: the package is not installed)"


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_line` on standard output, exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        sys.stdout.write(version_line() + "\n")
        sys.stdout.flush()
        parser.exit(0)


def new_parser() -> tuple[argparse.ArgumentParser, Subparsers]:
    """The top-level parser and the subparsers action the commands register into."""
    parser: argparse.ArgumentParser = _Parser(
        prog=PROG,
        description="Persistent state for workflows: small versioned JSON values\n"
        "addressed by scope, namespace and key.",
        epilog=_TOP_EPILOG,
    )
    _add_common(parser, after_command=False)
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print statebox's version and exit",
    )
    with _Untranslated():
        subparsers = parser.add_subparsers(
            title="commands", dest="command", metavar="COMMAND", required=True
        )
    return parser, subparsers


def checked(rule: Callable[[object, str], _T], option: str) -> Callable[[str], _T]:
    """An option's ``type=``: ``rule`` (one of :mod:`statebox.core.params`, the rules
    every face shares) with the option's name, so ``--version 0`` is refused while the
    command line is parsed, before the store is opened, as HTTP refuses ``?version=0``.
    The refusal (an :class:`~statebox.core.errors.InvalidRequestError`) is no
    ``ValueError``: argparse lets it through to :func:`statebox.cli.main`, which prints
    ``Error: invalid --version 0: must be 1 or more`` and exits with its code, 2."""

    def check(raw: str) -> _T:
        return rule(raw, option)

    check.__name__ = option  # what argparse would call it in a message of its own
    return check


def add_command(
    subparsers: Subparsers,
    name: str,
    *,
    help: str,
    description: str,
    examples: Sequence[str],
    common: Sequence[str] | None = None,
) -> argparse.ArgumentParser:
    """Add one command's parser, with the common options and an examples epilog.

    ``common`` names the common options the command reads (:data:`COMMON_NAMES`:
    ``"store"``, ``"format"``, ``"scope"``, ``"namespace"``, ``"context"`` for the whole
    run context, or one part of it, ``"run_id"``); only those are accepted after the
    command and listed in its ``--help``. ``None`` adds them all. Before the command
    every common option is accepted, as it always was.
    """
    names = None if common is None else _common_names(common)
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, epilog=epilog
    )
    _add_common(parser, after_command=True, names=names)
    return parser


def add_reveal_option(parser: argparse.ArgumentParser) -> None:
    """``--reveal``, on a command that prints values: the values of secret keyspaces
    (``STATEBOX_SECRET_NAMESPACES`` and the builtins) are masked otherwise."""
    parser.add_argument(
        "--reveal",
        action="store_true",
        help='print the values of secret keyspaces (else each is "***" with "masked": true)',
    )
