"""One DAG file's text → a :class:`~.model.DAG` and every problem found in it.

:func:`parse` composes the YAML (as Go reads it, :mod:`._yaml_nodes`), turns a syntax
error into one problem at its place, and hands the first document to
:class:`DagParser`, which reads the DAG's own keys here and its steps through the
readers it is built from (:mod:`._step_parse`, :mod:`._dag_fields`, :mod:`._policies`),
then runs the checks across steps (:mod:`._dag_checks`). The problems come back sorted
by their place in the file; the DAG only when there are none.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import quoted, requoted
from ._dag_checks import GraphChecks
from ._dag_keys import DAG_KEYS, DAG_NAME_RE, HANDLER_KEYS
from ._node_reader import Problem, Warn
from ._step_parse import Draft, StepReader
from ._yaml_nodes import MAX_DEPTH, Node, yaml_loader
from .model import (
    DAG,
    DEFAULT_HIST_RETENTION_DAYS,
    DEFAULT_MAX_ACTIVE_STEPS,
    DEFAULT_MAX_OUTPUT_SIZE,
    HandlerOn,
    Where,
)

__all__ = ["MAX_VALUES", "DagParser", "compose_documents", "parse"]

#: The most values (keys, scalars, lists, mappings) a DAG or workflow file may hold,
#: aliases expanded: far over any real file's, far under what would exhaust memory.
MAX_VALUES = 200_000


def _expanded_size(node: Node, memo: dict[int, int], depth: int = 0) -> int:
    """How many values ``node`` holds with every alias expanded (each node counted once
    per place it is used), without expanding them: a few lines of aliases can stand for
    billions of values, which reading the tree would build. A recursive alias is
    unbounded. Below :data:`MAX_DEPTH` nothing is counted: nothing is read there."""
    if depth > MAX_DEPTH:
        return 1
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_VALUES + 1  # while counting: reached again only through itself
    size = 1
    if node.id == "mapping":
        children = [child for pair in node.value for child in pair]
    elif node.id == "sequence":
        children = list(node.value)
    else:
        children = []
    for child in children:
        size += _expanded_size(child, memo, depth + 1)
        if size > MAX_VALUES:
            break
    memo[key] = size
    return size


def compose_documents(path: str, text: str) -> tuple[list[Node], Problem | None]:
    """The YAML documents of ``text`` (the file ``path``'s), empty ones left out — or
    none and the syntax error, as one problem at its place (a DAG's or a Direktiv
    workflow's file alike). A document that would expand to more than
    :data:`MAX_VALUES` values (an alias bomb) is refused before anything reads it."""
    import yaml  # type: ignore[import-untyped]

    try:
        documents = list(yaml.compose_all(text, Loader=yaml_loader()))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Where(path, mark.line + 1, mark.column + 1) if mark else Where(path, 1, 1)
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return [], Problem(where, f"invalid YAML: {requoted(what)}")
    except yaml.YAMLError as exc:
        return [], Problem(Where(path, 1, 1), f"invalid YAML: {requoted(str(exc))}")
    except RecursionError:  # PyYAML composes nested collections recursively
        return [], Problem(Where(path, 1, 1), "invalid YAML: nested too deeply")
    documents = [d for d in documents if d is not None]
    memo: dict[int, int] = {}
    if any(_expanded_size(document, memo) > MAX_VALUES for document in documents):
        return [], Problem(
            Where(path, 1, 1),
            f"the file holds more than {MAX_VALUES} values once its aliases are expanded "
            "(an alias bomb, or a recursive alias?)",
        )
    return documents, None


def parse(path: str, text: str, warn: Warn) -> tuple[DAG | None, list[Problem]]:
    """The DAG in ``text`` (the file ``path``'s), or None, and every problem found."""
    parser = DagParser(path, text, warn)
    documents, invalid = compose_documents(path, text)
    if invalid is not None:
        return None, [invalid]
    if not documents:
        return None, [Problem(Where(path, 1, 1), "empty file: a DAG needs steps")]
    for extra in documents[1:]:
        parser.add(
            extra,
            "a second YAML document: several DAGs in one file (Dagu's inline sub-DAGs) "
            "are not supported; give each its own file",
        )
    dag = parser.dag(documents[0])
    problems = sorted(parser.problems, key=lambda p: (p.where.line, p.where.column))
    return (None if problems else dag), problems


class DagParser(StepReader, GraphChecks):
    """Reads one DAG document; ``problems`` holds what is wrong with it."""

    def dag(self, root: Node) -> DAG | None:
        keys = self.mapping(root, DAG_KEYS)
        if keys is None:
            return None
        abspath = os.path.abspath(self.path)
        base = os.path.dirname(abspath)
        values: dict[str, Any] = {}
        get = keys.get

        name = os.path.splitext(os.path.basename(self.path))[0]
        if "name" in keys:
            given = self.string(keys["name"][1], "name")
            if given is not None:
                name = given.strip()
        self.check_dag_name(name, keys["name"][1] if "name" in keys else None)

        if "params" in keys:
            values["params"] = tuple(self.params(keys["params"][1]))
        env_texts: list[Node] = []
        if "env" in keys:
            values["env"] = self.env(keys["env"][1], "env", env_texts)
        if "dotenv" in keys:
            dotenv = self.strings(keys["dotenv"][1], "dotenv")
            if dotenv is not None:
                values["dotenv"] = tuple(dotenv)
        working_dir = base
        if "working_dir" in keys:
            node = keys["working_dir"][1]
            given = self.string(node, "working_dir")
            if given is not None:
                working_dir = given
                if "$" not in given and not given.startswith("~"):
                    working_dir = os.path.normpath(os.path.join(base, given))
                env_texts.append(node)
        values["working_dir"] = working_dir
        shell = self.shell(get("shell"), get("shell_args"))
        if shell is not None:
            values["shell"] = shell
        if "type" in keys:
            node = keys["type"][1]
            kind = self.string(node, "type")
            if kind in ("graph", "chain"):
                values["type"] = kind
            elif kind in ("agent", "build"):
                self.add(
                    node, f"type: {kind} is a Dagu type that statebox's runner does not support"
                )
            elif kind is not None:
                self.add(node, f"type must be graph or chain, got {quoted(kind)}")
        if "preconditions" in keys:
            values["preconditions"] = self.preconditions(keys["preconditions"][1], env_texts)
        for key, default, minimum in (
            ("max_output_size", DEFAULT_MAX_OUTPUT_SIZE, 0),
            ("max_active_steps", DEFAULT_MAX_ACTIVE_STEPS, 0),
            ("max_active_runs", 1, 0),
        ):
            if key in keys:
                number = self.number(
                    keys[key][1], key, described="a whole number", integer=True, minimum=minimum
                )
                if number is not None:
                    values[key] = int(number) or default  # 0: Dagu's default
        if "schedule" in keys:
            values["schedule"] = self.schedule(keys["schedule"][1])
        if "overlap_policy" in keys:
            node = keys["overlap_policy"][1]
            policy = self.string(node, "overlap_policy")
            if policy in ("skip", "all", "latest"):
                values["overlap_policy"] = policy
            elif policy is not None:
                self.add(node, f"overlap_policy must be skip, all or latest, got {quoted(policy)}")
        if "hist_retention_days" in keys:
            node = keys["hist_retention_days"][1]
            days = self.number(node, "hist_retention_days", described="a number of days", minimum=0)
            if days == 0:
                self.warning(
                    node,
                    "hist_retention_days: 0 keeps run records for Dagu's default of "
                    f"{DEFAULT_HIST_RETENTION_DAYS:g} days, as Dagu does",
                )
            elif days is not None:
                values["hist_retention_days"] = float(days)
        if "timeout_sec" in keys:
            node = keys["timeout_sec"][1]
            limit = self.number(node, "timeout_sec", described="a number of seconds", minimum=0)
            if limit:  # 0: no limit, as in Dagu
                values["timeout_sec"] = float(limit)
        if "typed_references" in keys:
            typed = self.boolean(keys["typed_references"][1], "typed_references")
            if typed is not None:
                values["typed_references"] = typed

        drafts: list[Draft] = []
        if "steps" in keys:
            drafts = self.steps(keys["steps"][1], chain=values.get("type") == "chain")
        else:
            self.add(root, "the DAG has no steps")
        handlers: dict[str, Draft] = {}
        if "handler_on" in keys:
            handler_keys = self.mapping(keys["handler_on"][1], HANDLER_KEYS)
            for kind, (_, node) in (handler_keys or {}).items():
                draft = self.step(node, len(drafts), handler=kind)
                if draft is not None:
                    handlers[kind] = draft

        steps = self.resolve(drafts, list(handlers.values()))
        self.check_references(drafts + list(handlers.values()), values, env_texts)
        built = {id(d): s for d, s in zip(drafts + list(handlers.values()), steps, strict=True)}
        return DAG(
            name=name,
            path=abspath,
            steps=tuple(built[id(d)] for d in drafts),
            handler_on=HandlerOn(**{kind: built[id(d)] for kind, d in handlers.items()}),
            where=Where(self.path, 1, 1),
            **values,
        )

    def check_dag_name(self, name: str, node: Node) -> None:
        where = self.where(node) if node is not None else Where(self.path, 1, 1)
        origin = "" if node is not None else " (from the file name; give name: to choose another)"
        if not name:
            self.add_at(where, "name must not be empty")
        elif name in (".", "..") or not DAG_NAME_RE.fullmatch(name):
            self.add_at(
                where,
                f"invalid DAG name {quoted(name)}{origin}: letters, digits, _, . and - only",
            )
        elif len(name.encode()) > 40:
            self.add_at(where, f"DAG name {quoted(name)}{origin} is longer than 40 bytes")
