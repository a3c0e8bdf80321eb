"""Options shared by the SPEC §5 commands: ``--fencing LEASE:TOKEN`` and ``--ttl``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import InvalidValueError, quoted

if TYPE_CHECKING:
    import argparse

__all__ = ["add_fencing_option", "add_ttl_option", "fencing_from"]


def add_fencing_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fencing",
        metavar="LEASE:TOKEN",
        help="refuse the write (exit code 4) if lease LEASE has a holder newer than TOKEN",
    )


def add_ttl_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=float,
        help=f"{what} expires after SECONDS (then it is missing for every command)",
    )


def fencing_from(args: argparse.Namespace) -> tuple[str, int] | None:
    """``--fencing import:3`` → ``("import", 3)`` (the lease name may contain ':')."""
    raw: str | None = args.fencing
    if raw is None:
        return None
    name, sep, token = raw.rpartition(":")
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if not sep or not name or not token.strip().isdecimal():
        raise InvalidValueError(
            f"invalid --fencing {quoted(raw)}: use LEASE:TOKEN, e.g. --fencing "
            'nightly-import:3 (the token printed by "statebox lease acquire")'
        )
    return name, int(token)
