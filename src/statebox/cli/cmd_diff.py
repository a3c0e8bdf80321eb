"""``statebox diff KEY VALUE [--no-update] [--expected-version N]`` → :meth:`StateStore.diff`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._input import JsonArgs
from ._parser import add_command, add_reveal_option, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import DiffResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "diff",
        common=("store", "format", "scope", "namespace", "context"),
        help="compare a value with the stored one (and store it when it changed)",
        description=(
            "Compare VALUE with the stored value (their normalized bytes). 'changed' is true\n"
            "when the key is missing or the value differs; a changed value is then written\n"
            "(guarded by the version compared against) unless --no-update is given."
        ),
        examples=[
            "statebox diff snapshots/api @response.json",
            "statebox diff snapshots/api - --no-update < response.json",
            "statebox diff snapshots/api @response.json | jq -e .changed && ./notify.sh",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. snapshots/api")
    parser.add_argument(
        "value", metavar="VALUE", help="JSON text ('-' reads standard input, '@path' a file)"
    )
    parser.add_argument(
        "--no-update",
        dest="update",
        action="store_false",
        help="only compare: never write, even when changed",
    )
    parser.add_argument(
        "--expected-version",
        metavar="N",
        type=checked(params.expected_version, "--expected-version"),
        help="fail with exit code 4 unless the stored version is N (0: key must not exist)",
    )
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> DiffResult:
    return store.diff(
        args.key,
        JsonArgs().read(args.value, "VALUE"),
        scope=args.scope,
        namespace=args.namespace,
        update=args.update,
        expected_version=args.expected_version,
    )
