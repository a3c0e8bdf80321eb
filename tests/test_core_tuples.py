"""The ``NamedTuple`` the records and results are built with at run time
(:mod:`statebox.core._tuples`, faster to define at CLI start-up) behaves as
:class:`typing.NamedTuple`'s classes do."""

from __future__ import annotations

import copy
import inspect
import pickle
import typing
from typing import Any

import pytest

from statebox.backends import base, sql
from statebox.core import _tuples, records, results, values


class Typed(typing.NamedTuple):
    """A record."""

    name: str
    count: int
    extra: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name}:{self.count}"

    @classmethod
    def of(cls, name: str) -> Typed:
        return cls(name, 0)

    def doubled(self) -> int:
        return self.count * 2


class Fast(_tuples.NamedTuple):
    """A record."""

    name: str
    count: int
    extra: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name}:{self.count}"

    @classmethod
    def of(cls, name: str) -> Fast:
        return cls(name, 0)

    def doubled(self) -> int:
        return self.count * 2


class Bare(_tuples.NamedTuple):
    one: int


def _outcome(cls: type, call: Any) -> Any:
    try:
        return ("ok", call(cls))
    except (TypeError, ValueError, AttributeError) as exc:
        return (type(exc).__name__, str(exc).replace("Typed", "X").replace("Fast", "X"))


@pytest.mark.parametrize(
    "build",
    [
        lambda cls: cls("a", 1),
        lambda cls: cls("a", 1, "x", ("t",)),
        lambda cls: cls(name="a", count=2, tags=("u",)),
        lambda cls: cls(count=3, name="b"),
        lambda cls: cls._make(["a", 1, None, ()]),
        lambda cls: cls.of("z"),
    ],
)
def test_the_same_behaviour_as_typing_named_tuple(build: Any) -> None:
    typed, fast = build(Typed), build(Fast)
    assert tuple(typed) == tuple(fast) and isinstance(fast, tuple)
    assert repr(typed).replace("Typed", "Fast") == repr(fast)
    assert typed._asdict() == fast._asdict()
    assert (typed.name, typed.count, typed.extra, typed.tags) == (
        fast.name,
        fast.count,
        fast.extra,
        fast.tags,
    )
    assert typed.label == fast.label and typed.doubled() == fast.doubled()
    assert tuple(typed._replace(count=9)) == tuple(fast._replace(count=9))
    assert type(fast._replace(count=9)) is Fast
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert type(pickle.loads(pickle.dumps(fast))) is Fast
    assert copy.copy(fast) == fast and copy.deepcopy(fast) == fast
    assert hash(fast) == hash(tuple(fast))
    match fast:
        case Fast(name, count):
            assert (name, count) == (fast.name, fast.count)
    for call in (
        lambda cls: cls("a"),
        lambda cls: cls("a", 1, None, (), "too many"),
        lambda cls: cls("a", 1, nope=1),
        lambda cls: cls._make(["a"]),
        lambda cls: build(cls)._replace(nope=1),
        lambda cls: setattr(build(cls), "name", "b"),
    ):
        assert _outcome(Typed, call) == _outcome(Fast, call)


def test_the_same_class_attributes() -> None:
    for attribute in ("_fields", "_field_defaults", "__match_args__", "__doc__", "__slots__"):
        assert getattr(Typed, attribute) == getattr(Fast, attribute), attribute
    assert Fast.__bases__ == Typed.__bases__ == (tuple,)
    assert Fast.__module__ == __name__ and Fast.__qualname__ == "Fast"
    assert Fast.__new__.__qualname__ == "Fast.__new__"
    fast, typed = inspect.signature(Fast).parameters, inspect.signature(Typed).parameters
    assert [(p.name, p.kind, p.default) for p in fast.values()] == [
        (p.name, p.kind, p.default) for p in typed.values()
    ]
    assert typing.get_type_hints(Fast, globals()) == typing.get_type_hints(Typed, globals())
    assert Bare.__doc__ == "Bare(one)" and Bare(1) == (1,)
    assert not hasattr(Fast(1, 2), "__dict__")


def test_what_typing_refuses_is_refused() -> None:
    with pytest.raises(TypeError, match="Non-default"):

        class Order(_tuples.NamedTuple):
            a: int = 0
            b: int

    with pytest.raises(AttributeError, match="_make"):

        class Overwrite(_tuples.NamedTuple):
            a: int

            def _make(self) -> None: ...

    with pytest.raises(ValueError, match="underscore"):

        class Private(_tuples.NamedTuple):
            _a: int

    with pytest.raises(TypeError):

        class Mixed(_tuples.NamedTuple, int):
            a: int


@pytest.mark.parametrize("module", [records, results, values, base, sql])
def test_every_record_class_of_the_engine_resolves_its_hints(module: Any) -> None:
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and hasattr(value, "_fields")
        and value.__module__ == module.__name__
    ]
    assert classes
    for cls in classes:
        assert cls.__bases__ == (tuple,)
        assert set(typing.get_type_hints(cls)) == set(cls._fields), cls
