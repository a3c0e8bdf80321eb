// Held leases (GET /v1/leases): name, holder, fencing token and expiry, a page at a time.
import { api } from "../api.js";
import { el, fill, timeEl } from "../dom.js";
import { listStatus, makePager, tellStatus } from "../pager.js";

const PAGE = 50;

export async function renderLeases(ui, token) {
  const holder = el("div", { class: "list" });
  const status = listStatus();
  const refresh = el("button", { type: "button", "data-testid": "leases-refresh" }, "Refresh");
  const pager = makePager("leases", { onPage: () => reload() });
  fill(ui.main, el("h1", {}, "Leases"),
    el("p", { class: "muted" }, "Leases held now (only those your token may read)."),
    el("div", { class: "toolbar" }, refresh), status, holder, pager.element);
  let loading = 0;
  const load = async () => {
    const mine = ++loading;
    const answer = await api.leases(pager.after, PAGE);
    if (!ui.current(token) || mine !== loading) return;
    const leases = answer.leases || [];
    pager.shown(answer.next || undefined, leases.length);
    tellStatus(status, leases.length, "lease", pager.page, leases.map((l) => `${l.name}@${l.holder}@${l.token}`).join("\u0000"));
    if (!leases.length) {
      fill(holder, el("p", { class: "empty", "data-testid": "empty-state" }, "No leases are held."));
      return;
    }
    const table = el("table", { class: "rows" });
    table.append(el("caption", { class: "sr-only" }, "Held leases"));
    table.append(el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Lease"), el("th", { scope: "col" }, "Holder"),
      el("th", { scope: "col", class: "num" }, "Token"), el("th", { scope: "col" }, "Expires"),
      el("th", { scope: "col", class: "wide" }, "Acquired"))));
    const body = el("tbody");
    for (const l of leases) {
      body.append(el("tr", { "data-testid": "lease-row", "data-name": l.name },
        el("td", {}, el("code", {}, l.name)),
        el("td", { "data-testid": "lease-holder" }, l.holder ?? "—"),
        el("td", { class: "num", "data-testid": "lease-token" }, String(l.token ?? "—")),
        el("td", {}, timeEl(l.expiresAt, "lease-expires")),
        el("td", { class: "wide" }, l.acquiredAt ? timeEl(l.acquiredAt) : "—")));
    }
    table.append(body);
    fill(holder, el("div", { class: "scroll" }, table));
  };
  const reload = () => load().catch((exc) => { if (ui.current(token)) ui.error(exc); });
  refresh.addEventListener("click", reload);
  const timer = setInterval(reload, 5000); // before the first load: cleared if the page moves on meanwhile
  ui.onLeave(() => clearInterval(timer));
  await load();
}
