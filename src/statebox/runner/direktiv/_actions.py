"""The states that call functions: ``action``, ``foreach`` and ``parallel``.

One call of an action (one attempt; :func:`call_action` retries it as ``retries``
says, :func:`.functions.call_with_retries`): the input is evaluated against the data
(``secrets`` added at ``.secrets``; no ``input``: the whole data) — action-helpers.go
``generateActionInput``; a fresh temporary directory gets the ``files`` and the empty
``out/`` folders; the ``/var`` endpoint is open while the function runs; after a
successful call the ``out/`` folders are written back as variables, and the directory
is removed whatever happened.

``foreach`` runs the action on each element of ``array`` (the element, not the data,
is what the input is evaluated against; it must be an object, as
``generateActionInput`` requires), at most :data:`FOREACH_MAX_THREADS` at once
(foreach.go ``foreachMaxThreads``); ``.return`` is the results in order; an empty array
leaves ``.return`` alone. ``parallel`` runs its actions at once: mode ``and`` needs
every one to succeed (the first failure stops the others and fails the state);
mode ``or`` ends at the first success, the others stopped and null in ``.return``, and
fails with ``direktiv.parallel.allFailed`` only when every one failed — as
specification/workflow-yaml/parallel.md says (parallel.go's code fails the state on
any branch's error before its ``or`` branch is reached).

``secrets`` are read from the environment: ``secrets: [token]`` gives
``.secrets.token`` = ``$token`` (statebox has no secret store of its own); their values
are registered with the instance's masker (:mod:`..masking`), as secret variables are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from .._context import describe
from . import expressions, files, functions, varserver
from ._states import CancelScope
from .errors import (
    ALL_FAILED,
    CANCELLED_PARENT,
    FUNCTION_NOT_FOUND,
    NOT_ARRAY,
    SECRET_NOT_FOUND,
    DirektivError,
)

if TYPE_CHECKING:
    from ..masking import Masker
    from .model import Action, FileSpec, State, Workflow
    from .variables import Variables

__all__ = [
    "FOREACH_MAX_THREADS",
    "ActionServices",
    "call_action",
    "run_foreach",
    "run_parallel",
    "start_async",
]

#: foreach.go: at most this many of a foreach state's calls run at once.
FOREACH_MAX_THREADS: Final = 3


@dataclass(frozen=True)
class ActionServices:
    """What a state's function calls share: the workflow (its ``functions``), the
    instance's variables, the functions' environment, and where a function's standard
    error goes (``log(state_id, text)``)."""

    workflow: Workflow
    variables: Variables
    env: Mapping[str, str]
    log: Callable[[str, str], None]


def _action_input(action: Action, source: Any, masker: Masker) -> Any:
    data = dict(expressions.as_object(source))
    if action.secrets:
        found: dict[str, str] = {}
        for name in action.secrets:
            value = os.environ.get(name)
            if value is None:
                raise DirektivError(
                    SECRET_NOT_FOUND,
                    f"secret {name!r} not found: statebox reads secrets from the "
                    f"environment (set {name})",
                )
            found[name] = value
            masker.add_text(value)  # a secret by its name: kept out of records and logs
        data["secrets"] = found
    if action.input is None:
        return data
    return expressions.evaluate(action.input, data)


def _file_specs(specs: Sequence[FileSpec], data: Any) -> list[FileSpec]:
    """``key`` and ``as`` may be expressions (action-helpers.go evaluates them)."""
    out = []
    for spec in specs:
        key = expressions.evaluate(spec.key, data)
        as_ = expressions.evaluate(spec.as_, data) if spec.as_ is not None else None
        out.append(replace(spec, key=str(key), as_=None if as_ is None else str(as_)))
    return out


def call_action(
    services: ActionServices,
    state: State,
    action: Action,
    source: Any,
    stop: threading.Event,
    *,
    iterator: int = 0,
) -> Any:
    """Call ``action`` with its input evaluated against ``source``; its result (with
    retries; ``stop`` ends a running call)."""
    fn = services.workflow.functions.get(action.function)
    if fn is None:  # the loader refuses this; a workflow built in code may not
        raise DirektivError(FUNCTION_NOT_FOUND, f"function {action.function!r} is not declared")
    payload = _action_input(action, source, services.variables.masker)
    specs = _file_specs(action.files, source)
    variables = services.variables

    def attempt() -> Any:
        aid = str(uuid.uuid4())
        tempdir = tempfile.mkdtemp(prefix="statebox-action-")
        try:
            files.materialize(specs, variables, tempdir)
            files.prepare_out(tempdir)
            with varserver.var_endpoint(aid, variables) as var_url:
                result = functions.call_function(
                    fn,
                    input=payload,
                    aid=aid,
                    tempdir=tempdir,
                    var_url=var_url,
                    env=services.env,
                    timeout=state.timeout_sec,
                    stop=stop,
                    save_log=lambda _fn, text: services.log(state.id, text),
                    iterator=iterator,
                )
            written = files.collect_out(tempdir)
            if written:
                variables.write_raw(written)
            return result
        finally:
            shutil.rmtree(tempdir, ignore_errors=True)

    return functions.call_with_retries(attempt, action.retries, stop)


def start_async(
    services: ActionServices, state: State, source: Any, stop: threading.Event
) -> threading.Thread:
    """``async: true``: call the action on a thread of its own while the instance goes
    on (action.go transitions at once); its result is not kept, an error only logged.
    The engine waits for the thread before the instance ends."""
    action = state.action
    assert action is not None

    def run() -> None:
        try:
            call_action(services, state, action, source, stop)
        except Exception as exc:
            services.log(state.id, f"async action failed: {describe(exc)}")

    thread = threading.Thread(target=run, name=f"direktiv-async-{state.id}", daemon=True)
    thread.start()
    return thread


def run_foreach(
    services: ActionServices, state: State, data: dict[str, Any], scope: CancelScope
) -> list[Any] | None:
    """The results of ``state.action`` on each element of ``array``, in order (None for
    an empty array: ``.return`` is left as it was)."""
    array = expressions.evaluate(state.array, data)
    if not isinstance(array, list):
        raise DirektivError(NOT_ARRAY, "jq produced non-array output")
    if not array:
        return None
    action = state.action
    assert action is not None
    calls = [_bind(services, state, action, element, index) for index, element in enumerate(array)]
    return _run_all(calls, scope, FOREACH_MAX_THREADS, any_one=False)


def run_parallel(
    services: ActionServices, state: State, data: dict[str, Any], scope: CancelScope
) -> list[Any]:
    """The results of ``state.actions``, in order (see the module's text for ``or``)."""
    calls = [_bind(services, state, action, data, 0) for action in state.actions]
    return _run_all(calls, scope, max(1, len(calls)), any_one=state.mode == "or")


def _bind(
    services: ActionServices, state: State, action: Action, source: Any, iterator: int
) -> Callable[[threading.Event], Any]:
    def call(stop: threading.Event) -> Any:
        return call_action(services, state, action, source, stop, iterator=iterator)

    return call


def _run_all(
    calls: Sequence[Callable[[threading.Event], Any]],
    scope: CancelScope,
    workers: int,
    *,
    any_one: bool,
) -> list[Any]:
    """Run ``calls`` (each given its own stop event) on ``workers`` threads. Not
    ``any_one``: every one must succeed; the first error stops the rest and is raised.
    ``any_one``: the first success stops the rest (their results stay None)."""
    results: list[Any] = [None] * len(calls)
    stops = [scope.event() for _ in calls]
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="direktiv-action") as pool:
        pending: dict[Future[Any], int] = {}
        for index, call in enumerate(calls):
            pending[pool.submit(_unless_stopped, call, stops[index])] = index
        done_early = False
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                error = future.exception()
                if done_early:
                    continue
                if error is None:
                    results[index] = future.result()
                    if any_one:
                        done_early = True
                elif not any_one:
                    errors.append(error)
                    done_early = True
                else:
                    errors.append(error)
            if done_early:
                for stop in stops:
                    stop.set()
    if any_one:
        if len(errors) == len(calls):
            raise DirektivError(ALL_FAILED, "all branches failed")
        return results
    if errors:
        raise errors[0]
    return results


def _unless_stopped(call: Callable[[threading.Event], Any], stop: threading.Event) -> Any:
    if stop.is_set():  # a queued foreach call after the state was stopped
        raise DirektivError(CANCELLED_PARENT, "cancelled")
    return call(stop)
