// One key: its value (formatted JSON, a binary's size and type with a download, a
// secret masked unless revealed), its metadata, the editor (JSON checked as you type,
// every write guarded by the version shown: If-Match), the conflict banner when someone
// wrote meanwhile, the history with diffs and rollback, and live updates.
import { ApiError, api, follow, may } from "../api.js";
import { el, fill, timeEl } from "../dom.js";
import { parse, render, stringify } from "../json.js";
import { renderDiff } from "../diff.js";
import { renderHistory } from "./history.js";
import { keyHash, nsHash } from "./browse.js";

const HISTORY_PAGE = 50;

/** Who wrote it: the principal, then the run context. */
export function whoText(updatedBy) {
  if (!updatedBy || typeof updatedBy !== "object") return "—";
  const parts = [];
  if (updatedBy.principal) parts.push(String(updatedBy.principal));
  const rest = Object.keys(updatedBy).filter((k) => k !== "principal")
    .map((k) => `${k} ${typeof updatedBy[k] === "string" ? updatedBy[k] : stringify(updatedBy[k], 0)}`);
  if (rest.length) parts.push(`(${rest.join(", ")})`);
  return parts.length ? parts.join(" ") : "—";
}

function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export function sizeText(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB (${n} bytes)`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB (${n} bytes)`;
}

/** The JSON editor: a labelled textarea whose text is checked as it is typed
 *  (editor-error names the problem, its line and column), a TTL field, Save, Cancel. */
export function editorPanel({ text, ttl, onSave, onCancel, label = "Value (JSON)", idSuffix = "" }) {
  const areaId = `editor${idSuffix}`;
  const ttlId = `ttl-input${idSuffix}`;
  const errorId = `editor-error${idSuffix}`;
  const area = el("textarea", {
    id: areaId, "data-testid": "editor", spellcheck: "false", rows: "14", autocapitalize: "off",
    "aria-describedby": errorId,
  });
  area.value = text;
  const error = el("p", { id: errorId, class: "editor-error", "data-testid": "editor-error", role: "status", "aria-live": "polite", hidden: true });
  const ttlInput = el("input", {
    id: ttlId, "data-testid": "ttl-input", type: "number", min: "0", step: "any", inputmode: "decimal",
    placeholder: "never expires",
  });
  ttlInput.value = ttl ?? "";
  const save = el("button", { type: "button", class: "primary", "data-testid": "save-button" }, "Save");
  const cancel = el("button", { type: "button", "data-testid": "cancel-button" }, "Cancel");
  const check = () => {
    try {
      parse(area.value);
      error.hidden = true;
      error.textContent = "";
      area.removeAttribute("aria-invalid");
      save.disabled = false;
      return true;
    } catch (exc) {
      error.textContent = `Invalid JSON: ${exc.message}`;
      error.hidden = false;
      area.setAttribute("aria-invalid", "true");
      save.disabled = true;
      return false;
    }
  };
  area.addEventListener("input", check);
  const submit = () => {
    if (!check()) { area.focus(); return; }
    const seconds = ttlInput.value.trim();
    onSave(area.value, seconds === "" ? undefined : seconds, save);
  };
  save.addEventListener("click", submit);
  cancel.addEventListener("click", onCancel);
  const panel = el("section", { class: "editor", "aria-label": "Editor" },
    el("label", { for: areaId }, label), area, error,
    el("div", { class: "editor-row" },
      el("label", { for: ttlId }, "TTL in seconds (empty: never expires)"), ttlInput),
    el("div", { class: "editor-row" }, save, cancel,
      el("span", { class: "muted hint" }, "Ctrl+Enter saves · Escape cancels")));
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); onCancel(); }
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
  });
  if (text) check();
  return { panel, area, check, setText: (t) => { area.value = t; check(); } };
}

/** The form of a new key in ``scope``/``ns``: created only if it does not exist. */
export function newKeyForm(ui, scope, ns, close) {
  const name = el("input", { id: "new-key-name", "data-testid": "new-key-name", type: "text", autocomplete: "off", spellcheck: "false", required: true });
  const editor = editorPanel({
    text: "{}\n",
    ttl: "",
    idSuffix: "-new",
    onCancel: close,
    onSave: async (text, ttl, button) => {
      const key = name.value.trim();
      if (!key) { ui.error(new Error("Name the new key first.")); name.focus(); return; }
      button.disabled = true;
      try {
        await api.put(scope, ns, key, text, { create: true, ttl });
        ui.clearError();
        ui.go(keyHash(scope, ns, key));
      } catch (exc) {
        ui.error(exc);
      } finally {
        button.disabled = false;
      }
    },
  });
  return el("div", { class: "card" }, el("h2", {}, "New key"),
    el("label", { for: "new-key-name" }, "Key"), name, editor.panel);
}

export async function renderKey(ui, token, scope, ns, key) {
  const writable = may("write", scope, ns);
  const revealable = may("reveal", scope, ns);
  let reveal = false;
  let entry = null; // the get's answer
  let versions = [];
  let editing = null; // {panel, ...} while the editor is open
  let seen = null; // {version, value, found}: what the page showed when the edit began
  let blobUrl = null;

  const title = el("h1", { "data-testid": "key-title", class: "key-title" }, key);
  const actions = el("div", { class: "toolbar", role: "group", "aria-label": "Actions" });
  const banner = el("section", { class: "banner conflict", "data-testid": "conflict-banner", role: "alert", hidden: true });
  const editorBox = el("div", { class: "editor-box" });
  const meta = el("dl", { class: "meta" });
  const valueBox = el("section", { class: "value", "aria-label": "Value" });
  const note = el("p", { class: "live-note", "data-testid": "live-note", role: "status", hidden: true });
  const historyBox = el("section", { class: "history", "aria-labelledby": "history-h" });
  fill(ui.main,
    el("p", { class: "crumbs" }, el("a", { href: "#/" }, "Keyspaces"), " / ", scope, " / ",
      el("a", { href: nsHash(scope, ns), "data-testid": "back-to-namespace" }, ns), " /"),
    title, actions, banner, note, editorBox, meta, valueBox, historyBox);
  ui.onLeave(() => { if (blobUrl) URL.revokeObjectURL(blobUrl); });

  const metaRow = (label, testid, value) => [
    el("dt", {}, label),
    el("dd", {}, value instanceof Node ? value : el("span", { "data-testid": testid }, value)),
  ];

  const showValue = () => {
    if (blobUrl) { URL.revokeObjectURL(blobUrl); blobUrl = null; }
    if (!entry || !entry.found) {
      fill(valueBox, el("h2", {}, "Value"), el("div", { "data-testid": "value-view", class: "empty" },
        el("p", { "data-testid": "empty-state" }, "This key has no value: it was deleted, expired or never written. Its history is below.")));
      return;
    }
    const view = el("div", { "data-testid": "value-view" });
    if (entry.masked) {
      view.append(el("p", { class: "masked" }, el("code", {}, "***"), " a secret value, masked",
        revealable ? "" : " (your token has no reveal grant here)"));
    } else if (entry.encoding === "base64") {
      const bytes = base64Bytes(entry.value);
      const type = entry.contentType || "application/octet-stream";
      // Always application/octet-stream: the browser saves it, never renders it (a stored
      // text/html or image/svg+xml would otherwise open as a page of this origin). Its
      // own type is in the text beside the link.
      blobUrl = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      const name = key.split("/").pop() || "value";
      view.append(el("p", { class: "binary" }, `binary value · ${sizeText(bytes.length)} · ${type}`, " ",
        el("a", { href: blobUrl, download: name, "data-testid": "download-link" }, "Download")));
    } else {
      view.append(render(entry.value));
    }
    fill(valueBox, el("h2", {}, "Value"), view);
  };

  const showMeta = () => {
    const newest = versions.find((v) => !v.deleted && entry && entry.found && v.version === entry.version && v.hash === entry.hash);
    if (!entry || !entry.found) { fill(meta); return; }
    const contentType = entry.contentType || "application/json";
    fill(meta,
      metaRow("Version", "meta-version", String(entry.version)),
      metaRow("Hash", "meta-hash", el("code", { "data-testid": "meta-hash", class: "hash" }, entry.hash)),
      metaRow("Created", "meta-created", timeEl(newest && newest.createdAt, "meta-created")),
      metaRow("Updated", "meta-updated", timeEl(newest && newest.updatedAt, "meta-updated")),
      metaRow("Updated by", "meta-updated-by", whoText(newest && newest.updatedBy)),
      metaRow("Expires", "meta-expires", entry.expiresAt ? timeEl(entry.expiresAt, "meta-expires")
        : el("span", { "data-testid": "meta-expires" }, "never (no TTL)")),
      metaRow("Content type", "meta-content-type", contentType));
  };

  const showActions = () => {
    const buttons = [];
    if (entry && entry.masked && revealable) {
      buttons.push(el("button", { type: "button", "data-testid": "reveal-button", on: { click: () => { reveal = true; load(); } } }, "Reveal"));
    } else if (reveal && entry && !entry.masked) {
      buttons.push(el("button", { type: "button", "data-testid": "hide-button", on: { click: () => { reveal = false; load(); } } }, "Hide"));
    }
    if (writable && entry && entry.found && entry.encoding !== "base64") {
      buttons.push(el("button", { type: "button", "data-testid": "edit-button", on: { click: () => openEditor() } }, "Edit"));
    }
    if (writable && entry && !entry.found) {
      buttons.push(el("button", { type: "button", "data-testid": "edit-button", on: { click: () => openEditor() } }, "Write a new value"));
    }
    if (writable && entry && entry.found && confirming !== null) {
      // The inline confirmation: nothing is deleted on one click.
      const cancel = el("button", { type: "button", "data-testid": "delete-cancel", on: { click: () => cancelDelete() } }, "Keep it");
      const confirm = el("button", { type: "button", class: "danger", "data-testid": "delete-confirm",
        on: { click: () => { const version = confirming; confirming = null; remove(version); } } }, "Delete");
      const box = el("span", { class: "confirm", role: "group", "aria-labelledby": "delete-question" },
        el("strong", { id: "delete-question" }, `Really delete version ${confirming} of this key?`), " ", confirm, " ", cancel);
      box.addEventListener("keydown", (event) => {
        if (event.key === "Escape") { event.preventDefault(); cancelDelete(); }
      });
      buttons.push(box);
    } else if (writable && entry && entry.found) {
      buttons.push(el("button", { type: "button", class: "danger", "data-testid": "delete-button", on: { click: () => askDelete() } }, "Delete"));
    }
    // A re-render (a live update) keeps the focus on the same action.
    const had = document.activeElement && actions.contains(document.activeElement)
      ? document.activeElement.dataset.testid : null;
    fill(actions, buttons);
    if (had) {
      const again = actions.querySelector(`[data-testid="${had}"]`);
      if (again) again.focus();
    }
  };

  let confirming = null; // the version a delete waits to be confirmed for
  const askDelete = () => {
    confirming = entry.version;
    showActions();
    const cancel = actions.querySelector("[data-testid=delete-cancel]");
    if (cancel) cancel.focus();
  };
  const cancelDelete = () => {
    confirming = null;
    showActions();
    const again = actions.querySelector("[data-testid=delete-button]");
    if (again) again.focus();
  };

  const remainingTtl = () => {
    if (!entry || !entry.expiresAt) return "";
    const left = (Date.parse(entry.expiresAt) - Date.now()) / 1000;
    return left > 0 ? String(Math.ceil(left)) : "";
  };

  const closeEditor = () => {
    editing = null;
    seen = null;
    fill(editorBox);
    banner.hidden = true;
    fill(banner);
    note.hidden = true;
    const edit = actions.querySelector("[data-testid=edit-button]");
    if (edit) edit.focus();
  };

  const openEditor = (text) => {
    seen = { found: !!(entry && entry.found), version: entry && entry.found ? entry.version : null, value: entry && entry.found ? entry.value : undefined, masked: !!(entry && entry.masked) };
    let start = text;
    if (start === undefined) {
      start = entry && entry.found && !entry.masked ? stringify(entry.value) + "\n" : "";
    }
    editing = editorPanel({
      text: start,
      ttl: remainingTtl(),
      label: entry && entry.masked ? "New value (JSON; the current one is masked)" : "Value (JSON)",
      onCancel: closeEditor,
      onSave: (t, ttl, button) => save(t, ttl, button),
    });
    fill(editorBox, editing.panel);
    editing.area.focus();
  };

  const save = async (text, ttl, button) => {
    button.disabled = true;
    try {
      if (seen.found) await api.put(scope, ns, key, text, { version: seen.version, ttl });
      else await api.put(scope, ns, key, text, { create: true, ttl });
      ui.clearError();
      closeEditor();
      await load();
    } catch (exc) {
      if (exc instanceof ApiError && exc.conflict) await conflict(exc, text, ttl);
      else ui.error(exc);
    } finally {
      button.disabled = false;
    }
  };

  /** Someone wrote meanwhile: say so, show the newer value and the diff from what the
   *  page showed; offer to reload, or to re-apply the edit on the newer version. */
  const conflict = async (exc, text, ttl) => {
    const before = seen || { found: !!(entry && entry.found), version: entry && entry.version, value: entry && entry.value };
    await load({ keepEditor: true });
    const now = entry;
    const by = versions.find((v) => now && now.found && v.version === now.version && !v.deleted);
    const said = now && now.found
      ? `This key changed meanwhile: you saw ${before.found ? "version " + before.version : "no value"}, it is now at version ${now.version}${by && whoText(by.updatedBy) !== "—" ? " (written by " + whoText(by.updatedBy) + ")" : ""}. Nothing was overwritten.`
      : `This key changed meanwhile: it was deleted after you loaded version ${before.version}. Nothing was overwritten.`;
    const reloadButton = el("button", { type: "button", "data-testid": "conflict-reload" }, "Discard my edit, show the newer value");
    const reapply = text !== undefined
      ? el("button", { type: "button", class: "primary", "data-testid": "conflict-reapply" }, "Edit my change on the newer value")
      : null;
    fill(banner,
      el("h2", {}, "Changed meanwhile"),
      el("p", {}, said),
      el("p", { class: "muted" }, "The API said: ", exc.message),
      renderDiff(before.found ? before.value : undefined, now && now.found ? now.value : undefined,
        [before.found ? `you saw (version ${before.version})` : "you saw (no value)",
          now && now.found ? `now (version ${now.version})` : "now (deleted)"], "conflict-diff"),
      el("div", { class: "toolbar" }, reapply, reloadButton));
    banner.hidden = false;
    reloadButton.addEventListener("click", () => { closeEditor(); load(); });
    if (reapply) {
      reapply.addEventListener("click", () => {
        banner.hidden = true;
        fill(banner);
        openEditor(text);
        if (ttl !== undefined) editing.panel.querySelector("[data-testid=ttl-input]").value = ttl;
      });
    }
    banner.scrollIntoView({ block: "nearest" });
    (reapply || reloadButton).focus();
  };

  /** Delete, guarded by the version the confirmation named: a write meanwhile is a
   *  conflict, shown as such, never a blind delete. */
  const remove = async (version) => {
    try {
      await api.remove(scope, ns, key, version);
      ui.clearError();
      await load();
    } catch (exc) {
      if (exc instanceof ApiError && exc.conflict) {
        seen = { found: true, version, value: entry.value };
        await conflict(exc, undefined, undefined);
      } else ui.error(exc);
    }
  };

  const rollback = async (version) => {
    const expected = entry && entry.found ? entry.version : 0;
    try {
      await api.rollback(scope, ns, key, version, expected);
      ui.clearError();
      await load();
    } catch (exc) {
      if (exc instanceof ApiError && exc.conflict) {
        seen = { found: !!(entry && entry.found), version: expected, value: entry && entry.value };
        await conflict(exc, undefined, undefined);
      } else ui.error(exc);
    }
  };

  /** Write the value of history row ``v`` back: a PUT guarded by the version shown
   *  (create-only when the key has no value now), so a write meanwhile is a conflict. */
  const restore = async (v) => {
    const found = !!(entry && entry.found);
    const expected = found ? entry.version : null;
    const guard = found ? { version: expected } : { create: true };
    try {
      if (v.encoding === "base64") {
        await api.put(scope, ns, key, base64Bytes(v.value), { ...guard, contentType: v.contentType || "application/octet-stream" });
      } else {
        await api.put(scope, ns, key, stringify(v.value, 0), guard);
      }
      ui.clearError();
      await load();
    } catch (exc) {
      if (exc instanceof ApiError && exc.conflict) {
        seen = { found, version: expected, value: entry && entry.value };
        await conflict(exc, undefined, undefined);
      } else ui.error(exc);
    }
  };

  let loading = null;
  let again = false;
  const refresh = () => {
    if (loading) { again = true; return; }
    loading = load({ live: true }).catch((exc) => ui.error(exc)).finally(() => {
      loading = null;
      if (again) { again = false; refresh(); }
    });
  };
  // The history a page at a time (newest first): a live event re-reads the value and
  // this many versions, never the whole history; "More" shows HISTORY_PAGE older ones.
  let historyLimit = HISTORY_PAGE;
  let moreHistory = false;
  // ``live``: a reload for a live event (or a reconnect): a conflict banner shown stays
  // until its own buttons close it.
  const load = async ({ keepEditor = false, live = false } = {}) => {
    const [got, history] = await Promise.all([
      api.get(scope, ns, key, { reveal }),
      api.history(scope, ns, key, { reveal, limit: historyLimit + 1 }).catch((exc) => ({ error: exc })),
    ]);
    if (!ui.current(token)) return;
    entry = got;
    const all = history.error ? [] : history.versions || [];
    moreHistory = all.length > historyLimit;
    versions = all.slice(0, historyLimit);
    const beyond = moreHistory ? all[historyLimit] : null; // what the last row shown follows
    if (!keepEditor && !live && !editing) { banner.hidden = true; fill(banner); }
    showActions();
    showMeta();
    showValue();
    renderHistory(historyBox, {
      versions,
      current: entry && entry.found ? entry.version : null,
      currentHash: entry && entry.found ? entry.hash : null,
      writable,
      onRollback: rollback,
      onRestore: restore,
      beyond,
      more: moreHistory ? showMore : null,
    });
    if (history.error) ui.error(history.error);
  };
  const showMore = async (button) => {
    historyLimit += HISTORY_PAGE;
    button.disabled = true;
    try {
      await load({ keepEditor: true });
    } catch (exc) {
      ui.error(exc);
    }
    // Focus stays in the history: on the first of the rows just shown.
    const rows = historyBox.querySelectorAll("[data-testid=history-row]");
    const first = rows[historyLimit - HISTORY_PAGE];
    const target = first ? first.querySelector("button") || historyBox.querySelector("[data-testid=history-more]") : null;
    if (target) target.focus();
  };

  await load();
  if (!ui.current(token)) return; // the page moved on while it loaded: no stream for it

  const stop = follow(scope, ns, {
    key,
    afterVersion: entry && entry.found ? entry.version : 0,
    onState: (state) => { if (ui.current(token)) ui.live(state); },
    onEvent: () => {
      if (!ui.current(token)) return;
      if (editing) {
        note.textContent = "This key changed while you edit it: saving will show you the newer value first.";
        note.hidden = false;
        return;
      }
      refresh();
    },
    onReconnect: () => { if (!editing) load({ live: true }).catch((exc) => ui.error(exc)); },
  });
  ui.onLeave(stop);
}
