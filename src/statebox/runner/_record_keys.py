"""Where the run records keep things, and how much: key segments for run ids and step
names, log keys, the retention ttl, and the bounds that keep a log or a record within
the store's value limit (:mod:`.records` is their user)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any, Final

from ..core.params import MAX_SECONDS

__all__ = [
    "MAX_SEGMENT",
    "SLACK",
    "json_size",
    "key_segment",
    "log_key",
    "marked",
    "retention_ttl",
    "shrunk",
    "tail",
]

#: The longest key segment, in bytes: run id + step + stream stay within the file store's
#: key limit (125 bytes where file names may have 255 characters).
MAX_SEGMENT: Final = 56
_HASHED_HEAD: Final = MAX_SEGMENT - 17  # room for "~" and 16 hex digits
#: What the JSON around a log's text or a record's strings may take beyond them.
SLACK: Final = 4096
#: The shortest ttl given to the store (seconds): a shorter retention expires at once.
_MIN_TTL: Final = 0.001

# Percent-encoded in a key segment: the escape itself, the level separator, what a key
# may not hold, what is trimmed around a key (Unicode White_Space), control characters,
# lone surrogates, and "~" (which only a cut segment holds).
_UNSAFE: Final = re.compile(
    r"[%/\\~\x00-\x20\x7f-\x9f\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    r"\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def key_segment(text: str) -> str:
    """``text`` (a run id, a step name) as one segment of a statebox key: see the module's
    documentation. Different texts give different segments (up to SHA-256)."""
    encoded = _UNSAFE.sub(_escape, text)
    if encoded in ("", ".", ".."):
        return "%" if not encoded else encoded.replace(".", "%2E")
    if len(encoded) <= MAX_SEGMENT and (encoded.isascii() or len(encoded.encode()) <= MAX_SEGMENT):
        return encoded
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    head, size = [], 0
    for piece in _pieces(encoded):
        size += len(piece.encode())
        if size > _HASHED_HEAD:
            break
        head.append(piece)
    return "".join(head) + "~" + digest


def _pieces(encoded: str) -> Iterator[str]:
    """The characters of an encoded segment, each ``%XX`` escape as one piece."""
    i = 0
    while i < len(encoded):
        step = 3 if encoded[i] == "%" else 1
        yield encoded[i : i + step]
        i += step


def retention_ttl(days: float) -> float:
    """``days`` of retention (a DAG's ``hist_retention_days``) as the ``ttl`` of a record
    or log, in seconds: at least a millisecond, at most the store's longest ttl (100
    years, which keeps it for good)."""
    return min(max(days * 86400.0, _MIN_TTL), float(MAX_SECONDS))


def log_key(run_id: str, step: str, stream: str) -> str:
    """The key of a step's log in namespace ``logs``."""
    return f"{key_segment(run_id)}/{key_segment(step)}/{stream}"


# --- bounds -----------------------------------------------------------------------------


def json_size(value: Any) -> int:
    """The bytes of ``value`` as the store normalizes it (Go escapes ``<``, ``>``, ``&``
    as ``\\u003c``…, and U+2028/U+2029): what its value limit counts."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    grown = 5 * (text.count("<") + text.count(">") + text.count("&"))
    grown += 3 * (text.count("\u2028") + text.count("\u2029"))
    return len(text.encode("utf-8", "surrogatepass")) + grown


def tail(text: str, limit: int) -> tuple[str, int]:
    """The last ``limit`` UTF-8 bytes of ``text`` (whole characters) and how many bytes
    were cut before them."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, 0
    kept = data[len(data) - limit :].decode("utf-8", "ignore")  # a split first character
    return kept, len(data) - len(kept.encode("utf-8"))


def marked(text: str, cut: int) -> str:
    if not cut:
        return text
    return f"[statebox: {cut} bytes cut from the start of this log; the rest follows]\n{text}"


def _cut(text: str | None, limit: int, what: str) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut to fit the {what}]"


def shrunk(data: dict[str, Any], limit: int) -> dict[str, Any]:
    """A copy of a record's JSON whose long strings (step outputs and errors, the run's
    error) are cut, the longest first, until it fits ``limit`` bytes."""
    texts = [s.get(k) for s in data["steps"] for k in ("output", "error")] + [data.get("error")]
    cap = max((len(t) for t in texts if isinstance(t, str)), default=0)
    while True:
        cap //= 2
        steps = [
            {
                **step,
                "output": _cut(step.get("output"), cap, "run record; its log holds it all"),
                "error": _cut(step.get("error"), cap, "run record"),
            }
            for step in data["steps"]
        ]
        shrunk = {**data, "steps": steps, "error": _cut(data.get("error"), cap, "run record")}
        if json_size(shrunk) <= limit or cap < 64:
            return shrunk
