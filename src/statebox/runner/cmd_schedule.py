"""``statebox schedule DIR [--dags-dir DIR] [--lease-ttl S]``: run the DAGs and Direktiv
workflows in DIR on their schedules until SIGTERM/SIGINT (see
:mod:`statebox.runner.scheduler`).

Every ``*.yaml``/``*.yml`` file in DIR is loaded, by its form
(:func:`statebox.runner.forms.load_any`); the DAGs with a ``schedule`` and the workflows
with ``start: {type: scheduled, cron: …}`` run. A workflow is started with the input
``{}`` at every occurrence, none skipped (Direktiv's cron starts every one). A file
that does not load is reported on standard error and left out (as Dagu's scheduler
does); DIR with nothing scheduled at all is an error (exit 2). Each line the scheduler
prints names the DAG, the occurrence and what happened to it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.commands import AddCommand
    from ..store import StateStore
    from .forms import Runnable


def register(subparsers: Any, add_command: AddCommand) -> None:
    examples: Sequence[str] = [
        "statebox schedule dags/",
        "STATEBOX_STORE=postgresql://statebox@db/statebox statebox schedule /etc/dags",
        "statebox schedule dags/ --dags-dir shared-dags/ --lease-ttl 60",
    ]
    parser = add_command(
        subparsers,
        "schedule",
        common=("store",),
        help="run the DAGs and workflows in a directory on their cron schedules",
        description=(
            "Run every DAG file (*.yaml, *.yml) in DIR that has a `schedule`, and every\n"
            "Direktiv workflow with `start: {type: scheduled, cron: ...}`, at each of\n"
            "its occurrences, honouring max_active_runs and overlap_policy, until SIGTERM\n"
            "or SIGINT (then no run starts, running runs stop, and it exits 0).\n"
            "Schedulers on several machines sharing one store run each occurrence once."
        ),
        examples=examples,
    )
    parser.add_argument("directory", metavar="DIR", help="the directory of DAG files")
    parser.add_argument(
        "--dags-dir",
        metavar="DIR",
        help="where sub-DAGs are looked for after the parent's directory (default: DIR)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="ttl of the scheduler's leases, renewed every third of it (default 30)",
    )
    parser.set_defaults(handler=run)


def load_scheduled(directory: str, *, warn: Callable[[str], None]) -> list[Runnable]:
    """The DAGs and workflows in ``directory`` that have a schedule; files that do not
    load are reported through ``warn`` and left out."""
    from ..core.errors import NotFoundError, StateboxError, quoted
    from .forms import load_any

    root = Path(directory)
    if not root.is_dir():
        raise NotFoundError(f"DAG directory {quoted(directory)} not found")
    dags: list[Runnable] = []
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for path in files:
        try:
            dag = load_any(str(path), warn=warn)
        except StateboxError as exc:
            warn(f"{path}: not scheduled, it does not load:\n{exc}")
            continue
        if dag.schedule:
            dags.append(dag)
    return dags


def run(args: argparse.Namespace, store: StateStore) -> int:
    from ..config import resolve_store_url
    from ..core.errors import InvalidValueError, quoted
    from .scheduler import DEFAULT_LEASE_TTL, Scheduler

    def warn(message: str) -> None:
        sys.stderr.write("warning: " + message.rstrip("\n") + "\n")
        sys.stderr.flush()

    dags = load_scheduled(args.directory, warn=warn)
    if not dags:
        raise InvalidValueError(f"no DAG or workflow in {quoted(args.directory)} has a schedule")
    lease_ttl = args.lease_ttl if args.lease_ttl is not None else DEFAULT_LEASE_TTL
    if not 0 < lease_ttl <= 86400:
        raise InvalidValueError(
            f"invalid --lease-ttl {args.lease_ttl:g}: must be above 0 and at most 86400 seconds"
        )
    scheduler = Scheduler(
        store,
        dags,
        store_url=resolve_store_url(args.store),
        dags_dir=args.dags_dir or args.directory,
        lease_ttl=lease_ttl,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Not scheduler.stop() here: the handler may interrupt the main thread inside
        # an Event's lock, which stop() takes; a thread takes it once it is free.
        threading.Thread(target=scheduler.stop, daemon=True).start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        names = ", ".join(f"{d.name} ({' | '.join(d.schedule)})" for d in dags)
        sys.stdout.write(
            f"statebox schedule: {len(dags)} DAG(s): {names}; holder {scheduler.holder}\n"
        )
        sys.stdout.flush()
        scheduler.run_forever()
        sys.stdout.write("statebox schedule: stopped\n")
        sys.stdout.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
