"""``statebox lease acquire|renew|release|get NAME …`` → :meth:`StateStore.acquire_lease`,
:meth:`~StateStore.renew_lease`, :meth:`~StateStore.release_lease`,
:meth:`~StateStore.get_lease`; ``statebox lease list`` → :meth:`~StateStore.list_leases`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._parser import add_command, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import LeaseResult, LeasesResult
    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "lease",
        common=(),
        help="acquire, renew, release, show or list leases with fencing tokens",
        description=(
            "A lease names a piece of work; acquiring it returns a fencing token greater than\n"
            "any issued for that name before. Pass --fencing NAME:TOKEN to set, delete,\n"
            "update, rollback and txn: the write fails with exit code 4 once anyone acquired\n"
            "the lease after you, so a stale retry of a step cannot clobber newer work.\n"
            "Acquiring a lease another holder has (and that has not expired): exit code 4."
        ),
        examples=[
            "statebox lease acquire nightly-import --ttl 300",
            "statebox lease renew nightly-import --token 7 --holder HOLDER --ttl 300",
            "statebox lease release nightly-import --token 7 --holder HOLDER",
            "statebox lease get nightly-import",
            "statebox lease list --limit 100",
            "statebox set cursors/feed '{\"id\": 9}' --fencing nightly-import:7",
        ],
    )
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    acquire = add_command(
        actions,
        "acquire",
        common=("store", "format", "dag", "run_id", "step"),
        help="take the lease for --ttl seconds",
        description="Take the lease NAME for --ttl seconds; prints its holder and token.",
        examples=["statebox lease acquire nightly-import --ttl 300"],
    )
    acquire.add_argument("name", metavar="NAME", help="the lease's name")
    acquire.add_argument(
        "--ttl", metavar="SECONDS", type=checked(params.ttl, "--ttl"), required=True
    )
    acquire.add_argument(
        "--holder", metavar="HOLDER", help="who holds it (default: the run context + random)"
    )
    acquire.set_defaults(handler=_acquire)
    for action, helptext in (("renew", "extend a live lease"), ("release", "end a lease")):
        sub = add_command(
            actions,
            action,
            common=("store", "format"),
            help=helptext,
            description=f"{helptext[0].upper()}{helptext[1:]}: the holder and token printed "
            "by 'statebox lease acquire'.",
            examples=[f"statebox lease {action} nightly-import --token 7 --holder HOLDER"],
        )
        sub.add_argument("name", metavar="NAME", help="the lease's name")
        sub.add_argument(
            "--token", metavar="N", type=checked(params.token, "--token"), required=True
        )
        sub.add_argument("--holder", metavar="HOLDER", required=True)
        if action == "renew":
            sub.add_argument(
                "--ttl", metavar="SECONDS", type=checked(params.ttl, "--ttl"), required=True
            )
        sub.set_defaults(handler=_renew if action == "renew" else _release)
    get = add_command(
        actions,
        "get",
        common=("store", "format"),
        help="show a lease",
        description=(
            "Show the latest lease on NAME: its holder, token and expiry (perhaps past).\n"
            "A lease never acquired: exit code 3."
        ),
        examples=["statebox lease get nightly-import"],
    )
    get.add_argument("name", metavar="NAME", help="the lease's name")
    get.set_defaults(handler=_get)
    listing = add_command(
        actions,
        "list",
        common=("store", "format"),
        help="list the leases held now",
        description=(
            "List the live leases (neither expired nor released) by name, each with its\n"
            "holder, token and expiry. Page with --limit and --after (the 'next' of the\n"
            "previous page)."
        ),
        examples=["statebox lease list", "statebox lease list --limit 100 --after nightly-import"],
    )
    listing.add_argument(
        "--limit",
        metavar="N",
        type=checked(params.limit, "--limit"),
        default=0,
        help="at most N leases (0: no limit)",
    )
    listing.add_argument(
        "--after", metavar="NAME", help="only leases named after NAME (for paging)"
    )
    listing.set_defaults(handler=_list)


def _acquire(args: argparse.Namespace, store: StateStore) -> LeaseResult:
    return store.acquire_lease(args.name, args.ttl, holder=args.holder)


def _renew(args: argparse.Namespace, store: StateStore) -> LeaseResult:
    return store.renew_lease(args.name, args.ttl, token=args.token, holder=args.holder)


def _release(args: argparse.Namespace, store: StateStore) -> LeaseResult:
    return store.release_lease(args.name, token=args.token, holder=args.holder)


def _get(args: argparse.Namespace, store: StateStore) -> LeaseResult:
    lease = store.get_lease(args.name)
    if lease is None:
        from ..core.errors import NotFoundError, quoted

        raise NotFoundError(f"lease {quoted(args.name)} was never acquired")
    return lease


def _list(args: argparse.Namespace, store: StateStore) -> LeasesResult:
    from ..core.results_beyond import LeasesResult

    limit: int = args.limit
    # One more than asked tells whether another page follows.
    leases = store.list_leases(after=args.after, limit=limit + 1 if limit else 0)
    if limit and len(leases) > limit:
        return LeasesResult(leases[:limit], leases[limit - 1].name)
    return LeasesResult(leases)
