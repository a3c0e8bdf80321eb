"""The checks across the steps of a DAG: names, the dependency graph, references.

Once every step has been read (:mod:`._step_parse`), :class:`GraphChecks` gives the
unnamed steps Dagu's generated names (``cmd_3``, ``state_2``, ``dag_1``), reports
duplicate ids and names, resolves ``depends`` to step names (``type: chain`` filling in
the ones not written), finds dependency cycles (one per knot, named ``a → b → a``), and
builds the model's :class:`~.model.Step` s. Then it checks each ``${…}`` reference
against what the DAG declares — found by :func:`.refs.find_references`, the scanner the
runner renders with, so that the loader and the runner agree on what a reference is —
and points at each bad one in the file.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ..core.errors import quoted
from ._dag_keys import did_you_mean, words
from ._node_reader import NodeReader
from ._step_parse import Draft
from ._yaml_nodes import Node
from .action_fields import DAG_RUN
from .model import Step, Where
from .refs import Reference, find_references

__all__ = ["GraphChecks"]

_STEP_PROPERTIES: Final = ("output", "stdout", "stderr", "exit_code")
#: Dagu's own reference namespaces besides params and env: never reported.
_DAGU_NAMESPACES: Final = words(
    "consts steps foreach context dag run attempt step trigger paths profile pushback"
)


class GraphChecks(NodeReader):
    """Resolves the drafts of a DAG into steps, and checks what spans steps."""

    def resolve(self, drafts: list[Draft], handlers: list[Draft]) -> list[Step]:
        """Names (generated where missing), uniqueness, depends → names, chain, cycles."""
        taken: set[str] = set()
        for draft in drafts + handlers:
            taken.update(x for x in (draft.id, draft.name) if x)
        for draft in drafts:
            if draft.name is None:
                if draft.id is not None:
                    draft.name = draft.id
                else:
                    draft.name = _generated_name(draft, taken)
                    taken.add(draft.name)

        by_name: dict[str, Draft] = {}
        by_id: dict[str, Draft] = {}
        for draft in drafts:
            assert draft.name is not None
            if draft.id is not None:
                if draft.id in by_id:
                    first = by_id[draft.id]
                    self.add(
                        draft.id_node,
                        f"duplicate step id {quoted(draft.id)} (first at line "
                        f"{self.where(first.id_node).line})",
                    )
                else:
                    by_id[draft.id] = draft
            if draft.name in by_name:
                first = by_name[draft.name]
                self.add(
                    draft.name_node if draft.name_node is not None else draft.id_node,
                    f"duplicate step name {quoted(draft.name)} (first at line "
                    f"{self.where(first.node).line})",
                )
            else:
                by_name[draft.name] = draft
        for draft in drafts:
            other = by_name.get(draft.id) if draft.id is not None else None
            if other is not None and other is not draft:
                self.add(
                    draft.id_node,
                    f"step id {quoted(draft.id)} is the name of another step (line "
                    f"{self.where(other.node).line})",
                )

        lookup = {**by_id, **by_name}
        for draft in drafts:
            if draft.depends is None:
                draft.resolved = tuple(d.name for d in draft.chained if d.name)
                continue
            resolved: list[str] = []
            for ref, node in draft.depends:
                target = lookup.get(ref)
                if target is None:
                    hint = did_you_mean(ref, lookup)
                    self.add(
                        node,
                        f"{draft.label} depends on {quoted(ref)}, which is no step's id or "
                        f"name{hint}",
                    )
                elif target.name not in resolved:
                    assert target.name is not None
                    resolved.append(target.name)
            draft.resolved = tuple(resolved)
        self.check_cycles(drafts, by_name)

        return [self.build(d) for d in drafts + handlers]

    def check_cycles(self, drafts: list[Draft], by_name: dict[str, Draft]) -> None:
        """Report one cycle per knot of the graph (Kahn's peeling; what cannot be peeled
        is in a cycle or depends on one)."""
        names = [d.name for d in drafts if d.name is not None and by_name.get(d.name) is d]
        deps = {n: [dep for dep in by_name[n].resolved if dep in by_name] for n in names}
        dependants: dict[str, list[str]] = {n: [] for n in names}
        for n in names:
            for dep in deps[n]:
                dependants[dep].append(n)
        pending = {n: len(deps[n]) for n in names}
        remaining = dict.fromkeys(names)

        def peel(ready: list[str]) -> None:
            while ready:
                done = ready.pop()
                if done not in remaining:
                    continue
                del remaining[done]
                for later in dependants[done]:
                    if later in remaining:
                        pending[later] -= 1
                        if pending[later] == 0:
                            ready.append(later)

        peel([n for n in names if pending[n] == 0])
        while remaining:
            path = [next(iter(remaining))]
            while True:
                following = next(dep for dep in deps[path[-1]] if dep in remaining)
                if following in path:
                    cycle = [*path[path.index(following) :], following]
                    break
                path.append(following)
            first = by_name[cycle[0]]
            node = first.depends_node if first.depends_node is not None else first.node
            self.add(node, "dependency cycle: " + " → ".join(cycle))
            peel(cycle[:-1])  # as if the cycle had run: find the next one

    def build(self, draft: Draft) -> Step:
        assert draft.name is not None
        return Step(
            id=draft.id,
            name=draft.name,
            run=draft.run,
            script=draft.script,
            action=draft.action,
            with_=draft.with_,
            output=draft.output,
            env=draft.env,
            working_dir=draft.working_dir,
            shell=draft.shell,
            timeout_sec=draft.timeout_sec,
            depends=draft.resolved,
            preconditions=draft.preconditions,
            retry_policy=draft.retry_policy,
            continue_on=draft.continue_on,
            repeat_policy=draft.repeat_policy,
            where=self.where(draft.node),
        )

    def check_references(
        self, drafts: list[Draft], values: dict[str, Any], dag_texts: list[Node]
    ) -> None:
        """Each ``${NAME…}`` in the texts of the DAG and its steps, against the steps,
        output variables, parameters and ``env`` entries declared. A bare ``$NAME`` or
        ``${NAME}`` may be an environment variable and a ``$1`` a positional parameter:
        neither is checked."""
        steps = {x for d in drafts for x in (d.id, d.name) if x}
        outputs = {d.output for d in drafts if d.output}
        params = {name for name, _ in values.get("params", ()) if name}
        envs = set(values.get("env", {})) | {k for d in drafts for k in d.env}
        for node in dag_texts + [n for d in drafts for n in d.texts]:
            seen: dict[str, int] = {}
            for ref in find_references(str(node.value)):
                if not ref.braced or ref.positional:
                    continue
                occurrence = seen.get(ref.text, 0)
                seen[ref.text] = occurrence + 1
                message = _reference_problem(ref, steps, outputs, params, envs)
                if message is not None:
                    self.add_at(self.reference_where(node, ref.text, occurrence), message)

    def reference_where(self, node: Node, text: str, occurrence: int) -> Where:
        """Where the reference ``text`` is in the file: found in the scalar's source text
        (the ``occurrence``-th time it occurs there, from 0), else the scalar's start."""
        start = self.offset(node.start_mark.line, node.start_mark.column)
        end = self.offset(node.end_mark.line, node.end_mark.column)
        source = self.text[start:end]
        at = -1
        for _ in range(occurrence + 1):
            at = source.find(text, at + 1)
            if at < 0:
                return self.where(node)
        line, column = self.position(start + at)
        return Where(self.path, line, column)


def _generated_name(draft: Draft, taken: set[str]) -> str:
    """Dagu's name for a step with neither id nor name: its kind and position."""
    if draft.action == DAG_RUN:
        prefix = "dag"
    elif draft.action:
        prefix = draft.action.split(".")[0]
    elif draft.script is not None and not draft.run:
        prefix = "script"
    elif draft.run:
        prefix = "cmd"
    else:
        prefix = "step"
    counter = draft.position + 1
    while f"{prefix}_{counter}" in taken:
        counter += 1
    return f"{prefix}_{counter}"


def _reference_problem(
    ref: Reference, steps: set[str], outputs: set[str], params: set[str], envs: set[str]
) -> str | None:
    name, path = ref.name, ref.path
    first = re.match(r"\.([A-Za-z0-9_]+)", path or "")
    segment = first.group(1) if first else None
    if name == "params":
        if segment is None or segment.isdigit() or segment in params:
            return None
        hint = did_you_mean(segment, params)
        declared = "no named parameter is declared" if not params else "it is not declared"
        return f"{ref.text}: no parameter {quoted(segment)} ({declared} in params){hint}"
    if path is None or name == "env" or name in outputs:
        return None
    if name in steps:
        if segment in _STEP_PROPERTIES:
            return None
        return (
            f"{ref.text}: a step reference takes .output, .stdout, .stderr or .exit_code, "
            f"and {quoted(name)} is no output variable"
        )
    if name in params or name in envs or name in _DAGU_NAMESPACES:
        return None
    hint = did_you_mean(name, steps | outputs)
    if segment in _STEP_PROPERTIES:
        return f"{ref.text} refers to no step: {quoted(name)} is no step's id or name{hint}"
    return (
        f"{ref.text} refers to nothing: {quoted(name)} is no step, output variable or "
        f"parameter{hint}"
    )
