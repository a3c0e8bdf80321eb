"""The web page's writes (issue 18, "Edit safely") in a real headless Chromium against a
real ``statebox serve``: create a key (create-only), delete one (after a confirmation,
guarded by the version shown), set a TTL and clear it. Each outcome is checked through
the API, not only on the page. Fixtures and seeded data: ``ui_support.py``.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from .ui_support import (
    PageWatch,
    UiServer,
    browser_fixture,  # noqa: F401  (browser: the module's Chromium)
    open_key,
    open_namespace,
    page_watch_fixture,  # noqa: F401  (page_watch: a fresh page, the admin token)
    tid,
    ui_fixture,  # noqa: F401  (ui: the module's seeded server)
    version_shown,
)

expect.set_options(timeout=5_000)

CHANGED_MEANWHILE = re.compile("changed meanwhile", re.IGNORECASE)


def found(ui: UiServer, key: str) -> bool:
    """Whether ``key`` of custom/writes has a value (the API answers ``found``)."""
    response = ui.api().get(f"/v1/kv/custom/writes/{key}")
    assert response.status_code == 200, response.text
    answer: bool = response.json()["found"]
    return answer


def test_a_delete_is_confirmed_first_and_removes_the_key(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    ui.put("custom", "writes", "doomed", {"n": 1})
    ui.put("custom", "writes", "doomed", {"n": 2})
    open_key(page, "custom", "writes", "doomed")
    version_shown(page, 2)

    # The first click only asks; cancelling leaves the key as it was.
    page.click(tid("delete-button"))
    expect(page.locator(tid("delete-confirm"))).to_be_visible()
    page.click(tid("delete-cancel"))
    expect(page.locator(tid("delete-confirm"))).to_have_count(0)
    assert ui.get("custom", "writes", "doomed")["version"] == 2

    page.click(tid("delete-button"))
    page.click(tid("delete-confirm"))
    expect(page.locator(tid("empty-state"))).to_be_visible()
    expect(page.locator(tid("delete-button"))).to_have_count(0)
    assert not found(ui, "doomed")
    history = ui.api().get("/v1/history/custom/writes/doomed").json()["versions"]
    assert [v.get("deleted", False) for v in history] == [True, False, False], history
    expect(page.locator('[data-testid="history-row"][data-deleted="true"]')).to_have_count(1)


def test_a_delete_after_a_concurrent_write_is_refused(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, watch = page_watch
    watch.allow_statuses |= {409, 412}  # the refused delete
    ui.put("custom", "writes", "contested", {"by": "first"})
    open_key(page, "custom", "writes", "contested")
    version_shown(page, 1)

    # Another write lands just before the page's DELETE reaches the server.
    def write_meanwhile(route: Route) -> None:
        if route.request.method == "DELETE":
            ui.put("custom", "writes", "contested", {"by": "written-meanwhile"})
        route.continue_()

    page.route("**/v1/kv/custom/writes/contested", write_meanwhile)
    page.click(tid("delete-button"))
    page.click(tid("delete-confirm"))
    banner = page.locator(tid("conflict-banner"))
    expect(banner).to_contain_text(CHANGED_MEANWHILE)
    expect(banner).to_contain_text("written-meanwhile")
    stored = ui.get("custom", "writes", "contested")  # the key survives, newer value kept
    assert (stored["version"], stored["value"]) == (2, {"by": "written-meanwhile"})


def test_create_a_new_key(page_watch: tuple[Page, PageWatch], ui: UiServer) -> None:
    page, _ = page_watch
    ui.put("custom", "writes", "seed", {"here": True})
    assert not found(ui, "made/fresh")
    open_namespace(page, "custom", "writes")
    page.click(tid("new-key-button"))
    page.fill(tid("new-key-name"), "made/fresh")
    page.fill(tid("editor"), '{"made": "by the page", "n": [1, 2]}')
    page.click(tid("save-button"))

    expect(page.locator(tid("key-title"))).to_contain_text("made/fresh")
    version_shown(page, 1)
    expect(page.locator(tid("value-view"))).to_contain_text("by the page")
    stored = ui.get("custom", "writes", "made/fresh")
    assert (stored["version"], stored["value"]) == (1, {"made": "by the page", "n": [1, 2]})


def test_creating_a_key_that_exists_is_refused(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, watch = page_watch
    watch.allow_statuses |= {409, 412}  # the refused create
    ui.put("custom", "writes", "taken", {"keep": "me"})
    open_namespace(page, "custom", "writes")
    page.click(tid("new-key-button"))
    page.fill(tid("new-key-name"), "taken")
    page.fill(tid("editor"), '{"clobbered": true}')
    page.click(tid("save-button"))

    expect(page.locator(tid("error-banner"))).to_be_visible()
    expect(page.locator(tid("error-banner"))).to_contain_text(re.compile(r"\b(409|412)\b"))
    expect(page.locator(tid("key-title"))).to_have_count(0)  # still on the form
    stored = ui.get("custom", "writes", "taken")
    assert (stored["version"], stored["value"]) == (1, {"keep": "me"})


def test_set_a_ttl_and_clear_it(page_watch: tuple[Page, PageWatch], ui: UiServer) -> None:
    page, _ = page_watch
    ui.put("custom", "writes", "expiring", {"n": 1})
    assert ui.get("custom", "writes", "expiring").get("expiresAt") is None
    open_key(page, "custom", "writes", "expiring")
    expires = page.locator(tid("meta-expires"))
    expect(expires).to_contain_text("never")

    page.click(tid("edit-button"))
    page.fill(tid("ttl-input"), "3600")
    page.click(tid("save-button"))
    version_shown(page, 2)
    stored = ui.get("custom", "writes", "expiring")
    assert stored.get("expiresAt"), stored
    assert stored["value"] == {"n": 1}
    expect(expires).not_to_contain_text("never")

    page.click(tid("edit-button"))
    ttl = page.locator(tid("ttl-input"))
    expect(ttl).to_have_value(re.compile(r"^3[56]\d\d$"))  # what is left of the hour
    ttl.fill("")
    page.click(tid("save-button"))
    version_shown(page, 3)
    assert ui.get("custom", "writes", "expiring").get("expiresAt") is None
    expect(expires).to_contain_text("never")
