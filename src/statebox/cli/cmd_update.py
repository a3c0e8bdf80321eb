"""``statebox update KEY (--jq EXPR | --merge JSON | --patch JSON) [--default JSON]
[--ttl S]`` → :meth:`StateStore.update`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._beyond import add_fencing_option, add_ttl_option, fencing_from
from ._input import JsonArgs
from ._parser import add_command, add_reveal_option, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import SetResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "update",
        common=("store", "format", "scope", "namespace", "context"),
        help="transform one value atomically (jq, merge patch, JSON patch)",
        description=(
            "Read, transform and write one entry atomically: the store retries internally\n"
            "when another writer gets in between, so concurrent updates are never lost.\n"
            "A missing key starts from --default (else null). A jq expression must yield\n"
            "exactly one value; one that fails, yields none or several writes nothing\n"
            "(exit code 2). Prints the set result plus the value written."
        ),
        examples=[
            "statebox update counters/runs --jq '.n += 1' --default '{\"n\": 0}'",
            'statebox update config/feed --merge \'{"enabled": false, "old": null}\'',
            'statebox update config/feed --patch \'[{"op": "add", "path": "/tags/-", '
            '"value": "x"}]\'',
            "statebox update rate/api --jq '. + 1' --default 0 --ttl 60",
        ],
    )
    parser.add_argument("key", metavar="KEY", help="the key, e.g. counters/runs")
    transform = parser.add_mutually_exclusive_group(required=True)
    transform.add_argument("--jq", metavar="EXPR", help="a jq expression yielding the new value")
    transform.add_argument(
        "--merge", metavar="JSON", help="an RFC 7386 merge patch ('-' stdin, '@path' a file)"
    )
    transform.add_argument(
        "--patch", metavar="JSON", help="an RFC 6902 JSON patch, a list of operations"
    )
    parser.add_argument(
        "--default", metavar="JSON", help="the value a missing key starts from (default: null)"
    )
    add_ttl_option(parser, "the entry")
    parser.add_argument(
        "--expected-version",
        metavar="N",
        type=checked(params.expected_version, "--expected-version"),
        help="update only if the stored version is N (no internal retry), else exit code 4",
    )
    add_fencing_option(parser)
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> SetResult:
    from ..store import MISSING

    json_args = JsonArgs()
    merge = MISSING if args.merge is None else json_args.read(args.merge, "--merge")
    patch = MISSING if args.patch is None else json_args.read(args.patch, "--patch")
    default = MISSING if args.default is None else json_args.read(args.default, "--default")
    return store.update(
        args.key,
        jq=args.jq,
        merge=merge,
        patch=patch,
        default=default,
        ttl=args.ttl,
        expected_version=args.expected_version,
        fencing=fencing_from(args),
        scope=args.scope,
        namespace=args.namespace,
    )
