"""``statebox run FILE.yaml [PARAMS…] [--run-id ID] [--dags-dir DIR]``: run one DAG.

Params as Dagu takes them: positional values (``$1``, ``$2``, …) and ``KEY=VALUE``.
The exit code is 0 when the run ``succeeded`` or ``partially_succeeded``, 1 when it
``failed`` or was ``aborted``, 2 when the DAG file has problems (each printed on
standard error with its file, line and column). SIGTERM and SIGINT stop the run: the
running steps are stopped, ``handler_on.abort`` and ``handler_on.exit`` run, and the run
is recorded ``aborted``.

The CLI finds this module through the ``statebox.commands`` entry point; it imports no
other face.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.commands import AddCommand
    from ..store import StateStore


#: Exit codes of ``statebox run``.
EXIT_OK, EXIT_FAILED, EXIT_DAG_FILE = 0, 1, 2


def register(subparsers: Any, add_command: AddCommand) -> None:
    parser = add_command(
        subparsers,
        "run",
        help="run a DAG file (Dagu's workflow form)",
        description=(
            "Run the steps of a DAG file written for Dagu: state steps in-process, run\n"
            "steps through the shell, in parallel where the graph allows. PARAMS as Dagu\n"
            "takes them: positional values ($1, $2, ...) and KEY=VALUE. Exits 0 when the\n"
            "run succeeded or partially_succeeded, 1 when it failed or was aborted\n"
            "(SIGTERM, SIGINT), 2 when the DAG file has problems."
        ),
        examples=[
            "statebox run examples/feed-sync.yaml",
            "statebox run report.yaml 2026-05-25 REGION=eu",
            "statebox run nightly.yaml --run-id 0197a1b2-... --dags-dir ./dags",
        ],
    )
    parser.add_argument("file", metavar="FILE.yaml", help="the DAG file")
    parser.add_argument(
        "params", metavar="PARAMS", nargs="*", help="positional values and KEY=VALUE"
    )
    parser.add_argument(
        "--dags-dir",
        metavar="DIR",
        default=None,
        help="where sub-DAGs are looked for after the parent file's directory",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> int:
    from ..config import resolve_store_url
    from .display import make_display
    from .executor import RunOptions, run_dag
    from .loader import DagFileError, load_dag

    try:
        dag = load_dag(args.file)  # its warnings to standard error, as the loader words them
    except DagFileError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        sys.stderr.flush()
        return EXIT_DAG_FILE
    display = make_display(sys.stdout)
    options = RunOptions(
        store_url=absolute_store_url(resolve_store_url(args.store)),
        params=list(args.params),
        run_id=args.run_id,
        dags_dir=args.dags_dir,
        display=display,
    )
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            record = run_dag(dag, store, options, stop=stop)
    finally:
        display.close()
    return EXIT_OK if record.status in ("succeeded", "partially_succeeded") else EXIT_FAILED


def absolute_store_url(url: str) -> str:
    """A ``sqlite:///relative.db`` URL made absolute: steps run in other directories."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        path, sep, query = url[len(prefix) :].partition("?")
        if path:
            return prefix + os.path.abspath(path) + sep + query
    return url


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (instead of ending the process) while the run runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
