// Recommendations (scale, rightsize, capacity, ...) with their savings per month, the total at the top.

import { api, load, showError } from "../api.js";
import { empty, failed, pageHead, select } from "../components.js";
import { bytes, chip, h, money, num, query, setQuery, timeEl } from "../util.js";

const STATUSES = [["open", "open"], ["accepted", "accepted"], ["applied", "applied"], ["dismissed", "dismissed"], ["all", "all statuses"]];

function payloadText(rec) {
  const p = rec.payload && typeof rec.payload === "object" ? rec.payload : {};
  if (rec.kind === "scale" && p.replicas !== undefined) return `replicas ${p.current ?? "?"} → ${p.replicas}`;
  if (rec.kind === "rightsize") {
    const parts = [];
    if (p.cpu_request !== undefined) parts.push(`cpu ${num(p.cpu_request)}`);
    if (p.memory_request !== undefined) parts.push(`memory ${typeof p.memory_request === "number" ? bytes(p.memory_request) : p.memory_request}`);
    return parts.join(", ");
  }
  if (rec.kind === "capacity" && p.breach_at !== undefined) {
    return typeof p.breach_at === "number" ? h("span", {}, "breach ", timeEl(p.breach_at)) : `breach ${p.breach_at}`;
  }
  return "";
}

function statusButtons(rec, onChange) {
  if (rec.status !== "open") return null;
  const act = async (status, button) => {
    button.disabled = true;
    try {
      onChange(await api(`/recommendations/${rec.id}/status`, { method: "POST", body: { status } }));
    } catch (err) {
      showError(`recommendation ${rec.id}: ${err.message}`);
      button.disabled = false;
    }
  };
  const accept = h("button", { type: "button", title: "Accept this recommendation" }, "accept");
  const dismiss = h("button", { type: "button", class: "ghost", title: "Dismiss this recommendation" }, "dismiss");
  accept.addEventListener("click", () => act("accepted", accept));
  dismiss.addEventListener("click", () => act("dismissed", dismiss));
  return h("span", { class: "rec-actions" }, accept, dismiss);
}

export async function recommendationsView(ctx) {
  const { main, abort } = ctx;
  const status = ctx.query.status || "open";
  const kind = ctx.query.kind || "";
  const total = h("div", { class: "savings-total", "aria-live": "polite" }, "–");
  const counts = h("div", { class: "muted small" });
  const body = h("section", { class: "panel" }, h("p", { class: "empty" }, "Loading recommendations…"));
  main.replaceChildren(pageHead("Recommendations", {
    filters: [
      select("Status", status, STATUSES, (v) => setQuery({ status: v })),
      select("Kind", kind, [["", "all kinds"], ["scale", "scale"], ["rightsize", "rightsize"], ["capacity", "capacity"]], (v) => setQuery({ kind: v })),
    ],
  }), h("section", { class: "panel", "aria-label": "Savings" },
    h("div", { class: "muted small" }, "Savings per month, recommendations shown"), total, counts), body);

  const res = await load(`/recommendations${query({ status: status === "all" ? "" : status, kind })}`, { signal: abort.signal });
  if (!ctx.active) return;
  if (!res) { body.replaceChildren(failed("recommendations")); return; }
  const items = new Map((res.recommendations || []).map((r) => [r.id, r]));
  const tbody = h("tbody", {});
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["kind", "target", "service", "summary", "change"].map((c) => h("th", { scope: "col" }, c)),
      h("th", { scope: "col", class: "num" }, "savings / month"), h("th", { scope: "col" }, "status"), h("th", { scope: "col" }, "issued"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "actions")))),
    tbody));
  const emptyState = empty("No recommendations yet.", "Scaling, rightsizing and capacity findings appear here with their savings.");

  const fits = (r) => (status === "all" || r.status === status) && (!kind || r.kind === kind);
  const row = (r) => h("tr", { "data-rec-id": r.id },
    h("td", {}, chip(r.kind, "")),
    h("td", { class: "mono small" }, r.target),
    h("td", {}, r.service ? h("a", { href: `#/services/${encodeURIComponent(r.service)}` }, r.service) : "–",
      r.series_id ? [" ", h("a", { class: "small", href: `#/series/${r.series_id}` }, "chart")] : null),
    h("td", {}, r.summary || ""),
    h("td", { class: "payload" }, payloadText(r)),
    h("td", { class: "num" }, r.savings_per_month === null ? "–" : money(r.savings_per_month)),
    h("td", { class: `st-${r.status}` }, r.status),
    h("td", {}, timeEl(r.issued_at)),
    h("td", {}, statusButtons(r, update)));
  function render() {
    const list = [...items.values()].filter(fits).sort((a, b) => b.issued_at - a.issued_at || b.id - a.id);
    const sum = list.reduce((n, r) => n + (r.savings_per_month > 0 ? r.savings_per_month : 0), 0);
    total.textContent = money(sum);
    const byKind = {};
    for (const r of list) byKind[r.kind] = (byKind[r.kind] || 0) + 1;
    counts.textContent = Object.entries(byKind).map(([k, n]) => `${n} ${k}`).join(" · ") || "none";
    tbody.replaceChildren(...list.map(row));
    body.replaceChildren(list.length ? table : emptyState);
  }
  function update(rec) {
    if (rec && rec.id !== undefined) items.set(rec.id, rec);
    render();
  }
  render();
  ctx.on("recommendation", update);
}
