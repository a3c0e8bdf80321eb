"""A step's policies: ``retry_policy``, ``continue_on`` and ``repeat_policy``.

Each is a small mapping with its own rules, read into the model's
:class:`~.model.RetryPolicy`, :class:`~.model.ContinueOn` and
:class:`~.model.RepeatPolicy`: numbers with their bounds (given as text too, where
Dagu takes text), exit codes, a backoff factor; ``continue_on`` may also be the word
``failed`` or ``skipped``; ``repeat_policy`` takes Dagu's current form (``repeat: while``
/ ``until``) and its older one (``repeat: true``, the mode inferred from ``condition`` and
``expected``).
"""

from __future__ import annotations

from typing import Any

from ..core.errors import quoted
from ._dag_keys import CONTINUE_KEYS, REPEAT_KEYS, RETRY_KEYS
from ._node_reader import NodeReader
from ._yaml_nodes import BOOL, Node, is_str, node_kind, node_text, scalar_value
from .model import ContinueOn, RepeatPolicy, RetryPolicy

__all__ = ["PolicyReader"]


class PolicyReader(NodeReader):
    """Reads a step's ``retry_policy``, ``continue_on`` and ``repeat_policy``."""

    def retry_policy(self, node: Node) -> RetryPolicy | None:
        keys = self.mapping(node, RETRY_KEYS)
        if keys is None:
            return None
        values = self._waits(keys, "retry_policy", least_limit=0, text_ok=True)
        if "exit_code" in keys:
            codes = self.exit_codes(keys["exit_code"][1], "retry_policy.exit_code")
            if codes is not None:
                values["exit_code"] = codes
        return RetryPolicy(**values)

    def _waits(
        self, keys: dict[str, tuple[Node, Node]], what: str, *, least_limit: int, text_ok: bool
    ) -> dict[str, Any]:
        """What a retry and a repeat policy share: ``limit``, ``interval_sec``,
        ``max_interval_sec`` and ``backoff`` (the model's wait:
        :meth:`~.model.RetryPolicy.wait`), by the model's field names."""
        values: dict[str, Any] = {}
        if "limit" in keys:
            limit = self.number(
                keys["limit"][1],
                f"{what}.limit",
                described="a whole number",
                integer=True,
                minimum=least_limit,
                text_ok=text_ok,
            )
            if limit is not None:
                values["limit"] = int(limit)
        for key in ("interval_sec", "max_interval_sec"):
            if key in keys:
                seconds = self.number(
                    keys[key][1],
                    f"{what}.{key}",
                    described="a number of seconds",
                    minimum=0,
                    text_ok=text_ok,
                )
                if seconds is not None:
                    values[key] = float(seconds)
        if "backoff" in keys:
            backoff = self.backoff(keys["backoff"][1], f"{what}.backoff")
            if backoff is not None:
                values["backoff"] = backoff
        return values

    def continue_on(self, node: Node) -> ContinueOn:
        if node.id == "scalar":
            text = node_text(node).strip().lower()
            if text in ("failed", "failure"):
                return ContinueOn(failure=True)
            if text == "skipped":
                return ContinueOn(skipped=True)
            self.add(
                node, f"continue_on must be failed, skipped or a mapping, got {quoted(node.value)}"
            )
            return ContinueOn()
        keys = self.mapping(node, CONTINUE_KEYS)
        if keys is None:
            return ContinueOn()
        values: dict[str, Any] = {}
        for key in ("failure", "skipped", "mark_success"):
            if key in keys:
                flag = self.boolean(keys[key][1], f"continue_on.{key}")
                if flag is not None:
                    values[key] = flag
        if "exit_code" in keys:
            codes = self.exit_codes(keys["exit_code"][1], "continue_on.exit_code")
            if codes is not None:
                values["exit_code"] = codes
        if "output" in keys:
            patterns = self.strings(keys["output"][1], "continue_on.output")
            if patterns is not None:
                values["output"] = tuple(patterns)
        return ContinueOn(**values)

    def repeat_policy(self, node: Node, texts: list[Node]) -> RepeatPolicy | None:
        keys = self.mapping(node, REPEAT_KEYS)
        if keys is None:
            return None
        mode: str | None = None
        explicit = False
        if "repeat" in keys:
            value = keys["repeat"][1]
            if value.id == "scalar" and value.tag == BOOL:
                mode = "while" if scalar_value(value) else None  # false: as if not given
            elif is_str(value) and value.value in ("while", "until"):
                mode, explicit = str(value.value), True
            else:
                self.add(
                    value,
                    f"repeat_policy.repeat must be while, until or a boolean, "
                    f"got {node_kind(value)}",
                )
                return None
        condition = expected = None
        if "condition" in keys:
            condition = self.string(keys["condition"][1], "repeat_policy.condition")
            texts.append(keys["condition"][1])
        if "expected" in keys:
            expected = self.string(keys["expected"][1], "repeat_policy.expected")
            texts.append(keys["expected"][1])
        codes: tuple[int, ...] = ()
        if "exit_code" in keys:
            codes = self.exit_codes(keys["exit_code"][1], "repeat_policy.exit_code") or ()
        if mode is None:  # Dagu's older form: the mode inferred
            if condition and expected:
                mode = "until"
            elif condition or codes:
                mode = "while"
        if explicit and not condition and not codes:
            self.add(
                keys["repeat"][1],
                f"repeat: {mode} needs repeat_policy.condition or repeat_policy.exit_code",
            )
            return None
        values = self._waits(keys, "repeat_policy", least_limit=1, text_ok=False)
        if mode is None:
            return None
        return RepeatPolicy(
            mode="until" if mode == "until" else "while",
            condition=condition,
            expected=expected,
            exit_code=codes,
            **values,
        )
