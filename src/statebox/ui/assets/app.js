// The page's entry: the hash router, the header (token, theme, live indicator), the
// error banner and the keyboard. Views live in views/*.js; each renders into <main>
// and may register what to stop when the page moves on (an event stream).
import { ApiError, may, mayScope } from "./api.js";
import { el, fill } from "./dom.js";
import { initToken } from "./views/token.js";
import { renderKeyspaces, renderKeys } from "./views/browse.js";
import { renderKey } from "./views/key.js";
import { renderRuns, renderRun } from "./views/runs.js";
import { renderLeases } from "./views/leases.js";

const main = document.getElementById("main");
const banner = document.getElementById("error-banner");
const bannerText = document.getElementById("error-text");
const live = document.getElementById("live-indicator");
let cleanups = [];
let generation = 0;

export const ui = {
  main,
  /** Show an API error (or any failure) in the banner, in the API's own words. */
  error(exc) {
    if (exc && exc.name === "AbortError") return;
    let text;
    if (exc instanceof ApiError) {
      text = exc.status ? `${exc.message} (HTTP ${exc.status}${exc.kind ? ", " + exc.kind : ""})` : exc.message;
    } else {
      text = exc && exc.message ? exc.message : String(exc);
    }
    bannerText.textContent = text;
    banner.hidden = false;
  },
  clearError() {
    banner.hidden = true;
    bannerText.textContent = "";
  },
  /** The live indicator: "connecting", "connected" or "off". */
  live(state) {
    live.dataset.state = state;
    live.textContent = { connected: "live", connecting: "connecting…", off: "off" }[state] || state;
    live.title = state === "connected" ? "updates arrive as the data changes" : "live updates " + state;
  },
  /** Whether the server refused the page's token (or the lack of one): GET /v1/whoami
   *  answered 401. Until a token is saved no view is shown and no other call made. */
  tokenNeeded: false,
  /** The pending (or last) GET /v1/whoami, set by the token field. */
  whoReady: Promise.resolve(),
  onLeave(fn) { cleanups.push(fn); },
  /** Whether the view that asked is still the one shown (answers may come late). */
  current(token) { return token === generation; },
  go(hash) {
    if (location.hash === hash) route(); else location.hash = hash;
  },
  rerender: () => route(),
};

document.getElementById("error-close").addEventListener("click", () => ui.clearError());

function leave() {
  for (const fn of cleanups) {
    try { fn(); } catch { /* already stopped */ }
  }
  cleanups = [];
  ui.live("off");
}

/** Whether the address is one of the router's (``#/…``, or none): another fragment (the
 *  skip link's ``#main``, an anchor) is not a page and changes nothing. */
const routed = () => location.hash === "" || location.hash === "#" || location.hash.startsWith("#/");

function parts() {
  if (!routed()) return [];
  const hash = location.hash.replace(/^#\/?/, "");
  return hash ? hash.split("/").map((p) => { try { return decodeURIComponent(p); } catch { return p; } }) : [];
}

/** Runs and Leases only when the token may read them (whoami's grants): the runner's
 *  records are in statebox/runs, each lease is a namespace of scope "lease". */
function showNav() {
  const show = (testid, allowed) => {
    const link = document.querySelector(`nav [data-testid=${testid}]`);
    if (link && link.parentElement) link.parentElement.hidden = !allowed;
  };
  show("nav-runs", ui.tokenNeeded || may("read", "statebox", "runs"));
  show("nav-leases", ui.tokenNeeded || mayScope("lease"));
}

/** After a page changed: focus its heading, so a screen reader says where it is now
 *  (not while someone types in a field, or uses a control the view put in <main>). */
function focusHeading(token) {
  if (!ui.current(token)) return;
  const active = document.activeElement;
  if (active && active !== document.body && active !== main && active.closest) {
    if (active.matches("input, textarea, select, [contenteditable]")) return;
    if (main.contains(active)) return;
  }
  const heading = main.querySelector("h1");
  if (!heading) return;
  if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: true });
}

function markNav(name) {
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.testid === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

async function route() {
  leave();
  generation += 1;
  const token = generation;
  const [what, ...rest] = parts();
  fill(main);
  // Who the token is comes first: no view calls the API before the server said.
  for (let asked = null; asked !== ui.whoReady;) { // (a token saved meanwhile: its answer)
    asked = ui.whoReady;
    try { await asked; } catch { /* shown by the token field */ }
  }
  if (!ui.current(token)) return;
  showNav();
  if (ui.tokenNeeded) {
    markNav("");
    fill(main, el("h1", {}, "A token is needed"),
      el("p", { class: "empty", "data-testid": "token-needed" },
        "This server needs a token: paste one in the Token field above and press Use. ",
        "It is kept in this tab only."));
    focusHeading(token);
    return;
  }
  try {
    if (!what) { markNav("nav-keyspaces"); await renderKeyspaces(ui, token); }
    else if (what === "ks" && rest.length >= 2) { markNav("nav-keyspaces"); await renderKeys(ui, token, rest[0], rest[1]); }
    else if (what === "key" && rest.length >= 3) {
      markNav("nav-keyspaces");
      await renderKey(ui, token, rest[0], rest[1], rest.slice(2).join("/"));
    } else if (what === "runs") { markNav("nav-runs"); await renderRuns(ui, token); }
    else if (what === "run" && rest.length >= 1) { markNav("nav-runs"); await renderRun(ui, token, rest.join("/")); }
    else if (what === "leases") { markNav("nav-leases"); await renderLeases(ui, token); }
    else { fill(main, el("h1", {}, "No such page"), el("p", {}, "No such page: ", location.hash)); }
  } catch (exc) {
    if (ui.current(token)) ui.error(exc);
  }
  focusHeading(token);
}

// --- theme ------------------------------------------------------------------------------
const THEME = "statebox.theme";
const toggle = document.getElementById("theme-toggle");
const prefersDark = window.matchMedia("(prefers-color-scheme: dark)");

function effectiveTheme() {
  const chosen = document.documentElement.dataset.theme;
  return chosen || (prefersDark.matches ? "dark" : "light");
}

function showTheme() {
  const dark = effectiveTheme() === "dark";
  document.documentElement.dataset.scheme = dark ? "dark" : "light"; // what app.css styles
  toggle.setAttribute("aria-pressed", String(dark));
  toggle.textContent = dark ? "Light theme" : "Dark theme";
  toggle.title = dark ? "Switch to the light theme" : "Switch to the dark theme";
}

try {
  const saved = localStorage.getItem(THEME);
  if (saved === "dark" || saved === "light") document.documentElement.dataset.theme = saved;
} catch { /* storage refused: follow the system */ }
toggle.addEventListener("click", () => {
  const next = effectiveTheme() === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem(THEME, next); } catch { /* kept for this page only */ }
  showTheme();
});
prefersDark.addEventListener("change", showTheme);
showTheme();

// --- keyboard: j/k or arrows move in lists, Enter opens, Escape closes ----------------
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  const typing = target instanceof HTMLElement &&
    (target.matches("input, textarea, select") || target.isContentEditable);
  if (typing) return;
  const down = event.key === "j" || event.key === "ArrowDown";
  const up = event.key === "k" || event.key === "ArrowUp";
  if (!down && !up) return;
  const links = [...main.querySelectorAll("[data-nav-row] a.row-link")];
  if (!links.length) return;
  const at = links.indexOf(document.activeElement);
  const next = at < 0 ? (down ? 0 : links.length - 1) : Math.max(0, Math.min(links.length - 1, at + (down ? 1 : -1)));
  links[next].focus();
  event.preventDefault();
});
// A click anywhere on a row of a list opens it, as its link does (the link stays for the
// keyboard, middle-click and "open in a new tab"); not a click on another control in the
// row, a modified click, or the end of a text selection.
main.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const target = event.target instanceof Element ? event.target : null;
  const row = target ? target.closest("[data-nav-row]") : null;
  if (!row || target.closest("a, button, input, select, textarea, summary, label")) return;
  const selection = window.getSelection();
  if (selection && !selection.isCollapsed && row.contains(selection.anchorNode)) return;
  const link = row.querySelector("a.row-link[href]");
  if (link) ui.go(link.getAttribute("href"));
});
main.addEventListener("focusin", (event) => {
  for (const row of main.querySelectorAll("[data-nav-row].selected")) row.classList.remove("selected");
  const row = event.target instanceof Element ? event.target.closest("[data-nav-row]") : null;
  if (row) row.classList.add("selected");
});

// The skip link moves focus to <main> itself: "#main" is no page of the router.
document.querySelector("a.skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
  main.scrollIntoView({ block: "start" });
});
window.addEventListener("hashchange", () => {
  if (!routed()) return; // an in-page anchor, not a page: the view and its streams stay
  ui.clearError();
  route();
});
initToken(ui).finally(() => route());
