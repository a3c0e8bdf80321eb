"""One Direktiv state read from its YAML node: the keys every state has (``id``,
``type``, ``log``, ``metadata``, ``catch``), then its type's own, as Direktiv v0.10
checks them (``pkg/model/state-*.go``), each problem at its place.

Expressions stay as written (their brackets checked); transitions are noted and checked
once every state has been read (:mod:`._parse_workflow`).
"""

from __future__ import annotations

from typing import Any

from ...core.errors import quoted, requoted
from .._dag_keys import did_you_mean
from .._node_reader import Warn
from .._yaml_nodes import NULL, Node, is_str
from ._parse_actions import ActionReader
from ._parse_keys import (
    CONDITION_KEYS,
    EVENT_STATE_TYPES,
    GETTER_SCOPES,
    GETTER_VAR_KEYS,
    MIME_RE,
    SETTER_SCOPES,
    SETTER_VAR_KEYS,
    STATE_KEYS,
    SYSTEM_KEYS,
)
from .model import STATE_TYPES, Condition, GetVar, SetVar, State
from .names import NAME_RULE, is_name

__all__ = ["StateReader"]

Fields = dict[str, tuple[Node, Node]]


class StateReader(ActionReader):
    """Reads states; ``problems`` collects what is wrong."""

    def __init__(self, path: str, text: str, warn: Warn) -> None:
        super().__init__(path, text, warn)
        #: Every state id written, refused states' too (no second problem for them).
        self.state_ids: set[str] = set()

    def state(self, node: Node, index: int) -> State | None:
        if node.id != "mapping":
            self.add(node, f"each state must be a mapping, got {self._kind(node)}")
            return None
        raw = {k.value: (k, v) for k, v in self.pairs(node) if k.id == "scalar"}
        if "id" in raw and is_str(raw["id"][1]):
            self.state_ids.add(raw["id"][1].value)
        kind = self._state_type(node, raw.get("type"))
        if kind is None:
            return None
        keys = self.mapping(node, STATE_KEYS[kind])
        if keys is None:
            return None
        sid = self._state_id(node, keys.get("id"))
        what = f"state {quoted(sid)}" if sid else f"state {index + 1}"
        values: dict[str, Any] = {}
        if "log" in keys:
            values["log"] = self.expression(keys["log"][1], f"{what} log")
        if "metadata" in keys:
            values["metadata"] = self.expression(keys["metadata"][1], f"{what} metadata")
        if "catch" in keys:
            values["catch"] = self.catches(keys["catch"][1])
        if "transform" in keys:
            values["transform"] = self._transform(keys["transform"][1], f"{what} transform")
        if "transition" in keys:
            values["transition"] = self.state_ref(keys["transition"][1], "transition")
        getattr(self, f"_{kind}")(node, keys, values, what)
        if sid is None:
            return None
        return State(id=sid, type=kind, where=self.where(node), **values)

    # -- the common keys

    def _state_type(self, node: Node, pair: tuple[Node, Node] | None) -> str | None:
        if pair is None:
            self.add(node, f"a state needs type: ({', '.join(STATE_TYPES)})")
            return None
        kind = self.scalar(pair[1], "type")
        if kind is None:
            return None
        if kind in STATE_TYPES:
            return kind
        if kind in EVENT_STATE_TYPES:
            self.add(
                pair[1],
                f"state type {kind} waits for or sends cloud events, which statebox's "
                "runner does not support",
            )
        else:
            hint = did_you_mean(kind, STATE_TYPES)
            self.add(
                pair[1],
                f"unknown state type {quoted(kind)}{hint} (one of {', '.join(STATE_TYPES)})",
            )
        return None

    def _state_id(self, node: Node, pair: tuple[Node, Node] | None) -> str | None:
        if pair is None:
            self.add(node, "a state needs id:")
            return None
        sid = self.scalar(pair[1], "id", required=True)
        if sid is not None and not is_name(sid):
            self.add(pair[1], f"invalid state id {quoted(sid)}: {NAME_RULE}")
            return None
        return sid

    def _transform(self, node: Node, what: str) -> Any:
        value = self.expression(node, what)
        return None if value in ("", ".") else value

    def _required(
        self, node: Node, keys: Fields, key: str, what: str, why: str = ""
    ) -> Node | None:
        if key in keys:
            return keys[key][1]
        self.add(node, f"{what} needs {key}:{' ' + why if why else ''}")
        return None

    @staticmethod
    def _kind(node: Node) -> str:
        from .._yaml_nodes import node_kind

        return node_kind(node)

    # -- each type's own keys (each fills ``values``)

    def _noop(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        pass

    def _getter(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        found = self._required(node, keys, "variables", f"getter {what}")
        entries: list[GetVar] = []
        for item in self.items(found, "variables", required=True) if found else []:
            fields = self.mapping(item, GETTER_VAR_KEYS)
            if fields is None:
                continue
            scope = self._scope(item, fields, GETTER_SCOPES, "a getter")
            key = self._var_key(item, fields, scope, what)
            as_ = None
            if "as" in fields:
                as_ = self.scalar(fields["as"][1], "as", required=True)
            if scope is not None and key is not None:
                entries.append(GetVar(key, scope, as_, self.where(item)))
        values["variables"] = tuple(entries)

    def _setter(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        found = self._required(node, keys, "variables", f"setter {what}")
        entries: list[SetVar] = []
        for item in self.items(found, "variables", required=True) if found else []:
            fields = self.mapping(item, SETTER_VAR_KEYS)
            if fields is None:
                continue
            scope = self._scope(item, fields, SETTER_SCOPES, "a setter")
            key = self._var_key(item, fields, scope, what)
            value = None
            if "value" in fields:
                vnode = fields["value"][1]
                if is_str(vnode) and vnode.value == "":
                    self.add(vnode, 'value must not be "" (null deletes the variable)')
                value = self.expression(vnode, f"{what} value")
            mime = None
            if "mimeType" in fields:
                mnode = fields["mimeType"][1]
                mime = self.expression(mnode, f"{what} mimeType")
                if self.is_literal(mnode) and not MIME_RE.fullmatch(mnode.value):
                    self.add(
                        mnode, f"mimeType {quoted(mnode.value)} is not a MIME type like text/plain"
                    )
                elif not is_str(mnode) and mnode.tag != NULL:
                    self.add(mnode, "mimeType must be a string (a MIME type, or an expression)")
            if scope is not None and key is not None:
                entries.append(SetVar(key, scope, value, mime, self.where(item)))
        values["variables"] = tuple(entries)

    def _scope(self, item: Node, fields: Fields, scopes: tuple[str, ...], who: str) -> str | None:
        if "scope" not in fields:
            self.add(item, f"a variable needs scope: ({', '.join(scopes)})")
            return None
        node = fields["scope"][1]
        scope = self.scalar(node, "scope")
        if scope is None or scope in scopes:
            return scope
        if scope in ("thread", "file") or (scope == "system" and who == "a setter"):
            why = "is read-only" if scope == "system" else "is not supported by statebox"
            self.add(node, f"scope {scope} {why} ({who} takes {', '.join(scopes)})")
            return None
        return self.choice(node, "scope", scopes)

    def _var_key(self, item: Node, fields: Fields, scope: str | None, what: str) -> Any:
        if "key" not in fields:
            self.add(item, "a variable needs key: (its name, or an expression giving it)")
            return None
        node = fields["key"][1]
        if not is_str(node) or node.value == "":
            self.add(node, "key must be a variable's name (or an expression giving it)")
            return None
        key = self.expression(node, f"{what} key")
        if not self.is_literal(node):
            return key
        if scope == "system":
            if key not in SYSTEM_KEYS:
                hint = did_you_mean(key, SYSTEM_KEYS)
                self.add(
                    node,
                    f"unknown system variable {quoted(key)}{hint} "
                    f"(one of {', '.join(SYSTEM_KEYS)})",
                )
                return None
        elif not is_name(key):
            self.add(node, f"invalid variable name {quoted(key)}: {NAME_RULE}")
            return None
        return key

    def _switch(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        found = self._required(node, keys, "conditions", f"switch {what}")
        conditions: list[Condition] = []
        for item in self.items(found, "conditions", required=True) if found else []:
            fields = self.mapping(item, CONDITION_KEYS)
            if fields is None:
                continue
            cnode = fields["condition"][1] if "condition" in fields else None
            if cnode is None or (cnode.id == "scalar" and cnode.value == "" and is_str(cnode)):
                self.add(cnode or item, "a switch condition needs condition: (an expression)")
                continue
            condition = self.expression(cnode, f"{what} condition")
            transform = None
            if "transform" in fields:
                transform = self._transform(fields["transform"][1], f"{what} transform")
            transition = None
            if "transition" in fields:
                transition = self.state_ref(fields["transition"][1], "condition transition")
            conditions.append(Condition(condition, transform, transition, self.where(item)))
        values["conditions"] = tuple(conditions)
        if "defaultTransform" in keys:
            values["default_transform"] = self._transform(
                keys["defaultTransform"][1], f"{what} defaultTransform"
            )
        if "defaultTransition" in keys:
            values["default_transition"] = self.state_ref(
                keys["defaultTransition"][1], "defaultTransition"
            )

    def _timeout(self, keys: Fields, values: dict[str, Any]) -> None:
        if "timeout" in keys:
            seconds = self.duration(keys["timeout"][1], "timeout")
            if seconds is not None:
                values["timeout_sec"] = seconds

    def _action(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        found = self._required(node, keys, "action", f"action {what}", "(function, input, …)")
        if found is not None:
            values["action"] = self.action(found, "action")
        if "async" in keys:
            values["async_"] = bool(self.boolean(keys["async"][1], "async"))
        self._timeout(keys, values)

    def _foreach(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        array = self._required(node, keys, "array", f"foreach {what}", "(an expression)")
        if array is not None:
            if is_str(array) and array.value == "":
                self.add(array, "array must not be empty (an expression giving a list)")
            values["array"] = self.expression(array, f"{what} array")
        found = self._required(node, keys, "action", f"foreach {what}", "(function, input, …)")
        if found is not None:
            values["action"] = self.action(found, "action")
        self._timeout(keys, values)

    def _parallel(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        found = self._required(node, keys, "actions", f"parallel {what}")
        actions = []
        for item in self.items(found, "actions", required=True) if found else []:
            actions.append(self.action(item, "each of actions"))
        values["actions"] = tuple(a for a in actions if a is not None)
        if "mode" in keys:
            mode = self.choice(keys["mode"][1], "mode", ("and", "or"))
            if mode is not None:
                values["mode"] = mode
        self._timeout(keys, values)

    def _delay(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        found = self._required(node, keys, "duration", f"delay {what}", "(ISO 8601, e.g. PT30S)")
        if found is not None:
            seconds = self.duration(found, "duration")
            if seconds is not None:
                values["duration_sec"] = seconds

    def _error(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        for key in ("error", "message"):
            found = self._required(node, keys, key, f"error {what}")
            if found is not None:
                text = self.scalar(found, key, required=True)
                if text is not None:
                    values[key] = text
        if "args" in keys:
            values["args"] = tuple(
                self.expression(item, f"{what} args")
                for item in self.items(keys["args"][1], "args")
            )

    def _validate(self, node: Node, keys: Fields, values: dict[str, Any], what: str) -> None:
        if "subject" in keys:
            subject = keys["subject"][1]
            if not is_str(subject):
                self.add(subject, "subject must be a string (an expression)")
            values["subject"] = self.expression(subject, f"{what} subject")
        found = self._required(node, keys, "schema", f"validate {what}", "(a JSON Schema)")
        if found is None:
            return
        schema = self.tree(found)
        values["schema"] = schema
        if not isinstance(schema, (dict, bool)):
            self.add(found, f"schema must be a JSON Schema (an object), got {self._kind(found)}")
            return
        import jsonschema  # type: ignore[import-untyped]

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            self.add(
                self._node_at(found, list(exc.path)),
                f"schema is not a valid JSON Schema: {requoted(exc.message)}",
            )

    def _node_at(self, node: Node, path: list[Any]) -> Node:
        """The node at ``path`` (keys and indexes) inside ``node``, as deep as it goes."""
        for step in path:
            if node.id == "mapping":
                found = [v for k, v in self.pairs(node) if k.id == "scalar" and k.value == step]
                if not found:
                    break
                node = found[0]
            elif node.id == "sequence" and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
            else:
                break
        return node
