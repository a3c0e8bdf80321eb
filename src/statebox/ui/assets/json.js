// JSON for the page: a parser that keeps every number's literal (1.50 stays 1.50, large
// integers stay exact) and says where a document is wrong, a formatter, and a renderer
// that builds syntax-highlighted DOM nodes (text only ever goes in through textContent).

/** A number whose literal JavaScript cannot hold exactly (a fraction, an exponent, a
 *  large integer): kept as written. */
export class LosslessNumber {
  constructor(raw) { this.raw = raw; }
  toString() { return this.raw; }
}

export class JsonError extends Error {
  constructor(message, position, text) {
    const { line, column } = lineColumn(text, position);
    super(`${message} at line ${line}, column ${column}`);
    this.reason = message;
    this.position = position;
    this.line = line;
    this.column = column;
  }
}

function lineColumn(text, position) {
  let line = 1;
  let start = 0;
  for (let i = 0; i < position && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; start = i + 1; }
  }
  return { line, column: position - start + 1 };
}

const MAX_DEPTH = 256;

/** Parse ``text`` as one JSON document; objects have no prototype (a "__proto__" key is
 *  just a key), numbers that are not safe integers are LosslessNumbers. Throws
 *  JsonError naming the problem, its line and column. */
export function parse(text) {
  let i = 0;
  const n = text.length;
  const fail = (message, at = i) => { throw new JsonError(message, at, text); };
  const describe = (at) => at >= n ? "end of input" : `character ${JSON.stringify(text[at])}`;
  const space = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++; else break;
    }
  };
  const value = (depth) => {
    space();
    if (i >= n) fail("Unexpected end of input: a value was expected");
    const c = text[i];
    if (c === "{") return object(depth + 1);
    if (c === "[") return array(depth + 1);
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) { i += word.length; return result; }
    }
    return fail(`Unexpected ${describe(i)}: a value was expected`);
  };
  const object = (depth) => {
    if (depth > MAX_DEPTH) fail(`Nested more than ${MAX_DEPTH} levels`);
    i++;
    const out = Object.create(null);
    space();
    if (text[i] === "}") { i++; return out; }
    for (;;) {
      space();
      if (text[i] !== '"') fail(`Unexpected ${describe(i)}: a property name in double quotes was expected`);
      const key = string();
      space();
      if (text[i] !== ":") fail(`Unexpected ${describe(i)}: ":" was expected after the property name`);
      i++;
      out[key] = value(depth);
      space();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "}") { i++; return out; }
      fail(`Unexpected ${describe(i)}: "," or "}" was expected`);
    }
  };
  const array = (depth) => {
    if (depth > MAX_DEPTH) fail(`Nested more than ${MAX_DEPTH} levels`);
    i++;
    const out = [];
    space();
    if (text[i] === "]") { i++; return out; }
    for (;;) {
      out.push(value(depth));
      space();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "]") { i++; return out; }
      fail(`Unexpected ${describe(i)}: "," or "]" was expected`);
    }
  };
  const string = () => {
    const start = i;
    i++;
    let out = "";
    let run = i;
    for (;;) {
      if (i >= n) fail("Unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 34) { out += text.slice(run, i); i++; return out; }
      if (c < 32) fail("A control character in a string must be escaped");
      if (c === 92) {
        out += text.slice(run, i);
        const e = text[i + 1];
        const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e in simple) { out += simple[e]; i += 2; }
        else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail("Invalid escape in a string");
        run = i;
        continue;
      }
      i++;
    }
  };
  const number = () => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 1100));
    if (!match) fail("Invalid number");
    i += match[0].length;
    const raw = match[0];
    if (!match[2] && !match[3]) {
      const v = Number(raw);
      if (Number.isSafeInteger(v) && !(v === 0 && raw.startsWith("-"))) return v;
    }
    return new LosslessNumber(raw);
  };
  const result = value(0);
  space();
  if (i < n) fail(`Unexpected ${describe(i)} after the end of the document`);
  return result;
}

export function kindOf(v) {
  if (v === null) return "null";
  if (v instanceof LosslessNumber || typeof v === "number") return "number";
  if (Array.isArray(v)) return "array";
  return typeof v; // string, boolean, object
}

function numberText(v) {
  return v instanceof LosslessNumber ? v.raw : String(v);
}

/** ``v`` as JSON text, indented by ``indent`` spaces (0: compact). */
export function stringify(v, indent = 2) {
  const pad = (d) => (indent ? "\n" + " ".repeat(indent * d) : "");
  const sep = indent ? ": " : ":";
  const walk = (x, d) => {
    switch (kindOf(x)) {
      case "null": return "null";
      case "number": return numberText(x);
      case "boolean": return x ? "true" : "false";
      case "string": return JSON.stringify(x);
      case "array":
        if (!x.length) return "[]";
        return "[" + x.map((e) => pad(d + 1) + walk(e, d + 1)).join(",") + pad(d) + "]";
      default: {
        const keys = Object.keys(x);
        if (!keys.length) return "{}";
        return "{" + keys.map((k) => pad(d + 1) + JSON.stringify(k) + sep + walk(x[k], d + 1)).join(",") + pad(d) + "}";
      }
    }
  };
  return walk(v, 0);
}

/** Whether two parsed values are the same JSON (numbers by their literal). */
export function same(a, b) {
  const ka = kindOf(a);
  if (ka !== kindOf(b)) return false;
  if (ka === "number") return numberText(a) === numberText(b);
  if (ka === "array") return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (ka === "object") {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && same(a[k], b[k]));
  }
  return a === b;
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

/** ``v`` formatted and highlighted, as DOM nodes in a <pre> (classes j-key, j-str,
 *  j-num, j-bool, j-null, j-punct). */
export function render(v, attrs = {}) {
  const pre = document.createElement("pre");
  pre.className = "json";
  for (const [name, value] of Object.entries(attrs)) pre.setAttribute(name, value);
  const out = [];
  const text = (t) => out.push(document.createTextNode(t));
  const walk = (x, d) => {
    const pad = "\n" + "  ".repeat(d + 1);
    switch (kindOf(x)) {
      case "null": out.push(span("j-null", "null")); return;
      case "number": out.push(span("j-num", numberText(x))); return;
      case "boolean": out.push(span("j-bool", x ? "true" : "false")); return;
      case "string": out.push(span("j-str", JSON.stringify(x))); return;
      case "array":
        if (!x.length) { out.push(span("j-punct", "[]")); return; }
        out.push(span("j-punct", "["));
        x.forEach((e, i) => {
          text(pad);
          walk(e, d + 1);
          if (i < x.length - 1) out.push(span("j-punct", ","));
        });
        text("\n" + "  ".repeat(d));
        out.push(span("j-punct", "]"));
        return;
      default: {
        const keys = Object.keys(x);
        if (!keys.length) { out.push(span("j-punct", "{}")); return; }
        out.push(span("j-punct", "{"));
        keys.forEach((k, i) => {
          text(pad);
          out.push(span("j-key", JSON.stringify(k)));
          out.push(span("j-punct", ": "));
          walk(x[k], d + 1);
          if (i < keys.length - 1) out.push(span("j-punct", ","));
        });
        text("\n" + "  ".repeat(d));
        out.push(span("j-punct", "}"));
      }
    }
  };
  walk(v, 0);
  const frag = document.createDocumentFragment();
  for (const node of out) frag.appendChild(node);
  pre.appendChild(frag);
  return pre;
}
