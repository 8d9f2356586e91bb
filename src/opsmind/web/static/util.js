// Small helpers: DOM building, number and time formatting. No dependencies.

/**
 * Build an element: h("div", {class: "card", onclick: fn}, child, "text", [more]).
 * Attributes whose value is null, undefined or false are left out; children may be nodes, strings or arrays.
 */
export function h(tag, attrs, ...children) {
  const node = tag.includes(":")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(tag.indexOf(":") + 1))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** An SVG element with attributes: s("path", {d: "M0 0"}). */
export function s(tag, attrs, ...children) {
  return h(`svg:${tag}`, attrs, ...children);
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

/** A number in at most 3-4 significant digits with an SI suffix: 1234 -> "1.23k"; null -> "–". */
export function num(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  for (const [f, suffix] of SI) {
    if (a >= f) return `${trim((v / f).toPrecision(digits))}${suffix}`;
  }
  if (a === 0) return "0";
  if (a >= 0.001) return trim(v.toPrecision(digits));
  return v.toExponential(1);
}

function trim(text) {
  return text.includes(".") && !text.includes("e") ? text.replace(/\.?0+$/, "") : text;
}

/** Bytes with binary suffixes: 1536 -> "1.5 KiB". */
export function bytes(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
  return `${v < 0 ? "-" : ""}${trim(x.toPrecision(3))} ${units[i]}`;
}

/** A probability 0..1 as a percentage: 0.974 -> "97%". */
export function pct(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "–";
  return `${Math.round(p * 100)}%`;
}

/** Money per month: 1234.5 -> "$1,235". */
export function money(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return v.toLocaleString("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
}

const pad = (n) => String(n).padStart(2, "0");

let serverOffset = 0; // the server's clock minus this browser's, seconds (the demo's clock is simulated time)

/** Take the server's clock (Unix seconds, from /health) as "now" for relative times. */
export function setServerTime(t) {
  if (Number.isFinite(t)) serverOffset = t - Date.now() / 1000;
}

/** The server's "now", Unix seconds. */
export function serverNow() {
  return Date.now() / 1000 + serverOffset;
}

/** Local clock time of Unix seconds: "14:03:07" (with the date when it is not today). */
export function clock(ts, now = serverNow()) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const today = new Date(now * 1000);
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** ISO 8601 UTC text of Unix seconds, for title attributes and <time datetime>. */
export function iso(ts) {
  if (ts === null || ts === undefined) return "";
  return new Date(ts * 1000).toISOString().replace(".000Z", "Z");
}

/** How long ago: "42s ago", "5m ago", "3h ago", "2d ago" (or "in 5m" for the future). */
export function ago(ts, now = serverNow()) {
  if (ts === null || ts === undefined) return "";
  const d = now - ts;
  const a = Math.abs(d);
  const text = a < 60 ? `${Math.round(a)}s` : a < 3600 ? `${Math.round(a / 60)}m`
    : a < 86400 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

/** A <time> element: clock time, with the UTC time as its title and the relative time after it. */
export function timeEl(ts, { relative = true } = {}) {
  if (ts === null || ts === undefined) return h("span", { class: "muted" }, "–");
  return h("time", { datetime: iso(ts), title: `${iso(ts)} (UTC)` }, clock(ts),
    relative ? h("span", { class: "muted rel", "data-ts": ts }, ` ${ago(ts)}`) : null);
}

/** A series as PromQL writes it: name{a="b"} without the service label (shown on its own). */
export function selector(name, labels) {
  const inner = Object.entries(labels || {})
    .filter(([k]) => k !== "service")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`).join(",");
  return inner ? `${name}{${inner}}` : name;
}

/** A Prometheus counter by its name (_total, _count, _sum, _bucket): charts show its per-second rate, which is
 * what the engine analyses. */
export function isCounter(name) {
  return /_(total|count|sum|bucket)$/.test(name || "");
}

/** Severity rank for sorting and colours: critical 4 .. low 1, unknown 0. */
export const SEVERITY = { critical: 4, high: 3, medium: 2, low: 1 };

/** A coloured chip: chip("high", "sev-high"). */
export function chip(text, cls) {
  return h("span", { class: `chip ${cls || ""}` }, text);
}

/** Parse "a=1&b=2" into an object. */
export function parseQuery(text) {
  return Object.fromEntries(new URLSearchParams(text || ""));
}

/** Build a query string from an object, leaving out empty values: {a: 1, b: ""} -> "?a=1". */
export function query(params) {
  const entries = Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined && v !== "");
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : "";
}

/** Call `fn` at most once per `ms`, with the last arguments. */
export function throttle(fn, ms) {
  let timer = null;
  let pending = null;
  return (...args) => {
    pending = args;
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(...pending); }, ms);
  };
}

/** Merge `params` into the query of the current hash route (for filters) and re-render the view. */
export function setQuery(params) {
  const raw = location.hash.replace(/^#/, "") || "/";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const next = { ...parseQuery(q < 0 ? "" : raw.slice(q + 1)), ...params };
  history.replaceState(null, "", `#${path}${query(next)}`);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** Refresh every relative time ("5m ago") on the page; the app calls this on a timer. */
export function refreshRelativeTimes(root = document) {
  const now = serverNow();
  for (const el of root.querySelectorAll(".rel[data-ts]")) el.textContent = ` ${ago(Number(el.dataset.ts), now)}`;
}
