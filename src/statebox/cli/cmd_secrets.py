"""``statebox secrets keygen|rotate``: the keys that seal the values of secret keyspaces.

``keygen`` prints one new key (:func:`statebox.backends.sealing.keyring.generate_key`)
alone on its line, so ``export STATEBOX_SECRET_KEY=$(statebox secrets keygen)`` works.
``rotate`` re-seals every secret entry under the primary key
(:func:`statebox.backends.sealing.rotate.rotate`) and prints its report as one JSON line.
Rotation runs where the key is: against the store itself, never through a server (a
remote store's server seals with its own key, which the client never sees).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ..store import StateStore
    from ._parser import Subparsers

_DESCRIPTION = """\
Keys of the secret keyspaces (STATEBOX_SECRET_NAMESPACES, and the Atlan CREDENTIALS
namespaces, always secret): their values are sealed at rest (AES-GCM) with the key from
STATEBOX_SECRET_KEY, else from the key file ($STATEBOX_SECRET_KEY_FILE, else
$STATEBOX_HOME/secret.key, created with mode 0600 on the first sealed write)."""


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "secrets",
        common=(),
        help="make a secret key, or re-seal the secret entries under a new one",
        description=_DESCRIPTION,
        examples=[
            "statebox secrets keygen",
            "export STATEBOX_SECRET_KEY=$(statebox secrets keygen)",
            "statebox secrets rotate",
            'STATEBOX_SECRET_KEY="$NEW,$OLD" statebox secrets rotate --no-new-key',
        ],
    )
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    keygen = add_command(
        actions,
        "keygen",
        common=(),
        help="print a new random key",
        description=(
            "Print one new key (32 random bytes, URL-safe base64) alone on its line.\n"
            "Nothing is stored: set it as STATEBOX_SECRET_KEY, or write it in a key file."
        ),
        examples=[
            "statebox secrets keygen",
            "export STATEBOX_SECRET_KEY=$(statebox secrets keygen)",
        ],
    )
    keygen.set_defaults(handler=_keygen, opens_store=False)
    rotate = add_command(
        actions,
        "rotate",
        common=("store", "format", "dag", "run_id", "step"),
        help="re-seal every secret entry under the primary key",
        description=(
            "With the key file: add a new key in front of it (the old ones stay, so history\n"
            "stays readable), then re-seal every live secret entry under it. With\n"
            'STATEBOX_SECRET_KEY: set it to "NEW,OLD" first and give --no-new-key; every\n'
            "entry is re-sealed under NEW. Safe to interrupt (run it again to finish) and to\n"
            "run while others read and write. Runs against the store itself, where the key\n"
            "is: not through a statebox server (run it on the server's host, with its store\n"
            "URL). Prints one JSON line: the key id, how many entries were re-sealed, how\n"
            "many secret keyspaces it went through, the ids of the older keys kept."
        ),
        examples=[
            "statebox secrets rotate",
            "statebox secrets rotate --no-new-key --store sqlite:///var/lib/statebox/state.db",
        ],
    )
    rotate.add_argument(
        "--no-new-key",
        dest="new_key",
        action="store_false",
        help="re-seal under the current primary key; make no new key",
    )
    rotate.set_defaults(handler=_rotate)


def _keygen(args: argparse.Namespace, store: None) -> int:
    import sys

    from ..backends import generate_key

    sys.stdout.write(generate_key() + "\n")
    sys.stdout.flush()
    return 0


def _rotate(args: argparse.Namespace, store: StateStore) -> int:
    import sys

    from ..core.errors import ConfigurationError

    backend = store.backend
    if backend.capabilities.seals_secrets:  # a remote store: its server holds the key
        raise ConfigurationError(
            "secrets rotate runs where the key is, not through a statebox server: run it "
            "on the server's host, against the server's own store URL (--store), with the "
            "server's key (STATEBOX_SECRET_KEY or its key file)"
        )
    from ..backends import ROTATED_BY, rotate
    from ..core.envelope import dumps_envelope
    from ..core.model import UpdatedBy

    who = store.context.updated_by()  # the run context's, when it names one
    report = rotate(
        backend,
        new_key=args.new_key,
        updated_by=who if who != UpdatedBy() else ROTATED_BY,
        history_limit=store.history_limit,
        now=store.clock.now_ns,
    )
    fields = {
        "operation": "rotate",
        "keyId": report.key_id,
        "resealed": report.resealed,
        "keyspaces": report.keyspaces,
        "previousKeyIds": list(report.previous_key_ids),
    }
    if args.format == "table":
        from ._output import render_table

        line = render_table(fields)
    else:
        line = dumps_envelope(fields)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0
