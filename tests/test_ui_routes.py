"""The web page's routes (issue #18, ``statebox.ui``): served by a real ``statebox serve``
through the ``statebox.routers`` entry point, public, every answer with the page's
Content-Security-Policy and companions; each shipped file with its own content type and
ETag, any other name a 404; no inline script or style anywhere (the CSP forbids them, so
the page must not need them); every asset in the built wheel; ``/`` redirects to
``/ui``."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette")

from statebox.ui.routes import ASSETS, CSP

from .server_util import ROOT, ServerProcess, running_server

ASSET_DIR = ROOT / "src" / "statebox" / "ui" / "assets"
SECURITY = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}
TOKENS = """\
tokens:
  - name: reader
    secret: reader-secret-0123456789
    grants:
      - {access: read, scope: dag, namespace: feed}
"""


def _shipped() -> list[str]:
    """Every file of the page on disk, by its name under /ui/assets/."""
    return sorted(
        path.relative_to(ASSET_DIR).as_posix()
        for path in ASSET_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # With tokens: the page's routes must stay public (the page holds no data).
    folder = tmp_path_factory.mktemp("ui")
    tokens = folder / "tokens.yaml"
    tokens.write_text(TOKENS)
    with running_server(f"sqlite:///{folder / 'state.db'}", tokens=tokens) as running:
        yield running


def _assert_secured(response: httpx.Response, what: str) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (
            f"{what}: {name} is {response.headers.get(name)!r}"
        )


def test_every_shipped_file_is_whitelisted_and_nothing_else() -> None:
    assert sorted(ASSETS) == _shipped()
    assert {"index.html", "app.css", "app.js", "api.js", "json.js", "diff.js"} <= set(ASSETS)
    assert any(name.startswith("views/") for name in ASSETS)


def test_the_page_and_each_asset_are_served_with_their_type_and_headers(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:  # no token: public
        for path in ("/ui", "/ui/"):
            page = client.get(path)
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert page.content == (ASSET_DIR / "index.html").read_bytes()
            _assert_secured(page, path)
        for name in _shipped():
            response = client.get(f"/ui/assets/{name}")
            assert response.status_code == 200, (name, response.text)
            expected = TYPES[Path(name).suffix]
            assert response.headers["content-type"].split(";")[0] == expected, name
            assert response.content == (ASSET_DIR / name).read_bytes(), name
            assert response.headers["cache-control"] == "no-cache", name
            etag = response.headers["etag"]
            assert re.fullmatch(r'"[0-9a-f]{32}"', etag), name
            _assert_secured(response, name)
            again = client.get(f"/ui/assets/{name}", headers={"If-None-Match": etag})
            assert again.status_code == 304, name
            assert again.content == b""
            _assert_secured(again, f"{name} (304)")


@pytest.mark.parametrize(
    "name",
    [
        "nope.js",
        "__init__.py",  # in the package, not an asset
        "../routes.py",
        "..%2Froutes.py",
        "%2e%2e/routes.py",
        "views/../../routes.py",
        "views",
        "views/",
        "APP.JS",
        "app.js.map",
    ],
)
def test_a_name_not_shipped_is_a_404_with_the_headers(server: ServerProcess, name: str) -> None:
    # Sent as written (httpx would collapse "../"): the raw request target.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        request = client.build_request("GET", server.url + "/ui/assets/x")
        request.url = request.url.copy_with(raw_path=f"/ui/assets/{name}".encode())
        response = client.send(request)
    assert response.status_code == 404, (name, response.text)
    assert response.json()["error"]["kind"] in ("not_found", "no_route")
    if response.json()["error"]["kind"] == "not_found":  # our route answered
        _assert_secured(response, name)
        assert "routes.py" not in response.text or "no file" in response.text


def test_root_redirects_to_the_page(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as client:
        response = client.get("/")
        assert response.status_code == 307
        assert response.headers["location"] == "/ui"
        _assert_secured(response, "/")
        followed = client.get("/", follow_redirects=True)
        assert followed.status_code == 200
        assert followed.url.path == "/ui"


def test_the_api_still_needs_the_token(server: ServerProcess) -> None:
    # The page is public; the data is not.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/v1/keyspaces").status_code == 401
        auth = {"Authorization": "Bearer reader-secret-0123456789"}
        assert client.get("/v1/keyspaces", headers=auth).status_code == 200


def test_the_routes_are_documented(server: ServerProcess) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    for template in ("/", "/ui", "/ui/", "/ui/assets/{name}"):
        assert "get" in paths[template], template
        assert paths[template]["get"]["security"] == []  # public


class _Page(HTMLParser):
    """What the CSP would refuse in a page: inline scripts, <style>, style= and on*=
    attributes, javascript: URLs, and anything loaded from another origin."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.links: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value}>")
            if name in ("src", "href") and value and re.match(r"^(?:[a-z]+:)?//", value):
                self.problems.append(f"<{tag} {name}={value}>: another origin")
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            src = named.get("src")
            if not src:
                self.problems.append("<script> without src")
            else:
                self.scripts.append(src)
            self._in_script = True
        if tag == "link" and named.get("href"):
            self.links.append(str(named["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:40]}")


def test_index_html_has_no_inline_script_or_style() -> None:
    parser = _Page()
    parser.feed((ASSET_DIR / "index.html").read_text(encoding="utf-8"))
    assert parser.problems == []
    assert parser.scripts == ["/ui/assets/app.js"]
    for href in [*parser.scripts, *parser.links]:
        assert href.startswith("/ui/assets/")
        assert href.removeprefix("/ui/assets/") in ASSETS, href


# Ways a script could put markup built from data into the page, or run text as code.
_UNSAFE_JS = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|"
    r"setAttribute\(\s*[\"'](?:style|on\w+)[\"']|createContextualFragment"
)


def test_no_asset_writes_markup_or_inline_styles() -> None:
    for name in _shipped():
        text = (ASSET_DIR / name).read_text(encoding="utf-8")
        if name.endswith(".js"):
            assert not _UNSAFE_JS.search(text), f"{name}: {_UNSAFE_JS.search(text)}"
            assert "http://" not in text and "https://" not in text, name  # no CDN
        if name.endswith((".html", ".svg")):
            parser = _Page()
            parser.feed(text)
            assert parser.problems == [], (name, parser.problems)
        if name.endswith(".css"):
            assert "@import" not in text and "url(http" not in text, name


def test_every_module_import_resolves_to_a_shipped_asset() -> None:
    found = 0
    for name in _shipped():
        if not name.endswith(".js"):
            continue
        text = (ASSET_DIR / name).read_text(encoding="utf-8")
        for spec in re.findall(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""", text):
            target = (Path("/") / Path(name).parent / spec).resolve().as_posix().lstrip("/")
            assert target in ASSETS, f"{name} imports {spec}"
            found += 1
    assert found >= 10


def test_every_asset_is_in_the_built_wheel(tmp_path: Path) -> None:
    # Offline: the build backend (hatchling, in the dev extra) from this environment.
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("statebox-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(points).decode()
    missing = [n for n in _shipped() if f"statebox/ui/assets/{n}" not in names]
    assert missing == []
    assert "statebox/ui/routes.py" in names
    assert re.search(r"\[statebox\.routers\][^\[]*ui = statebox\.ui\.routes:router", entry_points)
