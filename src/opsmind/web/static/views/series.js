// One series: samples line, anomaly markers, the latest forecast's mean and 80/95 % bands, and its anomalies.

import { load } from "../api.js";
import { timeChart } from "../chart.js";
import { anomalyList, empty, pageHead, upsertAnomaly } from "../components.js";
import { h, isCounter, num, query, selector, setQuery, timeEl } from "../util.js";

const RANGES = [["1h", 3600], ["6h", 6 * 3600], ["24h", 86400], ["7d", 7 * 86400]];
const REFRESH_MS = 30000;

function rangeButtons(current) {
  return h("span", { class: "segmented", role: "group", "aria-label": "Time range" },
    RANGES.map(([name]) => h("button", {
      type: "button", "aria-pressed": String(name === current), onclick: () => setQuery({ range: name }),
    }, name)));
}

function forecastFacts(fc) {
  if (!fc) return h("p", { class: "muted small" }, "No forecast for this series yet.");
  const levels = Object.keys(fc.intervals || {}).sort().map((l) => `${l}%`).join(", ") || "none";
  const last = fc.mean.length ? fc.mean[fc.mean.length - 1] : null;
  return h("div", { class: "kv" },
    h("span", {}, "forecast ", h("b", {}, fc.method)),
    h("span", {}, "issued ", timeEl(fc.issued_at)),
    h("span", {}, "horizon ", h("b", {}, fc.horizon), " steps"),
    h("span", {}, "bands ", h("b", {}, levels)),
    h("span", {}, "last mean ", h("b", {}, num(last))),
    (fc.notes || []).length ? h("span", { class: "muted" }, fc.notes.join("; ")) : null);
}

export async function seriesView(ctx) {
  const { main, abort } = ctx;
  const [id] = ctx.params;
  const rangeName = RANGES.some(([n]) => n === ctx.query.range) ? ctx.query.range : "6h";
  const range = RANGES.find(([n]) => n === rangeName)[1];
  const signal = abort.signal;

  const rec = await load(`/series/${id}`, { signal });
  if (!ctx.active) return;
  if (!rec) {
    main.replaceChildren(pageHead(`Series ${id}`, { crumbs: h("a", { href: "#/" }, "Services") }),
      empty("This series could not be loaded.", "It may belong to another tenant or have been deleted."));
    return;
  }
  const counter = isCounter(rec.name);  // charted as its per-second rate, the values its anomalies are about
  const title = selector(rec.name, rec.labels) + (counter ? " (per-second rate)" : "");
  const chartBox = h("div", { class: "chart-box" }, h("p", { class: "empty" }, "Loading samples…"));
  const fcBox = h("div", {});
  const listBox = h("div", {});
  main.replaceChildren(
    pageHead(h("span", { class: "mono" }, title), {
      crumbs: [h("a", { href: "#/" }, "Services"), rec.service ? [" / ", h("a", { href: `#/services/${encodeURIComponent(rec.service)}` }, rec.service)] : null],
      filters: rangeButtons(rangeName),
      extra: rec.stale_since ? h("span", { class: "chip sev-medium", title: "no new samples" }, "stale") : null,
    }),
    h("section", { class: "panel", "aria-labelledby": "chart-title" },
      h("h2", { id: "chart-title", class: "visually-hidden" }, "Chart"), chartBox, fcBox),
    h("section", { class: "panel", "aria-labelledby": "series-anoms" }, h("h2", { id: "series-anoms" }, "Anomalies on this series"), listBox));

  let samples = { ts: [], values: [] };
  let anomalies = [];
  let forecast = null;
  const draw = () => {
    const values = new Map(samples.ts.map((t, i) => [t, samples.values[i]]));
    const marks = anomalies.map((a) => ({
      id: a.id, ts: a.ts, severity: a.severity, probability: a.probability,
      value: values.has(a.ts) ? values.get(a.ts) : a.evidence && typeof a.evidence.value === "number" ? a.evidence.value : null,
    }));
    timeChart(chartBox, {
      ts: samples.ts, values: samples.values, anomalies: marks, forecast, lineLabel: counter ? "rate (per s)" : "samples",
      label: `${title}: ${samples.ts.length} samples, ${marks.length} anomalies${forecast ? ", forecast with bands" : ""}`,
      onMarker: (a) => {
        const row = listBox.querySelector(`[data-anomaly-id="${a.id}"]`);
        if (row) { row.scrollIntoView({ block: "center" }); row.classList.remove("fresh"); void row.offsetWidth; row.classList.add("fresh"); }
      },
    });
    fcBox.replaceChildren(forecastFacts(forecast));
  };

  const fetchSamples = async () => {
    const end = rec.last ? rec.last[0] : null;
    const params = end === null ? { limit: 5000 } : { start: end - range, limit: Math.min(100000, Math.ceil(range / 5)) };
    if (counter) params.rate = true;
    const res = await load(`/series/${id}/samples${query(params)}`, { signal });
    if (res) samples = { ts: res.ts || [], values: res.values || [] };
    if (end === null && samples.ts.length) {
      const cut = samples.ts[samples.ts.length - 1] - range;
      const keep = samples.ts.findIndex((t) => t >= cut);
      samples = { ts: samples.ts.slice(keep), values: samples.values.slice(keep) };
    }
  };
  const fetchForecast = async () => {
    const res = await load(`/forecasts${query({ series_id: id, limit: 1 })}`, { signal });
    forecast = res && res.forecasts && res.forecasts.length ? res.forecasts[0] : null;
  };
  const [, anomalyRes] = await Promise.all([
    fetchSamples(),
    load(`/anomalies${query({ series_id: id, limit: 500 })}`, { signal }),
    fetchForecast(),
  ]);
  if (!ctx.active) return;
  anomalies = (anomalyRes && anomalyRes.anomalies) || [];
  draw();
  const list = anomalyList(anomalies, { showSeries: false });
  const emptyState = empty("No anomalies on this series.", "Markers and rows appear here when the engine flags it.");
  listBox.replaceChildren(anomalies.length ? list : emptyState);

  ctx.on("anomaly", (a) => {
    if (!a || String(a.series_id) !== String(id)) return;
    anomalies = [a, ...anomalies.filter((x) => x.id !== a.id)];
    if (!list.isConnected) emptyState.replaceWith(list);
    upsertAnomaly(list, a, { showSeries: false });
    if (!rec.last || a.ts > rec.last[0]) rec.last = [a.ts, null];
    fetchSamples().then(() => ctx.active && draw());
  });
  ctx.on("forecast", (f) => {
    if (!f || String(f.series_id) !== String(id)) return;
    forecast = f;
    draw();
  });
  const timer = setInterval(async () => {
    const fresh = await load(`/series/${id}`, { signal });
    if (fresh && fresh.last) rec.last = fresh.last;
    await fetchSamples();
    if (ctx.active) draw();
  }, REFRESH_MS);
  ctx.onCleanup(() => clearInterval(timer));
}
