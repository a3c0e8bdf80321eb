// A key's history: every kept version, deletions included (newest first), a rollback
// per version of the key's current life (a restore of the value for older ones), and a
// structural diff between any two versions, side by side.
import { el, fill, timeEl } from "../dom.js";
import { renderDiff } from "../diff.js";
import { whoText, sizeText } from "./key.js";

function valueOf(v) {
  if (v.deleted) return undefined;
  if (v.masked) return "***";
  if (v.encoding === "base64") return `binary ${sizeText(Math.floor((v.value.length * 3) / 4) - (v.value.endsWith("==") ? 2 : v.value.endsWith("=") ? 1 : 0))} (${v.contentType || "application/octet-stream"}), sha256 ${v.hash}`;
  return v.value;
}

/** The action a history row offers a writer. Rollback (``POST /v1/rollback``) addresses
 *  a version by its number, and numbers start again at 1 after a deletion: only the rows
 *  of the key's current life (newer than its latest deletion) can be rolled back to. An
 *  older row is restored by writing its value back (a PUT guarded by the current version,
 *  or create-only when the key has no value now), which restores any row exactly. */
function rowAction(v, { isCurrent, older, writable, onRollback, onRestore }) {
  if (isCurrent) return el("span", { class: "badge" }, "current");
  if (!writable) return null;
  if (v.deleted) {
    return el("span", { class: "muted", title: "A deletion has no value to go back to: restore an older row instead." }, "—");
  }
  if (!older) {
    return el("button", { type: "button", class: "small", "data-testid": "rollback-button", "data-version": String(v.version), on: { click: () => onRollback(v.version) } }, `Roll back to ${v.version}`);
  }
  const why = "Before the key's latest deletion: version numbers started again after it, so rollback by number would reach a newer version. This writes this row's value back instead.";
  if (v.masked) {
    return el("button", { type: "button", class: "small", "data-testid": "restore-button", "data-version": String(v.version), disabled: true,
      title: "A masked value cannot be written back: reveal it first (needs a reveal grant)." }, "Restore this value");
  }
  return el("button", { type: "button", class: "small", "data-testid": "restore-button", "data-version": String(v.version), title: why,
    on: { click: () => onRestore(v) } }, "Restore this value");
}

/** ``versions``: the page of the history shown (newest first); ``beyond``: the record
 *  just older than its last row (null when none is kept), which names that row's event;
 *  ``more(button)``: shows older versions (a "More" button when given). */
export function renderHistory(box, { versions, current, currentHash, writable, onRollback, onRestore, beyond = null, more = null }) {
  // A live update re-renders the history: the versions the user chose stay chosen.
  const chosen = box.dataset.chosen === "true"
    ? [box.querySelector("#diff-from"), box.querySelector("#diff-to")].map((s) => (s ? s.value : null))
    : null;
  const heading = el("h2", { id: "history-h" }, "History");
  if (!versions.length) {
    fill(box, heading, el("p", { class: "empty", "data-testid": "empty-state" }, "No history kept for this key."));
    return;
  }
  // The diff's choices: each version with a value (an option's value is the version,
  // "N@i" for an older record of a number used again after a deletion).
  const choices = [];
  const used = new Set();
  versions.forEach((v, i) => {
    if (v.deleted) return;
    const id = used.has(v.version) ? `${v.version}@${i}` : String(v.version);
    used.add(v.version);
    choices.push({ id, v, label: `version ${v.version} · ${v.updatedAt || ""}` });
  });

  const table = el("table", { class: "rows" });
  table.append(el("caption", { class: "sr-only" }, "Versions, newest first"));
  table.append(el("thead", {}, el("tr", {},
    el("th", { scope: "col", class: "num" }, "Version"), el("th", { scope: "col" }, "Event"),
    el("th", { scope: "col" }, "When"), el("th", { scope: "col", class: "wide" }, "By"),
    el("th", { scope: "col", class: "wide" }, "Hash"), el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Actions")))));
  const body = el("tbody");
  let shownCurrent = false;
  // Newest first: the rows after the first deletion are of an earlier life of the key.
  const latestDeletion = versions.findIndex((v) => v.deleted);
  versions.forEach((v, i) => {
    const older = i + 1 < versions.length ? versions[i + 1] : beyond;
    const event = v.deleted ? "deleted" : !older || older.deleted ? "created" : "updated";
    const isCurrent = !shownCurrent && !v.deleted && current !== null && v.version === current && v.hash === currentHash;
    if (isCurrent) shownCurrent = true;
    const olderLife = latestDeletion >= 0 && i > latestDeletion;
    const rollback = rowAction(v, { isCurrent, older: olderLife, writable, onRollback, onRestore });
    body.append(el("tr", {
      "data-testid": "history-row", "data-version": String(v.version), "data-deleted": v.deleted ? "true" : "false",
      "data-older": olderLife ? "true" : "false",
      class: v.deleted ? "deleted" : olderLife ? "older" : "",
    },
    el("td", { class: "num" }, String(v.version)),
    el("td", {}, el("span", { class: `badge ev-${event}` }, event)),
    el("td", {}, timeEl(v.updatedAt)),
    el("td", { class: "wide" }, whoText(v.updatedBy)),
    el("td", { class: "wide" }, el("code", { class: "hash", title: v.hash }, (v.hash || "").slice(0, 12))),
    el("td", {}, rollback)));
  });
  table.append(body);

  const from = el("select", { id: "diff-from", "data-testid": "diff-from" });
  const to = el("select", { id: "diff-to", "data-testid": "diff-to" });
  for (const c of choices) {
    from.append(el("option", { value: c.id }, c.label));
    to.append(el("option", { value: c.id }, c.label));
  }
  const view = el("div", { class: "diff-holder" });
  const show = () => {
    const a = choices.find((c) => c.id === from.value);
    const b = choices.find((c) => c.id === to.value);
    if (!a || !b) { fill(view, el("p", { class: "muted", "data-testid": "diff-view" }, "Two versions with values are needed for a diff.")); return; }
    fill(view, renderDiff(valueOf(a.v), valueOf(b.v), [`version ${a.v.version}`, `version ${b.v.version}`]));
  };
  if (choices.length) {
    to.value = choices[0].id;
    from.value = (choices[1] || choices[0]).id;
  }
  if (chosen) {
    if (chosen[0] && choices.some((c) => c.id === chosen[0])) from.value = chosen[0];
    if (chosen[1] && choices.some((c) => c.id === chosen[1])) to.value = chosen[1];
  }
  const changed = () => { box.dataset.chosen = "true"; show(); };
  from.addEventListener("change", changed);
  to.addEventListener("change", changed);
  show();
  const moreButton = more
    ? el("button", { type: "button", "data-testid": "history-more", on: { click: (event) => more(event.currentTarget) } },
      `More: versions older than ${versions[versions.length - 1].version}`)
    : null;
  fill(box, heading, el("div", { class: "scroll" }, table),
    moreButton ? el("div", { class: "pager" }, moreButton) : null,
    el("h3", {}, "Compare two versions"),
    el("div", { class: "toolbar" },
      el("label", { for: "diff-from" }, "From"), from,
      el("label", { for: "diff-to" }, "to"), to),
    view);
}
