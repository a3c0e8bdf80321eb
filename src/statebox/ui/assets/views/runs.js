// The runner's run records (keyspace statebox/runs; logs in statebox/logs, keyed
// RUN/STEP/stdout|stderr): a list with status and duration, and one run's steps as a
// timeline with status, attempts, output and log; a failed step stands out.
import { api, follow, followChanges } from "../api.js";
import { el, fill, seconds, timeEl } from "../dom.js";
import { listStatus, makePager, pageOf, tellStatus } from "../pager.js";
import { stringify } from "../json.js";

const PAGE = 50;
const SCOPE = "statebox";

function duration(start, end) {
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : NaN;
  if (Number.isNaN(a) || Number.isNaN(b)) return null;
  return Math.max(0, (b - a) / 1000);
}

function badge(status) {
  return el("span", { class: `badge status-${status}` }, status);
}

const runHash = (key) => `#/run/${encodeURIComponent(key)}`;

export async function renderRuns(ui, token) {
  const holder = el("div", { class: "list" });
  const status = listStatus();
  const pager = makePager("runs", { onPage: () => reload() });
  fill(ui.main, el("h1", {}, "Runs"),
    el("p", { class: "muted", "data-testid": "runs-order" },
      "The workflow runner's runs (statebox run), oldest first: run ids are time-ordered and the list API pages forward only, so the newest runs are on the last page."),
    status, holder, pager.element);
  let loading = 0;
  const load = async () => {
    const mine = ++loading;
    const answer = await api.list(SCOPE, "runs", { after: pager.after, limit: PAGE + 1, values: true });
    if (!ui.current(token) || mine !== loading) return;
    const { shown, nextAfter } = pageOf(answer.entries, PAGE);
    pager.shown(nextAfter, shown.length);
    tellStatus(status, shown.length, "run", pager.page, shown.map((e) => `${e.key}@${e.version}`).join("\u0000"));
    if (!shown.length) {
      fill(holder, el("p", { class: "empty", "data-testid": "empty-state" }, "No runs recorded in this store."));
      return;
    }
    const table = el("table", { class: "rows" });
    table.append(el("caption", { class: "sr-only" }, "Runs"));
    table.append(el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Run"), el("th", { scope: "col" }, "DAG"), el("th", { scope: "col" }, "Status"),
      el("th", { scope: "col", class: "wide" }, "Started"), el("th", { scope: "col", class: "num" }, "Duration"))));
    const body = el("tbody");
    for (const e of shown) {
      const r = e.value && typeof e.value === "object" ? e.value : {};
      const took = duration(r.started_at, r.finished_at);
      body.append(el("tr", {
        "data-testid": "run-row", "data-run": r.run_id || e.key, "data-status": r.status || "unknown",
        "data-nav-row": "", class: r.status === "failed" ? "run-failed" : "",
      },
      el("td", {}, el("a", { class: "row-link", href: runHash(e.key) }, el("code", {}, r.run_id || e.key))),
      el("td", {}, r.dag || "—"),
      el("td", {}, badge(r.status || "unknown")),
      el("td", { class: "wide" }, timeEl(r.started_at)),
      el("td", { class: "num", "data-testid": "run-duration" },
        took === null ? (r.status === "running" || r.status === "queued" ? "running" : "—") : seconds(took))));
    }
    table.append(body);
    fill(holder, el("div", { class: "scroll" }, table));
  };
  const reload = () => load().catch((exc) => { if (ui.current(token)) ui.error(exc); });
  // The change token first, then the first page, then the wait: nothing is missed.
  ui.onLeave(followChanges(SCOPE, "runs", {
    load: reload,
    settle: 200,
    onState: (state) => { if (ui.current(token)) ui.live(state); },
  }));
}

export async function renderRun(ui, token, runKey) {
  const holder = el("div");
  fill(ui.main, el("p", { class: "crumbs" }, el("a", { href: "#/runs" }, "Runs"), " /"), holder);
  let shownVersion = 0; // the run record's version on screen: the stream starts after it
  const load = async () => {
    const [got, logs] = await Promise.all([
      api.get(SCOPE, "runs", runKey),
      api.list(SCOPE, "logs", { prefix: `${runKey}/`, values: true, limit: 1000 }).catch(() => ({ entries: [] })),
    ]);
    if (!ui.current(token)) return;
    if (!got.found) {
      fill(holder, el("h1", {}, runKey), el("p", { class: "empty", "data-testid": "empty-state" }, "No such run in this store (its record may have expired)."));
      return;
    }
    shownVersion = got.version;
    const r = got.value && typeof got.value === "object" ? got.value : {};
    // A live update redraws the steps: a log the reader opened (or closed) stays so.
    const opened = new Map();
    for (const node of holder.querySelectorAll("li[data-step]")) {
      const shown = node.querySelector("details");
      if (shown) opened.set(node.dataset.step, shown.open);
    }
    const byStep = new Map();
    for (const e of logs.entries || []) {
      const v = e.value;
      if (!v || typeof v !== "object" || typeof v.text !== "string") continue;
      const key = `${v.step}\u0000${v.stream}`;
      byStep.set(key, v.text);
    }
    const logOf = (step, stream) => {
      for (const name of [step.name, step.id]) {
        if (name && byStep.has(`${name}\u0000${stream}`)) return byStep.get(`${name}\u0000${stream}`);
      }
      return null;
    };
    const total = duration(r.started_at, r.finished_at || new Date().toISOString()) || 0;
    const t0 = Date.parse(r.started_at);
    const steps = Array.isArray(r.steps) ? r.steps : [];
    const list = el("ol", { class: "timeline", "aria-label": "Steps" });
    for (const s of steps) {
      const failed = s.status === "failed";
      const took = duration(s.started_at, s.finished_at);
      const bar = el("div", { class: "bar", "aria-hidden": "true" });
      const start = Date.parse(s.started_at);
      if (total > 0 && !Number.isNaN(start)) {
        const left = Math.min(100, Math.max(0, ((start - t0) / 1000 / total) * 100));
        const end = s.finished_at ? Date.parse(s.finished_at) : Date.now();
        const width = Math.max(0.8, Math.min(100 - left, (((end - start) / 1000) / total) * 100));
        const fillBar = el("span", { class: `bar-fill status-${s.status}` });
        fillBar.style.marginLeft = `${left}%`;
        fillBar.style.width = `${width}%`;
        bar.append(fillBar);
      }
      const stdout = logOf(s, "stdout");
      const stderr = logOf(s, "stderr");
      const logText = stdout && stderr ? `${stdout}\n--- stderr ---\n${stderr}` : stdout || stderr || "";
      const shownLog = logText || (s.output ?? "");
      const wasOpen = opened.get(String(s.id || s.name));
      const details = el("details", { class: "step-details", open: wasOpen ?? failed },
        el("summary", {}, failed ? "Log (failed step)" : "Log"),
        el("pre", { class: "log", "data-testid": "step-log" }, shownLog || "(no log kept)"));
      list.append(el("li", {
        "data-testid": "step-node", "data-step": s.id || s.name, "data-status": s.status,
        class: `step status-${s.status}${failed ? " step-failed" : ""}`, tabindex: "-1",
      },
      el("div", { class: "step-head" },
        el("span", { class: "step-mark", "aria-hidden": "true" }, failed ? "✕" : s.status === "succeeded" ? "✓" : "•"),
        el("strong", { class: "step-name" }, s.name), s.id && s.id !== s.name ? el("code", {}, ` ${s.id}`) : null,
        " ", badge(s.status),
        el("span", { class: "muted", "data-testid": "step-attempts" }, ` attempts: ${s.attempts ?? 0}`),
        el("span", { class: "muted" }, ` · ${took === null ? "—" : seconds(took)}`),
        s.exit_code !== null && s.exit_code !== undefined ? el("span", { class: "muted" }, ` · exit code ${s.exit_code}`) : null),
      bar,
      s.error ? el("p", { class: "step-error" }, s.error) : null,
      s.output !== null && s.output !== undefined
        ? el("div", {}, el("span", { class: "muted" }, "output"), el("pre", { class: "output", "data-testid": "step-output" }, s.output))
        : null,
      s.child_run_id ? el("p", {}, "child run ", el("code", {}, s.child_run_id)) : null,
      details));
    }
    const took = duration(r.started_at, r.finished_at);
    const failedSteps = steps.filter((s) => s.status === "failed");
    fill(holder,
      el("h1", { "data-testid": "run-title", "data-run": r.run_id || runKey, "data-status": r.status }, `${r.dag || "run"} `, badge(r.status || "unknown")),
      el("dl", { class: "meta" },
        el("dt", {}, "Run id"), el("dd", {}, el("code", {}, r.run_id || runKey)),
        el("dt", {}, "Started"), el("dd", {}, timeEl(r.started_at)),
        el("dt", {}, "Finished"), el("dd", {}, r.finished_at ? timeEl(r.finished_at) : "not yet"),
        el("dt", {}, "Duration"), el("dd", { "data-testid": "run-duration" }, took === null ? "running" : seconds(took)),
        r.params && r.params.length ? [el("dt", {}, "Params"), el("dd", {}, el("code", {}, r.params.join(" ")))] : null,
        r.parent_run_id ? [el("dt", {}, "Parent run"), el("dd", {}, el("code", {}, r.parent_run_id))] : null),
      r.error ? el("p", { class: "step-error", "data-testid": "run-error" }, r.error) : null,
      failedSteps.length ? el("p", { class: "failed-summary" }, `Failed: ${failedSteps.map((s) => s.name).join(", ")}`) : null,
      el("h2", {}, `Steps (${steps.length})`),
      steps.length ? list : el("p", { class: "empty", "data-testid": "empty-state" }, "No steps recorded."),
      r.output !== undefined && r.output !== null ? [el("h2", {}, "Output"), el("pre", { class: "output" }, stringify(r.output))] : null);
  };
  await load();
  if (!ui.current(token)) return; // the page moved on meanwhile: no stream for it
  let timer = null;
  ui.onLeave(() => clearTimeout(timer));
  const reload = () => load().catch((exc) => { if (ui.current(token)) ui.error(exc); });
  const stop = follow(SCOPE, "runs", {
    key: runKey,
    afterVersion: shownVersion,
    onEvent: () => { clearTimeout(timer); timer = setTimeout(reload, 200); },
    onState: (state) => { if (ui.current(token)) ui.live(state); },
    onReconnect: reload,
  });
  ui.onLeave(stop);
}
