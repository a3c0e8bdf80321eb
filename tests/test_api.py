"""The public API: curated exports, typing marker, the error tree, the async twin."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

import statebox
from statebox.backends.base import Backend
from statebox.core import errors


def test_all_is_exactly_the_public_names() -> None:
    import __future__

    public = {name for name in dir(statebox) if not name.startswith("_")}
    modules = {
        name
        for name in public
        if inspect.ismodule(getattr(statebox, name))
        or isinstance(getattr(statebox, name), __future__._Feature)
    }
    assert set(statebox.__all__) - {"__version__"} == public - modules
    for name in statebox.__all__:
        assert hasattr(statebox, name), name


def test_package_is_typed() -> None:
    assert (Path(statebox.__file__).parent / "py.typed").is_file()


def test_every_error_derives_from_the_root_and_has_one_mapping() -> None:
    kinds = [
        getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)
    ]
    assert all(issubclass(k, errors.StateboxError) for k in kinds)
    assert len({k.kind for k in kinds}) == len(kinds)
    assert errors.ConflictError.exit_code == 4 and errors.NotFoundError.exit_code == 3
    assert errors.ConflictError.http_status == 409 and errors.NotFoundError.http_status == 404
    assert errors.InvalidReferenceError.exit_code == 2 and errors.ConfigurationError.exit_code == 2
    assert errors.ValueTooLargeError.http_status == 413
    assert errors.PermissionDeniedError.http_status == 403
    assert errors.BackendUnavailableError.http_status == 503
    # conflict and not-found have exit codes no other kind uses
    others = {
        k.exit_code
        for k in kinds
        if not issubclass(k, (errors.ConflictError, errors.NotFoundError))
    }
    assert not others & {3, 4}


def test_an_incomplete_backend_fails_at_construction() -> None:
    class Half(Backend):
        def close(self) -> None: ...

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


def test_async_twin_has_the_same_operations() -> None:
    for name in ("get", "set", "diff", "delete", "list", "history", "close"):
        assert inspect.iscoroutinefunction(getattr(statebox.AsyncStateStore, name)), name
    sync_ops = {
        n
        for n, f in inspect.getmembers(statebox.StateStore, inspect.isfunction)
        if not n.startswith("_") and n not in ("keyspace", "normalize", "with_context")
    }
    async_ops = {
        n for n, f in inspect.getmembers(statebox.AsyncStateStore) if not n.startswith("_")
    }
    assert sync_ops <= async_ops, sync_ops - async_ops


def test_async_store_round_trip(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        ctx = statebox.RunContext(dag="feed")
        async with await statebox.open_async_store(f"sqlite:///{tmp_path}/a.db", context=ctx) as s:
            out = [(await s.set("cursor", {"id": 1})).to_json()]
            out.append((await s.get("cursor")).to_json())
            out.append((await s.diff("cursor", {"id": 2})).to_json())
            out.append((await s.list()).to_json())
            with pytest.raises(statebox.ConflictError):
                await s.set("cursor", 3, expected_version=1)
            out.append((await s.delete("cursor")).to_json())
            return out

    lines = asyncio.run(scenario())
    assert '"version":1' in lines[0] and '"value":{"id":1}' in lines[1]
    assert '"changed":true' in lines[2] and '"key":"cursor","version":2' in lines[3]
    assert lines[4].endswith('"deleted":true}')


def test_every_error_kind_maps_back_to_its_class() -> None:
    kinds = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    for cls in kinds:
        assert errors.error_class(cls.kind) is cls
    assert errors.error_class("no-such-kind") is errors.StateboxError
