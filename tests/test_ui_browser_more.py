"""The web page (issue 18) in a real headless Chromium against a real ``statebox serve``:
runs, leases, live updates, access by token, security (another origin's writes, requests
only to the server), the dark theme. The fixtures and the seeded data: ``ui_support.py``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from .server_util import running_server
from .ui_support import (
    ADMIN,
    ALPHA,
    READER,
    PageWatch,
    UiServer,
    api_calls,
    browser_fixture,  # noqa: F401  (browser: the module's Chromium)
    follow,
    go,
    open_key,
    open_namespace,
    open_page,
    page_watch_fixture,  # noqa: F401  (page_watch: a fresh page, the admin token)
    shot,
    tid,
    ui_fixture,  # noqa: F401  (ui: the module's seeded server)
    version_shown,
)

expect.set_options(timeout=5_000)


def test_clicking_anywhere_on_a_row_opens_it(page_watch: tuple[Page, PageWatch]) -> None:
    """Not only the link in a row: a click on any of its cells opens it (the link stays,
    for the keyboard and middle-click)."""
    page, _ = page_watch
    page.click(tid("nav-keyspaces"))
    orders = page.locator(tid("keyspace-row", scope="custom", namespace="orders"))
    expect(orders.locator("a.row-link")).to_have_attribute("href", "#/ks/custom/orders")
    orders.locator(tid("keyspace-count")).click()  # the entry count, not the link
    expect(page.locator(tid("key-filter"))).to_be_visible()
    assert page.evaluate("location.hash") == "#/ks/custom/orders"

    row = page.locator(tid("key-row", key="order-000"))
    expect(row.locator("a.row-link")).to_have_count(1)
    row.locator("td").nth(1).click()  # its version
    expect(page.locator(tid("key-title"))).to_contain_text("order-000")

    page.click(tid("nav-runs"))
    run = page.locator(tid("run-row")).first
    expect(run.locator("a.row-link")).to_have_count(1)
    run.locator(tid("run-duration")).click()
    expect(page.locator(tid("step-node")).first).to_be_visible()


def test_the_runs_list_says_its_order(page_watch: tuple[Page, PageWatch]) -> None:
    """The list API pages forward only (no reverse, no ``before``): runs are listed
    oldest first (their ids are UUIDv7s, keys in start order), and the page says so."""
    page, _ = page_watch
    page.click(tid("nav-runs"))
    expect(page.locator(tid("run-row")).first).to_be_visible()
    expect(page.locator(tid("runs-order"))).to_contain_text("oldest first")


def shown_again(page: Page, action: Callable[[], object]) -> None:
    """Do ``action`` and wait until the page has rendered its "token needed" view anew
    (the positive sign that it routed, asked who the token is and went no further)."""
    page.eval_on_selector(tid("token-needed"), "el => { el.dataset.old = '1' }")
    action()
    expect(page.locator(f"{tid('token-needed')}:not([data-old])")).to_be_visible()


def test_no_api_call_is_made_before_a_token_is_saved(browser: Browser, ui: UiServer) -> None:
    """A server with tokens answers GET /v1/whoami 401 to a page without one: the page
    shows the token field and asks nothing else (each call would be one more 401) until
    a token is saved, then shows what was asked for."""
    with open_page(browser, ui, None) as (page, watch):
        expect(page.locator(tid("token-needed"))).to_be_visible()
        expect(page.locator(tid("whoami"))).to_contain_text("token needed")
        shown_again(page, lambda: go(page, "#/runs"))  # each view waited, and declined
        shown_again(page, lambda: go(page, "#/ks/custom/orders"))
        assert api_calls(watch) == ["/v1/whoami"], watch.requests

        # A token the server refuses: its words, and still no other call.
        page.fill(tid("token-input"), "not-a-token")
        shown_again(page, lambda: page.click(tid("token-save")))
        expect(page.locator(tid("error-banner"))).to_be_visible()
        expect(page.locator(tid("whoami"))).to_contain_text("token refused")
        assert api_calls(watch) == ["/v1/whoami", "/v1/whoami"], watch.requests

        page.fill(tid("token-input"), READER)
        page.click(tid("token-save"))
        expect(page.locator(tid("key-row")).first).to_be_visible()
        expect(page.locator(tid("token-needed"))).to_have_count(0)
        expect(page.locator(tid("whoami"))).to_contain_text("reader")
        calls = api_calls(watch)
        assert calls[:3] == ["/v1/whoami"] * 3, calls
        assert "/v1/kv/custom/orders" in calls[3:], calls


def test_a_value_changes_live_without_reloading(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    ui.put("custom", "live", "jobs/counter", {"n": 1})
    open_key(page, "custom", "live", "jobs/counter")
    version_shown(page, 1)
    expect(page.locator(tid("live-indicator"))).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    ui.put("custom", "live", "jobs/counter", {"n": 424242})
    expect(page.locator(tid("value-view"))).to_contain_text("424242", timeout=5_000)
    version_shown(page, 2)

    # The namespace view too: a key written elsewhere appears.
    open_namespace(page, "custom", "live")
    expect(page.locator(tid("key-row", key="jobs/counter"))).to_be_visible()
    ui.put("custom", "live", "jobs/arrived", {"new": True})
    expect(page.locator(tid("key-row", key="jobs/arrived"))).to_be_visible(timeout=5_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"


def test_a_failed_runs_step_log(
    page_watch: tuple[Page, PageWatch], ui: UiServer, tmp_path: Path
) -> None:
    page, _ = page_watch
    runs = ui.api().get("/v1/kv/statebox/runs").json()["entries"]
    assert len(runs) == 1
    run_id = runs[0]["key"]

    page.click(tid("nav-runs"))
    row = page.locator(tid("run-row", run=run_id))
    expect(row).to_have_attribute("data-status", "failed")
    expect(row).to_contain_text("nightly-feed")
    expect(row.locator(tid("run-duration"))).not_to_be_empty()
    shot(page, "runs.png", tmp_path)

    follow(row)
    failed = page.locator(tid("step-node", step="load"))
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed).to_have_class(re.compile(r"\bstep-failed\b"))  # visible at a glance
    fine = page.locator(tid("step-node", step="fetch"))
    expect(fine).to_have_attribute("data-status", "succeeded")
    expect(fine).not_to_have_class(re.compile(r"\bstep-failed\b"))
    expect(failed.locator(tid("step-attempts"))).to_contain_text("1")

    log = failed.locator(tid("step-log"))  # the failed step's own log
    if not log.is_visible():  # behind a disclosure: open it
        opener = failed.locator("summary, button")
        (opener.first if opener.count() else failed).click()
    expect(log).to_be_visible()
    expect(log).to_contain_text("loading item 1")  # what the step printed
    expect(page.locator("body")).to_contain_text("boom - database refused the batch")
    log.scroll_into_view_if_needed()
    shot(page, "run-failed-step.png", tmp_path)


def test_a_run_redrawn_by_a_live_update_keeps_the_logs_the_reader_opened_or_closed(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    api = ui.api()
    run_id = api.get("/v1/kv/statebox/runs").json()["entries"][0]["key"]
    record = api.get(f"/v1/kv/statebox/runs/{run_id}").json()["value"]
    page.click(tid("nav-runs"))
    follow(page.locator(tid("run-row", run=run_id)))
    fine = page.locator(tid("step-node", step="fetch"))
    failed = page.locator(tid("step-node", step="load"))
    expect(failed.locator(tid("step-log"))).to_be_visible()  # a failed step's log: open
    expect(fine.locator(tid("step-log"))).to_be_hidden()
    fine.locator("summary").click()
    failed.locator("summary").click()
    expect(fine.locator(tid("step-log"))).to_be_visible()
    expect(failed.locator(tid("step-log"))).to_be_hidden()

    changed = {**record, "params": [*(record.get("params") or []), "--redrawn"]}
    try:
        assert api.put(f"/v1/kv/statebox/runs/{run_id}", json=changed).status_code == 200
        expect(page.locator("body")).to_contain_text("--redrawn")  # the page redrew it
        expect(fine.locator(tid("step-log"))).to_be_visible()
        expect(failed.locator(tid("step-log"))).to_be_hidden()
    finally:
        api.put(f"/v1/kv/statebox/runs/{run_id}", json=record)


def test_a_token_limited_to_one_namespace_sees_nothing_else(browser: Browser, ui: UiServer) -> None:
    with open_page(browser, ui, ALPHA) as (page, watch):
        watch.allow_statuses.add(403)
        page.click(tid("nav-keyspaces"))
        rows = page.locator(tid("keyspace-row"))
        expect(rows).to_have_count(1)
        expect(rows).to_have_attribute("data-scope", "custom")
        expect(rows).to_have_attribute("data-namespace", "alpha")
        for section in ("nav-runs", "nav-leases"):  # it may read neither
            expect(page.locator(tid(section))).to_be_hidden()

        open_key(page, "custom", "alpha", "visible/one")
        expect(page.locator(tid("value-view"))).to_contain_text("alpha")
        for action in ("edit-button", "delete-button", "rollback-button", "new-key-button"):
            expect(page.locator(tid(action))).to_have_count(0)

        # Another namespace by URL: the API's 403, in its words; none of its keys.
        page.goto(f"{ui.ui}#/ks/custom/beta")
        banner = page.locator(tid("error-banner"))
        expect(banner).to_be_visible()
        expect(banner).to_contain_text('no read grant on scope "custom", namespace "beta"')
        expect(page.locator(tid("key-row"))).to_have_count(0)
        expect(page.locator("body")).not_to_contain_text("hidden/two")


def test_a_read_only_token_is_offered_no_writes(browser: Browser, ui: UiServer) -> None:
    with open_page(browser, ui, READER) as (page, _):
        page.click(tid("nav-keyspaces"))
        expect(page.locator(tid("keyspace-row", scope="custom", namespace="beta"))).to_be_visible()
        open_key(page, "custom", "orders", "order-005")
        expect(page.locator(tid("value-view"))).to_contain_text('"status"')
        expect(page.locator(tid("history-row"))).to_have_count(1)
        for action in ("edit-button", "delete-button", "rollback-button", "new-key-button"):
            expect(page.locator(tid(action))).to_have_count(0)
    with open_page(browser, ui, ADMIN) as (page, _):  # the same key offers them to a writer
        open_key(page, "custom", "orders", "order-005")
        expect(page.locator(tid("edit-button"))).to_be_visible()
        expect(page.locator(tid("delete-button"))).to_be_visible()


@contextmanager
def another_origin(directory: Path) -> Iterator[str]:
    """A page on another loopback origin (Python's http.server on its own port, as any
    site the user opens could be): its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text("<!doctype html><title>elsewhere</title><p>hi")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# What a page elsewhere can send without asking the server first (a CORS "simple"
# request: a POST of text/plain, no custom header; the answer stays opaque to it).
SIMPLE_POST = """async ([url, body]) => {
    try {
        const r = await fetch(url, {method: "POST", mode: "no-cors", body,
                                    headers: {"Content-Type": "text/plain"}});
        return "sent: " + r.type;
    } catch (e) { return "refused by the browser: " + e; }
}"""


def test_another_origins_page_cannot_write(browser: Browser, tmp_path: Path) -> None:
    """A page on another origin sends a write the browser lets through unasked (a
    "simple" POST) to a server that needs no token: the server refuses it, so the
    value stays. The same request with no Origin and a JSON type does write: what
    stopped it is the server's guard, not the request."""
    target, key = "/v1/txn/custom/target", "/v1/kv/custom/target/guarded"
    body = json.dumps({"ops": [{"op": "set", "key": "guarded", "value": {"v": 666}}]})
    with running_server(f"sqlite:///{tmp_path / 'open.db'}", access_log=True) as server:
        api = server.client
        assert api.put(key, json={"v": 1}).status_code in (200, 201)
        with another_origin(tmp_path / "site") as elsewhere:
            context = browser.new_context()
            try:
                page = context.new_page()
                page.goto(elsewhere)
                sent = page.evaluate(SIMPLE_POST, [f"{server.url.rstrip('/')}{target}", body])
            finally:
                context.close()
        assert sent == "sent: opaque", sent  # the browser sent it, as it may
        assert api.get(key).json()["value"] == {"v": 1}  # and nothing was written
        refused = re.compile(rf'"POST {target} HTTP/1\.1" (\d+)')
        deadline = time.monotonic() + 5
        while not refused.search(server.log_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        answers = refused.findall(server.log_text())
        assert answers and answers[0] in ("403", "415"), server.log_text()

        origin = elsewhere.removesuffix("/index.html")
        simple = {"Origin": origin, "Content-Type": "text/plain"}
        assert api.post(target, content=body, headers=simple).status_code in (403, 415)
        assert api.get(key).json()["value"] == {"v": 1}
        json_type = {"Content-Type": "application/json"}
        assert api.post(target, content=body, headers=json_type).status_code == 200
        assert api.get(key).json()["value"] == {"v": 666}  # the body is a real write


def test_leases_view(page_watch: tuple[Page, PageWatch], tmp_path: Path) -> None:
    page, _ = page_watch
    page.click(tid("nav-leases"))
    row = page.locator(tid("lease-row", name="feed-sync"))
    expect(row.locator(tid("lease-holder"))).to_contain_text("worker-7")
    expect(row.locator(tid("lease-token"))).to_contain_text("1")
    expect(row.locator(tid("lease-expires"))).not_to_be_empty()
    shot(page, "leases.png", tmp_path)


# The page's background luminance, 0 (black) to 255 (white): the body's background, else
# the root's.
LUMINANCE = """() => {
    let color = "rgb(255, 255, 255)";
    for (const el of [document.documentElement, document.body]) {
        const c = getComputedStyle(el).backgroundColor;
        if (c && c !== "transparent" && c !== "rgba(0, 0, 0, 0)") color = c;
    }
    const [r, g, b] = color.match(/[\\d.]+/g).map(Number);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""


def dark(page: Page) -> None:
    page.wait_for_function(f"({LUMINANCE})() < 100")


def light(page: Page) -> None:
    page.wait_for_function(f"({LUMINANCE})() > 155")


def test_dark_and_light(browser: Browser, ui: UiServer, tmp_path: Path) -> None:
    with open_page(browser, ui, ADMIN, color_scheme="dark") as (page, _):
        open_key(page, "custom", "orders", "order-042")
        dark(page)  # prefers-color-scheme: dark
        shot(page, "dark.png", tmp_path)
    with open_page(browser, ui, ADMIN, color_scheme="light") as (page, _):
        page.click(tid("nav-keyspaces"))
        light(page)
        page.click(tid("theme-toggle"))
        dark(page)
        page.reload()  # the choice is kept
        expect(page.locator(tid("theme-toggle"))).to_be_visible()
        dark(page)


def test_every_view_loads_only_from_the_server(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, watch = page_watch
    open_key(page, "custom", "orders", "order-001")
    page.click(tid("nav-runs"))
    expect(page.locator(tid("run-row")).first).to_be_visible()
    follow(page.locator(tid("run-row")).first)
    expect(page.locator(tid("step-node")).first).to_be_visible()
    page.click(tid("nav-leases"))
    expect(page.locator(tid("lease-row")).first).to_be_visible()
    assert any("/ui/assets/" in url for url in watch.requests), watch.requests
    assert any("/v1/" in url for url in watch.requests), watch.requests
    assert watch.foreign_requests() == []
    watch.check()
