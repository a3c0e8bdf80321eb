"""The runner's two file forms, told apart: Dagu's DAG (``steps:``) and Direktiv's
workflow (``states:``). One ``statebox run`` / ``validate`` / ``schedule`` serves both.

:func:`detect_form` reads only the top-level keys of the file (PyYAML's composed
nodes: nothing is constructed, an alias is not expanded). A file with ``states:`` and no
``steps:`` is a Direktiv workflow; anything else, including a file that cannot be read
or parsed, is a DAG, so that the DAG loader, which every user of the runner knows,
reports what is wrong with it (its line and column).

The loaders and runners are imported when a function here is called, never when this
module is: the command line's ``get`` and ``set`` must not pay for them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..store import StateStore
    from ._node_reader import Problem, Warn
    from .direktiv.model import Workflow
    from .executor import RunOptions
    from .model import DAG
    from .records import RunRecord

    #: What the runner runs: a DAG or a Direktiv workflow (for annotations only; it
    #: exists while type checking). The scheduler reads only what the two share:
    #: ``name``, ``path``, ``where``, ``schedule``, ``max_active_runs``, ``overlap_policy``.
    Runnable: TypeAlias = DAG | Workflow

__all__ = ["Form", "check_any", "detect_form", "is_workflow", "load_any", "run_any"]

Form = Literal["dagu", "direktiv"]


def detect_form(path: str) -> Form:
    """``"direktiv"`` when the file's top level has ``states`` and no ``steps``, else
    ``"dagu"`` (an unreadable or unparsable file too: the DAG loader reports it)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return "dagu"
    keys = _top_level_keys(text)
    return "direktiv" if "states" in keys and "steps" not in keys else "dagu"


def _top_level_keys(text: str) -> set[str]:
    """The scalar keys of the document's top-level mapping; none when it is no mapping,
    or not YAML at all."""
    import yaml  # type: ignore[import-untyped]  # the runner extra's

    from ._yaml_nodes import yaml_loader

    try:
        root = yaml.compose(text, Loader=yaml_loader())
    except yaml.YAMLError:
        return set()  # a second document too, or a syntax error: the DAG loader says which
    if not isinstance(root, yaml.MappingNode):
        return set()
    return {k.value for k, _ in root.value if isinstance(k, yaml.ScalarNode)}


def is_workflow(flow: Runnable) -> bool:
    """Whether ``flow`` is a Direktiv workflow (else a DAG)."""
    from .direktiv.model import Workflow

    return isinstance(flow, Workflow)


def load_any(path: str, *, warn: Warn | None = None) -> Runnable:
    """The DAG or workflow in the file at ``path``, by :func:`detect_form`; the loader's
    :class:`~statebox.runner.loader.DagFileError` listing every problem, or
    :class:`~statebox.core.errors.NotFoundError` for a missing file."""
    if detect_form(path) == "direktiv":
        from .direktiv.loader import load_workflow

        return load_workflow(path, warn=warn)
    from .loader import load_dag

    return load_dag(path, warn=warn)


def check_any(paths: Sequence[str], *, warn: Warn | None = None) -> list[Problem]:
    """Every problem in each of ``paths``, each file checked by its form's loader."""
    problems: list[Problem] = []
    for path in paths:
        if detect_form(path) == "direktiv":
            from .direktiv.loader import check_workflow_files

            problems.extend(check_workflow_files([path], warn=warn))
        else:
            from .loader import check_files

            problems.extend(check_files([path], warn=warn))
    return problems


def run_any(
    flow: Runnable,
    store: StateStore,
    options: RunOptions,
    stop: threading.Event | None = None,
) -> RunRecord:
    """Run ``flow`` to its end: a workflow by the Direktiv engine, a DAG by the
    executor. Both record the run the same way, so ``statebox runs`` lists either."""
    from .direktiv.model import Workflow

    if isinstance(flow, Workflow):
        from .direktiv.engine import run_workflow

        return run_workflow(flow, store, options, stop=stop)
    from .executor import run_dag

    return run_dag(flow, store, options, stop=stop)
