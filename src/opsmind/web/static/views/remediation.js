// Remediation: runs waiting for approval (approve / deny with a reason), every run with its guard decisions,
// plan, outcome, verification and rollback, the loaded playbooks (and a validator), and the audit log.
// Also the "suggested playbooks" panel of an incident, with a dry-run per playbook.

import { api, load, showError } from "../api.js";
import { empty, failed, pageHead, select } from "../components.js";
import { ago, chip, clock, h, num, pct, query, setQuery, throttle, timeEl } from "../util.js";

const STATUS_TEXT = {
  planned: "planned", blocked: "blocked", dry_run: "dry run", pending_approval: "waiting for approval",
  approved: "approved", denied: "denied", expired: "expired", running: "running", succeeded: "succeeded",
  failed: "failed", rolled_back: "rolled back", rollback_failed: "rollback failed",
};
const STATUSES = [["", "all statuses"], ...Object.entries(STATUS_TEXT)];
const RISK_CLASS = { low: "sev-low", medium: "sev-medium", high: "sev-high", critical: "sev-critical" };

/** A run's status as a coloured badge. */
export function statusBadge(status) {
  return h("span", { class: `chip run-status rs-${status}`, "data-status": status }, STATUS_TEXT[status] || status);
}

function riskChip(risk) {
  return risk ? chip(`risk ${risk}`, RISK_CLASS[risk] || "") : null;
}

/** The event a run answered, linked to its incident when it was one. */
function eventLink(run) {
  const key = String(run.event_key || "");
  if (key.startsWith("incident:")) {
    const inc = key.slice("incident:".length);
    return h("a", { href: `#/incidents/${encodeURIComponent(inc)}` }, inc);
  }
  return h("span", { class: "mono small" }, key);
}

function guardList(guards) {
  if (!(guards || []).length) return null;
  return h("ul", { class: "guards", "aria-label": "Guard decisions" }, guards.map((g) => h("li", { class: `guard g-${g.outcome}` },
    h("span", { class: "g-outcome" }, g.outcome === "dry_run" ? "dry run" : g.outcome),
    h("span", { class: "g-name" }, String(g.guard).replace(/_/g, " ")),
    h("span", { class: "g-reason" }, g.reason || ""))));
}

function planList(lines) {
  if (!(lines || []).length) return h("p", { class: "muted small" }, "No planned actions.");
  return h("ol", { class: "plan", "aria-label": "Plan" }, lines.map((line) => h("li", { class: "mono" }, line)));
}

function outcomeLines(title, items) {
  if (!(items || []).length) return null;
  return [h("h4", {}, title), h("ul", { class: "outcomes" }, items.map((o) => h("li", { class: o.ok ? "ok" : "bad" },
    h("b", {}, o.ok ? "ok" : "failed"), " ", h("span", { class: "mono" }, `${o.kind || ""} ${o.target || ""}`.trim()),
    o.message ? h("span", { class: "muted" }, ` · ${o.message}`) : null)))];
}

function verificationLine(v) {
  if (!v) return null;
  return h("p", { class: `verification ${v.ok ? "ok" : "bad"}` }, h("b", {}, v.ok ? "verified" : "not verified"),
    ` · ${v.detail || ""}`, v.value !== null && v.value !== undefined ? ` · value ${num(v.value)}` : "",
    v.checks ? ` · ${v.checks} check${v.checks === 1 ? "" : "s"}` : "");
}

/** The details of a run: guards, plan, and (from the full record) outcomes, rollbacks and verification. */
function runDetails(run, full) {
  return h("div", { class: "run-details" },
    h("div", { class: "grid-2 run-grid" },
      h("div", {}, h("h4", {}, "Plan"), planList(run.plan || (full && full.plans || []).map((p) => p.describe)),
        full ? outcomeLines("Outcome", full.outcomes) : null,
        full ? outcomeLines("Rollback", full.rollbacks) : null,
        verificationLine((full || run).verification)),
      h("div", {}, h("h4", {}, "Guard decisions"), guardList(run.guards) || h("p", { class: "muted small" }, "None recorded."))),
    run.incident_class ? h("p", { class: "muted small" }, "incident class ", h("span", { class: "mono" }, run.incident_class)) : null);
}

// ---- reason dialog -------------------------------------------------------------------------------------------

/** Ask for an optional reason; resolves to the text ("" for none) or null when cancelled. */
function askReason(verb, run) {
  return new Promise((resolve) => {
    const input = h("input", { id: "reason-input", type: "text", name: "reason", autocomplete: "off", maxlength: 2000,
      placeholder: verb === "approve" ? "e.g. checked the plan" : "e.g. not during the release" });
    const dialog = h("dialog", { id: "reason-dialog", "aria-labelledby": "reason-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "reason-title" }, `${verb === "approve" ? "Approve" : "Deny"} ${run.playbook}`),
        h("p", { class: "muted small" }, `Run ${run.run_id} on ${(run.targets || []).join(", ") || "no target"}. Your token's name is recorded.`),
        h("label", { for: "reason-input" }, "Reason (optional)"), input,
        h("div", { class: "actions" }, h("span", { class: "spacer" }),
          h("button", { type: "button", class: "ghost", value: "cancel", "data-action": "cancel" }, "Cancel"),
          h("button", { type: "submit", class: verb === "approve" ? "primary" : "danger", value: "ok", "data-action": "confirm" },
            verb === "approve" ? "Approve" : "Deny"))));
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.querySelector("form").addEventListener("submit", (e) => { e.preventDefault(); finish(input.value.trim()); });
    dialog.querySelector('[data-action="cancel"]').addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", () => finish(null));
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

async function decide(verb, run, onDone, buttons) {
  const reason = await askReason(verb, run);
  if (reason === null) return;
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const rec = await api(`/remediations/${encodeURIComponent(run.run_id)}/${verb}`, { method: "POST", body: reason ? { reason } : {} });
    document.dispatchEvent(new CustomEvent("opsmind:remediation", { detail: rec }));
    onDone(rec);
  } catch (err) {
    showError(`${verb} ${run.run_id}: ${err.message}`);
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ---- the view ------------------------------------------------------------------------------------------------

function summaryOf(rec) {
  // a full record (from approve/deny) as the list's summary
  if (!rec || rec.plan) return rec;
  const forward = (rec.outcomes || []).filter((o) => !o.dry_run);
  return { ...rec, plan: (rec.plans || []).map((p) => p.describe), actions: forward.length,
    actions_failed: forward.filter((o) => !o.ok).length, rollbacks: (rec.rollbacks || []).length };
}

function approvalCard(run, onDone) {
  const approveBtn = h("button", { type: "button", class: "primary", "data-action": "approve" }, "Approve");
  const denyBtn = h("button", { type: "button", class: "danger", "data-action": "deny" }, "Deny");
  approveBtn.addEventListener("click", () => decide("approve", run, onDone, [approveBtn, denyBtn]));
  denyBtn.addEventListener("click", () => decide("deny", run, onDone, [approveBtn, denyBtn]));
  return h("article", { class: "approval", "data-run-id": run.run_id },
    h("div", { class: "approval-head" },
      h("h3", {}, run.playbook), riskChip(run.risk), h("span", { class: "muted small" }, "for ", eventLink(run)),
      h("span", { class: "spacer" }),
      run.expires_at ? h("span", { class: "small expires", title: `expires ${clock(run.expires_at)}` }, `expires ${ago(run.expires_at)}`) : null,
      h("span", { class: "approval-actions" }, approveBtn, denyBtn)),
    h("div", { class: "small" }, h("b", {}, "targets "), h("span", { class: "mono" }, (run.targets || []).join(", ") || "–")),
    planList(run.plan), guardList(run.guards));
}

function runRow(run, fresh) {
  const details = h("div", { class: "run-body" }, runDetails(run, null));
  const item = h("details", { class: `run${fresh ? " fresh" : ""}`, "data-run-id": run.run_id, "data-status": run.status },
    h("summary", {},
      statusBadge(run.status),
      h("span", { class: "run-playbook" }, run.playbook),
      riskChip(run.risk),
      run.dry_run ? h("span", { class: "chip dry-flag", title: "planned only, nothing executed" }, "dry run") : null,
      h("span", { class: "run-targets mono small" }, (run.targets || []).join(", ")),
      h("span", { class: "run-event small" }, eventLink(run)),
      h("span", { class: "run-reason muted small" }, run.reason || ""),
      h("span", { class: "run-time" }, timeEl(run.updated_at))),
    details);
  let loaded = false;
  item.addEventListener("toggle", async () => {
    if (!item.open || loaded) return;
    loaded = true;
    const full = await load(`/remediations/${encodeURIComponent(run.run_id)}`);
    if (full) details.replaceChildren(runDetails(run, full));
  });
  return item;
}

function playbooksTable(books) {
  if (!books.length) return empty("No playbooks loaded.", "Set remediation.playbooks in the configuration to files or folders of playbooks.");
  return h("div", { class: "table-wrap" }, h("table", { class: "playbooks" },
    h("thead", {}, h("tr", {}, ["playbook", "risk", "trigger", "actions", "verification", "rollback", "approval"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, books.map((p) => h("tr", { "data-playbook": p.name },
      h("td", {}, h("b", {}, p.name), p.enabled ? null : [" ", chip("disabled", "")], p.dry_run ? [" ", chip("dry run", "")] : null,
        p.description ? h("div", { class: "muted small" }, p.description) : null,
        p.source ? h("div", { class: "muted small mono" }, p.source) : null),
      h("td", {}, riskChip(p.risk)),
      h("td", { class: "small" }, p.trigger, (p.conditions || []).length ? h("div", { class: "muted" }, `if ${p.conditions.join(" and ")}`) : null),
      h("td", { class: "small" }, h("ol", { class: "plain" }, p.actions.map((a) => h("li", {}, h("span", { class: "mono" }, a.kind), " → ", h("span", { class: "mono" }, a.target))))),
      h("td", { class: "small mono" }, p.verification || h("span", { class: "muted" }, "none")),
      h("td", {}, p.rollback),
      h("td", {}, p.approval_required ? "required" : h("span", { class: "muted" }, "no")))))));
}

function validator() {
  const text = h("textarea", { id: "playbook-text", rows: 8, spellcheck: "false", placeholder: "name: my-playbook\nrisk: low\ntrigger: …" });
  const out = h("p", { class: "small validate-result", "aria-live": "polite" });
  const button = h("button", { type: "button" }, "Validate");
  button.addEventListener("click", async () => {
    out.className = "small validate-result";
    out.textContent = "checking…";
    try {
      const res = await api("/playbooks/validate", { method: "POST", body: { text: text.value } });
      out.classList.add("ok");
      out.textContent = `valid: ${res.name} (risk ${res.risk}, ${res.actions} action${res.actions === 1 ? "" : "s"})${res.loaded ? ", loaded on this server" : ""}`;
    } catch (err) {
      out.classList.add("bad");
      out.textContent = err.message;
    }
  });
  return h("details", { class: "validator" }, h("summary", {}, "Validate a playbook"),
    h("label", { for: "playbook-text", class: "visually-hidden" }, "Playbook YAML"), text,
    h("div", { class: "validate-row" }, button, out));
}

function auditTable(rows) {
  if (!rows.length) return empty("No remediation decisions yet.", "Every guard decision, approval, action and outcome is recorded here.");
  return h("div", { class: "table-wrap" }, h("table", { class: "audit" },
    h("thead", {}, h("tr", {}, ["when", "who", "what", "target", "result", "why"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", { "data-audit-id": r.id },
      h("td", {}, timeEl(r.at)),
      h("td", {}, r.actor),
      h("td", { class: "mono small" }, String(r.action).replace(/^remediation\./, ""),
        r.details && r.details.guard ? ` · ${r.details.guard}` : ""),
      h("td", { class: "mono small" }, r.target || "–"),
      h("td", {}, h("span", { class: `result r-${r.result}` }, r.result)),
      h("td", { class: "small" }, r.reason || ""))))));
}

export async function remediationView(ctx) {
  const { main, abort } = ctx;
  const status = ctx.query.status || "";
  const playbook = ctx.query.playbook || "";
  const pendingBody = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  const runsBody = h("div", {}, h("p", { class: "empty" }, "Loading runs…"));
  const booksBody = h("div", {}, h("p", { class: "empty" }, "Loading playbooks…"));
  const auditBody = h("div", {}, h("p", { class: "empty" }, "Loading the audit log…"));
  const pendingCount = h("span", { class: "muted small" });
  const runsCount = h("span", { class: "muted small" });
  const [books, runs, audit] = await Promise.all([
    load("/playbooks", { signal: abort.signal }),
    load(`/remediations${query({ limit: 200 })}`, { signal: abort.signal }),
    load("/remediations/audit?limit=60", { signal: abort.signal }),
  ]);
  if (!ctx.active) return;
  const names = ((books && books.playbooks) || []).map((p) => p.name);
  if (playbook && !names.includes(playbook)) names.push(playbook);
  main.replaceChildren(
    pageHead("Remediation", {
      filters: [
        select("Status", status, STATUSES, (v) => setQuery({ status: v })),
        select("Playbook", playbook, [["", "all playbooks"], ...names.map((n) => [n, n])], (v) => setQuery({ playbook: v })),
      ],
    }),
    h("section", { class: "panel", id: "approvals", "aria-labelledby": "approvals-title" },
      h("h2", { id: "approvals-title" }, "Waiting for approval ", pendingCount), pendingBody),
    h("section", { class: "panel", id: "runs", "aria-labelledby": "runs-title" },
      h("h2", { id: "runs-title" }, "Runs ", runsCount), runsBody),
    h("section", { class: "panel", id: "playbooks", "aria-labelledby": "books-title" },
      h("h2", { id: "books-title" }, "Playbooks"), booksBody),
    h("section", { class: "panel", id: "audit", "aria-labelledby": "audit-title" },
      h("h2", { id: "audit-title" }, "Audit log ", h("span", { class: "muted small" }, "newest 60")), auditBody));

  booksBody.replaceChildren(books ? playbooksTable(books.playbooks || []) : failed("playbooks"), validator());
  auditBody.replaceChildren(audit ? auditTable(audit.audit || []) : failed("the audit log"));
  if (!runs) {
    pendingBody.replaceChildren(failed("runs"));
    runsBody.replaceChildren(failed("runs"));
    return;
  }
  const items = new Map((runs.remediations || []).map((r) => [r.run_id, r]));
  const freshIds = new Set();
  const fits = (r) => (!status || r.status === status) && (!playbook || r.playbook === playbook);

  function render() {
    const all = [...items.values()].sort((a, b) => b.created_at - a.created_at || (a.run_id < b.run_id ? 1 : -1));
    const waiting = all.filter((r) => r.status === "pending_approval" && (!playbook || r.playbook === playbook));
    pendingCount.textContent = waiting.length ? `(${waiting.length})` : "";
    pendingBody.replaceChildren(waiting.length ? h("div", { class: "approvals" }, waiting.map((r) => approvalCard(r, update)))
      : empty("Nothing waits for approval.", "Runs of playbooks at or above the approval risk tier wait here for a named person."));
    const shown = all.filter(fits);
    const open = new Set([...runsBody.querySelectorAll("details.run[open]")].map((d) => d.dataset.runId));
    runsCount.textContent = `${shown.length} shown, newest first`;
    runsBody.replaceChildren(shown.length ? h("div", { class: "runs" }, shown.map((r) => {
      const row = runRow(r, freshIds.has(r.run_id));
      if (open.has(r.run_id)) { row.open = true; }
      return row;
    })) : empty(status || playbook ? "No runs match these filters." : "No remediation runs yet.",
      "Runs appear here live: dry runs, blocked runs, approvals and executed actions."));
    freshIds.clear();
  }
  const reloadAudit = throttle(async () => {
    const res = await load("/remediations/audit?limit=60");
    if (res && ctx.active) auditBody.replaceChildren(auditTable(res.audit || []));
  }, 1000);
  function update(rec) {
    const run = summaryOf(rec);
    if (!run || !run.run_id) return;
    const old = items.get(run.run_id);
    if (old && old.version > run.version) return;
    items.set(run.run_id, run);
    freshIds.add(run.run_id);
    render();
    reloadAudit();
  }
  render();
  ctx.on("remediation", update);
}

// ---- incident page: suggested playbooks ------------------------------------------------------------------------

function dryRunResult(run) {
  return h("div", { class: "dry-result", "data-run-id": run.run_id, "data-status": run.status },
    h("div", { class: "dry-head" }, statusBadge(run.status), h("span", { class: "small" }, run.reason || ""),
      h("a", { class: "small", href: `#/remediation?playbook=${encodeURIComponent(run.playbook)}` }, "all runs")),
    h("h4", {}, "Plan"), planList((run.plans || []).map((p) => p.describe)),
    h("h4", {}, "Guard decisions"), guardList(run.guards));
}

/**
 * The "Suggested playbooks" panel of an incident (a <section> that loads itself): each playbook with its observed
 * success rate on this class of incident and the count behind it, and a dry-run button that shows the plan.
 */
export function suggestionsPanel(ctx, key) {
  const body = h("div", {}, h("p", { class: "empty" }, "Loading suggestions…"));
  const cls = h("span", { class: "muted small mono" });
  const section = h("section", { class: "panel", id: "suggestions", "aria-labelledby": "sugg-title" },
    h("h2", { id: "sugg-title" }, "Suggested playbooks ", cls), body);
  (async () => {
    const res = await load(`/incidents/${encodeURIComponent(key)}/suggestions`, { signal: ctx.abort.signal });
    if (!ctx.active) return;
    if (!res) { body.replaceChildren(failed("suggestions")); return; }
    cls.textContent = res.incident_class || "";
    const list = res.suggestions || [];
    if (!list.length) {
      body.replaceChildren(empty("No playbook fits this incident.", "Playbooks whose trigger matches it, or that worked on incidents like it, appear here."));
      return;
    }
    body.replaceChildren(h("ol", { class: "suggestions" }, list.map((s) => {
      const result = h("div", { class: "dry-slot", "aria-live": "polite" });
      const button = h("button", { type: "button", "data-action": "dry-run", disabled: !s.available,
        title: s.available ? "Plan this playbook for this incident and ask every guard; nothing is executed" : "Not loaded, or it does not trigger on this incident" }, "dry-run");
      button.addEventListener("click", async () => {
        button.disabled = true;
        result.replaceChildren(h("p", { class: "muted small" }, "planning…"));
        try {
          const run = await api(`/playbooks/${encodeURIComponent(s.playbook)}/test`, { method: "POST", body: { incident: key } });
          result.replaceChildren(dryRunResult(run));
        } catch (err) {
          result.replaceChildren();
          showError(`dry-run of ${s.playbook}: ${err.message}`);
        } finally {
          button.disabled = false;
        }
      });
      const rate = s.n ? h("span", { class: "rate" }, h("b", {}, pct(s.success_rate)), ` success · ${s.successes} of ${s.n} run${s.n === 1 ? "" : "s"}`)
        : h("span", { class: "rate muted" }, "never tried on this class");
      return h("li", { class: "suggestion", "data-playbook": s.playbook },
        h("div", { class: "suggestion-head" }, h("b", {}, s.playbook), riskChip(s.risk), rate, h("span", { class: "spacer" }), button),
        s.description ? h("div", { class: "muted small" }, s.description) : null,
        result);
    })));
  })();
  return section;
}
