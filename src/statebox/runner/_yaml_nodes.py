"""YAML read as Go reads it, as node trees that keep each value's place in the file.

The loader works on PyYAML's composed nodes (``ScalarNode`` / ``SequenceNode`` /
``MappingNode``), never on constructed Python values: every node has its line and
column, so that each problem can point at what it is about. Dagu reads its files with
Go's YAML, whose scalars are YAML 1.2's core schema: only ``true``/``false`` are
booleans, there are no timestamps or sexagesimal numbers, ``0777`` is 777 and ``yes`` is
a string. :func:`yaml_loader` is PyYAML's safe loader with those resolvers; the helpers
below read a scalar node as JSON would see it (:func:`scalar_value`), as the text
written (:func:`node_text`), and name a node's kind in messages (:func:`node_kind`).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "MAX_DEPTH",
    "MERGE",
    "NULL",
    "Node",
    "is_str",
    "node_kind",
    "node_text",
    "scalar_value",
    "yaml_loader",
]

#: A YAML node (PyYAML's ``ScalarNode`` / ``SequenceNode`` / ``MappingNode``): untyped.
Node = Any

NULL: Final = "tag:yaml.org,2002:null"
BOOL: Final = "tag:yaml.org,2002:bool"
INT: Final = "tag:yaml.org,2002:int"
FLOAT: Final = "tag:yaml.org,2002:float"
MERGE: Final = "tag:yaml.org,2002:merge"
_TIMESTAMP: Final = "tag:yaml.org,2002:timestamp"

#: How deep nodes are followed (merges, trees): deeper is a recursive alias.
MAX_DEPTH: Final = 64

_yaml_loader: Any = None


def yaml_loader() -> Any:
    """PyYAML's safe loader (libyaml's when built in) with YAML 1.2's core scalars, as Go's
    YAML reads them: only ``true``/``false`` are booleans, no timestamps, no sexagesimal
    numbers, ``0777`` is 777."""
    global _yaml_loader
    if _yaml_loader is None:
        import yaml  # type: ignore[import-untyped]

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loader: Any = type("DagYamlLoader", (base,), {})
        dropped = (BOOL, INT, FLOAT, _TIMESTAMP)
        loader.yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in items if tag not in dropped]
            for first, items in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        loader.add_implicit_resolver(
            BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
        )
        loader.add_implicit_resolver(
            INT,
            re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
            list("-+0123456789"),
        )
        loader.add_implicit_resolver(
            FLOAT,
            re.compile(
                r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
            ),
            list("-+0123456789."),
        )
        _yaml_loader = loader
    return _yaml_loader


def node_kind(node: Node) -> str:
    """What ``node`` is, for a message: "an object", "an array", "a number", …"""
    if node.id == "mapping":
        return "an object"
    if node.id == "sequence":
        return "an array"
    if node.tag == NULL:
        return "null"
    if node.tag == BOOL:
        return "a boolean"
    if node.tag in (INT, FLOAT):
        return "a number"
    return "a string"


def is_str(node: Node) -> bool:
    """A string scalar (not null, a boolean or a number)."""
    return bool(node.id == "scalar" and node.tag not in (NULL, BOOL, INT, FLOAT))


def _int_value(text: str) -> int:
    body = text.replace("_", "")
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        return sign * int(body[2:], 16)
    if body[:2] in ("0o", "0O"):
        return sign * int(body[2:], 8)
    if body[:2] in ("0b", "0B"):
        return sign * int(body[2:], 2)
    return sign * int(body, 10)


def _float_value(text: str) -> float:
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return float("inf")
    if lowered == "-.inf":
        return float("-inf")
    if lowered == ".nan":
        return float("nan")
    return float(text.replace("_", ""))


def scalar_value(node: Node) -> Any:
    """A scalar node's value as JSON sees it (YAML 1.2 core schema)."""
    tag, text = node.tag, node.value
    try:
        if tag == NULL:
            return None
        if tag == BOOL:
            return text.lower() in ("true", "yes", "on", "y")
        if tag == INT:
            return _int_value(text)
        if tag == FLOAT:
            return _float_value(text)
    except ValueError:
        return text
    return text


def node_text(node: Node) -> str:
    """A scalar as written (Dagu reads env values and params as text): null is ""."""
    return "" if node.tag == NULL else str(node.value)
