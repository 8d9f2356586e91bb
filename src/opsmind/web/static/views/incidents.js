// Incidents: the list (live) and one incident with its root cause, the RCA ranking and evidence, and its alerts.

import { load } from "../api.js";
import { anomalyList, empty, failed, pageHead, select } from "../components.js";
import { chip, clock, h, num, query, setQuery, timeEl } from "../util.js";
import { suggestionsPanel } from "./remediation.js";

function servicesText(services) {
  return (services || []).map((s, i) => [i ? ", " : "", h("a", { href: `#/services/${encodeURIComponent(s)}` }, s)]);
}

function incidentRow(inc, fresh = false) {
  return h("tr", { "data-key": inc.key, class: fresh ? "fresh" : null },
    h("td", {}, chip(inc.priority, `prio-${inc.priority}`)),
    h("td", { class: "title-cell" }, h("a", { href: `#/incidents/${encodeURIComponent(inc.key)}` }, inc.title || inc.key),
      h("div", { class: "muted small mono" }, inc.key)),
    h("td", { class: `st-${inc.status}` }, inc.status),
    h("td", {}, servicesText(inc.services)),
    h("td", {}, inc.root_cause ? h("b", {}, inc.root_cause) : h("span", { class: "muted" }, "–")),
    h("td", {}, timeEl(inc.started_at)),
    h("td", {}, timeEl(inc.last_activity)),
    h("td", { class: "num" }, (inc.alerts || []).length));
}

const STATUSES = [["open", "open"], ["resolved", "resolved"], ["closed", "closed"], ["all", "all statuses"]];

export async function incidentsView(ctx) {
  const { main, abort } = ctx;
  const status = ctx.query.status || "open";
  const service = ctx.query.service || "";
  const filters = [select("Status", status, STATUSES, (v) => setQuery({ status: v }))];
  if (service) filters.push(h("span", { class: "chip" }, `service ${service} `, h("a", { href: "#/incidents", "aria-label": "clear service filter" }, "✕")));
  const body = h("section", { class: "panel" }, h("p", { class: "empty" }, "Loading incidents…"));
  main.replaceChildren(pageHead("Incidents", { filters }), body);

  const res = await load(`/incidents${query({ status: status === "all" ? "" : status, service, limit: 200 })}`, { signal: abort.signal });
  if (!ctx.active) return;
  if (!res) { body.replaceChildren(failed("incidents")); return; }
  const items = res.incidents || [];
  const tbody = h("tbody", {}, items.map((inc) => incidentRow(inc)));
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden" }, "Incidents, newest first"),
    h("thead", {}, h("tr", {}, ["priority", "incident", "status", "services", "root cause", "started", "last activity"]
      .map((c) => h("th", { scope: "col" }, c)), h("th", { scope: "col", class: "num" }, "alerts"))),
    tbody));
  const emptyState = empty(status === "open" ? "No open incidents." : "No incidents yet.",
    "Incidents open when correlated alerts or anomalies arrive; they appear here live.");
  body.replaceChildren(items.length ? table : emptyState);

  ctx.on("incident", (inc) => {
    if (!inc || !inc.key) return;
    const old = tbody.querySelector(`[data-key="${CSS.escape(inc.key)}"]`);
    const fits = (status === "all" || inc.status === status) && (!service || (inc.services || []).includes(service));
    if (!fits) { if (old) old.remove(); return; }
    const row = incidentRow(inc, true);
    if (old) old.replaceWith(row); else tbody.prepend(row);
    if (!table.isConnected) emptyState.replaceWith(table);
  });
}

/** "2024-01-01 00:01:00" (UTC, as RCA writes times) in the browser's clock, like every other time shown. */
function utcText(text) {
  const t = Date.parse(`${String(text).replace(" ", "T")}Z`);
  return Number.isFinite(t) ? clock(t / 1000) : String(text);
}

function evidenceLine(ev) {
  if (!ev || typeof ev !== "object") return ev ? String(ev) : "";
  const parts = [];
  if (ev.normal !== undefined || ev.observed !== undefined) {
    parts.push(`${num(ev.normal)} → ${num(ev.observed)}`);
    if (ev.spread !== undefined && ev.spread !== null) parts.push(`spread ${num(ev.spread)}`);
  }
  if (ev.at) parts.push(`at ${utcText(ev.at)}`);
  const head = [ev.source, ev.kind].filter(Boolean).join("/");
  return `${head ? `${head}: ` : ""}${parts.join(", ")}${ev.detail ? `; ${ev.detail}` : ""}`;
}

function rcaSection(inc) {
  const rca = inc.rca && typeof inc.rca === "object" ? inc.rca : null;
  const ranking = (rca && Array.isArray(rca.ranking) ? rca.ranking : []).filter((c) => c && c.service);
  const top = ranking[0];
  const section = h("section", { class: "panel", "aria-labelledby": "rca-title" }, h("h2", { id: "rca-title" }, "Root cause"));
  if (!inc.root_cause && !ranking.length) {
    section.append(empty("No root cause yet.", "Root-cause analysis runs when the incident has enough data."));
    return section;
  }
  const ind = top && top.indicators && top.indicators[0];
  section.append(h("div", { class: "root-cause", "data-testid": "root-cause" },
    h("span", { class: "label" }, "most likely"),
    h("span", { class: "svc" }, inc.root_cause || top.service),
    ind ? h("span", { class: "muted" }, h("span", { class: "mono" }, ind.metric), ` ${evidenceLine(ind.evidence)}`) : null));
  if (rca && rca.onset) {
    const o = rca.onset;
    section.append(h("p", { class: "small" }, h("b", {}, "Onset "), o.time ? h("time", { title: `${o.time} UTC` }, utcText(o.time)) : "–",
      o.found ? ` · change of ${o.signal} (robust z ${num(o.score)})` : " · no SLI change found", o.detail ? ` · ${o.detail}` : ""));
  }
  if (ranking.length) {
    const max = Math.max(...ranking.map((c) => Math.abs(c.score) || 0), 1e-12);
    section.append(h("h3", {}, "Ranked candidates"), h("ol", { class: "candidates" }, ranking.map((c, i) => h("li", { class: `candidate${i === 0 ? " first" : ""}` },
      h("div", { class: "candidate-head" },
        h("span", { class: "rank" }, `#${i + 1}`),
        h("span", { class: "name" }, h("a", { href: `#/services/${encodeURIComponent(c.service)}` }, c.service)),
        h("span", { class: "scorebar", "aria-hidden": "true" }, h("span", { style: `width:${Math.max(2, (Math.abs(c.score) / max) * 100)}%` })),
        h("span", { class: "num mono", title: "score" }, num(c.score))),
      (c.indicators || []).length ? h("ul", { class: "indicators" }, c.indicators.map((x) => h("li", {},
        h("span", { class: "metric" }, x.metric), ` ${num(x.score)} · `, h("span", { class: "muted" }, evidenceLine(x.evidence))))) : null))));
  }
  if (rca && (rca.notes || []).length) section.append(h("ul", { class: "notes" }, rca.notes.map((n) => h("li", {}, n))));
  return section;
}

function alertsSection(inc) {
  const alerts = inc.alerts || [];
  return h("section", { class: "panel", "aria-labelledby": "alerts-title" },
    h("h2", { id: "alerts-title" }, `Alerts (${alerts.length})`),
    alerts.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["alert", "service", "severity", "status", "started", "last seen", "repeats"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, alerts.map((a) => {
        const sev = (a.labels && a.labels.severity) || "";
        const sid = a.labels && a.labels.series_id;
        return h("tr", {},
          h("td", {}, h("b", {}, a.name), sid ? [" ", h("a", { href: `#/series/${encodeURIComponent(sid)}`, class: "small" }, "chart")] : null,
            a.annotations && a.annotations.summary ? h("div", { class: "muted small" }, a.annotations.summary) : null),
          h("td", {}, a.service),
          h("td", {}, sev ? chip(sev, `sev-${sev}`) : "–"),
          h("td", { class: `st-${a.status}` }, a.status),
          h("td", {}, timeEl(a.starts_at)),
          h("td", {}, timeEl(a.last_seen)),
          h("td", { class: "num" }, a.repeats));
      })))) : empty("No alerts.", ""));
}

export async function incidentView(ctx) {
  const { main, abort } = ctx;
  const [key] = ctx.params;
  let suggestions = null; // made once and kept across re-renders (a dry-run result stays)
  const render = async (inc) => {
    if (!inc) {
      main.replaceChildren(pageHead(key, { crumbs: h("a", { href: "#/incidents" }, "Incidents") }),
        empty("This incident could not be loaded.", "It may belong to another tenant or have been deleted."));
      return;
    }
    const facts = h("dl", { class: "facts" }, [
      ["status", h("span", { class: `st-${inc.status}` }, inc.status)], ["started", timeEl(inc.started_at)],
      ["last activity", timeEl(inc.last_activity)], ["resolved", timeEl(inc.resolved_at)],
      ["score", num(inc.score)], ["severity", inc.severity], ["blast radius", num(inc.blast_radius)],
      ["SLO impact", num(inc.slo_impact)], ["services", servicesText(inc.services)],
      ["recurrence of", inc.recurrence_of ? h("a", { href: `#/incidents/${encodeURIComponent(inc.recurrence_of)}` }, inc.recurrence_of) : "–"],
    ].map(([k, v]) => h("div", { class: k === "services" ? "wide" : null }, h("dt", {}, k), h("dd", {}, v))));
    const anomalies = h("div", {}, h("p", { class: "empty" }, "Loading…"));
    main.replaceChildren(
      pageHead(inc.title || inc.key, { crumbs: [h("a", { href: "#/incidents" }, "Incidents"), ` / ${inc.key}`], extra: chip(inc.priority, `prio-${inc.priority}`) }),
      h("section", { class: "panel" }, facts),
      rcaSection(inc),
      suggestions || (suggestions = suggestionsPanel(ctx, inc.key)),
      h("div", { class: "grid-2" },
        h("div", {}, alertsSection(inc),
          h("section", { class: "panel", "aria-labelledby": "anoms-title" }, h("h2", { id: "anoms-title" }, "Anomalies on these services"), anomalies)),
        h("section", { class: "panel", "aria-labelledby": "ev-title" }, h("h2", { id: "ev-title" }, "Evidence"),
          (inc.evidence || []).length ? h("ul", { class: "evidence-lines" }, inc.evidence.map((e) => h("li", {}, e))) : empty("No evidence lines.", ""))));
    const since = inc.started_at - 900;
    const lists = await Promise.all((inc.services || []).slice(0, 8).map((svc) =>
      load(`/anomalies${query({ service: svc, since, limit: 50 })}`, { signal: abort.signal })));
    if (!ctx.active) return;
    const items = lists.flatMap((r) => (r && r.anomalies) || []).sort((a, b) => b.ts - a.ts).slice(0, 60);
    anomalies.replaceChildren(items.length ? anomalyList(items, {}) : empty("No anomalies near this incident.", ""));
  };
  await render(await load(`/incidents/${encodeURIComponent(key)}`, { signal: abort.signal }));
  ctx.on("incident", (inc) => { if (inc && inc.key === key && ctx.active) render(inc); });
}
