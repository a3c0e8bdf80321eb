"""Steps read from a DAG file, each into a :class:`Draft`: what the step does, and what
the checks across steps (:mod:`._dag_checks`) still need.

``steps`` is a list (Dagu's nested lists are parallel groups, for ``type: chain``) or a
map name → step; a bare string is Dagu's shorthand for ``run``. A step's work is one of
``run`` (or the legacy ``command`` / ``script``), ``action`` + ``with`` (its fields
checked against :mod:`.action_fields`) or the legacy ``call`` + ``params`` (an
``action: dag.run``). A draft is not a :class:`~.model.Step` yet: names may be missing
(Dagu generates them from the kind and position), and ``depends`` names steps that are
resolved, and checked for cycles, once every step has been read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import quoted
from ._dag_fields import FieldReader
from ._dag_keys import (
    ENV_NAME_RE,
    HANDLER_NAMES,
    ID_RE,
    RESERVED_IDS,
    RUN_WITH_KEYS,
    STEP_KEYS,
    did_you_mean,
)
from ._policies import PolicyReader
from ._yaml_nodes import NULL, Node, is_str, node_kind, node_text
from .action_fields import ACTION_FIELDS, ACTIONS, DAG_RUN, REQUIRED_FIELDS
from .model import ContinueOn, Precondition, RepeatPolicy, RetryPolicy

__all__ = ["Draft", "StepReader"]

Keyed = dict[str, tuple[Node, Node]]


@dataclass
class Draft:
    """A step being read: the model's fields, plus what the checks need."""

    node: Node
    position: int  # the entry of ``steps`` it came from (for chain and generated names)
    handler: str | None = None
    id: str | None = None
    id_node: Node = None
    name: str | None = None
    name_node: Node = None
    run: tuple[str, ...] = ()
    script: str | None = None
    action: str | None = None
    with_: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    shell: str | None = None
    timeout_sec: float | None = None
    depends: list[tuple[str, Node]] | None = None
    depends_node: Node = None
    preconditions: tuple[Precondition, ...] = ()
    retry_policy: RetryPolicy | None = None
    continue_on: ContinueOn = field(default_factory=ContinueOn)
    repeat_policy: RepeatPolicy | None = None
    #: String nodes whose ``${…}`` references are checked.
    texts: list[Node] = field(default_factory=list)
    #: For ``type: chain``: the steps this one follows when it has no ``depends``.
    chained: list[Draft] = field(default_factory=list)
    resolved: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.handler:
            return f"handler_on.{self.handler}"
        if self.id or self.name:
            return f"step {quoted(self.id or self.name)}"
        return f"step {self.position + 1}"


class StepReader(FieldReader, PolicyReader):
    """Reads ``steps`` and the steps of ``handler_on`` into drafts."""

    def steps(self, node: Node, *, chain: bool) -> list[Draft]:
        drafts: list[Draft] = []
        if node.id == "mapping":
            for position, (key, value) in enumerate(self.pairs(node)):
                draft = self.step(value, position, forced_name=node_text(key), name_node=key)
                if draft is not None:
                    draft.chained = drafts[-1:] if chain else []
                    drafts.append(draft)
            return drafts
        if node.id != "sequence":
            self.add(node, f"steps must be a list of steps, got {node_kind(node)}")
            return drafts
        previous: list[Draft] = []
        for position, entry in enumerate(node.value):
            group = entry.value if entry.id == "sequence" else [entry]
            current: list[Draft] = []
            for item in group:
                draft = self.step(item, position)
                if draft is None:
                    continue
                draft.chained = previous if chain else []
                current.append(draft)
                drafts.append(draft)
            previous = current or previous
        return drafts

    def step(
        self,
        node: Node,
        position: int,
        *,
        handler: str | None = None,
        forced_name: str | None = None,
        name_node: Node = None,
    ) -> Draft | None:
        draft = Draft(node=node, position=position, handler=handler)
        if is_str(node) and forced_name is None:  # Dagu's shorthand: - echo hello
            draft.run = (str(node.value),)
            draft.texts.append(node)
            return draft
        if node.tag == NULL and forced_name is not None:
            self.add(node, f"step {quoted(forced_name)} has nothing to do: give it run or action")
            return None
        keys = self.mapping(node, STEP_KEYS)
        if keys is None:
            return None
        self.step_identity(draft, keys, forced_name, name_node)
        what = draft.label
        if handler is not None:
            draft.name = HANDLER_NAMES[handler]
        self.step_work(draft, keys, what)
        if "output" in keys:
            self.step_output(draft, keys["output"][1])
        if "env" in keys:
            draft.env = self.env(keys["env"][1], "env", draft.texts)
        if "working_dir" in keys:
            draft.working_dir = self.string(keys["working_dir"][1], "working_dir")
            if draft.working_dir is not None:
                draft.texts.append(keys["working_dir"][1])
        if "shell" in keys or "shell_args" in keys:
            draft.shell = self.shell(keys.get("shell"), keys.get("shell_args")) or draft.shell
        if "timeout_sec" in keys:
            timeout = self.number(
                keys["timeout_sec"][1], "timeout_sec", described="a number of seconds", minimum=0
            )
            draft.timeout_sec = float(timeout) if timeout else None
        if "depends" in keys:
            key_node, value = keys["depends"]
            draft.depends_node = key_node
            if handler is not None:
                self.add(key_node, f"{what} cannot have depends: a handler runs after the steps")
            elif value.tag == NULL:
                draft.depends = None
            else:
                names = self.strings(value, "depends")
                items = value.value if value.id == "sequence" else [value]
                if names is not None:
                    draft.depends = list(zip(names, items, strict=True))
        if "preconditions" in keys:
            draft.preconditions = self.preconditions(keys["preconditions"][1], draft.texts)
        if "retry_policy" in keys:
            draft.retry_policy = self.retry_policy(keys["retry_policy"][1])
        if "continue_on" in keys:
            draft.continue_on = self.continue_on(keys["continue_on"][1])
        if "repeat_policy" in keys:
            draft.repeat_policy = self.repeat_policy(keys["repeat_policy"][1], draft.texts)
        return draft

    def step_output(self, draft: Draft, node: Node) -> None:
        if node.id == "mapping":
            self.add(
                node,
                "output as an object (Dagu's structured output) is not supported: give a "
                "variable name",
            )
            return
        output = self.string(node, "output")
        if output is None:
            return
        output = output.strip().lstrip("$")
        if ENV_NAME_RE.fullmatch(output):
            draft.output = output
        else:
            self.add(
                node,
                f"invalid output name {quoted(output)}: letters, digits and _ only, "
                "not starting with a digit",
            )

    def step_identity(
        self, draft: Draft, keys: Keyed, forced_name: str | None, name_node: Node
    ) -> None:
        if "id" in keys:
            node = keys["id"][1]
            given = self.string(node, "id")
            if given is not None:
                given = given.strip()
                if not ID_RE.fullmatch(given):
                    self.add(
                        node,
                        f"invalid step id {quoted(given)}: a letter, then letters, digits "
                        "and _ only",
                    )
                elif len(given.encode()) > 40:
                    self.add(node, f"invalid step id {quoted(given)}: longer than 40 bytes")
                elif given.lower() in RESERVED_IDS:
                    self.add(
                        node,
                        f"invalid step id {quoted(given)}: a reserved word "
                        f"({', '.join(sorted(RESERVED_IDS))})",
                    )
                else:
                    draft.id, draft.id_node = given, node
        if forced_name is not None:
            draft.name, draft.name_node = forced_name.strip(), name_node
            if "name" in keys:
                self.add(keys["name"][0], "a step of a steps map is named by its key: drop name")
        elif "name" in keys:
            node = keys["name"][1]
            given = self.string(node, "name")
            if given is not None and given.strip():
                draft.name, draft.name_node = given.strip(), node
        if draft.name is not None and len(draft.name.encode()) > 255:
            self.add(
                draft.name_node,
                f"step name {quoted(draft.name[:40] + '…')} is longer than 255 bytes",
            )

    def step_work(self, draft: Draft, keys: Keyed, what: str) -> None:
        """run / command / script / action + with / call + params."""
        given = [k for k in ("run", "command", "script", "action", "call") if k in keys]
        exclusive = sorted(
            (k for k in given if k in ("run", "action", "call")),
            key=lambda k: (keys[k][0].start_mark.line, keys[k][0].start_mark.column),
        )
        for later in exclusive[1:]:
            self.add(keys[later][0], f"{exclusive[0]} and {later} cannot both be given in {what}")
        if "run" in keys:
            for legacy in ("command", "script"):
                if legacy in keys:
                    self.add(keys[legacy][0], f"run and {legacy} cannot both be given in {what}")
        if any(k in keys for k in ("action", "call")):
            for legacy in ("command", "script"):
                if legacy in keys:
                    first = "action" if "action" in keys else "call"
                    self.add(
                        keys[legacy][0], f"{first} and {legacy} cannot both be given in {what}"
                    )
        if not given:
            self.add(draft.node, f"{what} has nothing to do: give it run or action")

        for key in ("run", "command"):
            if key in keys:
                node = keys[key][1]
                commands = self.strings(node, key, allow_empty=False)
                if commands is not None:
                    draft.run = draft.run + tuple(commands)
                    draft.texts.extend(node.value if node.id == "sequence" else [node])
        if "script" in keys:
            draft.script = self.string(keys["script"][1], "script")
            if draft.script is not None:
                draft.texts.append(keys["script"][1])

        with_node = keys["with"][1] if "with" in keys else None
        if "action" in keys:
            node = keys["action"][1]
            action = self.string(node, "action")
            if action is not None and action not in ACTIONS:
                hint = did_you_mean(action, ACTIONS)
                self.add(node, f"unknown action {quoted(action)}{hint}")
            elif action is not None:
                draft.action = action
                self.action_fields(draft, action, with_node, node)
        elif "call" in keys:
            node = keys["call"][1]
            target = self.string(node, "call")
            if target is not None:
                draft.action = DAG_RUN
                draft.with_ = {"dag": target}
                draft.texts.append(node)
                if "params" in keys:
                    params_node = keys["params"][1]
                    draft.with_["params"] = self.tree(params_node)
                    draft.texts.extend(self.string_nodes(params_node))
            if with_node is not None:
                self.add(keys["with"][0], f"call takes params, not with, in {what}")
        elif with_node is not None:
            if "run" in keys or "command" in keys:
                self.run_with(draft, keys["with"])
            else:
                self.add(keys["with"][0], f"with needs an action in {what}")
        if "params" in keys and "call" not in keys:
            self.add(
                keys["params"][0],
                f"params of a step go with call (or with.params of action: {DAG_RUN})",
            )

    def action_fields(self, draft: Draft, action: str, with_node: Node, action_node: Node) -> None:
        allowed = ACTION_FIELDS[action]
        present: set[str] = set()
        if with_node is not None:
            if with_node.id != "mapping":
                if with_node.tag != NULL:
                    self.add(with_node, f"with must be a mapping, got {node_kind(with_node)}")
            else:
                for key, value in self.pairs(with_node):
                    name = node_text(key) if key.id == "scalar" else ""
                    if name in present:
                        self.add(key, f"duplicate field with.{name}")
                        continue
                    if name not in allowed:
                        hint = did_you_mean(name, allowed, lambda n: quoted(f"with.{n}"))
                        self.add(key, f"unknown field with.{name} for {action}{hint}")
                        continue
                    present.add(name)
                    draft.with_[name] = self.tree(value)
                    draft.texts.extend(self.string_nodes(value))
        missing = sorted(REQUIRED_FIELDS[action] - present)
        if missing:
            needs = ", ".join(f"with.{m}" for m in missing)
            self.add(with_node if with_node is not None else action_node, f"{action} needs {needs}")

    def run_with(self, draft: Draft, item: tuple[Node, Node]) -> None:
        """``run`` + ``with: {shell, shell_args}`` (Dagu v2's spelling of a step's shell)."""
        keys = self.mapping(item[1], RUN_WITH_KEYS)
        if keys:
            draft.shell = self.shell(keys.get("shell"), keys.get("shell_args"))
