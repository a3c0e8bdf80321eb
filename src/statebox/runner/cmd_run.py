"""``statebox run FILE.yaml [PARAMS…] [--input JSON] [--run-id ID] [--dags-dir DIR]``:
run one DAG (Dagu's form) or one Direktiv workflow, told apart by the file
(:func:`statebox.runner.forms.detect_form`: ``states:`` is a workflow, ``steps:`` a DAG).

A DAG takes params as Dagu takes them: positional values (``$1``, ``$2``, …) and
``KEY=VALUE``. A workflow takes ``--input``: JSON text, ``@file`` or ``-`` (standard
input), ``{}`` when not given, wrapped as Direktiv wraps an instance's input: a JSON
object is the data as it is, other JSON ``{"input": VALUE}``, bytes that are not JSON
``{"input": BASE64}``. Params with a workflow, or ``--input`` with a
DAG, are an error (exit 2).

The exit code is 0 when the run ``succeeded`` or ``partially_succeeded``, 1 when it
``failed`` or was ``aborted``, 2 when the file has problems (each printed on standard
error with its file, line and column). SIGTERM and SIGINT stop the run: the running
steps (or the workflow's running function) are stopped, a DAG's ``handler_on.abort`` and
``handler_on.exit`` run, and the run is recorded ``aborted``.

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
        common=("store", "run_id"),
        help="run a DAG file (Dagu's form) or a Direktiv workflow file",
        description=(
            "Run a DAG file written for Dagu (steps:): state steps in-process, run steps\n"
            "through the shell, in parallel where the graph allows; PARAMS as Dagu takes\n"
            "them: positional values ($1, $2, ...) and KEY=VALUE. Or run a Direktiv\n"
            "workflow file (states:) with the instance input --input (JSON, @file or -;\n"
            "default {}). Exits 0 when the run succeeded or partially_succeeded, 1 when\n"
            "it failed or was aborted (SIGTERM, SIGINT), 2 when the file has problems."
        ),
        examples=[
            "statebox run examples/feed-sync.yaml",
            "statebox run report.yaml 2026-05-25 REGION=eu",
            "statebox run nightly.yaml --run-id 0197a1b2-... --dags-dir ./dags",
            "statebox run examples/direktiv/counter.yaml",
            'statebox run greet.yaml --input \'{"name": "Ada"}\'',
        ],
    )
    parser.add_argument("file", metavar="FILE.yaml", help="the DAG or workflow file")
    parser.add_argument(
        "params", metavar="PARAMS", nargs="*", help="positional values and KEY=VALUE"
    )
    parser.add_argument(
        "--dags-dir",
        metavar="DIR",
        default=None,
        help="where sub-DAGs are looked for after the parent file's directory",
    )
    parser.add_argument(
        "--input",
        metavar="JSON",
        default=None,
        help="a workflow's input: JSON text, @file or - (standard input); default {}",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> int:
    from ..config import resolve_store_url
    from ..core.errors import InvalidValueError
    from .display import make_display
    from .executor import RunOptions
    from .forms import is_workflow, load_any, run_any
    from .loader import DagFileError

    try:
        flow = load_any(args.file)  # its warnings to standard error, as the loader words them
    except DagFileError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        sys.stderr.flush()
        return EXIT_DAG_FILE
    instance_input: Any = None
    if is_workflow(flow):
        if args.params:
            raise InvalidValueError(
                f"{args.file} is a Direktiv workflow (states:): it takes --input, not "
                f"PARAMS ({' '.join(args.params)})"
            )
        instance_input = {} if args.input is None else read_input(args.input, store.binary_limit)
    elif args.input is not None:
        raise InvalidValueError(
            f"{args.file} is a DAG (steps:): it takes PARAMS, not --input "
            "(--input is a Direktiv workflow's input)"
        )
    display = make_display(sys.stdout)
    options = RunOptions(
        store_url=absolute_store_url(resolve_store_url(args.store)),
        params=list(args.params),
        run_id=args.run_id,
        dags_dir=args.dags_dir,
        display=display,
        input=instance_input,
    )
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            record = run_any(flow, store, options, stop=stop)
    finally:
        display.close()
    return EXIT_OK if record.status in ("succeeded", "partially_succeeded") else EXIT_FAILED


def read_input(argument: str, limit: int | None = None) -> dict[str, Any]:
    """A workflow's instance data from ``--input``: JSON text, ``@file`` or ``-``, at
    most ``limit`` bytes (the store's binary value limit; None: its default), wrapped as
    Direktiv wraps an instance's input (:func:`.direktiv._gofmt.instance_input`: a JSON
    object as it is, other JSON ``{"input": VALUE}``, other bytes ``{"input": BASE64}``).
    Too large, or JSON nested deeper than statebox takes any value: refused (exit 2)."""
    from ..core.errors import InvalidValueError, quoted
    from ..core.values import DEFAULT_BINARY_LIMIT
    from .direktiv._gofmt import instance_input

    if limit is None:
        limit = DEFAULT_BINARY_LIMIT
    if argument == "-":
        data = sys.stdin.buffer.read(limit + 1)
        source = "standard input"
    elif argument.startswith("@"):
        path = argument[1:]
        source = f"file {quoted(path)}"
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise InvalidValueError(f"--input: cannot read {source}: {reason}") from exc
    else:
        data = os.fsencode(argument)
        source = "the argument"
    if len(data) > limit:
        raise InvalidValueError(
            f"--input: {source} is larger than {limit} bytes, the most a workflow's input "
            "may be (the store's binary value limit)"
        )
    # Wrapped here, not left to the engine: there None means "no input" ({}), while
    # Direktiv wraps a JSON null as any other value that is no object.
    return instance_input(data, "--input")


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
