"""A Direktiv workflow's ``functions`` and the ``action`` definitions that call them
(with their ``files`` and ``retries``), read from YAML nodes with their places.

Direktiv runs functions as Knative services built from an ``image``; statebox runs
them on this machine. A function is therefore ``cmd:`` (a shell command line, run with
``sh -c``) or ``url:`` (an HTTP endpoint speaking Direktiv's function protocol) —
exactly one; Direktiv's own ``type`` and ``image`` may stand beside it. A function with
only an ``image`` is refused with the fix named; ``subflow`` functions are refused.

Function references (``action.function``) are checked once every function is read.
"""

from __future__ import annotations

from typing import NamedTuple

from ...core.errors import quoted
from .._node_reader import Warn
from .._yaml_nodes import INT, Node
from ._parse_keys import (
    ACTION_KEYS,
    FILE_KEYS,
    FILE_TYPES,
    FUNCTION_KEYS,
    FUNCTION_TYPES,
    SETTER_SCOPES,
)
from ._parse_values import ValueReader
from .model import Action, FileSpec, Function
from .names import NAME_RULE, is_name

__all__ = ["ActionReader", "FunctionRef"]


class FunctionRef(NamedTuple):
    """A function named by an action at ``node``."""

    name: str
    node: Node


class ActionReader(ValueReader):
    """Reads ``functions`` and action definitions; notes the functions they name."""

    def __init__(self, path: str, text: str, warn: Warn) -> None:
        super().__init__(path, text, warn)
        self.function_refs: list[FunctionRef] = []
        #: Every function id declared, refused ones too (no second problem for them).
        self.function_ids: set[str] = set()

    # -- functions

    def functions(self, node: Node) -> dict[str, Function]:
        out: dict[str, Function] = {}
        first: dict[str, Node] = {}
        for item in self.items(node, "functions"):
            function = self.function(item)
            if function is None:
                continue
            if function.id in first:
                line = first[function.id].start_mark.line + 1
                self.add(
                    item, f"function id {quoted(function.id)} is used twice (first at line {line})"
                )
                continue
            first[function.id] = item
            out[function.id] = function
        return out

    def function(self, node: Node) -> Function | None:
        keys = self.mapping(node, FUNCTION_KEYS)
        if keys is None:
            return None
        values: dict[str, str | None] = {}
        for key in ("id", "type", "image", "cmd", "url", "workflow"):
            if key in keys:
                values[key] = self.scalar(keys[key][1], f"function {key}", required=True)
        fid = values.get("id")
        if "id" not in keys:
            self.add(node, "a function needs id:")
        if fid:
            self.function_ids.add(fid)
        if fid is not None and not is_name(fid):
            self.add(keys["id"][1], f"invalid function id {quoted(fid)}: {NAME_RULE}")
            fid = None
        kind = values.get("type")
        if kind is not None and kind not in FUNCTION_TYPES:
            kind = self.choice(keys["type"][1], "function type", FUNCTION_TYPES)
        name = quoted(fid or "?")
        cmd, url = values.get("cmd"), values.get("url")
        if kind == "subflow" or "workflow" in keys:
            self.add(
                node,
                f"function {name} is a subflow: statebox does not run one workflow from "
                "another; give the function cmd: (a shell command) or url: instead",
            )
            return None
        if cmd is not None and url is not None:
            self.add(keys["url"][0], f"function {name} has both cmd: and url:; give one")
            return None
        if url is not None and not url.startswith(("http://", "https://")):
            self.add(keys["url"][1], f"function {name} url must start with http:// or https://")
            return None
        if cmd is None and url is None:
            if "cmd" in keys or "url" in keys:
                return None  # an empty one, already a problem
            given = "image:" if "image" in keys else f"type: {kind}" if kind else "no cmd: or url:"
            self.add(
                node,
                f"function {name} has {given}; statebox runs functions locally: give cmd: "
                "(a shell command) or url: (an HTTP endpoint speaking Direktiv's function "
                "protocol)",
            )
            return None
        if fid is None:
            return None
        return Function(fid, cmd, url, kind, values.get("image"), self.where(node))

    # -- actions

    def action(self, node: Node, what: str) -> Action | None:
        keys = self.mapping(node, ACTION_KEYS)
        if keys is None:
            return None
        function = None
        if "function" in keys:
            function = self.scalar(keys["function"][1], f"{what} function", required=True)
            if function is not None:
                self.function_refs.append(FunctionRef(function, keys["function"][1]))
        else:
            self.add(node, f"{what} needs function: (the id of one of the workflow's functions)")
        data_in = None
        if "input" in keys:
            data_in = self.expression(keys["input"][1], f"{what} input")
        secrets: list[str] = []
        if "secrets" in keys:
            secrets = self.strings(keys["secrets"][1], f"{what} secrets") or []
        retries = None
        if "retries" in keys:
            retries = self.retries(keys["retries"][1])
        files: list[FileSpec] = []
        if "files" in keys:
            for item in self.items(keys["files"][1], f"{what} files"):
                spec = self.file_spec(item)
                if spec is not None:
                    files.append(spec)
        if function is None:
            return None
        return Action(function, data_in, tuple(secrets), retries, tuple(files), self.where(node))

    def file_spec(self, node: Node) -> FileSpec | None:
        keys = self.mapping(node, FILE_KEYS)
        if keys is None:
            return None
        key = None
        if "key" in keys:
            key = self.scalar(keys["key"][1], "files key", required=True)
            if key is not None and not is_name(key):
                why = (
                    "a files entry's key is a variable's name: expressions are not supported here"
                    if "jq(" in key or "js(" in key
                    else NAME_RULE
                )
                self.add(keys["key"][1], f"invalid variable name {quoted(key)}: {why}")
                key = None
        else:
            self.add(node, "a files entry needs key: (the variable's name)")
        # No scope is the namespace's, as in Direktiv (pkg/flow/temporary.go).
        scope: str | None = "namespace"
        if "scope" in keys:
            scope = self.choice(keys["scope"][1], "files scope", SETTER_SCOPES)
        kind: str | None = "plain"
        if "type" in keys:
            kind = self.choice(keys["type"][1], "files type", FILE_TYPES)
        as_ = None
        if "as" in keys:
            as_ = self.scalar(keys["as"][1], "files as", required=True)
            if as_ is not None and (as_ in (".", "..") or "/" in as_ or "\0" in as_):
                self.add(keys["as"][1], f"files as {quoted(as_)} must be a plain file name")
                as_ = None
        permissions = None
        if "permissions" in keys:
            permissions = self.permissions(keys["permissions"][1])
        if key is None or scope is None or kind is None:
            return None
        return FileSpec(key, scope, as_, kind, permissions, self.where(node))  # type: ignore[arg-type]

    def permissions(self, node: Node) -> int | None:
        """Octal permissions as written (``"0755"``, ``755``: YAML 1.2 reads ``0755`` as a
        number, whose text is still the octal digits)."""
        text = self.scalar(node, "files permissions")
        if text is None:
            return None
        digits = text[2:] if node.tag == INT and text.startswith("0o") else text
        if not digits or len(digits) > 5 or any(c not in "01234567" for c in digits):
            self.add(node, f"files permissions must be octal digits like 0644, got {quoted(text)}")
            return None
        mode = int(digits, 8)
        if mode > 0o7777:
            self.add(node, f"files permissions {text} is over 7777")
            return None
        return mode
