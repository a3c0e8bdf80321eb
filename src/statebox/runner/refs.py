"""``${…}`` references in DAG files: finding them and rendering them, as Dagu does.

The forms (Dagu's, checked against its ``internal/cmn/value`` package and specs 003, 006
and 007):

* ``${params.x}`` — the named parameter ``x``; ``${env.X}`` — ``X`` of the step's
  environment.
* ``${NAME}`` and ``$NAME`` — an output variable (``output: NAME`` of an upstream step),
  else a named parameter, else (outside ``run``) an environment variable.
* ``${NAME.path}`` — ``NAME`` (an output, a parameter, an environment variable) holds
  JSON text; ``path`` is a jq path into it (``.a.b``, ``.a[0]``, ``.a["x y"]``,
  ``.[0]``), its first result. A plain path is walked here; anything else jq runs.
  As in jq, a missing field is ``null``; a field of a string (a type error) or text that
  is not JSON leaves the reference as written.
* ``${id.output}``, ``${id.stdout}`` (the path of the step's stdout log, as in Dagu),
  ``${id.stderr}``, ``${id.exit_code}`` (also ``exitCode``), ``${id.output.path}`` (a jq
  path into the step's output); ``${id.stdout:0:5}`` takes a slice (start, length).
* ``$1``, ``${1}`` — positional parameters (``$10`` is the tenth, as in Dagu).

Rules:

* A reference that resolves to nothing is left exactly as written (Dagu "preserves" it).
* An odd run of backslashes before ``$`` escapes it. Outside ``run`` (``shell=False``)
  the last backslash is removed and the ``$`` is literal (``\\${X}`` → ``${X}``,
  ``\\$X`` → ``$X``). In ``run`` (``shell=True``) the shell owns ``\\$``: an escaped
  Dagu-owned form (``\\${params.x}``, ``\\${env.X}``, ``\\${NAME.path}``) loses its
  backslash and reaches the shell unresolved; an escaped ``\\${NAME}``, ``\\$NAME`` or
  ``\\$1`` is left with its backslash, so that the shell prints it literally.
* In ``run`` (``shell=True``) ``$NAME`` / ``${NAME}`` are substituted only from outputs
  and named parameters; every other one — ``$HOME``, an ``env:`` variable — is left to
  the shell, which has it in its environment (Dagu: "Dagu leaves ``$HOME``, ``${HOME}``
  and ``$(date)`` in the resolved run text").
* ``$NAME``, ``${NAME}`` and ``$1`` inside a single-quoted span (``awk '{print $1}'``)
  are left as written, in every field (Dagu spec 006); ``${params.x}``, ``${env.X}`` and
  dotted references are not protected by quotes.
* A reference written between double quotes, ``"${NAME}"`` or ``"${NAME.path}"``, has
  its value inserted JSON-escaped (``"a\\"b"``), so that JSON text around it stays
  valid (Dagu re-quotes these; it uses Go's quoting, the same for every ordinary value).
* One pass: an inserted value is never scanned again.
* ``${X:-default}``, ``${#X}`` and other shell expressions are not references: left as
  written (in ``run`` the shell evaluates them; elsewhere they stay text — Dagu
  evaluates them through a shell parser when ``X`` is set, which this runner does not).

Rendering a value into text (:func:`render_json`): a string raw, an object or array as
compact JSON, a number by its JSON literal exactly as written (``1000000`` stays
``1000000``, ``0.1`` stays ``0.1``: outputs are parsed with
:mod:`statebox.core.exactjson`, never through a float), ``true``/``false``/``null``
(Dagu prints numbers through float64, ``1e+06``, and null as ``<nil>``: not copied).

This module renders; finding the references is :mod:`._ref_scan` (the scanner the loader
checks them with too), and a ``${NAME.path}`` is taken into its JSON by :mod:`._paths`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NamedTuple

from ._paths import MISSING, jq_first, parse_json, plain_path, walk
from ._ref_scan import (
    ENV,
    OWNED,
    PARAMS,
    PATH,
    PLAIN,
    POSITIONAL,
    SPAN,
    Reference,
    SingleQuotes,
    Token,
    find_references,
    tokens,
    unescape,
)

__all__ = [
    "RefContext",
    "Reference",
    "StepView",
    "find_references",
    "render_json",
    "render_text",
    "render_with",
]


@dataclass(frozen=True)
class StepView:
    """What references can read of a finished step: its captured output (None: the
    step has no ``output:``), the paths of its stdout and stderr logs, its exit code."""

    output: str | None
    stdout: str | None
    stderr: str | None
    exit_code: int | None


@dataclass(frozen=True)
class RefContext:
    """Everything a reference may name when a step starts."""

    #: Named parameters.
    params: Mapping[str, str]
    #: Positional parameters: ``$1`` is ``positional[0]``.
    positional: Sequence[str]
    #: The step's environment (``${env.X}``; ``$X`` outside ``run``).
    env: Mapping[str, str]
    #: Output variables of the upstream steps (``output: NAME``).
    outputs: Mapping[str, str]
    #: Finished steps, keyed by id AND by name.
    steps: Mapping[str, StepView]


# --- values ----------------------------------------------------------------------------


class _Found(NamedTuple):
    """A resolved value: text (``json_text``: an output, which typed references read as
    JSON) or a JSON value already (``json_text`` False: rendered by render_json)."""

    value: Any
    json_text: bool


#: Not parsed yet (a parsed document may be None: JSON null).
_UNSET: Final = object()


def render_json(value: Any) -> str:
    """``value`` as text: a string raw; an object or array as compact JSON (its strings
    unescaped Unicode); a number by its literal (``int``, and the exact numbers of
    :mod:`statebox.core.exactjson`: ``JsonNumber``, ``NumberLiteral``, ``Decimal``);
    ``true``, ``false``, ``null``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):  # exact numbers inside, or non-string keys
            out: list[str] = []
            _encode(value, out)
            return "".join(out)
    return _scalar(value)


def _scalar(value: Any) -> str:
    literal = getattr(value, "literal", None)  # exactjson.NumberLiteral, JsonNumber
    if isinstance(literal, str):
        return literal
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if hasattr(value, "isoformat"):  # a YAML date or timestamp
        return str(value.isoformat())
    return str(value)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            if n:
                out.append(",")
            text = key if isinstance(key, str) else render_json(key)
            out.append(json.dumps(text, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif value is None or isinstance(value, (bool, int)):
        out.append(render_json(value))
    elif hasattr(value, "literal") or isinstance(value, (Decimal, float)):
        out.append(_scalar(value))
    else:  # a date, anything else YAML gave: a string
        out.append(json.dumps(_scalar(value), ensure_ascii=False))


# --- rendering -------------------------------------------------------------------------


class _Renderer:
    """Renders texts against one context; keeps the outputs it parsed as JSON."""

    def __init__(self, ctx: RefContext, shell: bool) -> None:
        self.ctx = ctx
        self.shell = shell
        self.parsed: dict[str, Any] = {}

    # -- text ---------------------------------------------------------------------------

    def text(self, text: str) -> str:
        if "$" not in text:
            return text
        out: list[str] = []
        last = 0
        quotes: SingleQuotes | None = None
        shell = self.shell
        for token in tokens(text, shell=shell):
            start, end = token.start, token.end
            if token.escaped:
                if not shell:  # drop the escaping backslash: the $ is a literal
                    out.append(text[last : start - 1])
                    out.append("$")
                    last = start + 1
                elif token.kind in OWNED:  # Dagu's escape of its own form
                    out.append(text[last : start - 1])
                    out.append(text[start:end])
                    last = end
                continue  # in run, any other \$ is the shell's
            if token.kind == SPAN:
                if not shell and "\\$" in text[start:end]:
                    out.append(text[last:start])
                    out.append(unescape(text[start:end]))
                    last = end
                continue
            is_quoted = (
                token.braced
                and token.kind not in (PARAMS, ENV)
                and text[start - 1 : start] == '"'
                and text[end : end + 1] == '"'
            )
            if token.kind in (PLAIN, POSITIONAL) and not is_quoted:
                if quotes is None:
                    quotes = SingleQuotes(text)
                if quotes.quoted(start, end):
                    continue
            found = self.resolve(token)
            if found is None:
                continue
            value = render_json(found.value)
            if is_quoted:
                value = json.dumps(value, ensure_ascii=False)[1:-1]
            out.append(text[last:start])
            out.append(value)
            last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    # -- resolving ----------------------------------------------------------------------

    def resolve(self, token: Token) -> _Found | None:
        ctx = self.ctx
        kind = token.kind
        if kind in (PARAMS, ENV):
            source = ctx.params if kind == PARAMS else ctx.env
            value = source.get((token.path or ".")[1:])
            return None if value is None else _Found(value, False)
        if kind == POSITIONAL:
            index = int(token.name)
            if 1 <= index <= len(ctx.positional):
                return _Found(ctx.positional[index - 1], False)
            return None
        if kind == PLAIN:
            name = token.name
            value = ctx.outputs.get(name)
            if value is not None:
                return _Found(value, True)
            value = ctx.params.get(name)
            if value is None and not self.shell:
                value = ctx.env.get(name)
            return None if value is None else _Found(value, False)
        if kind == PATH:
            return self.path(token.name, token.path or "")
        return None

    def path(self, name: str, path: str) -> _Found | None:
        """``${name.path}``: a step's property, else a jq path into a variable's JSON."""
        ctx = self.ctx
        step = ctx.steps.get(name)
        if step is not None:
            found = self.step_property(step, path)
            if found is not None:
                return found
        source = ctx.outputs.get(name)
        if source is None:
            source = ctx.params.get(name)
        if source is None:
            source = ctx.env.get(name)
        if source is None:
            return None
        return self.select(source, path)

    def step_property(self, step: StepView, path: str) -> _Found | None:
        if path.startswith((".output.", ".output[")):
            if step.output is None:
                return None
            return self.select(step.output, path[len(".output") :])
        prop, colon, spec = path.partition(":")
        value: Any
        if prop in (".stdout", ".stderr"):
            value = step.stdout if prop == ".stdout" else step.stderr
            if not value:
                return None
            found = _Found(value, False)
        elif prop in (".exit_code", ".exitCode"):
            if step.exit_code is None:
                return None
            found = _Found(step.exit_code, False)
        elif prop == ".output":
            if step.output is None:
                return None
            found = _Found(step.output, True)
        else:
            return None
        if not colon:
            return found
        bounds = _slice(spec)
        if bounds is None:
            return None
        text = render_json(found.value)
        first, length = bounds
        return _Found(text[first : None if length is None else first + length], False)

    def select(self, text: str, path: str) -> _Found | None:
        """The first result of the jq path ``path`` in the JSON ``text``."""
        document = self.parsed.get(text, _UNSET)
        if document is _UNSET:
            document = self.parsed[text] = parse_json(text)
        if document is MISSING:
            return None
        steps = plain_path(path.strip())
        value = walk(document, steps) if steps is not None else jq_first(path, text)
        return None if value is MISSING else _Found(value, False)

    # -- typed --------------------------------------------------------------------------

    def typed(self, text: str) -> Any:
        """A string that is exactly one reference: the value with its JSON type (an
        output's text read as JSON when it is JSON; a parameter or an environment
        variable stays a string); any other string rendered as text."""
        if text.startswith("${") and text.endswith("}"):
            found_tokens = list(tokens(text, shell=False))
            if len(found_tokens) == 1:
                token = found_tokens[0]
                if token.end == len(text) and not token.escaped and token.kind != SPAN:
                    found = self.resolve(token)
                    if found is None:
                        return text
                    if found.json_text:
                        value = self.parsed.get(found.value, _UNSET)
                        if value is _UNSET:
                            value = self.parsed[found.value] = parse_json(found.value)
                        return found.value if value is MISSING else value
                    return found.value
        return self.text(text)

    def tree(self, value: Any, typed: bool) -> Any:
        if isinstance(value, str):
            return self.typed(value) if typed else self.text(value)
        if isinstance(value, dict):
            return {key: self.tree(item, typed) for key, item in value.items()}
        if isinstance(value, list):
            return [self.tree(item, typed) for item in value]
        if isinstance(value, tuple):
            return tuple(self.tree(item, typed) for item in value)
        return value


def _slice(spec: str) -> tuple[int, int | None] | None:
    """Dagu's ``start[:length]`` slice of a step property; None when malformed."""
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0].isdigit():
        return None
    if len(parts) == 2 and parts[1]:
        if not parts[1].isdigit():
            return None
        return int(parts[0]), int(parts[1])
    return int(parts[0]), None


def render_text(text: str, ctx: RefContext, *, shell: bool) -> str:
    """``text`` with its references substituted.

    ``shell=True`` for text a shell runs (``run``, ``command``, ``script``, a command
    precondition): ``$NAME`` / ``${NAME}`` are substituted only from outputs and named
    parameters, anything else is left for the shell, and ``\\$`` is the shell's own
    escape (only Dagu's own forms lose it). ``shell=False`` for text used as it is
    (``with`` strings, ``env`` values, compared conditions): ``$NAME`` / ``${NAME}`` may
    also be environment variables, and ``\\$`` is a literal ``$``.
    """
    if "$" not in text:
        return text
    return _Renderer(ctx, shell).text(text)


def render_with(value: Any, ctx: RefContext, *, typed: bool) -> Any:
    """A ``with`` tree (dicts, lists, scalars as YAML gave them) with every string leaf
    rendered (``shell=False``); other leaves and every key unchanged.

    With ``typed`` (the DAG's ``typed_references: true``) a string leaf that is exactly
    one reference (``"${X}"``, ``"${X.path}"``, ``"${id.exit_code}"``) becomes the
    referenced value with its JSON type: a JSON path's result (a number as an ``int`` or
    an exact ``JsonNumber``, which the store writes back by its literal), an output's
    text parsed as JSON when it is JSON, an exit code as an ``int``; a parameter or an
    environment variable stays a string (it has no JSON type). Without it, as in Dagu,
    every string leaf stays a string.
    """
    return _Renderer(ctx, False).tree(value, typed)
