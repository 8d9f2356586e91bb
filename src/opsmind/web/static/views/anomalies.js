// The live anomaly timeline: newest first, severity colour, probability, service and series, feedback buttons.
// New anomalies arrive over the event stream and are inserted without a reload.

import { load } from "../api.js";
import { anomalyList, empty, failed, pageHead, select, upsertAnomaly } from "../components.js";
import { h, query, setQuery } from "../util.js";

const PROBABILITIES = [["", "any probability"], ["0.5", "≥ 50%"], ["0.8", "≥ 80%"], ["0.95", "≥ 95%"], ["0.99", "≥ 99%"]];

function matches(a, filters) {
  if (filters.service && (!a.series || a.series.service !== filters.service)) return false;
  if (filters.min_probability && a.probability < Number(filters.min_probability)) return false;
  return true;
}

export async function anomaliesView(ctx) {
  const { main, abort } = ctx;
  const filters = { service: ctx.query.service || "", min_probability: ctx.query.min_probability || "" };
  const services = await load("/services", { signal: abort.signal });
  if (!ctx.active) return;
  const names = ((services && services.services) || []).map((s) => s.service).sort();
  if (filters.service && !names.includes(filters.service)) names.push(filters.service);
  const count = h("span", { class: "muted small" });
  const body = h("section", { class: "panel", "aria-labelledby": "timeline-title" },
    h("h2", { id: "timeline-title" }, "Timeline ", count), h("p", { class: "empty" }, "Loading anomalies…"));
  main.replaceChildren(pageHead("Anomalies", {
    filters: [
      select("Service", filters.service, [["", "all services"], ...names.map((n) => [n, n])],
        (v) => setQuery({ service: v })),
      select("Minimum probability", filters.min_probability, PROBABILITIES, (v) => setQuery({ min_probability: v })),
    ],
  }), body);

  const res = await load(`/anomalies${query({ ...filters, limit: 200 })}`, { signal: abort.signal });
  if (!ctx.active) return;
  if (!res) { body.replaceChildren(body.firstChild, failed("anomalies")); return; }
  const items = res.anomalies || [];
  const list = anomalyList(items, {});
  const emptyState = empty("No anomalies yet.",
    filters.service || filters.min_probability ? "Nothing matches these filters; new anomalies appear here live."
      : "When the engine flags a series, it appears here live, newest first.");
  const setCount = () => { count.textContent = `${list.children.length} shown, newest first`; };
  body.replaceChildren(body.firstChild, items.length ? list : emptyState);
  setCount();

  ctx.on("anomaly", (a) => {
    if (!a || typeof a !== "object" || !matches(a, filters)) return;
    if (!list.isConnected) emptyState.replaceWith(list);
    upsertAnomaly(list, a, {});
    while (list.children.length > 500) list.lastElementChild.remove();
    setCount();
  });
}
