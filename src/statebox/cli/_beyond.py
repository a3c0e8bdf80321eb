"""Options shared by the SPEC §5 commands: ``--fencing LEASE:TOKEN`` and ``--ttl``."""

from __future__ import annotations

from ..core import params
from ._parser import checked

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..core.leases import Fencing

__all__ = ["add_fencing_option", "add_ttl_option", "fencing_from"]


def add_fencing_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fencing",
        metavar="LEASE:TOKEN",
        type=checked(_fencing, "--fencing"),
        help="refuse the write (exit code 4) if lease LEASE has a holder newer than TOKEN "
        "(TOKEN: 1 or more)",
    )


def add_ttl_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=checked(params.ttl, "--ttl"),
        help=f"{what} expires after SECONDS (then it is missing for every command); "
        "a number more than 0, up to 100 years",
    )


def _fencing(raw: object, option: str) -> Fencing:
    """``LEASE:TOKEN`` (the lease name may contain ':') as the fence a write carries,
    each part checked by the faces' rules (:func:`params.fencing_parts`)."""
    return params.fencing_text(
        str(raw),
        option,
        f'{option} nightly-import:3 (the token printed by "statebox lease acquire")',
    )


def fencing_from(args: argparse.Namespace) -> Fencing | None:
    """``--fencing import:3`` as the fence the write carries (checked while parsing)."""
    fence: Fencing | None = args.fencing
    return fence
