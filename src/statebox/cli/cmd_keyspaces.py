"""``statebox keyspaces [--scope S] [--limit N] [--after SCOPE/NS]`` →
:meth:`StateStore.keyspaces`; ``statebox keyspaces delete`` →
:meth:`StateStore.delete_keyspace`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import params
from ._parser import add_command, checked

if TYPE_CHECKING:
    import argparse

    from ..core.results import KeyspaceDeleteResult, KeyspacesResult
    from ..store import StateStore
    from ._parser import Subparsers


def _after_keyspace(raw: object, option: str) -> str:
    """``SCOPE/NS`` checked by the faces' rule, kept as the text the engine takes."""
    keyspace = params.after_keyspace(raw, option)
    return f"{keyspace.scope}/{keyspace.namespace}"


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "keyspaces",
        common=("store", "format", "scope"),
        help="list the keyspaces (scope and namespace), or delete one whole",
        description=(
            "List every keyspace that holds live entries, in (scope, namespace) byte order,\n"
            "with its number of live entries and its last update (--scope: one scope only).\n"
            "Page with --limit and --after (the 'next' of the previous page).\n"
            "'statebox keyspaces delete' deletes one whole keyspace (--scope/--namespace, or\n"
            "the run context's default), as 'etcdctl del --prefix' deletes a range."
        ),
        examples=[
            "statebox keyspaces",
            "statebox keyspaces --scope run --limit 100 --format table",
            "statebox keyspaces --limit 100 --after run/run-1",
            "statebox keyspaces delete --scope run --namespace run-1",
        ],
    )
    parser.add_argument(
        "--limit",
        metavar="N",
        type=checked(params.limit, "--limit"),
        default=0,
        help="at most N keyspaces (0: no limit)",
    )
    parser.add_argument(
        "--after",
        metavar="SCOPE/NS",
        type=checked(_after_keyspace, "--after"),
        help="only keyspaces after SCOPE/NS (for paging)",
    )
    parser.set_defaults(handler=run)
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION")
    delete = add_command(
        actions,
        "delete",
        common=("store", "format", "scope", "namespace", "context"),
        help="delete every entry of one keyspace",
        description=(
            "Delete every entry of one keyspace (--scope and --namespace; the namespace\n"
            "defaults from the run context as for every command). Prints how many live\n"
            "entries it had; each key's history records its deletion."
        ),
        examples=["statebox keyspaces delete --scope run --namespace run-1"],
    )
    delete.set_defaults(handler=_delete)


def run(args: argparse.Namespace, store: StateStore) -> KeyspacesResult:
    return store.keyspaces(args.scope, after=args.after, limit=args.limit)


def _delete(args: argparse.Namespace, store: StateStore) -> KeyspaceDeleteResult:
    return store.delete_keyspace(args.scope, args.namespace)
