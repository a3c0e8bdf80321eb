"""One Direktiv workflow file's text → a :class:`~.model.Workflow` and every problem
found in it.

:func:`parse` composes the YAML (as Go reads it, :mod:`.._yaml_nodes`), turns a syntax
error into one problem at its place, and reads the first document with
:class:`WorkflowParser`: the workflow's own keys (``direktiv_api``, ``description``,
``functions``, ``start``, ``states``, ``timeouts``; ``url`` accepted and ignored), its
states (:mod:`._parse_states`), then the checks across them that Direktiv's
``Workflow.validate`` makes (``pkg/model/workflow.go``): no duplicate state ids, every
transition and ``start.state`` naming a state, every action naming a declared function.
The problems come back sorted by their place; the workflow only when there are none.
"""

from __future__ import annotations

import os
from typing import Any

from ...core.errors import quoted
from .._dag_keys import did_you_mean
from .._dag_parse import compose_documents
from .._node_reader import Problem, Warn
from .._yaml_nodes import Node
from ..model import Where
from ._parse_keys import START_KEYS, TIMEOUT_KEYS, WORKFLOW_KEYS
from ._parse_states import StateReader
from .model import Function, State, Workflow

__all__ = ["WorkflowParser", "parse"]

#: The ``direktiv_api`` of a workflow file (Direktiv's other files are services, …).
WORKFLOW_API = "workflow/v1"
_START_TYPES = ("default", "scheduled")
_EVENT_STARTS = ("event", "eventsXor", "eventsAnd")


def parse(path: str, text: str, warn: Warn) -> tuple[Workflow | None, list[Problem]]:
    """The workflow in ``text`` (the file ``path``'s), or None, and every problem."""
    parser = WorkflowParser(path, text, warn)
    documents, invalid = compose_documents(path, text)
    if invalid is not None:
        return None, [invalid]
    if not documents:
        return None, [Problem(Where(path, 1, 1), "empty file: a workflow needs states")]
    for extra in documents[1:]:
        parser.add(extra, "a second YAML document: give each workflow its own file")
    workflow = parser.workflow(documents[0])
    problems = sorted(parser.problems, key=lambda p: (p.where.line, p.where.column))
    return (None if problems else workflow), problems


class WorkflowParser(StateReader):
    """Reads one workflow document; ``problems`` holds what is wrong with it."""

    def workflow(self, root: Node) -> Workflow | None:
        keys = self.mapping(root, WORKFLOW_KEYS)
        if keys is None:
            return None
        values: dict[str, Any] = {}
        if "direktiv_api" in keys:
            api = self.scalar(keys["direktiv_api"][1], "direktiv_api")
            if api is not None and api != WORKFLOW_API:
                self.add(
                    keys["direktiv_api"][1],
                    f"direktiv_api {quoted(api)} is not a workflow's: write {WORKFLOW_API}",
                )
            values["direktiv_api"] = api
        if "description" in keys:
            values["description"] = self.scalar(keys["description"][1], "description")
        functions: dict[str, Function] = {}
        if "functions" in keys:
            functions = self.functions(keys["functions"][1])
        states = self._states(root, keys)
        start_state = None
        if "start" in keys:
            start_state = self._start(keys["start"][1], values)
        if "timeouts" in keys:
            self._timeouts(keys["timeouts"][1], values)

        self._check_references(states, functions)
        if not states:
            return None
        return Workflow(
            name=os.path.splitext(os.path.basename(self.path))[0],
            path=os.path.abspath(self.path),
            states=tuple(states),
            start=start_state or states[0].id,
            functions=functions,
            where=Where(self.path, 1, 1),
            **values,
        )

    def _states(self, root: Node, keys: dict[str, tuple[Node, Node]]) -> list[State]:
        if "states" not in keys:
            self.add(root, "the workflow has no states")
            return []
        states: list[State] = []
        first: dict[str, Node] = {}
        for index, item in enumerate(self.items(keys["states"][1], "states", required=True)):
            state = self.state(item, index)
            if state is None:
                continue
            if state.id in first:
                line = first[state.id].start_mark.line + 1
                self.add(item, f"state id {quoted(state.id)} is used twice (first at line {line})")
                continue
            first[state.id] = item
            states.append(state)
        return states

    def _start(self, node: Node, values: dict[str, Any]) -> str | None:
        keys = self.mapping(node, START_KEYS)
        if keys is None:
            return None
        if "type" not in keys:
            self.add(node, "start needs type: (default or scheduled)")
            return None
        kind = self.scalar(keys["type"][1], "start type")
        if kind in _EVENT_STARTS:
            self.add(
                keys["type"][1],
                f"start type {kind} waits for cloud events, which statebox's runner does not "
                "support (use default, or scheduled with a cron)",
            )
            return None
        if kind is not None and kind not in _START_TYPES:
            kind = self.choice(keys["type"][1], "start type", _START_TYPES)
        state = None
        if "state" in keys:
            state = self.state_ref(keys["state"][1], "start.state")
        if kind == "scheduled":
            if "cron" not in keys:
                self.add(node, "a scheduled start needs cron: (a cron expression)")
            else:
                cron = self._cron(keys["cron"][1])
                if cron is not None:
                    values["schedule"] = (cron,)
        elif "cron" in keys:
            self.add(keys["cron"][0], "cron is for a start of type scheduled")
        return state

    def _cron(self, node: Node) -> str | None:
        cron = self.scalar(node, "cron", required=True)
        if cron is None:
            return None
        from .._cron import cron_readable  # the scheduler's own reading

        if not cron_readable(cron):
            self.add(node, f"invalid cron expression {quoted(cron)}")
            return None
        return cron

    def _timeouts(self, node: Node, values: dict[str, Any]) -> None:
        keys = self.mapping(node, TIMEOUT_KEYS)
        for key, field in (("interrupt", "interrupt_sec"), ("kill", "kill_sec")):
            if keys and key in keys:
                seconds = self.duration(keys[key][1], f"timeouts.{key}")
                if seconds is not None:
                    values[field] = seconds

    def _check_references(self, states: list[State], functions: dict[str, Function]) -> None:
        ids = [s.id for s in states]
        for ref in self.state_refs:
            if ref.name not in self.state_ids:
                hint = did_you_mean(ref.name, ids)
                self.add(ref.node, f"{ref.what} names no state: {quoted(ref.name)}{hint}")
        for fref in self.function_refs:
            if fref.name not in self.function_ids:
                hint = did_you_mean(fref.name, functions)
                self.add(
                    fref.node,
                    f"action function {quoted(fref.name)} is not one of the workflow's "
                    f"functions{hint}",
                )
