"""``statebox set KEY VALUE [--expected-version N] [--create-only]`` → :meth:`StateStore.set`."""

from __future__ import annotations

from ..core import params
from ._beyond import add_fencing_option, add_ttl_option, fencing_from
from ._input import JsonArgs
from ._parser import add_command, checked

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..core.results import SetResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "set",
        common=("store", "format", "scope", "namespace", "context"),
        help="create or update one value",
        description=(
            "Write one entry: a new key gets version 1, every write adds 1.\n"
            "With --expected-version N the write happens only if the stored version is N\n"
            "(0: the key must not exist), else it fails with exit code 4 and writes nothing."
        ),
        examples=[
            "statebox set cursors/feed '{\"last_id\": 123}' --dag feed-sync",
            "statebox set cursors/feed '{\"last_id\": 124}' --expected-version 1",
            "statebox set locks/export '\"me\"' --create-only",
            "curl -s https://example.com/api | statebox set snapshots/api -",
            "statebox set config/limits @limits.json --scope global",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. cursors/feed")
    parser.add_argument(
        "value", metavar="VALUE", help="JSON text ('-' reads standard input, '@path' a file)"
    )
    parser.add_argument(
        "--expected-version",
        metavar="N",
        type=checked(params.expected_version, "--expected-version"),
        help="write only if the stored version is N (0: only if the key does not exist)",
    )
    parser.add_argument(
        "--create-only", action="store_true", help="fail with exit code 4 if the key exists"
    )
    add_ttl_option(parser, "the entry")
    add_fencing_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> SetResult:
    return store.set(
        args.key,
        JsonArgs().read(args.value, "VALUE"),
        scope=args.scope,
        namespace=args.namespace,
        expected_version=args.expected_version,
        create_only=args.create_only,
        ttl=args.ttl,
        fencing=fencing_from(args),
    )
