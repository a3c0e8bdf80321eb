# mypy: allow-untyped-defs
"""``NamedTuple`` for the classes every command-line start defines (the records, the
results): the classes :class:`typing.NamedTuple` builds, in a fraction of the time.

``typing.NamedTuple`` compiles each field's annotation (a string, under ``from __future__
import annotations``) into a ``ForwardRef``, and ``collections.namedtuple`` compiles a
``__new__`` for each class: about 0.15 ms a class at start-up, and a ``statebox get``
defines twenty. Here ``__new__`` is a precompiled function whose parameters are renamed
for the class, the other methods are shared, and the annotations stay the strings they
are (``typing.get_type_hints`` resolves them alike). A module imports it as::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from ._tuples import NamedTuple

so type checkers see the real one. Only what records need: fields, defaults, methods,
properties, docstrings (no generic named tuples).
"""

from __future__ import annotations

from collections import _tuplegetter  # type: ignore[attr-defined]
from types import FunctionType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = ["NamedTuple"]

_tuple_new = tuple.__new__

# __new__ of a class of N fields: parameters _0 … renamed after the fields (the bytecode
# reads them by position), the same code collections.namedtuple compiles for each class.


def _new1(_cls, _0):
    return _tuple_new(_cls, (_0,))


def _new2(_cls, _0, _1):
    return _tuple_new(_cls, (_0, _1))


def _new3(_cls, _0, _1, _2):
    return _tuple_new(_cls, (_0, _1, _2))


def _new4(_cls, _0, _1, _2, _3):
    return _tuple_new(_cls, (_0, _1, _2, _3))


def _new5(_cls, _0, _1, _2, _3, _4):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4))


def _new6(_cls, _0, _1, _2, _3, _4, _5):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5))


def _new7(_cls, _0, _1, _2, _3, _4, _5, _6):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6))


def _new8(_cls, _0, _1, _2, _3, _4, _5, _6, _7):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7))


def _new9(_cls, _0, _1, _2, _3, _4, _5, _6, _7, _8):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8))


def _new10(_cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9))


def _new11(_cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10))


def _new12(_cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11):
    return _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11))


_NEW: tuple[Callable[..., Any], ...] = (
    _new1, _new2, _new3, _new4, _new5, _new6, _new7, _new8, _new9, _new10, _new11, _new12
)  # fmt: skip


# The methods collections.namedtuple gives each class, shared: they read cls._fields.


def _make(cls: type[tuple[Any, ...]], iterable: Iterable[Any]) -> tuple[Any, ...]:
    result = _tuple_new(cls, iterable)
    size = len(cls._fields)  # type: ignore[attr-defined]
    if len(result) != size:
        raise TypeError(f"Expected {size} arguments, got {len(result)}")
    return result


def _replace(self: Any, /, **kwds: Any) -> Any:
    result = self._make(map(kwds.pop, self._fields, self))
    if kwds:
        raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
    return result


def _repr(self: Any) -> str:
    pairs = zip(self._fields, self, strict=True)
    fields = ", ".join([f"{name}={value!r}" for name, value in pairs])
    return f"{self.__class__.__name__}({fields})"


def _asdict(self: Any) -> dict[str, Any]:
    return dict(zip(self._fields, self, strict=True))


def _getnewargs(self: Any) -> tuple[Any, ...]:
    return tuple(self)


_SHARED = {
    "__slots__": (),
    "_make": classmethod(_make),
    "_replace": _replace,
    "__repr__": _repr,
    "_asdict": _asdict,
    "__getnewargs__": _getnewargs,
}
# What a class body may not define (typing.NamedTuple's list), and what it defines that
# the class does not take from it.
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
     "_make", "_replace", "_asdict", "_source"}
)  # fmt: skip
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


def _named_tuple(name: str, ns: dict[str, Any]) -> type:
    annotations: dict[str, Any] = ns.get("__annotations__", {})
    fields = tuple(annotations)
    if not 0 < len(fields) <= len(_NEW):  # pragma: no cover - no such record
        raise TypeError(f"{name}: a NamedTuple of {len(fields)} fields is not supported here")
    defaults: dict[str, Any] = {}
    for field in fields:
        if field.startswith("_"):
            raise ValueError(f"Field names cannot start with an underscore: {field!r}")
        if field in ns:
            defaults[field] = ns[field]
        elif defaults:
            raise TypeError(f"Non-default namedtuple field {field} cannot follow default field")
    code = _NEW[len(fields) - 1].__code__
    new = FunctionType(
        code.replace(co_varnames=("_cls", *fields), co_name="__new__"),
        globals(),
        "__new__",
        tuple(defaults.values()) or None,
    )
    new.__qualname__ = f"{ns.get('__qualname__', name)}.__new__"
    new.__doc__ = f"Create new instance of {name}({', '.join(fields)})"
    new.__annotations__ = dict(annotations)
    namespace: dict[str, Any] = {
        "__doc__": f"{name}({', '.join(fields)})",
        **_SHARED,
        "__new__": new,
        "_fields": fields,
        "_field_defaults": defaults,
        "__match_args__": fields,
        "__annotations__": dict(annotations),
        "__module__": ns["__module__"],
    }
    for index, field in enumerate(fields):
        namespace[field] = _tuplegetter(index, f"Alias for field number {index}")
    for key, value in ns.items():
        if key in _PROHIBITED:
            raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
        if (key not in _SPECIAL and key not in namespace) or key == "__doc__":
            namespace[key] = value
    return type(name, (tuple,), namespace)


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if not bases:  # NamedTuple itself
            return super().__new__(mcs, name, bases, ns)
        if bases != (NamedTuple,):
            raise TypeError("can only inherit from a NamedTuple type")
        return _named_tuple(name, ns)


class NamedTuple(metaclass=_NamedTupleMeta):
    """Subclass it as :class:`typing.NamedTuple` (see the module's documentation)."""
