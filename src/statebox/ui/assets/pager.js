// The pager every list shares (keyspaces, keys, runs, leases): Previous / Next through
// the API's `after`, a stack of the pages before; and the list's status line, the one
// live region of a list (a live reload announces "12 keys shown, updated …", never the
// whole table again).
import { el } from "./dom.js";

/** A pager whose buttons are ``{name}-prev`` / ``{name}-next`` (and ``{name}-page``,
 *  "page N", with ``pageInfo``). ``onPage()`` loads the page at ``pager.after``; after
 *  each load the view calls ``pager.shown(nextAfter, count)`` (``nextAfter``: where the
 *  next page starts, absent on the last page). */
export function makePager(name, { onPage, pageInfo = false }) {
  const prev = el("button", { type: "button", "data-testid": `${name}-prev`, disabled: true }, "← Previous");
  const next = el("button", { type: "button", "data-testid": `${name}-next`, disabled: true }, "Next →");
  const info = pageInfo ? el("span", { class: "muted", "data-testid": `${name}-page` }) : null;
  let stack = [];
  let after;
  let nextAfter;
  prev.addEventListener("click", () => { after = stack.pop(); onPage(); });
  next.addEventListener("click", () => { stack.push(after); after = nextAfter; onPage(); });
  return {
    element: el("div", { class: "pager" }, prev, info, next),
    get after() { return after; },
    get page() { return stack.length + 1; },
    shown(start, count) {
      nextAfter = start === null ? undefined : start;
      prev.disabled = !stack.length;
      next.disabled = nextAfter === undefined;
      if (info) info.textContent = count ? `page ${stack.length + 1}` : "";
    },
    /** Back to the first page (a new filter). */
    reset() { stack = []; after = undefined; },
  };
}

/** A page of the list API asked with ``limit: size + 1``: the rows to show and where
 *  the next page starts (the last shown key; undefined when no more follow). */
export function pageOf(entries, size) {
  const shown = (entries || []).slice(0, size);
  const more = (entries || []).length > size;
  return { shown, nextAfter: more ? shown[shown.length - 1].key : undefined };
}

/** A list's status line: the list's live region (polite). */
export function listStatus() {
  return el("p", { class: "muted list-status", role: "status", "aria-live": "polite", "data-testid": "list-status" });
}

/** "12 keys shown · page 2", then, after a reload that changed what is shown
 *  (``signature`` differs), "… · updated 14:02:11". A reload that changed nothing
 *  leaves the line, so nothing is announced again. */
export function tellStatus(status, count, noun, page, signature = "") {
  const sig = `${page}\u0000${count}\u0000${signature}`;
  if (status.dataset.sig === sig) return;
  const again = status.dataset.sig !== undefined;
  status.dataset.sig = sig;
  const time = again ? ` · updated ${new Date().toLocaleTimeString()}` : "";
  status.textContent = `${count} ${noun}${count === 1 ? "" : "s"} shown${page > 1 ? ` · page ${page}` : ""}${time}`;
}
