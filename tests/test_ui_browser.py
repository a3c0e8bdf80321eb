"""The web page (issue 18) in a real headless Chromium against a real ``statebox serve``:
browse, read, edit, conflicts, history (the other views: ``test_ui_browser_more.py``;
writes: ``test_ui_browser_writes.py``; secrets, binaries, keyboard, narrow widths:
``test_ui_browser_access.py``).

One server per module, over a SQLite file, with three tokens (``tests/ui_support.py``):
``admin`` (write on everything, reveal), ``alpha`` (read custom/alpha only) and
``reader`` (read everything). Its data is written through the API, and a run record by
actually running a DAG with ``statebox run --store <the server>``. One Chromium per
module, a fresh browser context per test; every page is watched: each request must go
to the server's own origin, and no console error, CSP violation or uncaught exception
may happen (``PageWatch.check``).

The tests follow the issue's "How it is shown": browse to a key, edit it, see a conflict
from a concurrent write, view a diff between two versions, roll back; plus script
injection through keys and values. The page is found through its ``data-testid``
attributes (the DOM contract of the plan). With ``STATEBOX_UI_SCREENSHOTS=1`` the tests
write docs/ui/*.png.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, Route, expect

from .ui_support import (
    CUSTOMERS,
    ORDERS,
    PageWatch,
    UiServer,
    browser_fixture,  # noqa: F401  (browser: the module's Chromium)
    follow,
    go,
    key_rows,
    open_key,
    open_namespace,
    page_watch_fixture,  # noqa: F401  (page_watch: a fresh page, the admin token)
    shot,
    tid,
    ui_fixture,  # noqa: F401  (ui: the module's seeded server)
    version_shown,
)

expect.set_options(timeout=5_000)

XSS = "<img src=x onerror=window.__pwned=1>"
XSS_SCRIPT = "</script><script>window.__pwned=2</script>"


def select_version(page: Page, select: str, version: int) -> None:
    """Choose ``version`` in one of the diff's selects, whether its options are
    labelled ``3``, ``v3`` or ``version 3``."""
    value = page.eval_on_selector(
        tid(select),
        """(sel, v) => {
            const o = [...sel.options].find(o => o.value === String(v))
                || [...sel.options].find(o => new RegExp(`\\\\b${v}\\\\b`).test(o.textContent));
            return o ? o.value : null;
        }""",
        version,
    )
    assert value is not None, f"{select} offers no version {version}"
    page.select_option(tid(select), value)


def paths(page: Page, kind: str) -> list[str]:
    found: list[str] = page.eval_on_selector_all(
        f"{tid('diff-view')} .diff-{kind}[data-path]", "rows => rows.map(r => r.dataset.path)"
    )
    return found


def test_browse_to_a_key_through_the_filter_and_pages(
    page_watch: tuple[Page, PageWatch], ui: UiServer, tmp_path: Path
) -> None:
    page, _ = page_watch
    expect(page.locator(tid("nav-keyspaces"))).to_be_visible()
    page.click(tid("nav-keyspaces"))
    orders = page.locator(tid("keyspace-row", scope="custom", namespace="orders"))
    expect(orders).to_contain_text("125")  # its entry count
    shot(page, "keyspaces.png", tmp_path)
    follow(orders)

    # The first page is a page, not the namespace: 125 keys, paged.
    expect(page.locator(tid("key-row")).first).to_be_visible()
    first_page = key_rows(page)
    assert 0 < len(first_page) < 125 and first_page == sorted(first_page)
    expect(page.locator(tid("keys-next"))).to_be_enabled()
    shot(page, "browse.png", tmp_path)

    # The prefix filter: only the customers.
    page.fill(tid("key-filter"), "customer-")
    expect(page.locator(tid("key-row"))).to_have_count(5)
    assert key_rows(page) == sorted(CUSTOMERS)

    # Orders, paged forward until order-117 shows, then back.
    page.fill(tid("key-filter"), "order-")
    expect(page.locator(tid("key-row", key="customer-0"))).to_have_count(0)
    expect(page.locator(tid("key-row")).first).to_have_attribute("data-key", "order-000")
    pages = [key_rows(page)]
    while page.locator(tid("key-row", key="order-117")).count() == 0:
        assert len(pages) < 10, "order-117 never showed"
        page.click(tid("keys-next"))
        expect(page.locator(tid("key-row")).first).not_to_have_attribute("data-key", pages[-1][0])
        pages.append(key_rows(page))
        assert pages[-1][0] > pages[-2][-1], "a page must start after the previous one"
    assert len(pages) >= 2, "120 orders must take more than one page"
    assert sorted(k for p in pages for k in p) == sorted(ORDERS)[: sum(map(len, pages))]
    page.click(tid("keys-prev"))
    expect(page.locator(tid("key-row")).first).to_have_attribute("data-key", pages[-2][0])
    page.click(tid("keys-next"))

    follow(page.locator(tid("key-row", key="order-117")))
    expect(page.locator(tid("key-title"))).to_contain_text("order-117")
    value = page.locator(tid("value-view"))
    expect(value).to_contain_text('"total"')
    expect(value).to_contain_text("175.5")
    version_shown(page, 1)
    digest = ui.get("custom", "orders", "order-117")["hash"]
    expect(page.locator(tid("meta-hash"))).to_contain_text(digest[:12])
    for field in ("meta-created", "meta-updated", "meta-updated-by"):
        expect(page.locator(tid(field))).not_to_be_empty()
    expect(page.locator(tid("meta-updated-by"))).to_contain_text("admin")
    shot(page, "key.png", tmp_path)


def test_edit_validates_as_you_type_and_saves_with_the_version_shown(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    ui.put("custom", "edits", "config/retry", {"retries": 3, "mode": "fast"})
    open_key(page, "custom", "edits", "config/retry")
    version_shown(page, 1)

    page.click(tid("edit-button"))
    editor = page.locator(tid("editor"))
    expect(editor).to_be_visible()
    expect(editor).to_have_value(re.compile(r'"retries":\s*3'))  # starts from the value

    editor.fill('{"retries": 5, "mode": ')  # not JSON (yet)
    error = page.locator(tid("editor-error"))
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    expect(page.locator(tid("save-button"))).to_be_disabled()

    editor.fill('{"retries": 5, "mode": "slow"}')
    expect(page.locator(tid("save-button"))).to_be_enabled()
    if error.is_visible():
        expect(error).to_have_text(re.compile(r"^\s*$"))
    page.click(tid("save-button"))

    version_shown(page, 2)
    expect(page.locator(tid("value-view"))).to_contain_text("slow")
    stored = ui.get("custom", "edits", "config/retry")
    assert stored["version"] == 2
    assert stored["value"] == {"retries": 5, "mode": "slow"}


def test_a_concurrent_write_is_shown_as_a_conflict_not_overwritten(
    page_watch: tuple[Page, PageWatch], ui: UiServer, tmp_path: Path
) -> None:
    page, watch = page_watch
    watch.allow_statuses |= {409, 412}  # the refused save
    ui.put("custom", "edits", "feed/cursor", {"last_id": 100, "by": "first"})
    open_key(page, "custom", "edits", "feed/cursor")
    version_shown(page, 1)
    page.click(tid("edit-button"))
    expect(page.locator(tid("editor"))).to_be_visible()

    # Someone else writes while the page edits version 1.
    ui.put("custom", "edits", "feed/cursor", {"last_id": 250, "by": "written-meanwhile"})
    page.fill(tid("editor"), '{"last_id": 101, "by": "the-page"}')
    page.click(tid("save-button"))  # guarded by version 1, the version shown

    banner = page.locator(tid("conflict-banner"))
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(re.compile("changed meanwhile", re.IGNORECASE))
    expect(banner).to_contain_text("written-meanwhile")  # the newer value
    diff = page.locator(tid("conflict-diff"))
    expect(diff).to_be_visible()
    expect(diff).to_contain_text("last_id")
    expect(page.locator(tid("conflict-reload"))).to_be_visible()
    shot(page, "edit-conflict.png", tmp_path)

    stored = ui.get("custom", "edits", "feed/cursor")
    assert stored["version"] == 2
    assert stored["value"] == {"last_id": 250, "by": "written-meanwhile"}  # not overwritten
    history = ui.api().get("/v1/history/custom/edits/feed/cursor").json()["versions"]
    assert [v["version"] for v in history] == [2, 1]


def test_a_diff_between_two_versions(
    page_watch: tuple[Page, PageWatch], ui: UiServer, tmp_path: Path
) -> None:
    page, _ = page_watch
    ui.put("custom", "history", "snapshot", {"name": "feed", "count": 1, "old": True})
    ui.put("custom", "history", "snapshot", {"name": "feed", "count": 2, "tags": ["x"]})
    ui.put("custom", "history", "snapshot", {"name": "feed", "count": 3, "tags": ["x"]})
    open_key(page, "custom", "history", "snapshot")
    rows = page.locator(tid("history-row"))
    expect(rows).to_have_count(3)
    for version in (1, 2, 3):
        expect(page.locator(tid("history-row", version=str(version)))).to_have_count(1)

    select_version(page, "diff-from", 1)
    select_version(page, "diff-to", 2)
    view = page.locator(tid("diff-view"))
    expect(view).to_be_visible()
    expect(view.locator(".diff-changed[data-path]").first).to_be_visible()
    changed, added, removed = paths(page, "changed"), paths(page, "added"), paths(page, "removed")
    assert any(p.rstrip("]'\"").endswith("count") for p in changed), changed
    assert any("tags" in p for p in added), added
    assert any(p.rstrip("]'\"").endswith("old") for p in removed), removed
    assert not [p for p in changed + added + removed if p.rstrip("]'\"").endswith("name")]
    # The history's section at the top of the screenshot, its diff below.
    page.locator(tid("history-row")).first.evaluate(
        "row => (row.closest('section') || row).scrollIntoView({block: 'start'})"
    )
    shot(page, "history-diff.png", tmp_path)

    # Versions 2 → 3: only the count changed.
    select_version(page, "diff-from", 2)
    select_version(page, "diff-to", 3)
    expect(view.locator(".diff-removed[data-path]")).to_have_count(0)
    expect(view.locator(".diff-added[data-path]")).to_have_count(0)
    expect(view.locator(".diff-changed[data-path]")).to_have_count(1)

    # A deletion is a row of the history too.
    ui.put("custom", "history", "dropped", {"a": 1})
    assert ui.api().delete("/v1/kv/custom/history/dropped").status_code == 200
    ui.put("custom", "history", "dropped", {"a": 2})
    open_key(page, "custom", "history", "dropped")
    expect(page.locator(tid("history-row"))).to_have_count(3)
    expect(page.locator('[data-testid="history-row"][data-deleted="true"]')).to_have_count(1)


def test_rollback_to_a_version_in_one_action(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    ui.put("custom", "history", "deploy/config", {"state": "good", "replicas": 3})
    ui.put("custom", "history", "deploy/config", {"state": "broken", "replicas": 0})
    open_key(page, "custom", "history", "deploy/config")
    version_shown(page, 2)
    row = page.locator(tid("history-row", version="1"))
    row.locator(tid("rollback-button")).click()

    version_shown(page, 3)
    expect(page.locator(tid("value-view"))).to_contain_text("good")
    stored = ui.get("custom", "history", "deploy/config")
    assert stored["version"] == 3
    assert stored["value"] == {"state": "good", "replicas": 3}


def test_history_after_a_delete_and_recreate_restores_the_rows_own_value(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    """Versions start again at 1 after a deletion, and rollback addresses a version by
    its number: a row from before the latest deletion offers no rollback (it would
    reach the current life's version of that number) but "Restore this value", which
    writes that row's own value back, guarded by the version shown."""
    page, _ = page_watch
    key = "phoenix/config"
    ui.put("custom", "history", key, {"life": "first", "n": 1})
    ui.put("custom", "history", key, {"life": "first", "n": 2})
    assert ui.api().delete(f"/v1/kv/custom/history/{key}").status_code == 200
    ui.put("custom", "history", key, {"life": "second", "n": 1})
    ui.put("custom", "history", key, {"life": "second", "n": 2})
    assert ui.get("custom", "history", key)["version"] == 2  # numbers started again

    open_key(page, "custom", "history", key)
    version_shown(page, 2)
    rows = page.locator(tid("history-row"))
    expect(rows).to_have_count(5)  # newest first: 2, 1, the deletion, 2, 1
    deleted: list[str] = rows.evaluate_all("rows => rows.map(r => r.dataset.deleted)")
    assert deleted == ["false", "false", "true", "false", "false"], deleted

    # Only the current life's older version rolls back by number.
    expect(page.locator(tid("rollback-button"))).to_have_count(1)
    expect(rows.nth(1).locator(tid("rollback-button"))).to_have_count(1)
    for older in (2, 3, 4):  # the deletion and the rows of the first life
        expect(rows.nth(older).locator(tid("rollback-button"))).to_have_count(0)
    expect(rows.nth(2).locator(tid("restore-button"))).to_have_count(0)
    for older in (3, 4):
        restore = rows.nth(older).locator(tid("restore-button"))
        expect(restore).to_be_enabled()
        expect(restore).to_have_attribute("title", re.compile("deletion"))

    # Restoring the first life's version 1 writes that row's value, as a new version.
    rows.nth(4).locator(tid("restore-button")).click()
    version_shown(page, 3)
    expect(page.locator(tid("value-view"))).to_contain_text("first")
    stored = ui.get("custom", "history", key)
    assert stored["version"] == 3
    assert stored["value"] == {"life": "first", "n": 1}
    expect(rows).to_have_count(6)


def test_a_restore_is_guarded_by_the_version_shown(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, watch = page_watch
    watch.allow_statuses |= {409, 412}  # the refused restore
    key = "phoenix/guarded"
    ui.put("custom", "history", key, {"life": "first"})
    assert ui.api().delete(f"/v1/kv/custom/history/{key}").status_code == 200
    ui.put("custom", "history", key, {"life": "second"})
    open_key(page, "custom", "history", key)
    version_shown(page, 1)
    expect(page.locator(tid("restore-button"))).to_have_count(1)

    # Another write lands just before the page's PUT reaches the server (the page would
    # otherwise see it live first, and restore over the version it then shows).
    def write_meanwhile(route: Route) -> None:
        if route.request.method == "PUT":
            ui.put("custom", "history", key, {"life": "second", "written": "meanwhile"})
        route.continue_()

    page.route(f"**/v1/kv/custom/history/{key}", write_meanwhile)
    page.click(tid("restore-button"))
    expect(page.locator(tid("conflict-banner"))).to_contain_text(
        re.compile("changed meanwhile", re.IGNORECASE)
    )
    stored = ui.get("custom", "history", key)
    assert stored["value"] == {"life": "second", "written": "meanwhile"}  # not overwritten


def test_keys_and_values_holding_markup_render_as_text(
    page_watch: tuple[Page, PageWatch], ui: UiServer
) -> None:
    page, _ = page_watch
    ui.put("custom", "xss", XSS, {"html": XSS, "script": XSS_SCRIPT})
    ui.put("custom", "xss", XSS, {"html": XSS, "script": XSS_SCRIPT, XSS: XSS_SCRIPT})
    ui.put("custom", "xss", XSS_SCRIPT, [XSS])
    open_namespace(page, "custom", "xss")
    expect(page.locator(tid("key-row", key=XSS))).to_contain_text(XSS)
    expect(page.locator(tid("key-row", key=XSS_SCRIPT))).to_contain_text(XSS_SCRIPT)

    follow(page.locator(tid("key-row", key=XSS)))
    expect(page.locator(tid("key-title"))).to_contain_text(XSS)
    expect(page.locator(tid("value-view"))).to_contain_text(XSS_SCRIPT)
    select_version(page, "diff-from", 1)
    select_version(page, "diff-to", 2)
    expect(page.locator(tid("diff-view"))).to_contain_text(XSS_SCRIPT)
    go(page, "#/ks/custom/xss")
    follow(page.locator(tid("key-row", key=XSS_SCRIPT)))
    expect(page.locator(tid("value-view"))).to_contain_text(XSS)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src='x']").count() == 0, "a value became markup"
    assert page.evaluate("[...document.scripts].every(s => s.src && !s.text.trim())")
