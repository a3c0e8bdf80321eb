// A structural diff of two JSON values: the paths (JSON Pointers, RFC 6901) added,
// removed or changed from ``a`` to ``b``, and its rendering side by side.
import { kindOf, render, same, stringify } from "./json.js";
import { el } from "./dom.js";

function pointer(path, part) {
  return path + "/" + String(part).replaceAll("~", "~0").replaceAll("/", "~1");
}

/** [{op: "added"|"removed"|"changed", path, from, to}], in document order. */
export function diff(a, b, path = "", out = []) {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka === "object" && kb === "object") {
    for (const k of Object.keys(a)) {
      if (!(k in b)) out.push({ op: "removed", path: pointer(path, k), from: a[k] });
      else diff(a[k], b[k], pointer(path, k), out);
    }
    for (const k of Object.keys(b)) {
      if (!(k in a)) out.push({ op: "added", path: pointer(path, k), to: b[k] });
    }
  } else if (ka === "array" && kb === "array") {
    const common = Math.min(a.length, b.length);
    for (let i = 0; i < common; i++) diff(a[i], b[i], pointer(path, i), out);
    for (let i = common; i < a.length; i++) out.push({ op: "removed", path: pointer(path, i), from: a[i] });
    for (let i = common; i < b.length; i++) out.push({ op: "added", path: pointer(path, i), to: b[i] });
  } else if (!same(a, b)) {
    out.push({ op: "changed", path, from: a, to: b });
  }
  return out;
}

function short(v) {
  if (v === undefined) return "";
  const text = stringify(v, 0);
  return text.length > 200 ? text.slice(0, 199) + "…" : text;
}

/** The diff of ``a`` and ``b`` as DOM: a table of changed paths (rows .diff-added,
 *  .diff-removed, .diff-changed with data-path), then both values side by side.
 *  ``labels``: the two columns' names. ``testid``: the container's data-testid. */
export function renderDiff(a, b, labels, testid = "diff-view") {
  const changes = diff(a, b);
  const box = el("div", { class: "diff", "data-testid": testid });
  const summary = el("p", { class: "diff-summary" },
    changes.length ? `${changes.length} path${changes.length === 1 ? "" : "s"} differ` : "No differences: the two values are the same");
  box.append(summary);
  if (changes.length) {
    const table = el("table", { class: "diff-table" });
    table.append(el("caption", { class: "sr-only" }, `Changes from ${labels[0]} to ${labels[1]}`));
    const head = el("tr", {}, el("th", { scope: "col" }, "change"), el("th", { scope: "col" }, "path"),
      el("th", { scope: "col" }, labels[0]), el("th", { scope: "col" }, labels[1]));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (const c of changes) {
      const mark = { added: "+", removed: "−", changed: "~" }[c.op];
      body.append(el("tr", { class: `diff-${c.op}`, "data-path": c.path, "data-op": c.op },
        el("td", { class: "diff-op", title: c.op }, `${mark} ${c.op}`),
        el("td", { class: "diff-path" }, el("code", {}, c.path || "(the whole value)")),
        el("td", { class: "diff-from" }, el("code", {}, short(c.from))),
        el("td", { class: "diff-to" }, el("code", {}, short(c.to)))));
    }
    table.append(body);
    box.append(el("div", { class: "scroll" }, table));
  }
  const sides = el("div", { class: "diff-sides" },
    el("section", { class: "diff-side", "aria-label": labels[0] }, el("h4", {}, labels[0]),
      a === undefined ? el("p", { class: "muted" }, "(no value)") : render(a, { "data-testid": "diff-left" })),
    el("section", { class: "diff-side", "aria-label": labels[1] }, el("h4", {}, labels[1]),
      b === undefined ? el("p", { class: "muted" }, "(no value)") : render(b, { "data-testid": "diff-right" })));
  box.append(sides);
  return box;
}
