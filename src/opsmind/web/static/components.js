// Pieces shared by the views: page heads, empty states, the anomaly row and its feedback buttons.

import { api, showError } from "./api.js";
import { chip, h, num, pct, selector, timeEl } from "./util.js";

/** A page heading with optional breadcrumbs and filter controls on the right. */
export function pageHead(title, { crumbs = null, filters = null, extra = null } = {}) {
  return h("div", { class: "page-head" },
    h("div", {}, crumbs ? h("div", { class: "crumbs" }, crumbs) : null, h("h1", {}, title)),
    extra,
    filters ? h("div", { class: "filters" }, filters) : null);
}

/** An empty state: a bold line and an explanation. */
export function empty(title, text) {
  return h("div", { class: "empty", role: "status" }, h("strong", {}, title), text ? h("span", {}, text) : null);
}

/** The state shown where a list could not be loaded (the reason is in the error banner). */
export function failed(what) {
  return empty(`Could not load ${what}.`, "The error is shown above; the view retries when you come back to it.");
}

/** A <select> bound to a query parameter; onChange(value). */
export function select(label, value, options, onChange) {
  const id = `f-${label.replace(/\W+/g, "-").toLowerCase()}`;
  const el = h("select", { id, onchange: (e) => onChange(e.target.value) },
    options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, text)));
  return h("span", {}, h("label", { for: id, class: "visually-hidden" }, label), el);
}

/** A link to a series chart. */
export function seriesLink(id, text) {
  return h("a", { href: `#/series/${id}`, class: "series" }, text);
}

const VERDICT_TEXT = { true_positive: "marked true", false_positive: "marked false alarm", missed: "marked missed" };

/**
 * "true" / "false alarm" buttons for one anomaly. The current verdict comes from anomaly.feedback; a click
 * POSTs /api/v1/feedback and shows the stored verdict (or the error in the banner).
 */
export function feedbackButtons(anomaly) {
  const state = h("span", { class: "fb-state", "aria-live": "polite" });
  const yes = h("button", { type: "button", class: "fb-true", title: "This anomaly was real" }, "true");
  const no = h("button", { type: "button", class: "fb-false", title: "This was not a real problem" }, "false alarm");
  const show = (verdict) => {
    yes.setAttribute("aria-pressed", String(verdict === "true_positive"));
    no.setAttribute("aria-pressed", String(verdict === "false_positive"));
    state.textContent = verdict ? VERDICT_TEXT[verdict] || verdict : "";
    wrap.dataset.verdict = verdict || "";
  };
  const send = async (verdict) => {
    yes.disabled = true;
    no.disabled = true;
    state.textContent = "saving…";
    try {
      const rec = await api("/feedback", { method: "POST", body: { anomaly_id: anomaly.id, verdict } });
      anomaly.feedback = (rec && rec.verdict) || verdict;
      show(anomaly.feedback);
    } catch (err) {
      showError(`feedback on anomaly ${anomaly.id}: ${err.message}`);
      show(anomaly.feedback || null);
    } finally {
      yes.disabled = false;
      no.disabled = false;
    }
  };
  yes.addEventListener("click", () => send("true_positive"));
  no.addEventListener("click", () => send("false_positive"));
  const wrap = h("span", { class: "feedback", role: "group", "aria-label": `Feedback on anomaly ${anomaly.id}` },
    yes, no, state);
  show(anomaly.feedback || null);
  return wrap;
}

function evidenceText(ev) {
  if (!ev || typeof ev !== "object") return null;
  const parts = [];
  if (ev.value !== undefined && ev.value !== null) parts.push(`value ${num(ev.value)}`);
  if (ev.baseline !== undefined && ev.baseline !== null) parts.push(`expected ${num(ev.baseline)}`);
  if (ev.threshold !== undefined && ev.threshold !== null) parts.push(`threshold ${num(ev.threshold)}`);
  if (ev.method) parts.push(String(ev.method));
  return parts.length ? parts.join(" · ") : null;
}

/** The series text of an anomaly: service and selector. */
export function anomalySeries(a) {
  const ser = a.series || {};
  return { service: ser.service || (ser.labels && ser.labels.service) || null,
    text: ser.name ? selector(ser.name, ser.labels) : `series ${a.series_id}` };
}

/** One anomaly as a timeline row (an <li>). `showSeries` false leaves out the series link (on its own chart). */
export function anomalyRow(a, { showSeries = true, fresh = false } = {}) {
  const sev = a.severity || "unknown";
  const { service, text } = anomalySeries(a);
  const detail = evidenceText(a.evidence);
  return h("li", {
    class: `event ev-${sev}${a.suppressed ? " suppressed" : ""}${fresh ? " fresh" : ""}`,
    "data-anomaly-id": a.id, "data-series-id": a.series_id, "data-ts": a.ts,
  },
  h("span", { class: "time" }, timeEl(a.ts)),
  h("span", { class: "sev" }, chip(sev, `sev-${sev}`)),
  h("span", { class: "prob", title: `probability ${a.probability}` },
    h("span", { class: `bar bar-${sev}`, "aria-hidden": "true" },
      h("span", { style: `width:${Math.round((a.probability || 0) * 100)}%` })),
    pct(a.probability)),
  h("span", { class: "what" },
    showSeries ? seriesLink(a.series_id, [service ? `${service} · ` : "", text]) : null,
    h("span", { class: "detail" }, detail || "", a.suppressed ? " · suppressed" : "",
      a.detector && a.detector !== "opsmind" ? ` · ${a.detector}` : "")),
  h("span", { class: "actions" }, feedbackButtons(a)));
}

/** Insert or replace an anomaly row in a timeline <ol>, newest first by time. */
export function upsertAnomaly(list, a, opts) {
  const row = anomalyRow(a, { ...opts, fresh: true });
  const old = list.querySelector(`[data-anomaly-id="${a.id}"]`);
  if (old) { old.replaceWith(row); return; }
  const later = [...list.children].find((li) => Number(li.dataset.ts) < a.ts);
  list.insertBefore(row, later || null);
}

/** A timeline <ol> of anomalies (newest first). */
export function anomalyList(anomalies, opts) {
  return h("ol", { class: "timeline", "aria-label": "Anomalies, newest first" },
    anomalies.map((a) => anomalyRow(a, opts)));
}
