"""``statebox get KEY [--default JSON] [--required]`` → :meth:`StateStore.get`."""

from __future__ import annotations

from ..core import params
from ._parser import add_command, add_reveal_option, checked

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..core.results import GetResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "get",
        common=("store", "format", "scope", "namespace", "dag", "root_dag", "run_id"),
        help="read one value",
        description=(
            "Read one entry. A missing key prints found:false (with the --default value when\n"
            "one is given); with --required it fails with exit code 3."
        ),
        examples=[
            "statebox get cursors/feed --dag feed-sync",
            "statebox get cursors/feed --default '{\"last_id\": 0}'",
            "statebox get config/limits --scope global --required",
            "statebox get cursors/feed | jq -r '.value.last_id'",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. cursors/feed")
    parser.add_argument(
        "--default",
        metavar="JSON",
        help="JSON value to print when the key is missing ('-' stdin, '@path' a file)",
    )
    parser.add_argument(
        "--required",
        action="store_true",
        help="fail with exit code 3 when the key is missing (wins over --default)",
    )
    parser.add_argument(
        "--version",
        metavar="N",
        type=checked(params.version, "--version"),
        help="read kept past version N (see 'statebox history') instead of the current one",
    )
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> GetResult:
    from ..store import MISSING  # already loaded with the store

    default: object
    if args.default is None:
        default = MISSING
    else:
        from ._input import JsonArgs  # most reads give no --default: not loaded for them

        default = JsonArgs().read(args.default, "--default")
    return store.get(
        args.key,
        scope=args.scope,
        namespace=args.namespace,
        default=default,
        required=args.required,
        version=args.version,
    )
