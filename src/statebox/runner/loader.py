"""Dagu DAG files → :class:`.model.DAG`, with every problem's file, line and column.

:func:`load_dag` parses one YAML file (PyYAML's node tree, so that each key and value has
its place), checks it, and either returns the DAG or raises :class:`DagFileError` listing
*every* problem found, each as ``file:line:column: message``. :func:`check_files` does
the same for several files and returns the problems (``statebox validate``).

What is read, as current Dagu writes it (``../shared/research/dagu.md``):

- DAG keys: ``name`` (default: the file name without its extension), ``params``, ``env``,
  ``dotenv``, ``working_dir`` (default: the file's directory), ``shell`` (and
  ``shell_args``), ``type`` (``graph``/``chain``), ``preconditions``, ``handler_on``
  (``success``/``failure``/``abort``/``exit``; the older ``cancel`` is ``abort``),
  ``max_output_size``, ``max_active_steps``, ``schedule``, ``max_active_runs``,
  ``overlap_policy``, ``hist_retention_days`` (days, 0 or more; 0 is the default 30, as
  in Dagu, with a warning), ``timeout_sec`` (seconds; 0: no limit), ``steps`` (a list,
  or a map name → step), and statebox's own ``typed_references``. Dagu keys that change
  nothing in a local run (``description``, ``tags``, ``labels``, ``group``, ``log_dir``,
  the mail settings, …) are accepted and ignored; Dagu keys that change no result here
  (``delay_sec``, a step's ``signal_on_stop``, ``stdout``, ``stderr``, …) are accepted
  with a warning; Dagu keys the runner does not implement (``container``, ``consts``,
  ``retry_policy`` of a DAG, …) are problems that say so; any other key is an unknown
  key, with a did-you-mean.
- Step keys: ``id``, ``name``, ``run``, ``action`` + ``with``, the legacy ``command``,
  ``script`` and ``call`` (+ ``params``), ``output``, ``env``, ``working_dir``, ``shell``,
  ``timeout_sec``, ``depends``, ``preconditions``, ``retry_policy``, ``continue_on``,
  ``repeat_policy``, ``description``. A step with neither ``id`` nor ``name`` is named
  as Dagu names it: ``cmd_3``, ``state_2``, ``dag_1`` (kind and position).
- The older camelCase spellings (``retryPolicy``, ``continueOn``, ``handlerOn``, …) are
  read as their snake_case keys, with a warning through ``warn`` naming both.
- ``type: chain``: a step without ``depends`` depends on the step before it (on every
  step of the group before it, for Dagu's nested-list groups); explicit ``depends``
  (even ``[]``) is kept as written.

Checks, all reported at once: YAML syntax, unknown keys, wrong types, invalid or
duplicate ids and names, ``depends`` on unknown steps, dependency cycles (named:
``a → b → a``, each step depending on the next), unknown actions and ``with`` fields
(:mod:`.action_fields`), ``run`` beside ``action``, a step with nothing to do, and
references to things that do not exist: ``${X.output}`` / ``.stdout`` / ``.stderr`` /
``.exit_code`` where ``X`` is no step, ``${X.path}`` where ``X`` is no step, output
variable, parameter or ``env`` entry, ``${params.x}`` where ``x`` is no declared named
parameter. A bare ``${X}`` may be an environment variable and is never a problem;
``\\${`` is an escape (an odd run of backslashes before ``$``). References are found as
the runner finds them (:func:`.refs.find_references`).

Values are kept as written: ``with`` as its JSON-like tree (YAML 1.2 scalars: ``yes`` is
a string, ``2024-01-01`` a string), ``env`` and params as the text written.

This module is the entry points; the reading is in private modules, bottom up:
:mod:`._yaml_nodes` (YAML as Go reads it, nodes with their places), :mod:`._dag_keys`
(the keys of each mapping, older spellings, did-you-mean), :mod:`._node_reader`
(problems, and nodes read into typed values), :mod:`._dag_fields` (params, env, shell,
schedule, preconditions), :mod:`._policies` (retry, continue_on, repeat),
:mod:`._step_parse` (steps), :mod:`._dag_checks` (names, the graph, references) and
:mod:`._dag_parse` (the DAG, and the text → DAG pass).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from ..core.errors import NotFoundError, quoted
from ._dag_fields import parse_param_string
from ._dag_parse import parse
from ._node_reader import DagFileError, Problem, Warn
from .model import DAG, Where

__all__ = [
    "DagFileError",
    "Problem",
    "check_files",
    "check_texts",
    "find_sub_dag",
    "load_dag",
    "parse_param_string",
    "read_workflow_text",
    "stderr_warn",
]

#: Parses one file's text: ``(path, text, warn)`` → (the result or None, its problems).
ParseText = Callable[[str, str, Warn], tuple[object, list[Problem]]]


# -- public entry points ------------------------------------------------------------------


def load_dag(path: str, *, warn: Warn | None = None) -> DAG:
    """The DAG in the file at ``path``; :class:`DagFileError` listing every problem, or
    :class:`~statebox.core.errors.NotFoundError` when there is no such file.

    ``warn`` receives each warning (an older camelCase key) as one line,
    ``file:line:column: warning: …``; by default they are written to standard error.
    """
    text = read_workflow_text(path)
    dag, problems = parse(path, text, warn or stderr_warn)
    if problems or dag is None:
        raise DagFileError(problems)
    return dag


def check_files(paths: Sequence[str], *, warn: Warn | None = None) -> list[Problem]:
    """Every problem in each of ``paths`` (an unreadable file is one problem), in order."""
    return check_texts(paths, parse, warn)


def check_texts(
    paths: Sequence[str], parse_text: ParseText, warn: Warn | None, kind: str = "DAG file"
) -> list[Problem]:
    """Every problem ``parse_text`` finds in each of ``paths`` (an unreadable file is
    one problem, naming it a ``kind``), in order: a DAG's or a Direktiv workflow's."""
    problems: list[Problem] = []
    for path in paths:
        try:
            text = read_workflow_text(path, kind)
        except NotFoundError as exc:
            problems.append(Problem(Where(path, 1, 1), exc.message))
            continue
        except DagFileError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(parse_text(path, text, warn or stderr_warn)[1])
    return problems


def find_sub_dag(name: str, parent_file: str | None, dags_dir: str | None) -> str:
    """The file of the sub-DAG ``name`` (``action: dag.run`` / ``call:``), made absolute.

    ``name`` is a path (absolute, or relative to the parent file's directory, then to
    ``dags_dir``) or a bare name: ``child`` is ``child.yaml`` then ``child.yml`` beside the
    parent file, then in ``dags_dir``. Without either directory the working directory is
    searched. :class:`~statebox.core.errors.NotFoundError` names every path tried.
    """
    if not name or not name.strip():
        raise NotFoundError("no sub-DAG named: the dag field is empty")
    names = [name] if name.endswith((".yaml", ".yml")) else [f"{name}.yaml", f"{name}.yml", name]
    tried: list[str] = []
    if os.path.isabs(name):
        candidates = names
    else:
        dirs: list[str] = []
        if parent_file:
            dirs.append(os.path.dirname(os.path.abspath(parent_file)))
        if dags_dir:
            dirs.append(os.path.abspath(dags_dir))
        if not dirs:
            dirs.append(os.getcwd())
        candidates = [os.path.join(d, n) for d in dirs for n in names]
    for candidate in candidates:
        if candidate in tried:
            continue
        tried.append(candidate)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise NotFoundError(f"no sub-DAG {quoted(name)}: tried {', '.join(tried)}")


# -- reading ------------------------------------------------------------------------------


def stderr_warn(message: str) -> None:
    """A warning, one line on standard error (the loaders' default)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def read_workflow_text(path: str, kind: str = "DAG file") -> str:
    """The text of a workflow file (a DAG's, a Direktiv workflow's): UTF-8, a leading
    BOM dropped, line ends made ``\\n``. :class:`~statebox.core.errors.NotFoundError`
    (``no {kind} 'path'``) when there is no such file; :class:`DagFileError` (one
    problem at 1:1) when it cannot be read or is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"no {kind} {quoted(path)}") from None
    except UnicodeDecodeError as exc:
        where = Where(path, 1, 1)
        raise DagFileError([Problem(where, f"not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        where = Where(path, 1, 1)
        raise DagFileError([Problem(where, f"cannot read: {exc.strerror or exc}")]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")
