"""What a DAG file may say: the keys of each of its mappings, and the form of its names.

Each mapping of a DAG file (the DAG, a step, ``retry_policy``, …) has a :class:`Keys`
table: the keys the loader reads; Dagu's keys that change nothing in a local run
(accepted and ignored); Dagu's keys the runner does not implement (a problem that says
so); older spellings (``handler_on.cancel`` → ``abort``, the camelCase ``retryPolicy`` →
``retry_policy``, derived rather than listed) and keys Dagu no longer reads. Any other
key is unknown, reported with a did-you-mean (:func:`did_you_mean`). Kept apart from the
reading so that the whole vocabulary can be read, and changed, in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from ..core.errors import quoted

__all__ = [
    "CONTINUE_KEYS",
    "DAG_KEYS",
    "DAG_NAME_RE",
    "ENV_NAME_RE",
    "HANDLER_KEYS",
    "HANDLER_NAMES",
    "ID_RE",
    "PARAM_KEYS",
    "PRECONDITION_KEYS",
    "REPEAT_KEYS",
    "RESERVED_IDS",
    "RETRY_KEYS",
    "RUN_WITH_KEYS",
    "STEP_KEYS",
    "Keys",
    "did_you_mean",
    "words",
]


def words(text: str) -> frozenset[str]:
    """The space-separated words of ``text``."""
    return frozenset(text.split())


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def did_you_mean(word: object, choices: Iterable[str], spell: Callable[[str], str] = quoted) -> str:
    """``; did you mean "x"?`` for the choice closest to ``word`` (its snake_case
    spelling too), or "" when none is close (or ``word`` is no string). ``spell`` writes
    the choice: JSON-quoted, as the loader's messages do, unless told otherwise (a
    step's own messages write ``with.name`` bare)."""
    import difflib

    if not isinstance(word, str):
        return ""
    pool = sorted(set(choices))
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close and word != _snake(word):
        close = difflib.get_close_matches(_snake(word), pool, n=1, cutoff=0.6)
    return f"; did you mean {spell(close[0])}?" if close else ""


@dataclass(frozen=True)
class Keys:
    """The keys of one kind of mapping: read, accepted and ignored, or Dagu's but not
    implemented; ``older`` maps an older spelling to its key (camelCase ones are derived);
    ``removed`` says why a key Dagu no longer reads is gone. ``warn_ignored``: an ignored
    key is worth a warning (Dagu checks it, statebox does not). ``noted``: Dagu keys that
    change no run's result here, each with why, accepted with a warning that says so."""

    what: str
    read: frozenset[str]
    ignored: frozenset[str] = frozenset()
    unsupported: frozenset[str] = frozenset()
    older: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    warn_ignored: bool = False
    noted: tuple[tuple[str, str], ...] = ()

    @property
    def known(self) -> frozenset[str]:
        return self.read | self.ignored | self.unsupported | frozenset(k for k, _ in self.noted)

    def note(self, key: str) -> str | None:
        """The warning for a key statebox's runner accepts but does not use, else None."""
        why = dict(self.noted).get(key)
        if why is None:
            return None
        return f"{key} in {self.what} is not used by statebox's runner: {why}"

    def spelled(self, raw: str) -> tuple[str | None, str | None]:
        """The key ``raw`` is written for, and what to say about it: ``(raw, None)`` for
        a known key; ``(key, warning)`` for an older spelling of ``key``; ``(None,
        problem)`` for a key of no such mapping."""
        if raw in self.known:
            return raw, None
        new = dict(self.older).get(raw)
        if new is None and _snake(raw) != raw and _snake(raw) in self.known:
            new = _snake(raw)
        if new is not None:
            why = (
                "(Dagu's keys are snake_case now)"
                if _snake(raw) == new
                else "(Dagu's current name)"
            )
            return new, f"{quoted(raw)} is the older spelling of {quoted(new)}: write {new} {why}"
        removed = dict(self.removed)
        if raw in removed:
            return None, f"unknown key {quoted(raw)} in {self.what}: {removed[raw]}"
        hint = did_you_mean(raw, self.read | self.ignored)
        return None, f"unknown key {quoted(raw)} in {self.what}{hint}"


#: Keys Dagu no longer reads, in the DAG and in a step alike.
_REMOVED: Final = (
    ("precondition", 'Dagu no longer reads "precondition": use "preconditions"'),
    ("dir", 'Dagu no longer reads "dir": use "working_dir"'),
)

DAG_KEYS: Final = Keys(
    "the DAG",
    words(
        "name params env dotenv working_dir shell shell_args type preconditions handler_on "
        "max_output_size max_active_steps schedule max_active_runs overlap_policy "
        "hist_retention_days timeout_sec typed_references steps"
    ),
    ignored=words(
        "description group tags labels hist_retention_runs log_dir log_output "
        "mail_on error_mail info_mail wait_mail smtp queue worker_selector max_clean_up_time_sec "
        "otel webhook"
    ),
    unsupported=words(
        "tasks skip_if_successful catchup_window artifacts consts step_types actions "
        "retry_policy container run_config resources registry_auths "
        "ssh s3 llm redis harnesses harness kubernetes secrets tools defaults"
    ),
    removed=_REMOVED,
    noted=(
        ("delay_sec", "the steps start at once"),
        ("restart_wait_sec", "statebox does not restart a run"),
    ),
)

STEP_KEYS: Final = Keys(
    "a step",
    words(
        "id name run command script action with call params output env working_dir shell "
        "shell_args timeout_sec depends preconditions retry_policy continue_on repeat_policy"
    ),
    ignored=frozenset({"description", "mail_on_error", "worker_selector", "log_output"}),
    unsupported=words(
        "exec shell_packages output_schema outputs inputs dependencies parallel "
        "foreach container type llm messages approval value routes tools"
    ),
    noted=(
        ("signal_on_stop", "a stopped step's processes get SIGTERM, then SIGKILL 5 s later"),
        ("stdout", "the step's standard output is in its log (statebox runs log)"),
        ("stderr", "the step's standard error is in its log (statebox runs log --stderr)"),
    ),
    older=(("config", "with"),),
    removed=(
        *_REMOVED,
        ("executor", 'Dagu no longer reads "executor": use "action" with its fields in "with"'),
    ),
)

HANDLER_KEYS: Final = Keys(
    "handler_on",
    frozenset({"success", "failure", "abort", "exit"}),
    unsupported=frozenset({"init", "wait"}),
    older=(("cancel", "abort"),),
)
RETRY_KEYS: Final = Keys(
    "retry_policy",
    frozenset({"limit", "interval_sec", "exit_code", "backoff", "max_interval_sec"}),
)
REPEAT_KEYS: Final = Keys(
    "repeat_policy",
    words("repeat condition expected exit_code interval_sec limit backoff max_interval_sec"),
)
CONTINUE_KEYS: Final = Keys(
    "continue_on",
    frozenset({"failure", "skipped", "exit_code", "output", "mark_success"}),
)
PRECONDITION_KEYS: Final = Keys(
    "a precondition",
    frozenset({"condition", "expected", "negate"}),
    unsupported=frozenset({"eval"}),
    older=(("command", "condition"),),
)
PARAM_KEYS: Final = Keys(
    "a parameter",
    frozenset({"name", "default", "description"}),
    ignored=frozenset(
        {"type", "required", "enum", "minimum", "maximum", "min_length", "max_length", "pattern"}
    ),
    unsupported=frozenset({"eval"}),
    warn_ignored=True,
)

RUN_WITH_KEYS: Final = Keys(
    "with of a run step",
    frozenset({"shell", "shell_args"}),
    unsupported=frozenset({"shell_packages"}),
)

#: A handler's step name, as Dagu names it.
HANDLER_NAMES: Final = {
    "success": "onSuccess",
    "failure": "onFailure",
    "abort": "onAbort",
    "exit": "onExit",
}

ID_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DAG_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
RESERVED_IDS: Final = frozenset({"env", "params", "args", "stdout", "stderr", "output", "outputs"})
