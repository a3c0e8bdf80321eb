// Keyspaces (scopes → namespaces, with their entry counts) and a namespace's keys, a
// page at a time through the list API's `after`: a namespace is never loaded whole.
import { api, followChanges, may } from "../api.js";
import { el, fill, timeEl } from "../dom.js";
import { listStatus, makePager, pageOf, tellStatus } from "../pager.js";

const KEYSPACES_PAGE = 100;
const KEYS_PAGE = 50;

export const keyHash = (scope, ns, key) =>
  `#/key/${encodeURIComponent(scope)}/${encodeURIComponent(ns)}/${encodeURIComponent(key)}`;
export const nsHash = (scope, ns) => `#/ks/${encodeURIComponent(scope)}/${encodeURIComponent(ns)}`;

function empty(text) {
  return el("p", { class: "empty", "data-testid": "empty-state" }, text);
}

export async function renderKeyspaces(ui, token) {
  const heading = el("h1", {}, "Keyspaces");
  const intro = el("p", { class: "muted" }, "Scopes and their namespaces that hold entries (only those your token may read).");
  const holder = el("div", { class: "list" });
  const status = listStatus();
  const pager = makePager("keyspaces", { onPage: () => load().catch((e) => { if (ui.current(token)) ui.error(e); }) });
  fill(ui.main, heading, intro, status, holder, pager.element);
  const load = async () => {
    const answer = await api.keyspaces(pager.after, KEYSPACES_PAGE);
    if (!ui.current(token)) return;
    const keyspaces = answer.keyspaces || [];
    pager.shown(answer.next || undefined, keyspaces.length);
    tellStatus(status, keyspaces.length, "keyspace", pager.page);
    if (!keyspaces.length) { fill(holder, empty("No keyspaces to show: nothing stored yet, or none your token may read.")); return; }
    const table = el("table", { class: "rows" });
    table.append(el("caption", { class: "sr-only" }, "Keyspaces by scope"));
    table.append(el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Namespace"), el("th", { scope: "col", class: "num" }, "Entries"),
      el("th", { scope: "col", class: "wide" }, "Updated"))));
    let scope = null;
    let body = null;
    for (const ks of keyspaces) {
      if (ks.scope !== scope) {
        scope = ks.scope;
        body = el("tbody", { "data-scope": scope });
        body.append(el("tr", { class: "group" }, el("th", { scope: "colgroup", colspan: "3" }, `scope ${scope}`)));
        table.append(body);
      }
      body.append(el("tr", {
        "data-testid": "keyspace-row", "data-scope": ks.scope, "data-namespace": ks.namespace, "data-nav-row": "",
      },
      el("td", {}, el("a", { class: "row-link", href: nsHash(ks.scope, ks.namespace) },
        el("span", { class: "muted" }, `${ks.scope} / `), ks.namespace)),
      el("td", { class: "num", "data-testid": "keyspace-count" }, String(ks.entries)),
      el("td", { class: "wide" }, timeEl(ks.updatedAt))));
    }
    fill(holder, el("div", { class: "scroll" }, table));
  };
  await load();
}

export async function renderKeys(ui, token, scope, ns) {
  const writable = may("write", scope, ns);
  const filter = el("input", {
    id: "key-filter", "data-testid": "key-filter", type: "search", autocomplete: "off", spellcheck: "false",
    placeholder: "keys starting with…",
  });
  const newButton = writable ? el("button", { type: "button", "data-testid": "new-key-button" }, "New key") : null;
  const newForm = el("div", { class: "new-key", hidden: true });
  const holder = el("div", { class: "list" });
  const status = listStatus();
  let prefix = "";
  let loading = 0;
  const pager = makePager("keys", { pageInfo: true, onPage: () => reload() });
  fill(ui.main,
    el("p", { class: "crumbs" }, el("a", { href: "#/" }, "Keyspaces"), " / ", scope, " / "),
    el("h1", {}, ns, el("span", { class: "muted" }, ` (scope ${scope})`)),
    el("div", { class: "toolbar" },
      el("label", { for: "key-filter" }, "Key prefix"), filter, newButton),
    newForm, status, holder, pager.element);

  const load = async () => {
    const mine = ++loading;
    const answer = await api.list(scope, ns, { prefix, after: pager.after, limit: KEYS_PAGE + 1 });
    if (!ui.current(token) || mine !== loading) return;
    const { shown, nextAfter } = pageOf(answer.entries, KEYS_PAGE);
    pager.shown(nextAfter, shown.length);
    tellStatus(status, shown.length, "key", pager.page, `${prefix}\u0000${shown.map((e) => `${e.key}@${e.version}@${e.expiresAt || ""}`).join("\u0000")}`);
    if (!shown.length) {
      fill(holder, empty(prefix ? `No keys start with "${prefix}".` : "No keys in this namespace."));
      return;
    }
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("[data-testid=key-row]") : null;
    const focusKey = focused ? focused.dataset.key : null;
    const table = el("table", { class: "rows" });
    table.append(el("caption", { class: "sr-only" }, `Keys of ${scope}/${ns}`));
    table.append(el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Key"), el("th", { scope: "col", class: "num" }, "Version"),
      el("th", { scope: "col", class: "wide" }, "Updated"), el("th", { scope: "col", class: "wide" }, "Expires"))));
    const body = el("tbody");
    for (const e of shown) {
      body.append(el("tr", { "data-testid": "key-row", "data-key": e.key, "data-nav-row": "" },
        el("td", {}, el("a", { class: "row-link", href: keyHash(scope, ns, e.key) }, e.key),
          e.masked ? el("span", { class: "badge" }, "secret") : null),
        el("td", { class: "num" }, String(e.version)),
        el("td", { class: "wide" }, timeEl(e.updatedAt)),
        el("td", { class: "wide" }, e.expiresAt ? timeEl(e.expiresAt) : "—")));
    }
    table.append(body);
    fill(holder, el("div", { class: "scroll" }, table));
    if (focusKey) {
      const again = [...holder.querySelectorAll("[data-testid=key-row]")].find((r) => r.dataset.key === focusKey);
      if (again) again.querySelector("a").focus();
    }
  };
  const reload = () => load().catch((e) => { if (ui.current(token)) ui.error(e); });

  let debounce = null;
  filter.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      prefix = filter.value;
      pager.reset();
      reload();
    }, 250);
  });

  if (newButton) {
    newButton.addEventListener("click", async () => {
      const { newKeyForm } = await import("./key.js");
      if (!ui.current(token)) return;
      newForm.hidden = false;
      fill(newForm, newKeyForm(ui, scope, ns, () => { newForm.hidden = true; fill(newForm); newButton.focus(); }));
      newForm.querySelector("input").focus();
    });
  }
  // The change token first, then the first page, then the wait (api.js followChanges):
  // a write landing while the page lists is listed again, never missed.
  ui.onLeave(followChanges(scope, ns, {
    load: reload,
    onState: (state) => { if (ui.current(token)) ui.live(state); },
  }));
}
