// Hand-written SVG charts: a time-series chart (samples, anomaly markers, forecast mean and bands, axes, hover
// tooltip) and a sparkline. Times are Unix seconds; values may be null (gaps).

import { clock, h, iso, num, pct, s } from "./util.js";

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
  7 * 86400, 14 * 86400, 30 * 86400];

/** About `count` round time ticks between t0 and t1 (aligned to the local clock for steps under a day). */
export function timeTicks(t0, t1, count = 6) {
  if (!(t1 > t0)) return { ticks: [t0], step: 60 };
  const step = TIME_STEPS.find((st) => (t1 - t0) / st <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = step < 86400 ? 0 : new Date(t0 * 1000).getTimezoneOffset() * 60;
  const first = Math.ceil((t0 - offset) / step) * step + offset;
  const out = [];
  for (let t = first; t <= t1 + 1e-9; t += step) out.push(t);
  return { ticks: out, step };
}

/** About `count` round value ticks covering [lo, hi]: 1, 2, 2.5 or 5 times a power of ten. */
export function valueTicks(lo, hi, count = 5) {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  const first = Math.floor(lo / step) * step;
  const last = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let i = 0; first + i * step <= last + step * 1e-9; i += 1) ticks.push(Number((first + i * step).toPrecision(12)));
  return { ticks, lo: first, hi: ticks[ticks.length - 1] };
}

function tickLabel(t, step) {
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  if (step >= 86400) return `${d.getMonth() + 1}/${d.getDate()}`;
  if (step < 60) return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return `${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** An SVG path through the points, breaking at null values. */
function linePath(xs, ys, x, y) {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i += 1) {
    const v = ys[i];
    if (v === null || v === undefined || Number.isNaN(v)) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${x(xs[i]).toFixed(1)} ${y(v).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/** A closed area between lower and upper bounds (points where either is null are skipped). */
function bandPath(xs, lo, hi, x, y) {
  const keep = xs.map((_, i) => i).filter((i) => lo[i] !== null && hi[i] !== null
    && !Number.isNaN(lo[i]) && !Number.isNaN(hi[i]));
  if (keep.length < 2) return "";
  const upper = keep.map((i) => `${x(xs[i]).toFixed(1)} ${y(hi[i]).toFixed(1)}`);
  const lower = keep.reverse().map((i) => `${x(xs[i]).toFixed(1)} ${y(lo[i]).toFixed(1)}`);
  return `M${upper.join("L")}L${lower.join("L")}Z`;
}

function nearest(xs, t) {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= t) lo = mid; else hi = mid;
  }
  return Math.abs(xs[lo] - t) <= Math.abs(xs[hi] - t) ? lo : hi;
}

/**
 * Reduce a long series to at most two points (its min and max, in time order) per bucket, so a week of samples
 * draws as fast as an hour without hiding spikes. Buckets with only gaps keep a gap.
 */
export function decimate(ts, values, buckets) {
  if (ts.length <= buckets * 2 || ts.length < 2) return { ts, values };
  const t0 = ts[0];
  const span = ts[ts.length - 1] - t0 || 1;
  const outT = [];
  const outV = [];
  let b = -1;
  let lo = -1;
  let hi = -1;
  let gap = false;
  let start = 0;
  const flush = () => {
    if (b < 0) return;
    if (lo < 0) { if (gap) { outT.push(ts[start]); outV.push(null); } return; }
    const pair = lo === hi ? [lo] : lo < hi ? [lo, hi] : [hi, lo];
    for (const i of pair) { outT.push(ts[i]); outV.push(values[i]); }
  };
  for (let i = 0; i < ts.length; i += 1) {
    const k = Math.min(buckets - 1, Math.floor(((ts[i] - t0) / span) * buckets));
    if (k !== b) { flush(); b = k; lo = -1; hi = -1; gap = false; start = i; }
    const v = values[i];
    if (v === null || v === undefined || Number.isNaN(v)) { gap = true; continue; }
    if (lo < 0 || v < values[lo]) lo = i;
    if (hi < 0 || v > values[hi]) hi = i;
  }
  flush();
  return { ts: outT, values: outV };
}

function finite(values) {
  return values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
}

/**
 * Draw a time-series chart into `container` (replacing its content) and redraw it when the container resizes.
 * data: {ts, values, anomalies: [{ts, value, severity, probability, id}], forecast: {timestamps, mean,
 * intervals: {"80": [lo, hi], "95": [lo, hi]}} | null, label, lineLabel (the legend's name for the line,
 * "samples" by default), onMarker(anomaly)}.
 */
export function timeChart(container, data) {
  const draw = () => drawChart(container, data);
  draw();
  if (container._chartObserver) container._chartObserver.disconnect();
  let lastWidth = container.clientWidth;
  const observer = new ResizeObserver(() => {
    if (Math.abs(container.clientWidth - lastWidth) > 4) { lastWidth = container.clientWidth; draw(); }
  });
  observer.observe(container);
  container._chartObserver = observer;
}

function drawChart(container, data) {
  const width = Math.max(container.clientWidth || 640, 280);
  const height = width < 500 ? 220 : 300;
  const m = { top: 12, right: 16, bottom: 28, left: 56 };
  const raw = decimate(data.ts || [], data.values || [], Math.floor(width - m.left - m.right));
  const ts = raw.ts;
  const values = raw.values;
  const fc = data.forecast;
  const bands = [];
  if (fc && fc.intervals) {
    for (const level of ["95", "80"]) {
      const pair = fc.intervals[level];
      if (pair && pair.length === 2) bands.push({ level, lo: pair[0], hi: pair[1] });
    }
  }
  const times = [...ts, ...(fc ? fc.timestamps : [])];
  const all = [...finite(values), ...(fc ? finite(fc.mean) : []),
    ...bands.flatMap((b) => [...finite(b.lo), ...finite(b.hi)])];
  if (!times.length || !all.length) {
    container.replaceChildren(h("p", { class: "empty" }, "No samples in this range."));
    return;
  }
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const yt = valueTicks(Math.min(...all), Math.max(...all));
  const xt = timeTicks(t0, t1, Math.max(3, Math.floor(width / 110)));
  const iw = width - m.left - m.right;
  const ih = height - m.top - m.bottom;
  const x = (t) => m.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * iw : iw / 2);
  const y = (v) => m.top + ih - ((v - yt.lo) / (yt.hi - yt.lo || 1)) * ih;

  const svg = s("svg", {
    class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": data.label || "time series chart",
  });
  const grid = s("g", { class: "grid" });
  for (const v of yt.ticks) {
    grid.append(s("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
    grid.append(s("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, num(v)));
  }
  for (const t of xt.ticks) {
    grid.append(s("line", { x1: x(t), x2: x(t), y1: m.top, y2: m.top + ih, class: "vgrid" }));
    grid.append(s("text", { x: x(t), y: height - 8, "text-anchor": "middle", class: "tick" }, tickLabel(t, xt.step)));
  }
  grid.append(s("line", { x1: m.left, x2: width - m.right, y1: m.top + ih, y2: m.top + ih, class: "axis" }));
  svg.append(grid);

  if (fc) {
    for (const b of bands) {
      const d = bandPath(fc.timestamps, b.lo, b.hi, x, y);
      if (d) svg.append(s("path", { d, class: `band band-${b.level}` }, s("title", {}, `${b.level}% interval`)));
    }
    if (ts.length && fc.timestamps.length && fc.timestamps[0] > ts[ts.length - 1] - 1e-9) {
      const tNow = fc.timestamps[0];
      svg.append(s("line", { x1: x(tNow), x2: x(tNow), y1: m.top, y2: m.top + ih, class: "forecast-start" }));
    }
    svg.append(s("path", { d: linePath(fc.timestamps, fc.mean, x, y), class: "forecast-mean" }));
  }
  svg.append(s("path", { d: linePath(ts, values, x, y), class: "line" }));

  const markers = s("g", { class: "markers" });
  for (const a of data.anomalies || []) {
    if (a.ts < t0 || a.ts > t1) continue;
    let v = a.value;
    if (v === null || v === undefined || !Number.isFinite(v)) {
      const i = nearest(ts, a.ts);
      v = i >= 0 ? values[i] : null;
    }
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    const marker = s("circle", {
      cx: x(a.ts), cy: y(v), r: 5, class: `marker sev-${a.severity || "unknown"}`, tabindex: 0,
      "data-anomaly-id": a.id,
    }, s("title", {}, `anomaly ${clock(a.ts)}: ${num(v)}, p=${pct(a.probability)} ${a.severity || ""}`));
    if (data.onMarker) {
      marker.addEventListener("click", () => data.onMarker(a));
      marker.addEventListener("keydown", (e) => { if (e.key === "Enter") data.onMarker(a); });
    }
    markers.append(marker);
  }
  svg.append(markers);

  const cursor = s("line", { class: "cursor", y1: m.top, y2: m.top + ih, visibility: "hidden" });
  const dot = s("circle", { class: "cursor-dot", r: 3.5, visibility: "hidden" });
  svg.append(cursor, dot);
  const tip = h("div", { class: "tooltip", role: "status", hidden: true });

  const overlay = s("rect", { x: m.left, y: m.top, width: iw, height: ih, class: "overlay" });
  svg.insertBefore(overlay, markers);
  const hide = () => { cursor.setAttribute("visibility", "hidden"); dot.setAttribute("visibility", "hidden"); tip.hidden = true; };
  overlay.addEventListener("mouseleave", hide);
  overlay.addEventListener("mousemove", (event) => {
    const box = svg.getBoundingClientRect();
    const px = event.clientX - box.left;
    const t = t0 + ((px - m.left) / iw) * (t1 - t0);
    const lines = [];
    let cx = px;
    let cy = null;
    const i = nearest(ts, t);
    const fi = fc ? nearest(fc.timestamps, t) : -1;
    const useForecast = fc && fi >= 0 && (i < 0 || Math.abs(fc.timestamps[fi] - t) < Math.abs(ts[i] - t));
    if (useForecast) {
      cx = x(fc.timestamps[fi]);
      lines.push(h("div", { class: "tip-time" }, `${clock(fc.timestamps[fi])} forecast`));
      lines.push(h("div", {}, `mean ${num(fc.mean[fi])}`));
      for (const b of [...bands].reverse()) lines.push(h("div", {}, `${b.level}%: ${num(b.lo[fi])} – ${num(b.hi[fi])}`));
      if (Number.isFinite(fc.mean[fi])) cy = y(fc.mean[fi]);
    } else if (i >= 0) {
      cx = x(ts[i]);
      lines.push(h("div", { class: "tip-time" }, clock(ts[i])), h("div", {}, `value ${num(values[i])}`));
      if (Number.isFinite(values[i])) cy = y(values[i]);
      const hit = (data.anomalies || []).find((a) => Math.abs(a.ts - ts[i]) < 1e-6);
      if (hit) lines.push(h("div", { class: `sev-text-${hit.severity || "unknown"}` }, `anomaly p=${pct(hit.probability)} ${hit.severity || ""}`));
    }
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    cursor.setAttribute("visibility", "visible");
    if (cy !== null) {
      dot.setAttribute("cx", cx);
      dot.setAttribute("cy", cy);
      dot.setAttribute("visibility", "visible");
    } else dot.setAttribute("visibility", "hidden");
    tip.replaceChildren(...lines);
    tip.hidden = false;
    const left = Math.min(Math.max(cx + 12, 0), width - 170);
    tip.style.left = `${cx + 180 > width ? cx - 170 : left}px`;
    tip.style.top = `${m.top + 4}px`;
  });

  const legend = h("div", { class: "legend" },
    h("span", { class: "key key-line" }, data.lineLabel || "samples"),
    fc ? h("span", { class: "key key-mean" }, `forecast (${fc.method || "mean"})`) : null,
    bands.map((b) => h("span", { class: `key key-band-${b.level}` }, `${b.level}% band`)),
    (data.anomalies || []).length ? h("span", { class: "key key-marker" }, "anomaly") : null,
    h("span", { class: "muted range", title: `${iso(t0)} – ${iso(t1)}` }, `${clock(t0)} – ${clock(t1)}`));
  container.replaceChildren(h("div", { class: "chart-wrap" }, svg, tip), legend);
}

/** A small sparkline SVG of values (nulls are gaps); `marks` are indices drawn as red dots. */
export function sparkline(ts, values, { width = 220, height = 36, label = "trend", marks = [] } = {}) {
  const ys = finite(values);
  const svg = s("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": label, preserveAspectRatio: "none" });
  if (ts.length < 2 || !ys.length) {
    svg.append(s("text", { x: 2, y: height / 2 + 4, class: "tick" }, "no data"));
    return svg;
  }
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const t0 = ts[0];
  const t1 = ts[ts.length - 1];
  const x = (t) => 1 + ((t - t0) / (t1 - t0 || 1)) * (width - 2);
  const y = (v) => height - 3 - ((v - lo) / (hi - lo || 1)) * (height - 6);
  const line = linePath(ts, values, x, y);
  svg.append(s("path", { d: `${line}L${x(t1).toFixed(1)} ${height}L${x(t0).toFixed(1)} ${height}Z`, class: "spark-area" }));
  svg.append(s("path", { d: line, class: "spark-line" }));
  for (const i of marks) {
    if (values[i] !== null && Number.isFinite(values[i])) svg.append(s("circle", { cx: x(ts[i]), cy: y(values[i]), r: 2, class: "spark-mark" }));
  }
  return svg;
}
