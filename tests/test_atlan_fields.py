"""Field names: any string is one top-level field, whatever "/" and "~" it holds.

``save_state`` sets a field with an RFC 6902 ``add`` at the pointer of its name, "~"
written "~0" and "/" written "~1" (RFC 6901). Without that escaping, a name holding "/"
would point into a nested object (and fail, or write somewhere else) and "~1" in a name
would be read back as "/".
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import jsonpointer
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statebox.compat.atlan import StateStore, StateType
from statebox.compat.atlan._naming import field_pointer

from .test_atlan_api import new_secret_key

NAMES = st.text(max_size=40) | st.text(alphabet="~/01a", max_size=12)
_ids = itertools.count()


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", "appName")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    yield
    StateStore.close()


@given(NAMES)
def test_the_pointer_of_a_name_is_that_name(name: str) -> None:
    pointer = field_pointer(name)
    assert jsonpointer.JsonPointer(pointer).parts == [name]
    neighbours = {f"{name}/", f"~{name}", name.replace("/", "~1"), name.replace("~", "/")}
    document = {other: "other" for other in neighbours - {name}} | {name: "it"}
    assert jsonpointer.resolve_pointer(document, pointer) == "it"


@pytest.mark.parametrize(
    ("name", "pointer"),
    [("a/b", "/a~1b"), ("~1", "/~01"), ("~/", "/~0~1"), ("", "/"), ("/", "/~1"), ("~", "/~0")],
)
def test_tilde_then_slash_are_escaped(name: str, pointer: str) -> None:
    assert field_pointer(name) == pointer


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=NAMES, other=NAMES, value=st.integers() | st.text(max_size=5) | st.booleans())
def test_save_state_round_trips_any_field_name(
    sqlite_env: None, name: str, other: str, value: object
) -> None:
    object_id = f"wf-{next(_ids)}"

    async def scenario() -> dict[str, object] | None:
        await StateStore.save_state(other, "first", object_id, StateType.WORKFLOWS)
        await StateStore.save_state(name, value, object_id, StateType.WORKFLOWS)
        return await StateStore.get_state(object_id, StateType.WORKFLOWS)

    expected: dict[str, object] = {other: "first"}
    expected[name] = value
    assert asyncio.run(scenario()) == expected
