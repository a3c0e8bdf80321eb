"""The web page (issue 18) in a real headless Chromium against a real ``statebox serve``:
secret values masked unless revealed with the grant, binary values by size and type with
a download of their exact bytes, keyboard navigation, and narrow screens. This module's
server makes custom/vault a secret keyspace (sealed with a key of its own). Fixtures and
seeded data: ``ui_support.py``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from .ui_support import (
    NARROW,
    READER,
    PageWatch,
    UiServer,
    browser_fixture,  # noqa: F401  (browser: the module's Chromium)
    follow,
    open_key,
    open_namespace,
    open_page,
    page_watch_fixture,  # noqa: F401  (page_watch: a fresh page, the admin token)
    tid,
    ui_fixture,  # noqa: F401  (ui: the module's seeded server)
)

expect.set_options(timeout=5_000)

UI_SERVER_ENV = {
    "STATEBOX_SECRET_NAMESPACES": "custom/vault",
    "STATEBOX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
}
PASSWORD = "hunter2-s3cret-value"


def test_a_secret_is_masked_until_revealed_with_the_grant(
    browser: Browser, page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    ui.put("custom", "vault", "db/password", {"password": PASSWORD})
    masked = ui.api(READER).get("/v1/kv/custom/vault/db/password").json()
    assert masked.get("masked") is True, masked  # the server's own masking is on

    page, _ = page_watch  # admin: a grant with reveal
    open_key(page, "custom", "vault", "db/password")
    value = page.locator(tid("value-view"))
    expect(value).to_contain_text("***")
    expect(page.locator("body")).not_to_contain_text(PASSWORD)
    page.click(tid("reveal-button"))
    expect(value).to_contain_text(PASSWORD)
    expect(value).not_to_contain_text("***")

    with open_page(browser, ui, READER) as (reader, _):  # read, without reveal
        open_key(reader, "custom", "vault", "db/password")
        expect(reader.locator(tid("value-view"))).to_contain_text("***")
        expect(reader.locator(tid("reveal-button"))).to_have_count(0)
        expect(reader.locator("body")).not_to_contain_text(PASSWORD)


def test_a_binary_value_shows_its_size_and_type_and_downloads_its_bytes(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    data = bytes(range(256)) * 4 + b"\x00\xff end"
    put = ui.api().put(
        "/v1/kv/custom/files/report.bin", content=data, headers={"Content-Type": "image/png"}
    )
    assert put.status_code in (200, 201), put.text
    open_key(page, "custom", "files", "report.bin")
    value = page.locator(tid("value-view"))
    expect(value).to_contain_text(f"{len(data)} bytes")
    expect(value).to_contain_text("image/png")
    with page.expect_download() as download:
        page.click(tid("download-link"))
    path = download.value.path()
    assert Path(path).read_bytes() == data


def focused_key(page: Page) -> str | None:
    key: str | None = page.evaluate(
        "() => { const r = document.activeElement && document.activeElement.closest"
        "('[data-testid=key-row]'); return r ? r.dataset.key : null }"
    )
    return key


def focused_testid(page: Page) -> str | None:
    testid: str | None = page.evaluate(
        "() => document.activeElement && document.activeElement.dataset.testid || null"
    )
    return testid


def test_keyboard_navigation(page_watch: tuple[Page, PageWatch]) -> None:
    page, _ = page_watch
    open_namespace(page, "custom", "orders")
    expect(page.locator(tid("key-row")).first).to_be_visible()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("j")  # into the list: its first row
    assert focused_key(page) == "customer-0"
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    assert focused_key(page) == "customer-2"
    page.keyboard.press("k")
    assert focused_key(page) == "customer-1"
    page.keyboard.press("Enter")  # opens the key
    expect(page.locator(tid("key-title"))).to_contain_text("customer-1")

    page.click(tid("edit-button"))
    editor = page.locator(tid("editor"))
    expect(editor).to_be_focused()
    page.keyboard.press("Escape")  # closes the editor
    expect(editor).to_have_count(0)
    expect(page.locator(tid("edit-button"))).to_be_focused()

    # Tab, from the page's first control on, reaches the token field, its buttons and
    # the key's actions, in the order they show.
    page.evaluate("document.querySelector('a[href], button, input').focus()")
    reached: list[str] = []
    for _ in range(25):
        page.keyboard.press("Tab")
        reached.append(focused_testid(page) or "")
    wanted = ["token-input", "token-save", "theme-toggle", "edit-button", "delete-button"]
    assert all(name in reached for name in wanted), reached
    assert [reached.index(name) for name in wanted] == sorted(
        reached.index(name) for name in wanted
    ), reached


FITS = "document.documentElement.scrollWidth"


def fits(page: Page, what: str) -> None:
    """No horizontal scroll at 360 px: the page is no wider than the screen."""
    width: int = page.evaluate(FITS)
    assert width <= NARROW["width"], f"{what}: {width} px wide at {NARROW['width']} px"


def test_narrow_screens_scroll_only_down(browser: Browser, ui: UiServer) -> None:
    long_key = "reports/" + "-".join(["quarterly"] * 6)
    ui.put("custom", "orders-wide", long_key, {"note": "x" * 300, "nested": {"deep": [1, 2, 3]}})
    with open_page(browser, ui, viewport=NARROW) as (page, _):
        page.click(tid("nav-keyspaces"))
        expect(page.locator(tid("keyspace-row")).first).to_be_visible()
        fits(page, "keyspaces")
        open_namespace(page, "custom", "orders")
        expect(page.locator(tid("key-row")).first).to_be_visible()
        fits(page, "key list")
        open_key(page, "custom", "orders-wide", long_key)
        expect(page.locator(tid("value-view"))).to_contain_text("deep")
        fits(page, "key view")
        page.click(tid("nav-runs"))
        follow(page.locator(tid("run-row")).first)
        log = page.locator(tid("step-node", step="load")).locator(tid("step-log"))
        expect(log).to_be_visible()  # a failed step's log shows open
        expect(log).to_contain_text("loading item 1")
        fits(page, "run view")
