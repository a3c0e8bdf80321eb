"""The transforms of ``update`` (SPEC §5): a jq expression, an RFC 7386 merge patch, or
an RFC 6902 JSON patch, each turning one normalized JSON text into the next.

Number literals (SPEC §2 keeps ``1.2300`` and ``9007199254740993`` as written) survive
where that is possible:

- a merge patch works on the exact literals of both documents, so nothing is lost;
- jq computes with doubles and a JSON patch is applied to parsed data, so their result is
  matched against the input: a number that is numerically equal (as a double) to the
  input's number at the same path keeps the input's literal. Numbers the transform
  computed (``.n + 1``) or brought in are written as jq or Python print them. (A literal
  beyond 17 significant digits, which jq may read one unit off, also counts as equal
  within one unit in the last place.)

Nothing here does I/O except :class:`JqTransform`, which runs jq out of process with a
time bound (:mod:`statebox._jq`).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Final, NamedTuple

from .errors import InvalidValueError
from .values import _decode, _encode, _Float, _IntLiteral

# jsonpatch and the jq runner (subprocess, selectors) are imported when first used: the
# CLI imports the engine at every start and most commands never transform anything.

#: Seconds a jq expression may run before it is abandoned.
DEFAULT_JQ_TIMEOUT: Final = 5.0

__all__ = [
    "DEFAULT_JQ_TIMEOUT",
    "JqTransform",
    "JsonPatch",
    "MergePatch",
    "Transform",
    "apply_merge_patch",
    "make_transform",
    "restore_literals",
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (_Float, _IntLiteral, float)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _as_double(value: Any) -> float:
    if isinstance(value, (_Float, _IntLiteral)):
        return float(value.literal)
    # str() first: float() of a huge int raises, float() of its text is inf.
    return float(str(value)) if isinstance(value, int) else float(value)


def _significant_digits(value: Any) -> int:
    literal = value.literal if isinstance(value, (_Float, _IntLiteral)) else str(value)
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


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` merged into ``target`` (``null`` members remove)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = apply_merge_patch(result.get(name), value)
    return result


class JqTransform(NamedTuple):
    expr: str
    timeout: float = DEFAULT_JQ_TIMEOUT

    def apply(self, text: str) -> str:
        from ._jq import run_jq

        output = run_jq(self.expr, text, self.timeout)
        try:
            value = _decode(output)
        except InvalidValueError as exc:  # NaN and friends jq prints as bare words
            raise InvalidValueError(
                f"jq expression {self.expr!r} yielded a value that is not JSON: {output[:200]}"
            ) from exc
        return _encode(restore_literals(value, _decode(text)), True)


class MergePatch(NamedTuple):
    #: The patch document, parsed with exact number literals.
    patch: Any

    @classmethod
    def from_text(cls, text: str) -> MergePatch:
        return cls(_decode(text))

    def apply(self, text: str) -> str:
        return _encode(apply_merge_patch(_decode(text), self.patch), True)


class JsonPatch(NamedTuple):
    operations: tuple[dict[str, Any], ...]

    @classmethod
    def from_text(cls, text: str) -> JsonPatch:
        ops = json.loads(text)
        if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
            raise InvalidValueError(
                "invalid JSON patch: must be a list of operation objects "
                '(e.g. [{"op": "replace", "path": "/a", "value": 1}])'
            )
        return cls(tuple(ops))

    def apply(self, text: str) -> str:
        import jsonpatch
        import jsonpointer

        original = _decode(text)
        document = json.loads(text)
        for index, operation in enumerate(self.operations):
            try:
                document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
            except (
                jsonpatch.JsonPatchException,
                jsonpointer.JsonPointerException,
                KeyError,
                TypeError,
                ValueError,
            ) as exc:
                shown = json.dumps(operation, ensure_ascii=False)[:200]
                raise InvalidValueError(
                    f"JSON patch operation {index} {shown} failed: {exc}"
                ) from exc
        return _encode(restore_literals(document, original), True)


Transform = JqTransform | MergePatch | JsonPatch


def make_transform(
    *, jq: str | None, merge_text: str | None, patch_text: str | None, jq_timeout: float
) -> Transform:
    """The one transform given; ``merge_text``/``patch_text`` are normalized JSON text."""
    offered = (("jq", jq), ("merge", merge_text), ("patch", patch_text))
    given = [name for name, value in offered if value is not None]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise InvalidValueError(
            f"update needs exactly one transform (jq=, merge= or patch=); got {what}"
        )
    if jq is not None:
        return JqTransform(jq, jq_timeout)
    if merge_text is not None:
        return MergePatch.from_text(merge_text)
    assert patch_text is not None
    return JsonPatch.from_text(patch_text)
