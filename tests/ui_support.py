"""The web page's browser tests and benchmark: a real ``statebox serve`` with tokens,
Debian's Chromium driven by Playwright's Python client, and what a page did.

Chromium is ``/usr/bin/chromium`` (Debian's package; ``scripts/test`` installs it when
missing): Playwright's own browser download is never used. A missing Chromium fails
the tests, it does not skip them.

Every page opened here is watched (:class:`PageWatch`): the URL of each request it
makes (all must go to the server's own origin), its console errors (a Content-Security-
Policy violation is one), and its uncaught exceptions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from .server_util import ROOT, ServerProcess, start_server

__all__ = [
    "ADMIN",
    "ALPHA",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CUSTOMERS",
    "NARROW",
    "ORDERS",
    "READER",
    "SCREENSHOTS_ENV",
    "VIEWPORT",
    "PageWatch",
    "UiServer",
    "api_calls",
    "browser_fixture",
    "follow",
    "go",
    "key_rows",
    "launch_chromium",
    "open_key",
    "open_namespace",
    "open_page",
    "page_watch_fixture",
    "screenshot_path",
    "shot",
    "start_ui_server",
    "tid",
    "ui_fixture",
    "version_shown",
    "write_tokens",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing the page asks for may leave the machine: every name but the loopback ones
    # resolves to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
NARROW = {"width": 360, "height": 740}
VIEWPORT = {"width": 1280, "height": 800}
#: Set to 1 to write the screenshots to docs/ui/ (else they go to the test's tmp_path).
SCREENSHOTS_ENV = "STATEBOX_UI_SCREENSHOTS"
DOCS_UI = ROOT / "docs" / "ui"

# name -> (secret, grants)
ADMIN = "admin-0123456789abcdef"
ALPHA = "alpha-0123456789abcdef"
READER = "reader-0123456789abcdef"
TOKENS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "admin": (ADMIN, [{"access": "write", "scope": "*", "namespace": "*", "reveal": True}]),
    "alpha": (ALPHA, [{"access": "read", "scope": "custom", "namespace": "alpha"}]),
    "reader": (READER, [{"access": "read", "scope": "*", "namespace": "*"}]),
}


def tid(name: str, /, **attrs: str) -> str:
    """The CSS selector of the page's element ``data-testid=name`` (the DOM contract),
    with more ``data-*`` attributes: ``tid("key-row", key="a")``."""
    extra = "".join(f'[data-{k.replace("_", "-")}="{_css(v)}"]' for k, v in attrs.items())
    return f'[data-testid="{name}"]{extra}'


def _css(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def write_tokens(path: Path) -> Path:
    import json

    tokens = [
        {"name": name, "secret": secret, "grants": grants}
        for name, (secret, grants) in TOKENS.items()
    ]
    path.write_text(json.dumps({"tokens": tokens}))
    return path


@dataclass
class UiServer:
    """A ``statebox serve`` over a SQLite file, with the tokens of :data:`TOKENS`."""

    server: ServerProcess
    db: Path
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.server.url.rstrip("/")

    @property
    def ui(self) -> str:
        return f"{self.origin}/ui"

    def api(self, token: str = ADMIN) -> httpx.Client:
        """A client of the server's API with ``token``."""
        client = self.clients.get(token)
        if client is None:
            client = self.clients[token] = httpx.Client(
                base_url=self.origin, timeout=30, headers={"Authorization": f"Bearer {token}"}
            )
        return client

    def put(self, scope: str, ns: str, key: str, value: Any, **params: Any) -> dict[str, Any]:
        response = self.api().put(f"/v1/kv/{scope}/{ns}/{_path(key)}", json=value, params=params)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, scope: str, ns: str, key: str) -> dict[str, Any]:
        response = self.api().get(f"/v1/kv/{scope}/{ns}/{_path(key)}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def txn(self, scope: str, ns: str, values: dict[str, Any]) -> None:
        ops = [{"op": "set", "key": k, "value": v} for k, v in values.items()]
        response = self.api().post(f"/v1/txn/{scope}/{ns}", json={"ops": ops})
        assert response.status_code == 200, response.text

    def run_dag(self, dag: Path) -> subprocess.CompletedProcess[str]:
        """``statebox run DAG --store <this server>`` with the admin token."""
        return subprocess.run(
            [sys.executable, "-m", "statebox.cli", "run", str(dag), "--store", self.origin],
            cwd=dag.parent,
            env={**os.environ, "STATEBOX_TOKEN": ADMIN, "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        for client in self.clients.values():
            client.close()
        self.server.stop()


def _path(key: str) -> str:
    from urllib.parse import quote

    return quote(key, safe="/")


@contextmanager
def start_ui_server(
    directory: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[UiServer]:
    """``statebox serve`` over ``directory/state.db`` with the tokens file of
    :data:`TOKENS` (the CLI's own ``serve``, as a user starts it); ``env``: more
    environment for it."""
    db = directory / "state.db"
    tokens = write_tokens(directory / "tokens.json")
    server = start_server(f"sqlite:///{db}", tokens=tokens, via_cli=True, args=args, env=env)
    ui = UiServer(server, db)
    try:
        yield ui
    finally:
        ui.stop()


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; fails (never skips) when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the web page's tests need Debian's Chromium "
            "(apt-get install -y chromium; scripts/test installs it when run as root)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


_HTTP_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")

# Runs in every page before its own scripts (Playwright's init scripts are exempt from
# the page's CSP): records each Content-Security-Policy violation the page causes.
_CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@dataclass
class PageWatch:
    """What one page did: the URLs it requested, its console errors and uncaught
    exceptions. ``allow_statuses``: API error statuses a test provokes on purpose
    (Chromium logs each failed fetch as a console error)."""

    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # 401: the page's first requests, before the test enters its token in the page.
    allow_statuses: set[int] = field(default_factory=lambda: {401})

    def __post_init__(self) -> None:
        self.page.on("request", self._on_request)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        match = _HTTP_ERROR.search(message.text)
        if match and int(match.group(1)) in self.allow_statuses:
            return
        self.console_errors.append(message.text)

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the server's origin (``data:`` URLs are no request
        to anyone)."""
        own = self.origin + "/"
        return [u for u in self.requests if not (u.startswith(own) or u.startswith("data:"))]

    def csp_violations(self) -> list[str]:
        try:
            found: list[str] = self.page.evaluate("window.__cspViolations || []")
        except Exception:  # the page is gone: its console errors still tell
            return []
        return found

    def check(self) -> None:
        """Every request went to the server, and no console error, CSP violation or
        uncaught exception happened."""
        problems = {
            "requests to other origins": self.foreign_requests(),
            "console errors": self.console_errors,
            "CSP violations": self.csp_violations(),
            "uncaught exceptions": self.page_errors,
        }
        found = {name: items for name, items in problems.items() if items}
        assert not found, f"the page misbehaved: {found}"


@contextmanager
def open_page(
    browser: Browser,
    ui: UiServer,
    token: str | None = ADMIN,
    *,
    color_scheme: str = "light",
    check: bool = True,
    viewport: dict[str, int] = VIEWPORT,
) -> Iterator[tuple[Page, PageWatch]]:
    """A fresh context (``viewport``, ``color_scheme``) and page on the server's UI, with
    ``token`` entered in the page's token field; ``check``: :meth:`PageWatch.check` at
    the end."""
    context: BrowserContext = browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        color_scheme=color_scheme,  # type: ignore[arg-type]
        reduced_motion="reduce",
        locale="en-US",
        timezone_id="UTC",
    )
    context.set_default_timeout(5_000)
    context.add_init_script(_CSP_PROBE)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "roll back to version 1?" etc.
    watch = PageWatch(page, ui.origin)
    try:
        response = page.goto(ui.ui)
        assert response is not None and response.status == 200, (
            f"GET /ui answered {response and response.status}"
        )
        if token is not None:
            page.fill(tid("token-input"), token)
            page.click(tid("token-save"))
        yield page, watch
        if check:
            watch.check()
    finally:
        context.close()


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a test saves screenshot ``name``: docs/ui/ when STATEBOX_UI_SCREENSHOTS=1
    (overwritten each run), else ``tmp_path`` (the default suite leaves the repo as it
    is)."""
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        DOCS_UI.mkdir(parents=True, exist_ok=True)
        return DOCS_UI / name
    return tmp_path / name


# --- the shared fixtures ``ui``, ``browser`` and ``page_watch``: a test module imports
# ``ui_fixture``, ``browser_fixture`` and ``page_watch_fixture`` (noqa: F401); each gets
# its own server and Chromium. A module's ``UI_SERVER_ENV`` (a dict) is more environment
# for its server.

ORDERS = {f"order-{i:03d}": {"id": i, "total": i * 1.5, "status": "open"} for i in range(120)}
CUSTOMERS = {f"customer-{i}": {"name": f"Customer {i}"} for i in range(5)}
FAILING_DAG = """\
name: nightly-feed
steps:
  - id: fetch
    run: echo "fetched 3 items"
  - id: load
    run: 'echo "loading item 1"; echo "boom - database refused the batch" >&2; exit 3'
    depends: fetch
"""


@pytest.fixture(scope="module", name="ui")
def ui_fixture(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[UiServer]:
    """The module's server, seeded: custom/orders (125 keys), custom/alpha, custom/beta,
    a lease, and the record of a failed run of a 2-step DAG."""
    directory = tmp_path_factory.mktemp("ui")
    env = getattr(request.module, "UI_SERVER_ENV", None)
    with start_ui_server(directory, env=env) as server:
        server.txn("custom", "orders", {**ORDERS, **CUSTOMERS})
        server.put("custom", "alpha", "visible/one", {"owner": "alpha"})
        server.put("custom", "beta", "hidden/two", {"owner": "beta"})
        lease = server.api().post(
            "/v1/leases/acquire", json={"name": "feed-sync", "ttl": 3600, "holder": "worker-7"}
        )
        assert lease.status_code == 200, lease.text
        dag = directory / "nightly-feed.yaml"
        dag.write_text(FAILING_DAG)
        ran = server.run_dag(dag)
        assert ran.returncode == 1, ran.stdout + ran.stderr  # the run failed, as meant
        yield server


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(name="page_watch")
def page_watch_fixture(browser: Browser, ui: UiServer) -> Iterator[tuple[Page, PageWatch]]:
    """A fresh page with the admin token entered; checked clean at the end."""
    with open_page(browser, ui, ADMIN) as opened:
        yield opened


# --- moving about the page -------------------------------------------------------------


def shot(page: Page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=screenshot_path(name, tmp_path))


def go(page: Page, route: str) -> None:
    """Follow the page's own hash route (``#/ks/custom/orders``), as a link does."""
    page.evaluate("route => { window.location.hash = route }", route)


def follow(row: Locator) -> None:
    """Open what a row of a list links to: its link, as a user clicks it (else the row)."""
    row.wait_for()
    link = row.locator("a[href]")
    (link.first if link.count() else row).click()


def open_namespace(page: Page, scope: str, namespace: str) -> None:
    page.click(tid("nav-keyspaces"))
    follow(page.locator(tid("keyspace-row", scope=scope, namespace=namespace)))
    expect(page.locator(tid("key-filter"))).to_be_visible()


def open_key(page: Page, scope: str, namespace: str, key: str) -> None:
    """Keyspaces → namespace → the key, through the prefix filter."""
    open_namespace(page, scope, namespace)
    page.fill(tid("key-filter"), key)
    follow(page.locator(tid("key-row", key=key)))
    expect(page.locator(tid("key-title"))).to_contain_text(key)


def version_shown(page: Page, version: int) -> None:
    expect(page.locator(tid("meta-version"))).to_have_text(re.compile(rf"\b{version}\b"))


def key_rows(page: Page) -> list[str]:
    keys: list[str] = page.eval_on_selector_all(
        tid("key-row"), "rows => rows.map(r => r.dataset.key)"
    )
    return keys


def api_calls(watch: PageWatch) -> list[str]:
    """The paths of the API calls a page made (its own assets left out)."""
    return [u.split("?")[0].removeprefix(watch.origin) for u in watch.requests if "/v1/" in u]
