"""What every step of a run shares (:class:`RunScope`), and how it is made before the
first step (:func:`prepare_scope`): the run's id, its params, its working directory, the
base environment of its steps and where their logs go."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ..core.clock import format_timestamp
from ..core.errors import (
    ConflictError,
    InvalidReferenceError,
    NotFoundError,
    StateboxError,
    quoted,
)
from ..core.model import RunContext, validate_namespace
from . import refs
from ._dag_keys import ENV_NAME_RE
from ._process import read_dotenv, run_quiet, shell_argv
from .masking import Masker
from .model import DAG, Step

if TYPE_CHECKING:
    from ..store import StateStore
    from .records import RunRecord, RunRecords

__all__ = [
    "SAFE_NAME",
    "ChildResult",
    "RunChild",
    "RunScope",
    "Visible",
    "add_error",
    "check_run_id",
    "describe",
    "end_run_scope",
    "new_run_id",
    "refuse_taken_run_id",
    "now_iso",
    "prepare_scope",
    "resolve_params",
]

#: What a step's name may not hold in its log file names.
SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.-]+")


def now_iso() -> str:
    """Now, UTC, as the store writes its times (:func:`..core.clock.format_timestamp`):
    ``2026-05-25T10:00:00.123456789Z``, trailing zeros of the fraction trimmed."""
    return format_timestamp(time.time_ns())


def describe(exc: BaseException) -> str:
    """An error as a run record words it: the message of statebox's own errors and of
    the system's (a file, a process); ``unexpected TYPE: message`` for anything else (a
    defect). The one wording of the runner's for an error it caught."""
    if isinstance(exc, (StateboxError, OSError)):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Visible:
    """What a step's references may name: its transitive dependencies' outputs and
    properties (every step's, for a handler)."""

    outputs: Mapping[str, str]
    steps: Mapping[str, refs.StepView]


@dataclass(frozen=True)
class ChildResult:
    name: str
    run_id: str
    status: str
    outputs: dict[str, str]


#: ``run_child(step, dag_name, params, stop, on_run_id) -> ChildResult`` (the executor's).
RunChild = Callable[[Step, str, list[str], threading.Event, Callable[[str], None]], ChildResult]


@dataclass
class RunScope:
    """What every step of one run shares."""

    dag: DAG
    store: StateStore
    run_id: str
    root_dag: str
    root_run_id: str
    log_dir: str
    #: The base working directory (the DAG's ``working_dir``, else its file's directory).
    cwd: str
    params: dict[str, str]
    positional: list[str]
    #: os.environ + dotenv + DAG env + named params + the run's STATEBOX_* / DAG_*.
    base_env: dict[str, str]
    run_child: RunChild
    save_log: Callable[[str, str, str], None]
    #: The names of the leases the run's steps acquired (the run id holds them): what
    #: the run still holds of them is released when it ends.
    leases: set[str] = field(default_factory=set)
    #: The secret values the run read (:mod:`.masking`), kept out of what it records.
    masker: Masker = field(default_factory=Masker)

    def context(self, visible: Visible, env: Mapping[str, str] | None = None) -> refs.RefContext:
        return refs.RefContext(
            params=self.params,
            positional=self.positional,
            env=self.base_env if env is None else env,
            outputs=visible.outputs,
            steps=visible.steps,
        )

    def log_paths(self, step: Step) -> tuple[str, str]:
        base = os.path.join(self.log_dir, SAFE_NAME.sub("_", step.name) or "step")
        return base + ".out", base + ".err"

    def step_env(self, step: Step, visible: Visible) -> dict[str, str]:
        """The environment of the step's processes (see :mod:`.executor`)."""
        env = dict(self.base_env)
        env.update(visible.outputs)
        if step.env:
            ctx = self.context(visible, env)
            for name, value in step.env.items():
                env[name] = refs.render_text(str(value), ctx, shell=False)
        stdout, stderr = self.log_paths(step)
        env.update(
            STATEBOX_DAG=self.dag.name,
            STATEBOX_ROOT_DAG=self.root_dag,
            STATEBOX_RUN_ID=self.run_id,
            STATEBOX_STEP=step.name,
            DAG_NAME=self.dag.name,
            DAG_RUN_ID=self.run_id,
            DAG_RUN_STEP_NAME=step.name,
            DAG_RUN_STEP_STDOUT_FILE=stdout,
            DAG_RUN_STEP_STDERR_FILE=stderr,
        )
        return env

    def step_cwd(self, step: Step, ctx: refs.RefContext) -> str:
        if not step.working_dir:
            return self.cwd
        path = os.path.expanduser(refs.render_text(step.working_dir, ctx, shell=False))
        return os.path.join(self.cwd, path)

    def step_store(self, step: Step) -> StateStore:
        context = RunContext(
            dag=self.dag.name, root_dag=self.root_dag, run_id=self.run_id, step=step.name
        )
        return self.store.with_context(context)

    def shell_status(
        self, shell: str | None, env: Mapping[str, str], cwd: str, command: str
    ) -> int:
        """Run a precondition's (or a repeat condition's) command; its exit code."""
        return run_quiet(shell_argv(shell or self.dag.shell, command), cwd=cwd, env=env)


_id_lock = threading.Lock()
_id_last = [0, 0]  # [milliseconds, counter] of the last id this process made


def new_run_id() -> str:
    """A new run id: a UUIDv7 (RFC 9562) — 48 bits of Unix milliseconds, a 12-bit
    counter that keeps ids of one process strictly increasing within a millisecond, and
    62 random bits — so ids sort by the time they were made."""
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        last_ms, counter = _id_last
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:
                ms, counter = last_ms + 1, 0
        else:
            counter = secrets.randbits(10)  # leaves room to count up in this millisecond
        _id_last[:] = [ms, counter]
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | secrets.randbits(62)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def check_run_id(run_id: str) -> str:
    """``run_id`` when it may name a run (its run scope's namespace, its log directory):
    InvalidReferenceError saying why not."""
    try:
        validate_namespace(run_id)
    except InvalidReferenceError:
        raise InvalidReferenceError(
            f'invalid run id {quoted(run_id)}: it must be a valid namespace (not empty, no "/" '
            'or "\\", not "." or "..")'
        ) from None
    if run_id != run_id.strip():
        raise InvalidReferenceError(f"invalid run id {quoted(run_id)}: white space around it")
    return run_id


def refuse_taken_run_id(records: RunRecords, run_id: str) -> None:
    """ConflictError when ``records`` hold a run ``run_id`` (a run id given, not made)."""
    try:
        records.get(run_id)
    except NotFoundError:
        return
    raise ConflictError(f"run {quoted(run_id)} already exists: give another id")


def add_error(record: RunRecord, message: str) -> None:
    """Add ``message`` to the record's error (after what it says, ``; ``-separated)."""
    record.error = f"{record.error}; {message}" if record.error else message


def end_run_scope(
    store: StateStore, context: RunContext, record: RunRecord, leases: Iterable[str] = ()
) -> None:
    """What a run (``context.run_id``) leaves behind, cleared when it ends: the ``leases``
    it still holds are released (another run may take them at once, not when their ttl
    ends), then its ``run`` scope is deleted. What cannot be is added to the record's
    error; the run keeps its status."""
    run_id = context.run_id
    assert run_id is not None
    store = store.with_context(context)
    for name in sorted(leases):
        try:
            lease = store.get_lease(name)
            if lease is not None and lease.holder == run_id:
                store.release_lease(name, token=lease.token, holder=run_id)
        except StateboxError as exc:
            add_error(record, f"lease {quoted(name)} could not be released: {describe(exc)}")
    try:
        store.delete_keyspace(scope="run", namespace=run_id)
    except Exception as exc:  # a defect too: the record must still be saved final
        add_error(record, f"the run scope could not be deleted: {describe(exc)}")


def resolve_params(
    declared: Sequence[tuple[str | None, str]], given: Sequence[str]
) -> list[tuple[str | None, str]]:
    """The run's params: the declared ``(name, default)`` pairs, then the given ones.
    A ``KEY=VALUE`` sets the param named KEY (or is added), wherever it is given; the
    positional values, counted among themselves, fill the declared params in order,
    passing over those a ``KEY=VALUE`` set; the rest are added. ``$1`` is the first
    pair's value, whether it has a name or not. (Dagu counts a positional value's place
    among every given param, so that ``K=v x`` put ``x`` second.)"""
    pairs = list(declared)
    index = {name: i for i, (name, _) in enumerate(pairs) if name}
    named: set[str] = set()
    positional: list[str] = []
    for item in given:
        name, sep, value = item.partition("=")
        if not (sep and ENV_NAME_RE.fullmatch(name)):
            positional.append(item)
            continue
        named.add(name)
        if name in index:
            pairs[index[name]] = (name, value)
        else:
            index[name] = len(pairs)
            pairs.append((name, value))
    free = [i for i, (name, _) in enumerate(declared) if name is None or name not in named]
    for i, item in zip(free, positional, strict=False):
        pairs[i] = (pairs[i][0], item)
    pairs.extend((None, item) for item in positional[len(free) :])
    return pairs


def prepare_scope(
    dag: DAG,
    store: StateStore,
    *,
    run_id: str,
    root_dag: str,
    root_run_id: str,
    given_params: Sequence[str],
    store_url: str,
    log_dir: str | None,
    run_child: RunChild,
    save_log: Callable[[str, str, str], None],
    masker: Masker | None = None,
) -> RunScope:
    """Params, working directory, the steps' base environment (``os.environ``, dotenv
    files, the DAG's ``env`` in order, named params, the run's ``STATEBOX_*`` and
    ``DAG_*``), and the log directory, created."""
    pairs = resolve_params(dag.params, given_params)
    params = {name: value for name, value in pairs if name}
    positional = [value for _, value in pairs]
    env = dict(os.environ)
    # The same dict, filled as we go: a later env entry sees the earlier ones.
    ctx = refs.RefContext(params=params, positional=positional, env=env, outputs={}, steps={})
    home = os.path.dirname(dag.path) if dag.path else os.getcwd()
    cwd = home
    if dag.working_dir:
        working_dir = refs.render_text(dag.working_dir, ctx, shell=False)
        cwd = os.path.join(home, os.path.expanduser(working_dir))
    for name in dag.dotenv:
        path = os.path.join(cwd, os.path.expanduser(refs.render_text(name, ctx, shell=False)))
        if os.path.isfile(path):  # Dagu skips a dotenv file that is not there
            env.update(read_dotenv(path))
    for name, value in dag.env.items():
        env[name] = refs.render_text(str(value), ctx, shell=False)
    env.update(params)
    params_json = {name or str(i + 1): value for i, (name, value) in enumerate(pairs)}
    env.update(
        STATEBOX_DAG=dag.name,
        STATEBOX_ROOT_DAG=root_dag,
        STATEBOX_RUN_ID=run_id,
        STATEBOX_STORE=store_url,
        DAG_NAME=dag.name,
        DAG_RUN_ID=run_id,
        DAG_PARAMS_JSON=json.dumps(params_json, ensure_ascii=False, separators=(",", ":")),
    )
    return RunScope(
        dag=dag,
        store=store,
        run_id=run_id,
        root_dag=root_dag,
        root_run_id=root_run_id,
        log_dir=_log_dir(log_dir, run_id),
        cwd=cwd,
        params=params,
        positional=positional,
        base_env=env,
        run_child=run_child,
        save_log=save_log,
        masker=Masker() if masker is None else masker,
    )


def _log_dir(given: str | None, run_id: str) -> str:
    """``given``, else ``$STATEBOX_HOME/runs/<run_id>``, else a new temporary directory."""
    if given:
        os.makedirs(given, exist_ok=True)
        return given
    from ..config import statebox_home

    path = os.path.join(str(statebox_home()), "runs", run_id)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        import tempfile

        path = tempfile.mkdtemp(prefix=f"statebox-run-{run_id}-")
    return path
