"""``statebox rollback KEY --to-version N [--expected-version N]`` →
:meth:`StateStore.rollback`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._beyond import add_fencing_option, fencing_from
from ._parser import add_command, add_reveal_option, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import SetResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "rollback",
        common=("store", "format", "scope", "namespace", "context"),
        help="write a kept past version back as a new version",
        description=(
            "Write the value of a kept past version (see 'statebox history') back as a new\n"
            "version. Guarded by the current version: a concurrent write makes it fail with\n"
            "exit code 4 instead of being overwritten. A version no longer kept: exit code 3."
        ),
        examples=[
            "statebox rollback config/feed --to-version 3",
            "statebox rollback config/feed --to-version 3 --expected-version 5",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. config/feed")
    parser.add_argument(
        "--to-version",
        metavar="N",
        type=checked(params.version, "--to-version"),
        required=True,
        help="the version to restore",
    )
    parser.add_argument(
        "--expected-version",
        metavar="N",
        type=checked(params.expected_version, "--expected-version"),
        help="roll back only if the current version is N, else exit code 4",
    )
    add_fencing_option(parser)
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> SetResult:
    return store.rollback(
        args.key,
        args.to_version,
        expected_version=args.expected_version,
        fencing=fencing_from(args),
        scope=args.scope,
        namespace=args.namespace,
    )
