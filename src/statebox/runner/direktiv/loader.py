"""Direktiv v0.10 workflow files → :class:`.model.Workflow`, with every problem's file,
line and column.

:func:`load_workflow` parses one YAML file (PyYAML's node tree, so that each key and
value has its place), checks it, and either returns the workflow or raises
:class:`~.._node_reader.DagFileError` listing *every* problem found, each as
``file:line:column: message`` — the same error, and the same exit code, as a Dagu file's
(:func:`statebox.runner.loader.load_dag`). :func:`check_workflow_files` does the same for
several files and returns the problems (``statebox validate``).

What is checked, as Direktiv's ``pkg/model`` does (and a little more, since statebox
can say *where*):

- YAML syntax; the workflow's keys (``direktiv_api``, ``url``, ``description``,
  ``functions``, ``start``, ``states``, ``timeouts``) and every part's keys, strictly:
  an unknown key is a problem with a did-you-mean (a key in another case is read, with a
  warning, as Go's JSON decoder reads it);
- states: ``id`` (Direktiv's name pattern), no duplicate, ``type`` one of the ten
  statebox runs (event states refused, saying so), each type's required keys
  (``variables``, ``conditions``, ``action``, ``array``, ``actions``, ``duration``,
  ``error`` + ``message``, ``schema`` — a valid JSON Schema), ``mode`` and|or;
- variables: ``scope`` (getter: instance, workflow, namespace, system; setter: the
  first three), ``key`` (a literal one matches the name pattern; a literal system key is
  instance, uuid, epoch or trace), a literal setter ``mimeType`` is a MIME type;
- transitions (``transition``, ``catch``, ``conditions``, ``defaultTransition``,
  ``start.state``) name states; ``action.function`` names a declared function;
- functions: ``id``; exactly one of ``cmd`` (a shell command) or ``url`` (an HTTP
  endpoint) — an ``image``-only or ``subflow`` function is refused with the fix named;
- ``files`` (type plain|base64|tar|tar.gz, octal permissions), ``retries``
  (``max_attempts`` ≥ 1, ``codes``, ``delay``, ``multiplier``), durations (ISO 8601:
  :mod:`.durations`), ``start`` (default or scheduled with a valid cron);
- every ``jq(...)`` in an expression has its closing bracket; ``js(...)`` is refused.

The workflow's name is its file's name without the extension; its first state is
``start.state``, else the first state. The reading is in private modules, bottom up:
:mod:`._parse_keys` (the keys and names), :mod:`._parse_values` (expressions,
durations, catch, retries), :mod:`._parse_actions` (functions, actions, files),
:mod:`._parse_states` (each state type) and :mod:`._parse_workflow` (the workflow).
"""

from __future__ import annotations

from collections.abc import Sequence

from .._node_reader import DagFileError, Problem, Warn
from ..loader import check_texts, read_workflow_text, stderr_warn
from ._parse_workflow import parse
from .model import Workflow

__all__ = ["DagFileError", "Problem", "check_workflow_files", "load_workflow"]

#: What a missing file is called in its error.
_KIND = "workflow file"


def load_workflow(path: str, *, warn: Warn | None = None) -> Workflow:
    """The workflow in the file at ``path``; :class:`DagFileError` listing every
    problem, or :class:`~statebox.core.errors.NotFoundError` when there is no such file.

    ``warn`` receives each warning as one line, ``file:line:column: warning: …``; by
    default they are written to standard error.
    """
    text = read_workflow_text(path, _KIND)
    workflow, problems = parse(path, text, warn or stderr_warn)
    if problems or workflow is None:
        raise DagFileError(problems)
    return workflow


def check_workflow_files(paths: Sequence[str], *, warn: Warn | None = None) -> list[Problem]:
    """Every problem in each of ``paths`` (an unreadable file is one problem), in order."""
    return check_texts(paths, parse, warn, _KIND)
