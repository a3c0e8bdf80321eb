"""What a Direktiv workflow file may say: the keys of each of its mappings, and the
names, scopes and types it may use.

Direktiv v0.10 decodes each part of a workflow strictly (``pkg/model``: the YAML is
turned into JSON and decoded with ``DisallowUnknownFields``), so any other key is an
error there as here: an unknown key, with a did-you-mean. Go's JSON decoder matches a
key to its field without regard for case (``defaulttransition`` is
``defaultTransition``); :class:`DirektivKeys` accepts such a spelling with a warning
naming the usual one, instead of the Dagu tables' snake_case rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ...core.errors import quoted
from .._dag_keys import Keys, did_you_mean, words

__all__ = [
    "ACTION_KEYS",
    "CATCH_KEYS",
    "CONDITION_KEYS",
    "EVENT_STATE_TYPES",
    "FILE_KEYS",
    "FILE_TYPES",
    "FUNCTION_KEYS",
    "FUNCTION_TYPES",
    "GETTER_SCOPES",
    "GETTER_VAR_KEYS",
    "MIME_RE",
    "RETRY_KEYS",
    "SETTER_SCOPES",
    "SETTER_VAR_KEYS",
    "START_KEYS",
    "STATE_KEYS",
    "SYSTEM_KEYS",
    "TIMEOUT_KEYS",
    "WORKFLOW_KEYS",
    "DirektivKeys",
]

#: ``model.RegexVarMimeType`` (``\w+\/[-+.\w]+``), with parameters after ``;`` allowed:
#: the setter itself reads ``text/plain; charset=utf-8``.
MIME_RE: Final = re.compile(r"\w+/[-+.\w]+(\s*;.*)?", re.DOTALL)

#: The scopes a getter reads, and a setter writes, in Direktiv's words.
GETTER_SCOPES: Final = ("instance", "workflow", "namespace", "system")
SETTER_SCOPES: Final = ("instance", "workflow", "namespace")
#: The keys of the ``system`` scope statebox gives.
SYSTEM_KEYS: Final = ("instance", "uuid", "epoch", "trace")
FILE_TYPES: Final = ("plain", "base64", "tar", "tar.gz")
#: Direktiv's function types (``reusable`` is the older ``knative-workflow``).
FUNCTION_TYPES: Final = (
    "knative-workflow",
    "reusable",
    "knative-namespace",
    "knative-system",
    "subflow",
)
#: Direktiv's state types statebox does not run: they wait for or send cloud events.
EVENT_STATE_TYPES: Final = frozenset(
    {"consumeEvent", "eventsAnd", "eventsXor", "eventAnd", "eventXor", "generateEvent"}
)


@dataclass(frozen=True)
class DirektivKeys(Keys):
    """A :class:`~.._dag_keys.Keys` table read as Direktiv reads keys: exactly, or in
    another case (with a warning); no older spellings."""

    def spelled(self, raw: str) -> tuple[str | None, str | None]:
        if raw in self.known:
            return raw, None
        for key in sorted(self.known):
            if key.lower() == raw.lower():
                return key, f"{quoted(raw)} is read as {quoted(key)}: write {key}"
        hint = did_you_mean(raw, self.read | self.ignored)
        return None, f"unknown key {quoted(raw)} in {self.what}{hint}"


_COMMON: Final = "id type log metadata catch "
_NEXT: Final = " transform transition"

WORKFLOW_KEYS: Final = DirektivKeys(
    "the workflow",
    words("direktiv_api description functions start states timeouts"),
    ignored=frozenset({"url"}),
)
#: The keys of each state type (the common ones first).
STATE_KEYS: Final = {
    name: DirektivKeys(f"{'an' if name[0] in 'aeiou' else 'a'} {name} state", words(_COMMON + own))
    for name, own in (
        ("noop", _NEXT),
        ("getter", "variables" + _NEXT),
        ("setter", "variables" + _NEXT),
        ("switch", "conditions defaultTransform defaultTransition"),
        ("action", "action async timeout" + _NEXT),
        ("foreach", "array action timeout" + _NEXT),
        ("parallel", "actions mode timeout" + _NEXT),
        ("delay", "duration" + _NEXT),
        ("error", "error message args" + _NEXT),
        ("validate", "subject schema" + _NEXT),
    )
}
CATCH_KEYS: Final = DirektivKeys("a catch entry", frozenset({"error", "transition"}))
GETTER_VAR_KEYS: Final = DirektivKeys("a getter's variable", frozenset({"scope", "key", "as"}))
SETTER_VAR_KEYS: Final = DirektivKeys(
    "a setter's variable", frozenset({"scope", "key", "value", "mimeType"})
)
CONDITION_KEYS: Final = DirektivKeys(
    "a switch condition", frozenset({"condition", "transform", "transition"})
)
ACTION_KEYS: Final = DirektivKeys(
    "an action", frozenset({"function", "input", "secrets", "retries", "files"})
)
RETRY_KEYS: Final = DirektivKeys(
    "retries", frozenset({"max_attempts", "codes", "delay", "multiplier"})
)
FILE_KEYS: Final = DirektivKeys(
    "a files entry", frozenset({"key", "as", "scope", "type", "permissions"})
)
FUNCTION_KEYS: Final = DirektivKeys(
    "a function",
    frozenset({"id", "type", "image", "cmd", "url", "workflow"}),
    noted=(
        ("size", "statebox runs a function's cmd: on this machine, or calls its url:"),
        ("envs", "statebox runs a function's cmd: with the runner's environment"),
        ("patches", "there is no Knative service to patch"),
        ("service", "statebox calls a function's url:, not a Knative service"),
    ),
)
START_KEYS: Final = DirektivKeys("start", frozenset({"type", "state", "cron"}))
TIMEOUT_KEYS: Final = DirektivKeys("timeouts", frozenset({"interrupt", "kill"}))
