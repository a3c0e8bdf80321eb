// The statebox HTTP API as the page calls it: the token from sessionStorage only, sent
// as "Authorization: Bearer"; answers parsed keeping every number's literal; errors
// carried in the API's own words; the event stream read with fetch (EventSource cannot
// send a header).
import { parse } from "./json.js";

const TOKEN = "statebox.token";

export function getToken() {
  try { return sessionStorage.getItem(TOKEN) || ""; } catch { return ""; }
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN, token); else sessionStorage.removeItem(TOKEN);
}

/** An answer that is not 2xx: ``status``, ``kind`` and ``message`` as the API gave
 *  them, ``body`` (parsed), ``currentVersion`` for a conflict. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const error = body && typeof body === "object" && body.error ? body.error : null;
    super(error && error.message ? error.message : fallback);
    this.status = status;
    this.kind = error ? error.kind : "";
    this.body = body;
    this.currentVersion = error ? error.currentVersion : undefined;
  }

  get conflict() { return this.status === 409 || this.status === 412; }
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const token = getToken();
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

/** One segment of a path, or a key (its "/" kept). */
export const seg = (s) => encodeURIComponent(s);
export const keyPath = (k) => k.split("/").map(encodeURIComponent).join("/");

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== false && value !== "") params.set(name, String(value));
  }
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

export async function request(method, path, { query, body, contentType, extraHeaders, signal } = {}) {
  const init = { method, headers: headers(extraHeaders), signal, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = contentType || "application/json";
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (exc) {
    if (exc && exc.name === "AbortError") throw exc;
    throw new ApiError(0, null, `the server did not answer (${exc && exc.message ? exc.message : exc})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data, `${response.status} ${response.statusText}: ${text.slice(0, 300)}`);
  }
  return data;
}

const kv = (scope, ns, key) => `/v1/kv/${seg(scope)}/${seg(ns)}` + (key === undefined ? "" : `/${keyPath(key)}`);

export const api = {
  whoami: () => request("GET", "/v1/whoami"),
  keyspaces: (after, limit = 100) => request("GET", "/v1/keyspaces", { query: { after, limit } }),
  list: (scope, ns, { prefix, after, limit = 50, values = false } = {}) =>
    request("GET", kv(scope, ns), { query: { prefix, after, limit, include_values: values } }),
  get: (scope, ns, key, { reveal = false, version } = {}) =>
    request("GET", kv(scope, ns, key), { query: { reveal, version } }),
  history: (scope, ns, key, { reveal = false, limit } = {}) =>
    request("GET", `/v1/history/${seg(scope)}/${seg(ns)}/${keyPath(key)}`,
      { query: { include_values: true, reveal, limit } }),
  /** Write ``text`` (JSON, or bytes of ``contentType``) guarded by ``version``
   *  (If-Match), or create only. */
  put: (scope, ns, key, text, { version, create = false, ttl, contentType } = {}) =>
    request("PUT", kv(scope, ns, key), {
      query: { ttl },
      body: text,
      contentType,
      extraHeaders: create ? { "If-None-Match": "*" } : { "If-Match": `"${version}"` },
    }),
  remove: (scope, ns, key, version) =>
    request("DELETE", kv(scope, ns, key), { extraHeaders: { "If-Match": `"${version}"` } }),
  rollback: (scope, ns, key, version, expected) =>
    request("POST", `/v1/rollback/${seg(scope)}/${seg(ns)}/${keyPath(key)}`, {
      body: JSON.stringify({ version, expected_version: expected }),
    }),
  leases: (after, limit = 50) => request("GET", "/v1/leases", { query: { after, limit } }),
};

// --- grants --------------------------------------------------------------------------

let who = null;
let whoAsked = 0;

/** Who the token is (``GET /v1/whoami``); unrestricted when the server says anonymous
 *  (or predates the route: then the API refuses what the token may not do). */
export async function loadWho() {
  const mine = ++whoAsked; // only the newest answer counts (a token saved meanwhile)
  let got;
  try {
    got = await api.whoami();
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 404 || exc.status === 405)) {
      got = { name: "", anonymous: true, grants: [], unknown: true };
    } else {
      if (mine === whoAsked) who = null;
      throw exc;
    }
  }
  if (mine === whoAsked) who = got;
  return got;
}

export const currentWho = () => who;

function globToRegExp(glob) {
  let out = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) { out += "\\["; continue; }
      let body = glob.slice(i + 1, end);
      if (body.startsWith("!")) body = "^" + body.slice(1);
      out += "[" + body.replace(/\\/g, "\\\\") + "]";
      i = end;
    } else out += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(out + "$", "s");
}

function matches(grant, scope, ns) {
  try {
    return globToRegExp(grant.scope ?? "*").test(scope) && globToRegExp(grant.namespace ?? "*").test(ns);
  } catch { return false; }
}

/** Whether the token may ``access`` ("read", "write", "reveal") the keyspace. */
export function may(access, scope, ns) {
  if (!who || who.anonymous) return true;
  return (who.grants || []).some((g) => matches(g, scope, ns) && (
    access === "read" ? true : access === "write" ? g.access === "write" : g.reveal === true));
}

/** Whether the token may read anything in ``scope`` (any namespace): a grant whose
 *  scope matches it (leases: scope "lease", each lease a namespace). */
export function mayScope(scope) {
  if (!who || who.anonymous) return true;
  return (who.grants || []).some((g) => {
    try { return globToRegExp(g.scope ?? "*").test(scope); } catch { return false; }
  });
}

// --- the event stream -------------------------------------------------------------------

/** The wait between reconnects: 0.5 s, doubling to 10 s at most; ``reset()`` once a
 *  connection answered. ``wait()`` resolves at once when ``stopped()`` says so. */
function backoff(stopped) {
  let delay = 500;
  return {
    reset() { delay = 500; },
    async wait() {
      if (stopped()) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    },
  };
}

/** Follow ``/v1/events/{scope}/{ns}`` (``key`` or ``prefix``): ``onEvent(event)`` for
 *  each change, ``onState("connecting"|"connected"|"off")``. Reconnects after a break,
 *  a key stream with ``after_version`` (the last version seen), a prefix stream with
 *  ``onReconnect()`` (the view re-reads what it shows). Returns a function that stops. */
export function follow(scope, ns, { key, prefix, afterVersion, onEvent, onState, onReconnect }) {
  let stopped = false;
  let controller = null;
  let last = afterVersion;
  let first = true;
  const pause = backoff(() => stopped);
  const run = async () => {
    while (!stopped) {
      controller = new AbortController();
      onState("connecting");
      try {
        const query = key !== undefined ? { key, after_version: last } : { prefix: prefix ?? "" };
        const params = new URLSearchParams();
        for (const [n, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(n, String(v));
        const response = await fetch(`/v1/events/${seg(scope)}/${seg(ns)}?${params}`, {
          headers: headers({ Accept: "text/event-stream" }), signal: controller.signal,
          cache: "no-store", credentials: "omit",
        });
        if (!response.ok || !response.body) {
          const text = await response.text();
          let body = null;
          try { body = parse(text); } catch { /* not JSON */ }
          const error = new ApiError(response.status, body, `${response.status}`);
          if ([401, 403, 404, 400].includes(response.status)) { onState("off", error); return; }
          throw error;
        }
        onState("connected");
        if (!first && onReconnect) onReconnect();
        first = false;
        pause.reset();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
            let name = "message";
            const data = [];
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (!data.length || name === "end") continue;
            let event;
            try { event = parse(data.join("\n")); } catch { continue; }
            if (typeof event.version === "number") last = event.version;
            if (!stopped) onEvent(event);
          }
        }
      } catch (exc) {
        if (stopped || (exc && exc.name === "AbortError")) break;
      }
      if (stopped) break;
      onState("connecting");
      first = false;
      await pause.wait();
    }
  };
  run();
  return () => {
    stopped = true;
    if (controller) controller.abort();
    onState("off");
  };
}

/** Show a namespace and keep it current cheaply, through ``GET /v1/changes/{scope}/{ns}``:
 *  the change token that moves on every write there, waited on by long poll. The order
 *  is what makes it miss nothing: read the token, *then* ``load()`` (the view lists its
 *  page: one page, never the namespace), then wait for the token to move past the one
 *  read; a write landing while the page lists moves it, so it is listed again. After a
 *  break the same: a fresh token, then ``load()``, then wait. ``onState`` as for
 *  :func:`follow`. ``load`` reports its own errors. When the server refuses the token
 *  read (no grant, no such route) the page is still listed once, so its own answer
 *  (or error) shows. (An event stream on a prefix starts by reading every entry under
 *  it: for a namespace of 100,000 keys that is work the page does not need.) Returns a
 *  function that stops. */
export function followChanges(scope, ns, { load, onState, settle = 150 }) {
  let stopped = false;
  let controller = null;
  const pause = backoff(() => stopped);
  const path = `/v1/changes/${seg(scope)}/${seg(ns)}`;
  const ask = (query) => {
    controller = new AbortController();
    return request("GET", path, { query, signal: controller.signal });
  };
  const list = async () => {
    if (stopped) return;
    try { await load(); } catch { /* load reports its own errors */ }
  };
  const run = async () => {
    let listed = false; // the first list happens whatever the token read answers
    while (!stopped) {
      let known;
      try {
        onState("connecting");
        known = (await ask({})).token;
      } catch (exc) {
        if (stopped || (exc && exc.name === "AbortError")) return;
        if (exc instanceof ApiError && [400, 401, 403, 404].includes(exc.status)) {
          if (!listed) await list();
          if (!stopped) onState("off", exc);
          return;
        }
        if (!listed) { listed = true; await list(); }
        onState("connecting");
        await pause.wait();
        continue;
      }
      if (stopped) return;
      await list(); // after the token read: whatever it missed moves the token on
      listed = true;
      if (stopped) return;
      onState("connected");
      pause.reset();
      try {
        for (;;) {
          const token = (await ask({ after: known, timeout: 30 })).token;
          if (stopped) return;
          if (token === known) continue;
          known = token;
          if (settle) await new Promise((resolve) => setTimeout(resolve, settle)); // a burst: one list
          await list();
          if (stopped) return;
        }
      } catch (exc) {
        if (stopped || (exc && exc.name === "AbortError")) return;
        if (exc instanceof ApiError && [400, 401, 403, 404].includes(exc.status)) { onState("off", exc); return; }
        onState("connecting");
        await pause.wait(); // then a fresh token, a list, and the wait again
      }
    }
  };
  run();
  return () => {
    stopped = true;
    if (controller) controller.abort();
    onState("off");
  };
}
