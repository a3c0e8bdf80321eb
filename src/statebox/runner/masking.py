"""A run's masker: the secret values a run read never reach its record, its logs or
its display (:class:`Masker`).

As GitHub Actions masks secrets in its logs. Every secret value a run handles is
registered with the run's masker: a state action's result on a secret keyspace
(:mod:`statebox.core.secrecy`), a Direktiv getter's, ``files:``' or ``/var``'s read of a
secret variable, a value a Direktiv instance writes to one, a Direktiv action's
``secrets:`` (from the environment). What is registered: the value's string leaves of at
least :data:`MIN_LENGTH` characters (and each line of one that has several) and its
compact JSON text (a value that is no string, ``true``, ``false`` or ``null``). A
shorter secret is not masked: masking three letters would hide every word holding them,
and tell which ones.

Everything a run keeps or prints passes through the masker: the run record's free
text (params, error, the instance's input and output, each step's output and error:
:meth:`Masker.mask_record`, called by :meth:`.records.RunRecords.save`), the step logs
it keeps (:meth:`.records.RunRecords.save_log`), a ``run`` step's log files once the
step ended (:meth:`Masker.mask_file`: what ``${id.stdout}`` names; its ``output:`` was
read before, as the step printed it) and the messages on the display
(:class:`MaskedDisplay`). Each registered text is replaced by ``***`` — also in its
JSON-escaped forms (once and twice: a value inside JSON text, inside a JSON string of
JSON text), the longest first, so a secret object's whole JSON goes before its leaves.
The JSON text of a value that is no string is replaced by ``"***"`` (a JSON string),
so JSON around it stays JSON. In structured data (a Direktiv instance's input and
output) a value equal to a registered one becomes ``"***"``.

A run and its sub-DAGs' runs share one masker. A run that reads no secret pays nothing:
an empty masker gives back what it is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..core.envelope import MASK, value_fields
from ..core.errors import StateboxError
from ..core.results import StoredValue
from ..wire.codec import value_from_wire

if TYPE_CHECKING:
    from .display import Display

__all__ = ["MASK", "MIN_LENGTH", "MaskedDisplay", "Masker", "masked_display"]

#: The shortest text registered: shorter secrets are not masked (as GitHub Actions).
MIN_LENGTH: Final = 4
#: The longest text registered: a larger value (an archive kept in a secret variable)
#: is masked by its strings and lines, not as a whole.
_MAX_LENGTH: Final = 1 << 16
#: How many JSON-escapings of a secret are masked too (JSON in a JSON string in JSON).
_ESCAPINGS: Final = 2
_JSON_MASK: Final = json.dumps(MASK)
_BINARY: Final = "application/octet-stream"
#: How much of a log file :meth:`Masker.mask_file` reads at once (bytes).
_CHUNK: Final = 1 << 20


def _compact(value: Any, *, ascii_only: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))


def _escaped(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _string_leaves(item)


class Masker:
    """The secret texts one run (and its sub-DAGs' runs) registered; see the module's
    text. Thread-safe: steps register from their worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Each registered form → what replaces it.
        self._forms: dict[str, str] = {}
        #: Compact JSON texts of registered values that are no strings (structured masking).
        self._json: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return bool(self._forms)

    # -- registering -------------------------------------------------------------------

    def add_text(self, text: str) -> None:
        """A secret string (at least :data:`MIN_LENGTH` characters), and each line of
        one that has several (a key file printed line by line is masked too)."""
        self._add(text, MASK)
        if "\n" in text:
            for line in text.splitlines():
                self._add(line.strip(), MASK)

    def add_value(self, value: Any) -> None:
        """A secret JSON value: its string leaves and its compact JSON text."""
        if isinstance(value, str):
            self.add_text(value)
            return
        if value is None or isinstance(value, bool):
            return
        try:
            texts = {_compact(value), _compact(value, ascii_only=True)}
        except (TypeError, ValueError):
            texts = set()
        for text in texts:
            if len(text) >= MIN_LENGTH:
                with self._lock:
                    self._json.add(text)
                self._add(text, _JSON_MASK)
        for leaf in _string_leaves(value):
            self.add_text(leaf)

    def add_bytes(self, data: bytes) -> None:
        """A secret binary value: its text (UTF-8), the JSON value that text is, and its
        base64 (how Direktiv's getter gives bytes that are no JSON)."""
        if len(data) * 4 // 3 >= MIN_LENGTH:  # the envelope's own base64 of it
            self.add_text(value_fields(StoredValue(data, _BINARY))["value"])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        self.add_text(text)
        with contextlib.suppress(ValueError, RecursionError):
            self.add_value(json.loads(text))

    def add_stored(self, stored: StoredValue) -> None:
        """A value read from (or written to) a secret keyspace."""
        if stored.is_json:
            self.add_value(stored.parse())
        else:
            self.add_bytes(stored.data)

    def add_envelopes(self, masked: str, revealed: str) -> None:
        """The values a result's envelope masked: ``masked`` is its JSON line with secret
        values masked, ``revealed`` the same result's with them shown."""
        with contextlib.suppress(ValueError, RecursionError):
            self._add_masked(json.loads(masked), json.loads(revealed))

    def _add_masked(self, masked: Any, revealed: Any) -> None:
        if isinstance(masked, dict) and isinstance(revealed, dict):
            shown = masked.get("masked") is True  # its "***" fields are values: a get's
            for name, item in masked.items():  # value, a diff's previous and current
                if name not in revealed:
                    continue
                if shown and item == MASK:
                    value = revealed[name]
                    if revealed.get("encoding") == "base64":  # decoded as the wire decodes
                        with contextlib.suppress(StateboxError):
                            self.add_bytes(value_from_wire(revealed, name).data)
                    self.add_value(value)
                else:
                    self._add_masked(item, revealed[name])
        elif isinstance(masked, list) and isinstance(revealed, list):
            for one, other in zip(masked, revealed, strict=False):
                self._add_masked(one, other)

    def _add(self, text: str, replacement: str) -> None:
        if not MIN_LENGTH <= len(text) <= _MAX_LENGTH:
            return
        forms = {text: replacement}
        for ascii_only in (False, True):
            escaped, mask = text, replacement
            for _ in range(_ESCAPINGS):
                escaped, mask = _escaped(escaped, ascii_only), _escaped(mask, ascii_only)
                forms.setdefault(escaped, mask)
        with self._lock:
            current = self._forms
            # A text registered as a string is masked as one (no quotes added).
            new = {
                form: mask
                for form, mask in forms.items()
                if current.get(form) != mask and (form not in current or mask == MASK)
            }
            if new:  # copied, never changed in place: a mask() under way keeps its own
                self._forms = {**current, **new}
                self._pattern = None

    # -- masking -----------------------------------------------------------------------

    def mask(self, text: str) -> str:
        """``text`` with every registered secret replaced."""
        if not self._forms or not text:
            return text
        with self._lock:
            forms, pattern = self._forms, self._pattern
            if pattern is None:
                ordered = sorted(forms, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return pattern.sub(lambda m: forms[m.group(0)], text)

    def mask_file(self, path: str) -> None:
        """Mask the file at ``path`` in place (a step's log file), its bytes read a
        chunk at a time; a secret across two chunks is masked too."""
        if not self._forms:
            return
        with self._lock:
            forms = {k.encode(): v.encode() for k, v in self._forms.items()}
        ordered = sorted(forms, key=len, reverse=True)
        pattern = re.compile(b"|".join(map(re.escape, ordered)))
        keep = len(ordered[0]) - 1  # a match starting before the last `keep` bytes fits

        def masked(buf: bytes, end: int) -> tuple[bytes, int]:
            """``buf`` masked up to ``end`` (or past it, to the end of a match there)."""
            out: list[bytes] = []
            pos = 0
            for match in pattern.finditer(buf):
                if match.start() >= end:
                    break
                out += (buf[pos : match.start()], forms[match.group(0)])
                pos = match.end()
            stop = max(end, pos)
            out.append(buf[pos:stop])
            return b"".join(out), stop

        partial = path + ".masking"
        with open(path, "rb") as source, open(partial, "wb") as target:
            buf = b""
            while chunk := source.read(_CHUNK):
                buf += chunk
                if len(buf) > keep:
                    done, stop = masked(buf, len(buf) - keep)
                    target.write(done)
                    buf = buf[stop:]
            target.write(masked(buf, len(buf))[0])
        os.replace(partial, path)

    def mask_data(self, value: Any) -> Any:
        """JSON data with every registered secret replaced: a value equal to a
        registered one becomes ``"***"``, secrets inside strings are masked."""
        if not self._forms:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if value is None or isinstance(value, bool):
            return value
        if self._json:
            try:
                if _compact(value) in self._json:
                    return MASK
            except (TypeError, ValueError):
                pass
        if isinstance(value, Mapping):
            return {self.mask(str(k)): self._walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._walk(item) for item in value]
        return value

    def mask_record(self, data: dict[str, Any]) -> dict[str, Any]:
        """A run record's JSON (:meth:`.records.RunRecord.to_json`) with its free text
        masked: params, error, input, output, each step's output and error. Names,
        ids, statuses and times are left as they are (a record stays readable)."""
        if not self._forms:
            return data
        out = dict(data)
        for name in ("params", "error", "input", "output"):
            if out.get(name) is not None:
                out[name] = self._walk(out[name])
        steps = out.get("steps")
        if isinstance(steps, list):
            out["steps"] = [self._mask_step(step) for step in steps]
        return out

    def _mask_step(self, step: Any) -> Any:
        if not isinstance(step, dict):
            return step
        step = dict(step)
        for name in ("output", "error"):
            if isinstance(step.get(name), str):
                step[name] = self.mask(step[name])
        return step


class MaskedDisplay:
    """A run's display (:class:`.display.Display`) whose step messages pass through
    the run's masker first."""

    def __init__(self, display: Display, masker: Masker) -> None:
        self._display, self._masker = display, masker

    def run_started(self, dag: str, run_id: str) -> None:
        self._display.run_started(dag, run_id)

    def step_changed(
        self,
        step: str,
        status: str,
        *,
        attempt: int = 1,
        duration: float | None = None,
        message: str | None = None,
    ) -> None:
        if message is not None:
            message = self._masker.mask(message)
        self._display.step_changed(
            step, status, attempt=attempt, duration=duration, message=message
        )

    def run_finished(self, dag: str, run_id: str, status: str, duration: float) -> None:
        self._display.run_finished(dag, run_id, status, duration)

    def close(self) -> None:
        self._display.close()


def masked_display(display: Display | None, masker: Masker) -> Display | None:
    """``display`` with its messages masked (None stays None; a masked one as it is)."""
    if display is None or isinstance(display, MaskedDisplay):
        return display
    return MaskedDisplay(display, masker)
