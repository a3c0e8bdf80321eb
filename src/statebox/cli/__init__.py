"""The ``statebox`` command line: parse, open the store, call one engine method, print.

    statebox [--store URL] COMMAND [options]
    statebox                      # the help (exit code 0); statebox --version

Standard output gets exactly the result's SPEC §4 line (``result.to_json()``), or a
readable rendering with ``--format table``; errors are one ``Error: …`` line on standard
error, with the exit code of the error's kind (:mod:`statebox.core.errors`; 2 for usage).

Adding a command
----------------
A command is one small module in this package, listed in :data:`COMMANDS` (name →
module). Another face adds a command without being imported by the CLI: its module is
named by a ``statebox.commands`` entry point (``serve`` is :mod:`statebox.server.command`)
and its ``register`` takes ``add_command`` as a second argument. A module exposes::

    def register(subparsers: Subparsers) -> None:
        parser = add_command(subparsers, "name", help=..., description=...,
                             examples=["statebox name KEY ..."])   # epilog of --help
        parser.add_argument(...)
        parser.set_defaults(handler=run)

    def run(args: argparse.Namespace, store: StateStore) -> Envelope | int | None:
        return store.operation(...)      # one engine call

``add_command`` (from :mod:`._parser`) also adds the common options, so they work after
the command too; read them as ``args.scope``, ``args.namespace``. Its ``common=`` names
the ones the command reads (``("store", "format", "scope", "namespace", "context")``
…): only those are taken after the command and listed in its ``--help``. ``Subparsers`` is a
type alias: import it, ``argparse`` and ``StateStore`` under ``if TYPE_CHECKING:`` as
``cmd_get.py`` does. JSON arguments go through :class:`._input.JsonArgs` (``-`` and
``@path``). The handler returns a result (one :mod:`statebox.core.envelope` renders),
which is printed in the chosen format, or ``None`` when it printed its own output (a
stream of events, a server), or an ``int``: the exit code of a command that printed its
own output (``statebox run`` exits 1 when the workflow failed). A command that needs no
store sets ``parser.set_defaults(opens_store=False)`` and is called with ``None`` (no
store file is created for ``statebox validate``). Errors are raised as
:class:`~statebox.core.errors.StateboxError` subclasses; never print them.

Importing a command module must stay cheap — every invocation imports the one it runs,
and ``--help`` imports all: import heavy libraries (jq, httpx, starlette, psycopg)
inside ``run``. Only the named command's parser is built, so start-up does not grow with
the number of commands.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from collections.abc import Sequence

from ..core.errors import StateboxError, worded
from ._parser import UsageError, add_command, new_parser, value_option_strings, version_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["COMMANDS", "PLUGIN_GROUP", "all_commands", "build_parser", "main", "plugin_commands"]

#: Command name → the module that registers it (in ``--help`` order).
COMMANDS: dict[str, str] = {
    "get": "statebox.cli.cmd_get",
    "set": "statebox.cli.cmd_set",
    "diff": "statebox.cli.cmd_diff",
    "delete": "statebox.cli.cmd_delete",
    "list": "statebox.cli.cmd_list",
    "update": "statebox.cli.cmd_update",
    "history": "statebox.cli.cmd_history",
    "rollback": "statebox.cli.cmd_rollback",
    "txn": "statebox.cli.cmd_txn",
    "lease": "statebox.cli.cmd_lease",
    "keyspaces": "statebox.cli.cmd_keyspaces",
    "purge": "statebox.cli.cmd_purge",
    "watch": "statebox.cli.cmd_watch",
    "secrets": "statebox.cli.cmd_secrets",
    "dump": "statebox.cli.cmd_dump",
    "load": "statebox.cli.cmd_load",
    "copy": "statebox.cli.cmd_copy",
    "backup": "statebox.cli.cmd_backup",
    "completion": "statebox.cli.cmd_completion",
}

#: The entry point group through which other faces add commands (``serve``, from the
#: server). Their modules provide ``register(subparsers, add_command)`` and ``run``.
PLUGIN_GROUP = "statebox.commands"


def plugin_commands() -> dict[str, str]:
    """Commands other faces add: name → module, from the installed entry points.

    Read only when the command is not one of :data:`COMMANDS` (or for ``--help``): the
    entry point scan costs milliseconds that ``get`` and ``set`` do not pay.
    """
    from importlib.metadata import entry_points

    return {point.name: point.value for point in entry_points(group=PLUGIN_GROUP)}


def all_commands() -> dict[str, str]:
    """Every command, the CLI's own first (in ``--help`` order), then the other faces'."""
    return {**COMMANDS, **plugin_commands()}


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first positional argument), if any."""
    takes_value = value_option_strings()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None  # top-level help lists every command
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg in takes_value:
            i += 2
        elif arg.startswith("-") and arg != "-":
            i += 1
        else:
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with only ``command`` when it is one we know."""
    parser, subparsers = new_parser()
    if command in COMMANDS:
        table = {command: COMMANDS[command]}
    else:
        table = all_commands()
        if command in table:
            table = {command: table[command]}
    for name, module in table.items():
        __import__(module)  # importlib.import_module, without importing importlib
        if name in COMMANDS:
            sys.modules[module].register(subparsers)
        else:  # another face's command: it gets the CLI's add_command, not an import
            sys.modules[module].register(subparsers, add_command)
    return parser


def cli_option(param: str) -> str:
    """A parameter the engine names (``to_version``) as the command line spells it
    (``--to-version``): every option is the library's keyword, dashed."""
    return "--" + param.replace("_", "-")


def _fail(message: str, code: int) -> int:
    sys.stderr.write("Error: " + " ".join(message.splitlines()) + "\n")
    sys.stderr.flush()
    return code


class _StartupCollector:
    """The cyclic garbage collector, paused while the command starts.

    Start-up creates tens of thousands of objects that live as long as the process
    (modules, classes, the parser, the store): the collector would walk them again and
    again and free nothing (about 5 ms of a cold ``statebox get``). It resumes before the
    command's handler runs, since ``serve`` and ``watch`` run for hours. When the command
    owns its process (the console script), the start-up objects are frozen first, so the
    collector never walks them again; a caller's process (``main([...])`` in-process) is
    left as it was, apart from the pause.
    """

    def __init__(self, *, owns_process: bool) -> None:
        self._paused = gc.isenabled()
        self._freeze = owns_process
        if self._paused:
            gc.disable()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._freeze:
                gc.freeze()
            gc.enable()


def _run(argv: list[str], collector: _StartupCollector) -> int:
    command = _command_in(argv)
    if command is None and "--version" in argv:  # without building every command's parser
        sys.stdout.write(version_line() + "\n")
        return 0
    try:
        parser = build_parser(command)
        if not argv:
            # `statebox` alone: the help, on standard output, and success (as docker,
            # kubectl and etcdctl do; git exits 1): it was asked for, nothing failed.
            parser.print_help(sys.stdout)
            return 0
        args, extras = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help printed its text
        return exc.code if isinstance(exc.code, int) else 0
    if extras:
        from ._suggest import unrecognized

        raise UsageError(unrecognized(parser, args, extras, value_option_strings()))

    # Imported here, after parsing: --help and usage errors never pay for the engine.
    from ..core.model import RunContext
    from ..store import open_store
    from ._output import write_result

    context = RunContext.from_env().merged(
        dag=args.dag, root_dag=args.root_dag, run_id=args.run_id, step=args.step
    )
    if not getattr(args, "opens_store", True):  # e.g. validate: reads files, no state
        collector.resume()
        code = args.handler(args, None)
        return code if isinstance(code, int) else 0
    with open_store(args.store, context=context) as store:
        collector.resume()
        result = args.handler(args, store)
        if isinstance(result, int):  # a command that printed its own output: its exit code
            return result
        if result is not None:  # --reveal: on the commands that print values
            write_result(result, args.format, getattr(args, "reveal", False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it).

    Without ``argv`` (the console script, ``python -m statebox.cli``) the command owns
    its process, which ends here when nothing is left for the interpreter to do at exit.
    """
    code = _main(argv)
    if argv is None:
        _exit_now_if_nothing_is_left(code)
    return code


def _exit_now_if_nothing_is_left(code: int) -> None:
    """End the process with ``code`` without the interpreter's shutdown, when it would
    only tear down modules and objects (a few milliseconds of a cold ``statebox get``).

    The store is closed and its writes committed by now. Shutdown is still taken when it
    has work to do: a function registered with :mod:`atexit` (the jq worker pool,
    logging, coverage, weakref finalizers) or another running thread to wait for.
    """
    threading = sys.modules.get("threading")
    if atexit._ncallbacks() or (threading is not None and threading.active_count() > 1):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: the usual exit reports it
        return
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    collector = _StartupCollector(owns_process=argv is None)
    try:
        return _run(list(sys.argv[1:] if argv is None else argv), collector)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except StateboxError as exc:
        return _fail(worded(exc, cli_option), exc.exit_code)
    except BrokenPipeError:
        # The reader went away (``statebox list | head``): nothing left to tell it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("STATEBOX_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (set STATEBOX_DEBUG=1 for the traceback)",
            1,
        )
    finally:
        collector.resume()
