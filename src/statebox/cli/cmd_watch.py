"""``statebox watch KEY|--prefix P [--after-version N] [--timeout S]`` →
:meth:`StateStore.watch_iter`, one JSON line per change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._parser import add_command, add_reveal_option, checked

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable

    from ..core.results import WatchEvent
    from ..store import StateStore
    from ._parser import Subparsers


def _after_version(raw: object, option: str) -> int:
    """A version to watch after: 0 (every version) or more."""
    return params.integer(raw, option, minimum=0)


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "watch",
        common=("store", "format", "scope", "namespace", "dag", "root_dag", "run_id"),
        help="print one JSON line per change of a key or of the keys under a prefix",
        description=(
            "Wait for changes and print one JSON line per change (event created, updated or\n"
            "deleted; previousVersion, version, hash). Without --after-version only changes\n"
            "after the start count; with it, a key already past version N is reported at\n"
            "once (with --prefix: every entry above version N; 0 reports all of them).\n"
            "Runs until --timeout seconds pass (default: until interrupted), or until the\n"
            "first change with --once."
        ),
        examples=[
            "statebox watch config/feed --timeout 60",
            "statebox watch --prefix jobs/ --after-version 0 --include-values",
            "statebox watch cursors/feed --after-version 4 --once --timeout 300",
        ],
    )
    parser.add_argument("key", metavar="KEY", nargs="?", help="the key to watch")
    parser.add_argument("--prefix", metavar="P", help="watch every key starting with P instead")
    parser.add_argument(
        "--after-version",
        metavar="N",
        type=checked(_after_version, "--after-version"),
        help="report changes past version N",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=checked(params.wait, "--timeout"),
        help="stop after SECONDS (default: never)",
    )
    parser.add_argument("--include-values", action="store_true", help="add each new value")
    parser.add_argument("--once", action="store_true", help="exit after the first change")
    add_reveal_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> None:
    from ._output import write_result

    options = {
        "prefix": args.prefix,
        "after_version": args.after_version,
        "timeout": args.timeout,
        "include_values": args.include_values,
        "scope": args.scope,
        "namespace": args.namespace,
    }
    events: Iterable[WatchEvent]
    if args.once:  # the first change: one batch (several keys may change at once)
        events = store.watch(args.key, **options).events
    else:
        events = store.watch_iter(args.key, **options)
    for event in events:
        write_result(event, args.format, args.reveal)
