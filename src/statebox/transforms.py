"""The transforms of ``update`` (SPEC §5): a jq expression, an RFC 7386 merge patch, or
an RFC 6902 JSON patch, each turning one normalized JSON text into the next.

Number literals (SPEC §2 keeps ``1.2300`` and ``9007199254740993`` as written) survive
where that is possible:

- a merge patch and a JSON patch work on the exact literals of their document and of
  the patch (:func:`~statebox.core.exactjson.parse_literals`), so nothing is lost: a
  value a patch adds keeps the literal it was written with, and a JSON patch's ``test``
  compares numbers exactly (``1.0`` is ``1``; ``0.1`` is not the double nearest it);
- jq computes with doubles, so its result is matched against the input: a number that
  is numerically equal (as a double) to the input's number at the same path keeps the
  input's literal. Numbers jq computed (``.n + 1``) or brought in are written as jq
  prints them. (A literal beyond 17 significant digits, which jq may read one unit off,
  also counts as equal within one unit in the last place.)

Nothing here does I/O except :class:`JqTransform`, which runs jq out of process with a
time bound (:mod:`statebox._jq`).

The patches run in process, step by step, within a budget (:class:`_Budget`): at most
:data:`MAX_PATCH_OPS` operations (counted before anything runs), jq's deadline, and a
working document that may never pass the value size limit or :data:`MAX_DEPTH`. A JSON
patch can amplify (each ``copy`` of a path into itself doubles the document), so its
document is measured as it grows and refused the moment it is too large; a merge patch
cannot (its result is at most target plus patch), so the final check suffices.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, Final, NamedTuple, NoReturn

from .core.errors import InvalidValueError, StateboxError, ValueTooLargeError, quoted, requoted
from .core.exactjson import MAX_DEPTH, NumberLiteral, nesting_depth, parse_literals
from .core.values import DEFAULT_JSON_LIMIT, _encode, _encode_exact

# jsonpatch and the jq runner (subprocess, selectors) are imported when first used: the
# CLI imports the engine at every start and most commands never transform anything.

#: Seconds a jq expression (or a patch) may run before it is abandoned.
DEFAULT_JQ_TIMEOUT: Final = 5.0
#: Operations in one JSON patch, or members in one merge patch (Kubernetes allows a
#: JSON patch 10,000 operations too).
MAX_PATCH_OPS: Final = 10_000

__all__ = [
    "DEFAULT_JQ_TIMEOUT",
    "MAX_PATCH_OPS",
    "JqTransform",
    "JsonPatch",
    "MergePatch",
    "Transform",
    "apply_merge_patch",
    "make_transform",
    "restore_literals",
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (NumberLiteral, float)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _as_double(value: Any) -> float:
    if isinstance(value, NumberLiteral):
        return float(value.literal)
    # str() first: float() of a huge int raises, float() of its text is inf.
    return float(str(value)) if isinstance(value, int) else float(value)


def _significant_digits(value: Any) -> int:
    literal = value.literal if isinstance(value, NumberLiteral) else str(value)
    mantissa = literal.lstrip("-").split("e")[0].split("E")[0].replace(".", "")
    return len(mantissa.strip("0"))


def _same_number(new: Any, old: Any) -> bool:
    """Whether jq (or a JSON patch) left ``old`` as it was, as far as doubles can tell."""
    a, b = _as_double(new), _as_double(old)
    if a == b:
        return True
    if math.isinf(b) and abs(a) == sys.float_info.max and (a > 0) == (b > 0):
        return True  # jq reads a literal beyond the double range as the largest double
    # jq may round a literal longer than a double's 17 digits one unit differently
    # from Python; shorter ones it reads exactly, so a one-unit change there is real.
    return _significant_digits(old) > 17 and abs(a - b) <= math.ulp(b)


def restore_literals(new: Any, old: Any) -> Any:
    """``new`` where every number equal (as a double) to ``old``'s at the same path
    takes ``old``'s exact literal."""
    if isinstance(new, dict):
        if not isinstance(old, dict):
            return new
        return {k: restore_literals(v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, list):
        if not isinstance(old, list):
            return new
        return [restore_literals(v, old[i]) if i < len(old) else v for i, v in enumerate(new)]
    if _is_number(new) and _is_number(old) and _same_number(new, old):
        return old
    return new


def apply_merge_patch(target: Any, patch: Any, budget: _Budget | None = None) -> Any:
    """RFC 7386: ``patch`` merged into ``target`` (``null`` members remove)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if budget is not None:
            budget.check_time()
        if value is None:
            result.pop(name, None)
        else:
            result[name] = apply_merge_patch(result.get(name), value, budget)
    return result


def _members(patch: Any) -> int:
    """The members of a merge patch, at every level: its "operations"."""
    if not isinstance(patch, dict):
        return 0
    return len(patch) + sum(_members(value) for value in patch.values())


# Sizes are measured as compact JSON, unsorted (sorting changes no size).
_SIZE_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_text(value: Any) -> str:
    """``value`` as compact JSON, its number literals as written: the C encoder, unless
    a :class:`NumberLiteral` (a float literal, kept exact) is in it."""
    try:
        text: str = _SIZE_ENCODER.encode(value)
    except TypeError:
        parts: list[str] = []
        try:
            _encode_exact(value, parts)
        except InvalidValueError as exc:  # no JSON at all (jsonpointer's end of a list)
            raise TypeError(exc.message) from None
        text = "".join(parts)
    return text


def _json_size(value: Any) -> tuple[int, str]:
    text = _json_text(value)
    return len(text.encode("utf-8", "surrogatepass")), text


class _Budget:
    """What one patch may spend: operations, seconds, and bytes of working document."""

    def __init__(self, what: str, limit: int, timeout: float) -> None:
        self.what = what
        self.limit = limit
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def check_count(self, count: int, unit: str) -> None:
        if count > MAX_PATCH_OPS:
            raise InvalidValueError(
                f"{self.what} has too many {unit}: {count} exceeds the limit of {MAX_PATCH_OPS}"
            )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise InvalidValueError(
                f"{self.what} ran longer than {self.timeout:g}s and was abandoned"
            )


class JqTransform(NamedTuple):
    expr: str
    timeout: float = DEFAULT_JQ_TIMEOUT
    #: The value size limit: a larger result is refused by the jq worker, never sent.
    limit: int = DEFAULT_JSON_LIMIT

    def apply(self, text: str) -> str:
        from ._jq import run_jq

        output = run_jq(self.expr, text, self.timeout, self.limit)
        try:
            value = parse_literals(output)
        except InvalidValueError as exc:  # NaN and friends jq prints as bare words
            raise InvalidValueError(
                f"jq expression {quoted(self.expr)} yielded a value that is not JSON: "
                f"{output[:200]}"
            ) from exc
        return _encode(restore_literals(value, parse_literals(text)), True)


class MergePatch(NamedTuple):
    #: The patch document, parsed with exact number literals.
    patch: Any
    timeout: float = DEFAULT_JQ_TIMEOUT

    @classmethod
    def from_text(cls, text: str, *, timeout: float = DEFAULT_JQ_TIMEOUT) -> MergePatch:
        patch = parse_literals(text)
        _Budget("merge patch", 0, timeout).check_count(_members(patch), "members")
        return cls(patch, timeout)

    def apply(self, text: str) -> str:
        budget = _Budget("merge patch", 0, self.timeout)
        return _encode(apply_merge_patch(parse_literals(text), self.patch, budget), True)


class JsonPatch(NamedTuple):
    operations: tuple[dict[str, Any], ...]
    #: The value size limit: the working document may never pass it.
    limit: int = DEFAULT_JSON_LIMIT
    timeout: float = DEFAULT_JQ_TIMEOUT

    @classmethod
    def from_text(
        cls, text: str, *, limit: int = DEFAULT_JSON_LIMIT, timeout: float = DEFAULT_JQ_TIMEOUT
    ) -> JsonPatch:
        ops = parse_literals(text)  # exact: a value it adds keeps its literal
        if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
            raise InvalidValueError(
                "invalid JSON patch: must be a list of operation objects "
                '(e.g. [{"op": "replace", "path": "/a", "value": 1}])'
            )
        _Budget("JSON patch", limit, timeout).check_count(len(ops), "operations")
        return cls(tuple(ops), limit, timeout)

    def apply(self, text: str) -> str:
        import jsonpatch
        import jsonpointer

        document = parse_literals(text)  # exact, as the patch's values are
        budget = _Budget("JSON patch", self.limit, self.timeout)
        # An upper bound of the document's size, kept without measuring the whole
        # document after every operation: measured exactly only when it passes the limit.
        estimate = len(text.encode("utf-8"))
        # And an upper bound of its depth, which spares measuring that of every copy.
        deepest = text.count("[") + text.count("{")
        if deepest > MAX_DEPTH:
            deepest = nesting_depth(text)
        for index, operation in enumerate(self.operations):
            budget.check_time()
            op_name = operation.get("op")
            try:
                least, most, encoded, deepest = _growth(document, operation, index, deepest)
                if estimate + most > self.limit:
                    # Refused before it runs when even its least growth is too much:
                    # the copy that would double a large document is never made. (A
                    # copy's source is in the document: no need to measure the rest.)
                    copied = len(encoded) if op_name == "copy" and encoded else 0
                    if copied + least > self.limit:
                        self._refuse(copied + least, index, operation)
                    estimate = self._measured(document, least, index, operation)
                if op_name == "copy" and encoded is not None:
                    document = _copy(document, operation, encoded)
                elif op_name == "test":
                    _test(document, operation)
                else:
                    document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
            except (
                jsonpatch.JsonPatchException,
                jsonpointer.JsonPointerException,
                KeyError,
                TypeError,
                ValueError,
            ) as exc:
                raise InvalidValueError(
                    f"JSON patch operation {index} {_shown(operation)} failed: "
                    f"{_patch_problem(exc, operation)}"
                ) from exc
            estimate += most
            if estimate > self.limit:
                estimate = self._measured(document, 0, index, operation)
        return _encode(document, True)

    def _measured(self, document: Any, growth: int, index: int, operation: dict[str, Any]) -> int:
        """The document's exact size; refused when it is, or with ``growth`` more bytes
        would be, past the limit."""
        size = _json_size(document)[0]
        if size + growth > self.limit:
            self._refuse(size + growth, index, operation)
        return size

    def _refuse(self, size: int, index: int, operation: dict[str, Any]) -> NoReturn:
        raise ValueTooLargeError(
            f"JSON patch operation {index} {_shown(operation)} makes the value too large: "
            f"{size} bytes or more exceeds {self.limit}"
        )


def _patch_problem(exc: Exception, operation: dict[str, Any]) -> str:
    """Why an operation failed, in statebox's words: jsonpatch and jsonpointer show Python
    reprs (``<class 'int'>``, ``'x'``, the whole document as ``{'a': True}``)."""
    import jsonpatch
    import jsonpointer

    if isinstance(exc, StateboxError):  # NestingTooDeepError: ours already
        return exc.message
    if isinstance(exc, jsonpatch.JsonPatchTestFailed):
        return f"the value at {quoted(operation.get('path'))} is not the tested value"
    missing = isinstance(exc, (jsonpatch.JsonPatchConflict, KeyError, IndexError)) or (
        isinstance(exc, jsonpointer.JsonPointerException) and "not found in" in str(exc)
    )
    if missing:
        places = [operation[f] for f in ("from", "path") if isinstance(operation.get(f), str)]
        return "no such location in the value: " + " or ".join(quoted(p) for p in places)
    if "does not support indexing" in str(exc):  # its message shows a Python class
        return (
            f"the path {quoted(operation.get('path'))} goes into a value that is neither "
            "an object nor an array"
        )
    return requoted(str(exc))


def _shown(operation: dict[str, Any]) -> str:
    try:
        return json.dumps(operation, ensure_ascii=False)[:200]
    except TypeError:  # a number literal in its value: shown as written
        return _json_text(operation)[:200]


def _test(document: Any, operation: dict[str, Any]) -> None:
    """A ``test`` operation, as jsonpatch runs it but with numbers compared exactly:
    the literals on both sides as :class:`~decimal.Decimal` (a :class:`NumberLiteral`
    compares by identity, and through a float ``0.1`` would equal
    ``0.1000000000000000055511151231257827``)."""
    import jsonpatch
    import jsonpointer

    path = operation.get("path")
    if isinstance(path, str) and "value" in operation:
        found = jsonpointer.resolve_pointer(document, path, _ABSENT)
        if found is not _ABSENT:
            probe = {"op": "test", "path": "", "value": _exact_numbers(operation["value"])}
            jsonpatch.JsonPatch([probe]).apply(_exact_numbers(found), in_place=True)
            return
    jsonpatch.JsonPatch([operation]).apply(document, in_place=True)  # its own refusal


def _exact_numbers(value: Any) -> Any:
    """``value`` with each :class:`NumberLiteral` as the Decimal it stands for."""
    if isinstance(value, NumberLiteral):
        from decimal import Decimal  # only for a test of a value that holds one

        return Decimal(value.literal)
    if isinstance(value, dict):
        return {name: _exact_numbers(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_exact_numbers(item) for item in value]
    return value


def _copy(document: Any, operation: dict[str, Any], encoded: str) -> Any:
    """A ``copy`` whose value is copied by the JSON codec from its measured text,
    several times faster than jsonpatch's ``copy.deepcopy`` (which a bomb of doubling
    copies spends most of its time in); jsonpatch still places it, with its checks."""
    import jsonpatch
    import jsonpointer

    path = operation["path"]
    placeholder = {"op": "add", "path": path, "value": None}
    document = jsonpatch.JsonPatch([placeholder]).apply(document, in_place=True)
    fresh = parse_literals(encoded)
    parent, part = jsonpointer.JsonPointer(path).to_last(document)
    if part is None:
        return fresh
    parent[-1 if part == "-" else part] = fresh
    return document


def _growth(
    document: Any, operation: dict[str, Any], index: int, deepest: int
) -> tuple[int, int, str | None, int]:
    """The least and the most bytes ``operation`` can add to ``document`` (negative when
    it removes), the text of the value it puts in place, and how deep the document may
    then nest (``deepest``: how deep it may nest now); refuses it first if it would nest
    the document past MAX_DEPTH. Costs the size of the values it touches, never of the
    whole document."""
    import jsonpointer

    kind, path = operation.get("op"), operation.get("path")
    if not isinstance(path, str) or kind == "test":
        return 0, 0, None, deepest  # jsonpatch refuses a bad path; a test changes nothing
    depth = len(jsonpointer.JsonPointer(path).parts)
    # A member's key, quotes, colon and comma besides its value: the key is at most the
    # path's last token, each character escaped in at most 6 bytes.
    key_cost = 6 * len(path) + 4
    old = jsonpointer.resolve_pointer(document, path, _ABSENT)
    removed = 0  # what is at ``path`` now (an array element there may only shift)
    if old is not _ABSENT and not isinstance(old, jsonpointer.EndOfList):
        removed = _json_size(old)[0]
    placed: Any = _ABSENT  # the value put at ``path``
    nests = MAX_DEPTH + 1  # how deep ``placed`` may nest, if nothing tells better
    if kind in ("add", "replace") and "value" in operation:
        placed = operation["value"]
    elif kind in ("copy", "move") and isinstance(operation.get("from"), str):
        placed = jsonpointer.resolve_pointer(document, operation["from"], _ABSENT)
        nests = deepest - len(jsonpointer.JsonPointer(operation["from"]).parts)
    if placed is _ABSENT:  # a remove (or an operation jsonpatch will refuse)
        return -removed - key_cost, 0, None, deepest
    size, encoded = _json_size(placed)
    nests = min(nests, encoded.count("[") + encoded.count("{"))
    if depth + nests > MAX_DEPTH:
        nests = nesting_depth(encoded)
        nested = depth + nests
        if nested > MAX_DEPTH:
            raise InvalidValueError(
                f"JSON patch operation {index} {_shown(operation)} would nest the value "
                f"{nested} levels deep: the limit is {MAX_DEPTH} levels of arrays and objects"
            )
    deepest = max(deepest, depth + nests)
    if kind == "move":  # the value only changes place
        return -removed - key_cost, key_cost, encoded, deepest
    if kind == "replace":
        return size - removed, size - removed, encoded, deepest
    return size - removed, size + key_cost, encoded, deepest


_ABSENT: Final = object()


Transform = JqTransform | MergePatch | JsonPatch


def make_transform(
    *,
    jq: str | None,
    merge_text: str | None,
    patch_text: str | None,
    jq_timeout: float,
    limit: int = DEFAULT_JSON_LIMIT,
) -> Transform:
    """The one transform given; ``merge_text``/``patch_text`` are normalized JSON text.
    ``jq_timeout`` bounds the patches too; ``limit`` is the value size limit."""
    offered = (
        ("a jq expression", jq),
        ("a merge patch", merge_text),
        ("a JSON patch", patch_text),
    )
    given = [name for name, value in offered if value is not None]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        # In words, not parameter names: each face adds its own spelling of the three.
        raise InvalidValueError(
            "update needs exactly one transform (a jq expression, a merge patch or a JSON "
            f"patch); got {what}",
            param=("jq", "merge", "patch"),
        )
    if jq is not None:
        return JqTransform(jq, jq_timeout, limit)
    if merge_text is not None:
        return MergePatch.from_text(merge_text, timeout=jq_timeout)
    assert patch_text is not None
    return JsonPatch.from_text(patch_text, limit=limit, timeout=jq_timeout)
