"""The compound fields of a DAG file other than steps: ``params``, ``env``, ``shell``,
``schedule`` and ``preconditions``, as Dagu writes each of them.

These have several written forms each (``params`` as a string, a map, a list of
``NAME=VALUE``, of maps, of ``{name, default}``; ``env`` as a map or a list; ``shell``
as a string or an argv list, with ``shell_args``), and the DAG and its steps share most
of them, so :class:`FieldReader` reads them for both. :func:`parse_param_string` is
Dagu's params string, which the runner also reads when a sub-DAG is called.

String nodes whose ``${…}`` references are checked later are appended to ``texts``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ..core.errors import quoted
from ._dag_keys import ENV_NAME_RE, PARAM_KEYS, PRECONDITION_KEYS
from ._node_reader import NodeReader
from ._yaml_nodes import NULL, Node, is_str, node_kind, node_text
from .model import Precondition

__all__ = ["FieldReader", "parse_param_string"]

_PARAM_RE: Final = re.compile(r"""(?:([^\s=]+)=)?("(?:\\"|[^"])*"|`[^`]*`|[^"\s]+)""")


def parse_param_string(text: str) -> list[tuple[str | None, str]]:
    """Dagu's params string, ``"A B K=V K2=\\"two words\\""``: (name or None for a
    positional one, value), in order. A JSON object or array is read as JSON, as Dagu
    reads it."""
    import json

    text = text.strip()
    if (text.startswith("{") and text.endswith("}")) or (
        text.startswith("[") and text.endswith("]")
    ):
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            return _json_params(data)
    params: list[tuple[str | None, str]] = []
    for match in _PARAM_RE.finditer(text):
        name, value = match.group(1), match.group(2)
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"').replace('\\"', '"')
        params.append((name or None, value))
    return params


def _json_params(data: Any) -> list[tuple[str | None, str]]:
    def text(value: Any) -> str:
        return value if isinstance(value, str) else _go_text(value)

    if isinstance(data, dict):
        return [(str(k), text(v)) for k, v in data.items()]
    out: list[tuple[str | None, str]] = []
    for item in data:
        if isinstance(item, dict):
            out.extend((str(k), text(v)) for k, v in item.items())
        else:
            out.append((None, text(item)))
    return out


def _go_text(value: Any) -> str:
    """A scalar as Dagu's ``fmt.Sprintf("%v")`` shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FieldReader(NodeReader):
    """Reads ``params``, ``env``, ``shell``, ``schedule`` and ``preconditions``."""

    def shell(self, shell: tuple[Node, Node] | None, args: tuple[Node, Node] | None) -> str | None:
        import shlex

        parts: list[str] | None = None
        if shell is not None:
            node = shell[1]
            if node.id == "sequence":
                parts = self.strings(node, "shell")
            else:
                text = self.string(node, "shell")
                parts = None if text is None else [text]
        if args is not None:
            extra = self.strings(args[1], "shell_args")
            if parts is None:
                if shell is None:
                    self.add(args[0], "shell_args needs shell")
                return None
            if extra is None:
                return None
            return " ".join([*parts[:1], *(shlex.quote(a) for a in parts[1:] + extra)])
        if parts is None:
            return None
        if len(parts) == 1:
            return parts[0]
        return shlex.join(parts)

    def schedule(self, node: Node) -> tuple[str, ...]:
        if node.id == "mapping":
            self.add(
                node,
                "schedule with start/stop/restart is a Dagu form that statebox's runner does "
                "not support: give a cron expression or a list of them",
            )
            return ()
        expressions = self.strings(node, "schedule")
        if expressions is None:
            return ()
        from ._cron import cron_readable  # the scheduler's own reading

        items = node.value if node.id == "sequence" else [node]
        for expression, item in zip(expressions, items, strict=True):
            try:
                readable = cron_readable(expression)
            except ImportError:  # pragma: no cover - the runner extra brings croniter
                break
            if not readable:
                self.add(item, f"invalid cron expression {quoted(expression)} in schedule")
        return tuple(expressions)

    def params(self, node: Node) -> list[tuple[str | None, str]]:
        if node.id == "scalar" and node.tag != NULL:
            return parse_param_string(str(node.value))
        if node.tag == NULL:
            return []
        if node.id == "mapping":
            if {"type", "properties"} <= {k.value for k, _ in node.value if k.id == "scalar"}:
                self.add(node, "params as a JSON schema is a Dagu form statebox does not support")
                return []
            out: list[tuple[str | None, str]] = []
            for key, value in self.pairs(node):
                out.append((node_text(key), self.param_value(value, node_text(key))))
            return out
        out = []
        for item in node.value:
            if item.id == "scalar":
                out.extend(parse_param_string(node_text(item)))
            elif item.id == "mapping" and any(
                k.id == "scalar" and k.value == "name" for k, _ in item.value
            ):
                keys = self.mapping(item, PARAM_KEYS) or {}
                name = (
                    self.string(keys["name"][1], "name of a parameter") if "name" in keys else None
                )
                if name is None or not name.strip():
                    if "name" in keys:
                        self.add(keys["name"][1], "a parameter's name must not be empty")
                    continue
                default = self.param_value(keys["default"][1], name) if "default" in keys else ""
                out.append((name.strip(), default))
            elif item.id == "mapping":
                pairs = self.pairs(item)
                if len(pairs) != 1:
                    self.add(item, "each entry of params must be NAME=VALUE or a single-key map")
                for key, value in pairs:
                    out.append((node_text(key), self.param_value(value, node_text(key))))
            else:
                self.add(
                    item, f"an entry of params must be a string or a map, got {node_kind(item)}"
                )
        return out

    def param_value(self, node: Node, name: str) -> str:
        if node.id != "scalar":
            self.add(node, f"parameter {quoted(name)} must be a string, got {node_kind(node)}")
            return ""
        return node_text(node)

    def env(self, node: Node, what: str, texts: list[Node]) -> dict[str, str]:
        out: dict[str, str] = {}

        def put(name: str, value: str, where: Node, value_node: Node | None) -> None:
            if not ENV_NAME_RE.fullmatch(name):
                self.add(where, f"invalid {what} name {quoted(name)}: letters, digits and _ only")
                return
            out[name] = value
            if value_node is not None:
                texts.append(value_node)

        def pair(key: Node, value: Node) -> None:
            if key.id != "scalar":
                self.add(key, f"a name in {what} must be a string, got {node_kind(key)}")
            elif value.id != "scalar":
                self.add(
                    value,
                    f"{what} value {quoted(node_text(key))} must be a string, "
                    f"got {node_kind(value)}",
                )
            else:
                put(node_text(key), node_text(value), key, value if is_str(value) else None)

        if node.id == "mapping":
            for key, value in self.pairs(node):
                pair(key, value)
        elif node.id == "sequence":
            for item in node.value:
                if item.id == "mapping":
                    for key, value in self.pairs(item):
                        pair(key, value)
                elif is_str(item) and "=" in item.value:
                    name, _, value = str(item.value).partition("=")
                    put(name, value, item, item)
                else:
                    self.add(
                        item,
                        f"each entry of {what} must be KEY=VALUE or a map, got {node_kind(item)}",
                    )
        elif node.tag != NULL:
            self.add(node, f"{what} must be a map or a list, got {node_kind(node)}")
        return out

    def preconditions(self, node: Node, texts: list[Node]) -> tuple[Precondition, ...]:
        if node.tag == NULL:
            return ()
        items = node.value if node.id == "sequence" else [node]
        out: list[Precondition] = []
        for item in items:
            if item.id == "scalar":
                text = self.string(item, "a precondition")
                if text is not None and text.strip():
                    out.append(Precondition(condition=text, where=self.where(item)))
                    texts.append(item)
                elif text is not None:
                    self.add(item, "a precondition must not be empty")
                continue
            keys = self.mapping(item, PRECONDITION_KEYS)
            if keys is None:
                continue
            if "condition" not in keys:
                self.add(item, "a precondition needs condition")
                continue
            condition = self.string(keys["condition"][1], "condition")
            expected = None
            if "expected" in keys:
                value = keys["expected"][1]
                expected = node_text(value) if value.id == "scalar" else None
                if expected is None:
                    self.add(value, f"expected must be a string, got {node_kind(value)}")
                texts.append(value)
            negate = False
            if "negate" in keys:
                negate = bool(self.boolean(keys["negate"][1], "negate"))
            if condition is not None:
                texts.append(keys["condition"][1])
                out.append(Precondition(condition, expected, negate, self.where(item)))
        return tuple(out)
