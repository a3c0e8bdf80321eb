"""Routes declared once (statebox.web): another face adds a router through the
``statebox.routers`` entry points — served, authenticated and documented without a change
to the server — and a body model's refusals read in HTTP's words."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

pytest.importorskip("starlette")

import msgspec
from starlette.testclient import TestClient

from statebox.core.errors import InvalidRequestError
from statebox.web import Answer, Body, Limit, Query, Route, Router, Version
from statebox.web.decoding import decode_body, decode_query
from statebox.web.routing import starlette_routes

FACE = '''
"""A face that is not the server: one router, found through an entry point."""
from typing import Annotated

import msgspec
from starlette.responses import JSONResponse

from statebox.web import Answer, Body, Limit, Query, Router, Version


class Greeting(msgspec.Struct):
    hello: str
    times: int


class GreetQuery(Query):
    limit: Annotated[Limit, msgspec.Meta(description="How many at most.")] = 0


class GreetBody(Body):
    name: str
    version: Version
    loud: bool = False


def make_router() -> Router:
    router = Router("greeter")

    @router.post(
        "/v1/greet/{who}",
        summary="greet someone",
        path_params=WhoPath,
        query=GreetQuery,
        body=GreetBody,
        responses={200: Answer(Greeting)},
    )
    async def greet(call, query: GreetQuery, body: GreetBody) -> JSONResponse:
        name = body.name.upper() if body.loud else body.name
        return JSONResponse({"hello": name, "times": query.limit or body.version})

    return router


class WhoPath(msgspec.Struct):
    who: str
'''


@pytest.fixture
def face_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution on sys.path whose entry point adds a router: what ``pip install`` of
    a face package leaves behind."""
    (tmp_path / "greeter_face.py").write_text(textwrap.dedent(FACE), encoding="utf-8")
    info = tmp_path / "greeter_face-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: greeter-face\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[statebox.routers]\ngreeter = greeter_face:make_router\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


def _client(app: Any) -> TestClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about its httpx client
        return TestClient(app, base_url="http://localhost")


def test_a_router_from_an_entry_point_is_served_and_documented(face_installed: Path) -> None:
    from statebox.server import create_app

    with _client(create_app("memory://")) as client:
        answer = client.post("/v1/greet/x", params={"limit": "3"}, json={"name": "a", "version": 1})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"hello": "a", "times": 3}
        # its body model is enforced like the server's own: closed, typed, HTTP's words
        unknown = client.post("/v1/greet/x", json={"name": "a", "version": 1, "x": 1})
        assert unknown.status_code == 400
        assert unknown.json()["error"]["message"] == (
            'greet: unknown field(s) "x"; known: "loud", "name", "version"'
        )
        zero = client.post("/v1/greet/x", json={"name": "a", "version": 0})
        assert zero.json()["error"]["message"] == 'invalid "version" 0: must be 1 or more'
        bad_limit = client.post("/v1/greet/x", params={"limit": "1_0"}, json={"name": "a"})
        assert bad_limit.json()["error"]["message"].startswith('invalid ?limit= "1_0"')

        document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/greet/{who}"]["post"]
    assert operation["summary"] == "greet someone"
    assert [p["name"] for p in operation["parameters"]] == ["who", "limit"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GreetBody"
    }
    body = document["components"]["schemas"]["GreetBody"]
    assert body["required"] == ["name", "version"] and body["additionalProperties"] is False
    assert body["properties"]["version"]["minimum"] == 1
    assert "Greeting" in document["components"]["schemas"]
    # not public: the generic refusals are attached, a bad token among them
    assert {"400", "401", "415", "503"} <= set(operation["responses"])


def test_without_the_distribution_the_route_is_not_there() -> None:
    from statebox.server import create_app

    with _client(create_app("memory://")) as client:
        assert client.post("/v1/greet/x", json={}).json()["error"]["kind"] == "no_route"
        assert "/v1/greet/{who}" not in client.get("/openapi.json").json()["paths"]


def test_an_entry_point_that_gives_no_router_is_named(
    face_installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statebox.server import create_app

    (face_installed / "greeter_face.py").write_text("def make_router():\n    return 1\n")
    monkeypatch.delitem(__import__("sys").modules, "greeter_face", raising=False)
    with pytest.raises(TypeError, match="greeter = greeter_face:make_router"):
        create_app("memory://")


def test_a_method_and_path_declared_twice_is_refused() -> None:
    async def one(call: object) -> Any: ...

    first = Router("a", [Route("GET", "/x", one, "one")])
    second = Router("b", [Route("GET", "/x", one, "again")])
    with pytest.raises(ValueError, match="GET /x is declared twice"):
        starlette_routes([first, second], lambda route: one)  # type: ignore[arg-type,return-value]


def test_a_route_names_exactly_the_path_parameters_it_declares() -> None:
    async def one(call: object) -> Any: ...

    with pytest.raises(ValueError, match="the path names"):
        Route("GET", "/v1/{scope}", one, "no path model")


class _Space(msgspec.Struct):
    scope: str
    namespace: str


def test_a_route_on_a_keyspace_declares_the_grant_it_needs() -> None:
    """Checked before the input is read (tests/test_server_security.py): a route that
    forgot it would decode a stranger's body first."""

    async def one(call: object) -> Any: ...

    with pytest.raises(ValueError, match='declares access="read" or "write"'):
        Route("GET", "/v1/x/{scope}/{namespace}", one, "no access", path_params=_Space)
    with pytest.raises(ValueError, match="needs a keyspace"):
        Route("GET", "/v1/y", one, "no keyspace", access="read")
    assert Route("GET", "/v1/x/{scope}/{namespace}", one, "ok", path_params=_Space, access="read")


# --- a body's refusals --------------------------------------------------------------------


class Fence(msgspec.Struct, forbid_unknown_fields=True):
    lease: str


class Sample(Body):
    version: Version
    name: str | None = None
    fence: Fence | None = None
    mode: Literal["fast", "safe"] = "safe"
    tags: Annotated[list[str], msgspec.Meta(max_length=1)] = msgspec.field(default_factory=list)


def _refusal(raw: bytes) -> str:
    with pytest.raises(InvalidRequestError) as refused:
        decode_body(Sample, raw, "sample")
    return refused.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"version": "3"}', 'invalid "version" "3": must be an integer'),
        (b'{"version": true}', 'invalid "version" true: must be an integer'),
        (b'{"version": 1.5}', 'invalid "version" 1.5: must be an integer'),
        (b'{"version": 1, "name": 2}', 'invalid "name" 2: must be a string or null'),
        (b"{}", 'sample needs "version"'),
        (b"[1]", "request body must be a JSON object"),
        (b'{"version": 1, "b": 1, "a": 2}', 'sample: unknown field(s) "a", "b"; known: '),
        (b'{"version": 1, "fence": {}}', 'sample needs "fence.lease"'),
        (b'{"version": 1, "fence": {"x": 1}}', 'sample: unknown field "x" in "fence"'),
        (b'{"version": 1, "fence": {"lease": 1}}', 'invalid "fence.lease": must be a string'),
        (b'{"version": 0}', 'invalid "version" 0: must be 1 or more'),
        (b'{"version": 99999999999999999999}', 'invalid "version" 99999999999999999999: out'),
        (b'{"version": 1', "request body is not valid JSON: input data was truncated"),
        # a field refused before the syntax error further on: still "not JSON", never a 500
        (b'{"nope": 1', "request body is not valid JSON: input data was truncated"),
        (b'{"x": 1, "value": }', "request body is not valid JSON: JSON is malformed"),
        (b'{"version": "3"} x', "request body is not valid JSON: JSON is malformed"),
        (b'{"version": 1, "mode": "slow"}', 'invalid "mode" "slow": must be one of "fast", '),
        (b'{"version": 1, "tags": ["a", "b"]}', 'invalid "tags" ["a", "b"]: must be a list of '),
        (b'{"version": 1, "tags": [1]}', 'invalid "tags[0]": must be a string'),
    ],
)
def test_refusals_name_the_field_in_http_words(raw: bytes, message: str) -> None:
    got = _refusal(raw)
    assert got.startswith(message), got
    assert "$." not in got and "`" not in got  # msgspec's own notation stays inside


def test_a_query_is_read_by_the_shared_rules() -> None:
    class Page(Query):
        limit: Limit = 0
        include: bool = False

    assert decode_query(Page, {}) == Page()
    assert decode_query(Page, {"limit": "5", "include": "yes"}) == Page(limit=5, include=True)
    for raw in ("1_000", " 5", "+5", "-1", "٣"):
        with pytest.raises(InvalidRequestError, match=r"^invalid \?limit= "):
            decode_query(Page, {"limit": raw})


def test_user_values_keep_their_numbers_exactly() -> None:
    from statebox.server import create_app

    literal = "1.000000000000000000000000001"
    with _client(create_app("memory://")) as client:
        written = client.post(
            "/v1/diff/custom/n/k",
            content=b'{"value": {"n": ' + literal.encode() + b"}}",
            headers={"content-type": "application/json"},
        )
        assert written.status_code == 200, written.text
        read = client.get("/v1/kv/custom/n/k")
    assert literal in read.text  # never through a float


def test_the_served_document_needs_no_hand_kept_list(face_installed: Path) -> None:
    """Every served (method, path) is in /openapi.json and nothing else is."""
    import re

    from statebox.server import create_app

    app = create_app("memory://")
    with _client(app) as client:
        document = client.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    served = {
        (method, re.sub(r"\{(\w+):path\}", r"{\1}", route.path))
        for route in app.routes
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD"
    }
    assert documented == served
    assert ("POST", "/v1/greet/{who}") in served


def test_the_docs_page_reads_the_generated_document(face_installed: Path) -> None:
    from statebox.server import create_app

    with _client(create_app("memory://")) as client:
        page = client.get("/docs")
        document = client.get("/openapi.json")
    assert page.status_code == 200 and "openapi.json" in page.text
    assert document.json()["paths"]["/v1/greet/{who}"]["post"]["summary"] == "greet someone"


def test_answer_defaults_to_any_json() -> None:
    assert Answer().model is None and Answer().media_type == "application/json"


# --- the layers: web is below every face, and the CLI never imports it --------------------


@pytest.mark.parametrize(
    ("module", "planted", "arrow"),
    [
        ("web/routing.py", "from ..server import app", "statebox.web.routing -> statebox.server"),
        ("cli/cmd_get.py", "from .. import web", "statebox.cli.cmd_get -> statebox.web"),
        ("store.py", "from . import web", "statebox.store -> statebox.web"),
    ],
)
def test_the_web_toolkit_keeps_its_layer(
    tmp_path: Path, module: str, planted: str, arrow: str
) -> None:
    import os
    import shutil
    import subprocess
    import sys

    import statebox

    root = Path(__file__).resolve().parent.parent
    package = Path(statebox.__file__).resolve().parent
    shutil.copytree(package, tmp_path / "statebox", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "statebox" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted\n")
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("lint-imports")),
            "--config",
            str(root / ".importlinter"),
            "--no-cache",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert arrow in result.stdout, result.stdout
