// Services overview (a card per service: health, RED, USE, open incidents, sparkline) and one service's page.

import { load } from "../api.js";
import { sparkline } from "../chart.js";
import { anomalyList, empty, failed, pageHead, seriesLink, upsertAnomaly } from "../components.js";
import { bytes, chip, h, isCounter, num, pct, query, selector, throttle, timeEl } from "../util.js";

const STATUS_ORDER = { critical: 0, warn: 1, unknown: 2, ok: 3 };
const LOAD_NAMES = ["rate", "requests", "rps", "throughput", "load"];

/** The series a service's sparkline shows: its load series by name, else its first. */
function pickLoadSeries(series) {
  for (const name of LOAD_NAMES) {
    const hit = series.find((s) => s.name === name) || series.find((s) => s.name.includes(name));
    if (hit) return hit;
  }
  return series[0] || null;
}

async function loadSpark(service, signal) {
  const list = await load(`/series${query({ service, limit: 50 })}`, { signal });
  const series = list && pickLoadSeries(list.series || []);
  if (!series) return { series: null, ts: [], values: [] };
  const end = series.last ? series.last[0] : null;
  const params = end === null ? { limit: 240 } : { start: end - 3600, end, limit: 1000 };
  if (isCounter(series.name)) params.rate = true;
  const samples = await load(`/series/${series.id}/samples${query(params)}`, { signal });
  return { series, ts: (samples && samples.ts) || [], values: (samples && samples.values) || [] };
}

function metric(label, value, fmt = num) {
  return h("div", {}, h("dt", {}, label), h("dd", { title: value === null || value === undefined ? "no data" : String(value) }, fmt(value)));
}

function card(svc, spark) {
  const status = svc.status || "unknown";
  const red = svc.red || {};
  const use = svc.use || {};
  const score = svc.health === null || svc.health === undefined ? null : Math.round(svc.health);
  const sparkBox = h("div", { class: "spark-box" });
  if (spark) {
    sparkBox.append(sparkline(spark.ts, spark.values, { label: `${svc.service} ${spark.series ? spark.series.name : ""} over the last hour` }));
  }
  return h("article", { class: `card status-${status}`, "data-service": svc.service, "aria-label": `service ${svc.service}` },
    h("div", { class: "card-head" },
      h("div", { class: `health status-${status}`, style: `--score:${score ?? 0}`, role: "img",
        "aria-label": `health ${score ?? "unknown"} of 100` }, h("span", {}, score ?? "?")),
      h("h2", {}, h("a", { href: `#/services/${encodeURIComponent(svc.service)}` }, svc.service)),
      h("span", { class: `status-text status-${status}` }, status)),
    h("dl", { class: "metrics" },
      h("div", { class: "group" }, "RED"),
      metric("rate", red.rate), metric("errors", red.errors), metric("latency", red.latency),
      h("div", { class: "group" }, "USE"),
      metric("cpu", use.cpu), metric("memory", use.memory, (v) => (v !== null && v !== undefined && v > 4096 ? bytes(v) : num(v))),
      h("div", {}, h("dt", {}, "max p"), h("dd", {}, pct(svc.max_probability)))),
    (svc.reasons || []).length ? h("p", { class: "reasons", title: svc.reasons.join("\n") },
      svc.reasons.slice(0, 2).join(" · ")) : null,
    sparkBox,
    h("div", { class: "card-foot" },
      h("a", { href: `#/incidents?service=${encodeURIComponent(svc.service)}`, class: svc.open_incidents ? "bad" : "" },
        `${svc.open_incidents || 0} open incident${svc.open_incidents === 1 ? "" : "s"}`),
      h("a", { href: `#/anomalies?service=${encodeURIComponent(svc.service)}` },
        `${svc.anomalies_1h || 0} anomal${svc.anomalies_1h === 1 ? "y" : "ies"} in 1 h`)));
}

function summary(services, open) {
  const count = (st) => services.filter((s) => s.status === st).length;
  const recent = services.reduce((n, s) => n + (s.anomalies_1h || 0), 0);
  const stat = (label, value, cls) => h("div", { class: `stat ${cls || ""}` }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  return h("div", { class: "summary" },
    stat("services", services.length),
    stat("critical", count("critical"), count("critical") ? "bad" : "good"),
    stat("warning", count("warn"), count("warn") ? "bad" : ""),
    stat("open incidents", open, open ? "bad" : "good"),
    stat("anomalies, last hour", recent));
}

function incidentItem(inc) {
  return h("li", { "data-key": inc.key },
    chip(inc.priority, `prio-${inc.priority}`), " ",
    h("a", { href: `#/incidents/${encodeURIComponent(inc.key)}` }, inc.title || inc.key),
    h("div", { class: "muted small" }, inc.root_cause ? ["root cause ", h("b", {}, inc.root_cause), " · "] : null,
      "started ", timeEl(inc.started_at)));
}

export async function overviewView(ctx) {
  const { main, abort } = ctx;
  const sparks = new Map();
  let sparksAt = Date.now();
  const body = h("div", {}, h("p", { class: "empty" }, "Loading services…"));
  const incBox = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  const anomBox = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  main.replaceChildren(pageHead("Services"), body,
    h("div", { class: "grid-2 below" },
      h("section", { class: "panel", "aria-labelledby": "ov-anoms" },
        h("h2", { id: "ov-anoms" }, "Latest anomalies ", h("a", { class: "small", href: "#/anomalies" }, "timeline")), anomBox),
      h("section", { class: "panel", "aria-labelledby": "ov-incs" },
        h("h2", { id: "ov-incs" }, "Open incidents ", h("a", { class: "small", href: "#/incidents" }, "all")), incBox)));

  const render = async () => {
    const [res, incs, anoms] = await Promise.all([
      load("/services", { signal: abort.signal }),
      load("/incidents?status=open&limit=50", { signal: abort.signal }),
      load("/anomalies?limit=8", { signal: abort.signal }),
    ]);
    if (!ctx.active) return;
    if (!res) {
      if (!body.querySelector(".cards")) body.replaceChildren(failed("services"));
      return;
    }
    if (Date.now() - sparksAt > 60000) { sparks.clear(); sparksAt = Date.now(); }
    const open = (incs && incs.incidents) || [];
    incBox.replaceChildren(!incs ? failed("incidents") : open.length ? h("ul", { class: "compact" }, open.slice(0, 8).map(incidentItem))
      : empty("No open incidents.", "Correlated alerts and anomalies open incidents here."));
    const latest = (anoms && anoms.anomalies) || [];
    anomBox.replaceChildren(!anoms ? failed("anomalies") : latest.length ? anomalyList(latest, {}) : empty("No anomalies yet.", "They appear here live."));
    const services = [...(res.services || [])].sort((a, b) =>
      (STATUS_ORDER[a.status] ?? 2) - (STATUS_ORDER[b.status] ?? 2) || (a.health ?? 101) - (b.health ?? 101)
      || a.service.localeCompare(b.service));
    if (!services.length) {
      body.replaceChildren(empty("No services yet.",
        "Services appear when the engine has stored series for them (configure `services` or ingest samples)."));
      return;
    }
    const cards = h("div", { class: "cards" }, services.map((svc) => card(svc, sparks.get(svc.service))));
    body.replaceChildren(summary(services, open.length), cards);
    await Promise.all(services.map(async (svc) => {
      if (sparks.has(svc.service)) return;
      const spark = await loadSpark(svc.service, abort.signal);
      if (!ctx.active) return;
      sparks.set(svc.service, spark);
      const box = cards.querySelector(`[data-service="${CSS.escape(svc.service)}"] .spark-box`);
      if (box) box.replaceChildren(sparkline(spark.ts, spark.values, { label: `${svc.service} ${spark.series ? spark.series.name : ""} over the last hour` }));
    }));
  };
  const refresh = throttle(render, 3000);
  ctx.on("anomaly", refresh);
  ctx.on("incident", refresh);
  await render();
}

export async function serviceView(ctx) {
  const { main, abort } = ctx;
  const [service] = ctx.params;
  const seriesBox = h("div", { class: "table-wrap" }, h("p", { class: "empty" }, "Loading…"));
  const anomalyBox = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  main.replaceChildren(
    pageHead(service, { crumbs: h("a", { href: "#/" }, "Services") }),
    h("div", { class: "grid-2" },
      h("section", { class: "panel", "aria-labelledby": "svc-series" }, h("h2", { id: "svc-series" }, "Series"), seriesBox),
      h("section", { class: "panel", "aria-labelledby": "svc-anoms" },
        h("h2", { id: "svc-anoms" }, "Recent anomalies ", h("a", { class: "small", href: `#/anomalies?service=${encodeURIComponent(service)}` }, "all")),
        anomalyBox)));

  const [list, anomalies] = await Promise.all([
    load(`/series${query({ service, limit: 200 })}`, { signal: abort.signal }),
    load(`/anomalies${query({ service, limit: 30 })}`, { signal: abort.signal }),
  ]);
  if (!ctx.active) return;
  const series = (list && list.series) || [];
  if (!list) seriesBox.replaceChildren(failed("series"));
  else if (!series.length) seriesBox.replaceChildren(empty("No series for this service.", ""));
  else {
    seriesBox.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "series"), h("th", { class: "num" }, "last value"), h("th", {}, "last sample"), h("th", {}, "state"))),
      h("tbody", {}, series.map((sr) => h("tr", {},
        h("td", {}, seriesLink(sr.id, selector(sr.name, sr.labels))),
        h("td", { class: "num" }, sr.last ? num(sr.last[1]) : "–"),
        h("td", {}, sr.last ? timeEl(sr.last[0]) : "–"),
        h("td", {}, sr.stale_since ? chip("stale", "sev-medium") : chip("fresh", "")))))));
  }
  const items = (anomalies && anomalies.anomalies) || [];
  const ol = anomalyList(items, {});
  anomalyBox.replaceChildren(!anomalies ? failed("anomalies") : items.length ? ol : empty("No anomalies for this service.", ""));
  ctx.on("anomaly", (a) => {
    if (!a || !a.series || a.series.service !== service) return;
    if (!ol.isConnected) anomalyBox.replaceChildren(ol);
    upsertAnomaly(ol, a, {});
  });
}
