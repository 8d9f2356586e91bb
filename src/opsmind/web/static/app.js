// The dashboard's entry point: the hash router, the live event stream and the navigation badges.
//
// Routes: #/ (services), #/services/<name>, #/anomalies, #/series/<id>, #/incidents, #/incidents/<key>,
// #/recommendations, #/remediation. Each view is a function (ctx) -> Promise that renders into ctx.main; ctx.on(event, fn)
// subscribes to live events until the next navigation.

import { askToken, clearErrors, initTokenDialog, listen, load, showError } from "./api.js";
import { parseQuery, refreshRelativeTimes, setServerTime } from "./util.js";
import { anomaliesView } from "./views/anomalies.js";
import { incidentView, incidentsView } from "./views/incidents.js";
import { overviewView, serviceView } from "./views/overview.js";
import { recommendationsView } from "./views/recommendations.js";
import { remediationView } from "./views/remediation.js";
import { seriesView } from "./views/series.js";

const ROUTES = [
  [/^\/?$/, "overview", overviewView],
  [/^\/services\/(.+)$/, "overview", serviceView],
  [/^\/anomalies$/, "anomalies", anomaliesView],
  [/^\/series\/(\d+)$/, "overview", seriesView],
  [/^\/incidents$/, "incidents", incidentsView],
  [/^\/incidents\/(.+)$/, "incidents", incidentView],
  [/^\/recommendations$/, "recommendations", recommendationsView],
  [/^\/remediation$/, "remediation", remediationView],
];

const bus = new EventTarget();
const openIncidents = new Map();
const pendingRuns = new Map();
const seenAnomalies = new Set();
let newAnomalies = 0;
const TITLES = { overview: "Services", anomalies: "Anomalies", incidents: "Incidents", recommendations: "Recommendations", remediation: "Remediation" };
let current = null;

function badge(id, n) {
  const el = document.getElementById(id);
  el.textContent = n > 99 ? "99+" : String(n);
  el.hidden = n === 0;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const q = raw.indexOf("?");
  return { path: q < 0 ? raw : raw.slice(0, q), query: parseQuery(q < 0 ? "" : raw.slice(q + 1)) };
}

async function route() {
  if (current) {
    current.abort.abort();
    current.unsubscribe.forEach((fn) => fn());
    current.cleanup.forEach((fn) => fn());
  }
  const { path, query } = parseHash();
  const main = document.getElementById("main");
  const match = ROUTES.map(([re, nav, view]) => [path.match(re), nav, view]).find(([m]) => m);
  const ctx = {
    main, query, params: match ? match[0].slice(1).map(decodeURIComponent) : [], abort: new AbortController(), unsubscribe: [], cleanup: [],
    on(name, fn) {
      const listener = (e) => fn(e.detail);
      bus.addEventListener(name, listener);
      this.unsubscribe.push(() => bus.removeEventListener(name, listener));
    },
    onCleanup(fn) { this.cleanup.push(fn); },
    get active() { return current === this; },
  };
  current = ctx;
  const nav = match ? match[1] : null;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (nav === "anomalies") { newAnomalies = 0; badge("new-anomalies", 0); }
  document.title = nav ? `${TITLES[nav]} · opsmind` : "opsmind";
  clearErrors();
  if (!match) {
    main.replaceChildren();
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = `No view at ${path}.`;
    main.append(p);
    return;
  }
  try {
    await match[2](ctx);
  } catch (err) {
    if (err && err.name === "AbortError") return;
    console.warn("view failed", err);
    showError(`This view failed: ${err && err.message ? err.message : err}`);
  }
}

// runs waiting for approval (the nav badge): from the event stream and from approvals given on this page
function trackPending(run) {
  if (!run || !run.run_id) return;
  const old = pendingRuns.get(run.run_id);
  if (old && old.version > run.version) return;
  if (run.status === "pending_approval") pendingRuns.set(run.run_id, run); else pendingRuns.delete(run.run_id);
  badge("pending-approvals", pendingRuns.size);
}

function onLive(name, payload) {
  const fresh = name === "anomaly" && payload && !seenAnomalies.has(payload.id);
  if (fresh) seenAnomalies.add(payload.id);
  if (fresh && !location.hash.startsWith("#/anomalies")) {
    newAnomalies += 1;
    badge("new-anomalies", newAnomalies);
  }
  if (name === "incident" && payload && payload.key) {
    if (payload.status === "open") openIncidents.set(payload.key, payload); else openIncidents.delete(payload.key);
    badge("open-incidents", openIncidents.size);
  }
  if (name === "remediation") trackPending(payload);
  bus.dispatchEvent(new CustomEvent(name, { detail: payload }));
}

let everLive = false;
let lostLive = false;

function setLive(state) {
  // after a reconnection, reload the view: records written while the stream was down are not all replayed
  if (state === "live") {
    if (everLive && lostLive) { route(); countOpenIncidents(); countPendingRuns(); }
    everLive = true;
    lostLive = false;
  } else if (everLive) {
    lostLive = true;
  }
  const el = document.getElementById("live");
  el.dataset.state = state;
  const text = { live: "live", connecting: "connecting", offline: "reconnecting", auth: "needs token" };
  el.querySelector(".live-text").textContent = text[state] || state;
}

async function countOpenIncidents() {
  const res = await load("/incidents?status=open&limit=500");
  if (!res) return;
  openIncidents.clear();
  for (const inc of res.incidents || []) openIncidents.set(inc.key, inc);
  badge("open-incidents", openIncidents.size);
}

async function countPendingRuns() {
  const res = await load("/remediations?status=pending_approval&limit=500");
  if (!res) return;
  pendingRuns.clear();
  for (const run of res.remediations || []) pendingRuns.set(run.run_id, run);
  badge("pending-approvals", pendingRuns.size);
}

/** The server's clock (the demo's is simulated time), so "5m ago" counts from the server's now. */
async function syncClock() {
  try {
    const res = await fetch("/api/v1/health", { cache: "no-store", signal: AbortSignal.timeout(2000) });
    if (res.ok) setServerTime((await res.json()).time);
  } catch {
    // offline or slow (2 s at most, so the page never waits longer): keep the last offset
  }
}

async function start() {
  initTokenDialog();
  document.getElementById("banner-close").addEventListener("click", clearErrors);
  document.getElementById("token-button").addEventListener("click", () => {
    askToken("Set the token this dashboard sends to the API.");
  });
  document.addEventListener("opsmind:token", () => { route(); countOpenIncidents(); countPendingRuns(); });
  document.addEventListener("opsmind:remediation", (e) => trackPending(e.detail));
  window.addEventListener("hashchange", route);
  await syncClock();
  route();
  countOpenIncidents();
  countPendingRuns();
  setInterval(() => syncClock().then(() => refreshRelativeTimes()), 15000);
  const stop = listen(onLive, setLive);
  window.addEventListener("pagehide", stop);
}

start();
