"""Remediation state kept in the store's audit log: runs, executed actions, target locks, approvals, outcomes.

The audit log is append-only, so it doubles as an event log: each change of a run appends the run's full
snapshot (``action="remediation.run"``, ``target=<run id>``, ``result=<status>``, a ``version`` that grows by one),
and the newest version is the run's state. State changes that must not race (taking target locks, approving,
denying, starting an approved run) re-read and write inside one store transaction: on SQLite that is a
``BEGIN IMMEDIATE`` transaction, so two processes sharing the database file cannot both take a lock or both
approve. (On PostgreSQL, at READ COMMITTED, two transactions may interleave; see docs/remediation.md.)

Audit actions written here: ``remediation.run``, ``remediation.guard``, ``remediation.action``,
``remediation.lock``, ``remediation.approval``, ``remediation.outcome``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmind.remediate.executors.base import Outcome, Plan
from opsmind.remediate.guardrails import ACTIVE, ActionView, Decision, LockView, RunView
from opsmind.store import NotFoundError, Store
from opsmind.store.errors import ConflictError

__all__ = ["Ledger", "RunRecord", "RunStatus", "approve", "deny", "outcome_to_dict", "plan_from_dict",
           "plan_to_dict"]

RunStatus = Literal["planned", "blocked", "dry_run", "pending_approval", "approved", "denied", "expired", "running",
                    "succeeded", "failed", "rolled_back", "rollback_failed"]
_SCAN = 100_000


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {"kind": plan.kind, "target": plan.target, "action": dict(plan.action), "changes": list(plan.changes),
            "reversible": plan.reversible, "describe": plan.describe()}


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    return Plan(kind=data["kind"], target=data["target"], action=dict(data["action"]),
                changes=tuple(data["changes"]), reversible=bool(data.get("reversible", True)))


def outcome_to_dict(out: Outcome) -> dict[str, Any]:
    return {"kind": out.plan.kind, "target": out.plan.target, "ok": out.ok, "dry_run": out.dry_run,
            "changed": out.changed, "before": dict(out.before) if out.before is not None else None,
            "after": dict(out.after) if out.after is not None else None, "message": out.message,
            "details": dict(out.details)}


class RunRecord(BaseModel):
    """One run of one playbook for one event: its plans, the guards' decisions, outcomes and verification."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    version: int = 0
    playbook: str
    risk: str
    event_kind: str
    event_key: str
    status: RunStatus = "planned"
    dry_run: bool = True
    reason: str = ""
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    approved_by: str | None = None
    incident_class: str | None = None
    targets: list[str] = Field(default_factory=list)
    plans: list[dict[str, Any]] = Field(default_factory=list)
    befores: list[dict[str, Any] | None] = Field(default_factory=list)
    guards: list[dict[str, Any]] = Field(default_factory=list)
    outcomes: list[dict[str, Any]] = Field(default_factory=list)
    rollbacks: list[dict[str, Any]] = Field(default_factory=list)
    verification: dict[str, Any] | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @staticmethod
    def new_id() -> str:
        return "run-" + secrets.token_hex(6)

    def view(self) -> RunView:
        return RunView(self.run_id, self.playbook, self.status, started_at=self.started_at,
                       finished_at=self.finished_at, targets=tuple(self.targets), dry_run=self.dry_run)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class Ledger:
    """The remediation records of one tenant (see the module docstring)."""

    def __init__(self, store: Store, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    # -- runs -----------------------------------------------------------------------------------------------
    def runs(self, *, since: float | None = None) -> list[RunRecord]:
        """The latest snapshot of each run (newest first), optionally only runs updated since ``since``."""
        rows = self.store.audit.list(self.tenant, action="remediation.run", since=since, limit=_SCAN)
        best: dict[str, RunRecord] = {}
        for row in rows:
            rec = RunRecord.model_validate(row.details)
            have = best.get(rec.run_id)
            if have is None or rec.version > have.version:
                best[rec.run_id] = rec
        return sorted(best.values(), key=lambda r: (r.created_at, r.run_id), reverse=True)

    def run(self, run_id: str) -> RunRecord:
        for rec in self.runs():
            if rec.run_id == run_id:
                return rec
        raise NotFoundError("remediation run", run_id, self.tenant)

    def save(self, run: RunRecord, *, actor: str, at: float, reason: str | None = None) -> RunRecord:
        """Append the run's next version; returns it."""
        nxt = run.model_copy(update={"version": run.version + 1, "updated_at": at})
        self.store.audit.record(self.tenant, actor, "remediation.run", target=nxt.run_id,
                                reason=reason if reason is not None else nxt.reason, result=nxt.status,
                                details=nxt.model_dump(mode="json"), at=at)
        return nxt

    def transition(self, run_id: str, allowed_from: Sequence[str], *, actor: str, at: float,
                   update: Mapping[str, Any], reason: str | None = None) -> RunRecord:
        """Atomically move a run on from one of ``allowed_from`` (``ConflictError`` when it is elsewhere)."""
        with self.store.transaction() as tx:
            led = Ledger(tx, self.tenant)
            cur = led.run(run_id)
            if cur.status not in allowed_from:
                raise ConflictError(f"run {run_id} is {cur.status}, not {' or '.join(allowed_from)}")
            return led.save(cur.model_copy(update=dict(update)), actor=actor, at=at, reason=reason)

    # -- decisions and actions ------------------------------------------------------------------------------
    def decision(self, run: RunRecord, decision: Decision, *, actor: str, at: float) -> None:
        self.store.audit.record(self.tenant, actor, "remediation.guard", target=run.run_id, reason=decision.reason,
                                result=decision.outcome, at=at,
                                details={"guard": decision.guard, "playbook": run.playbook, "targets": run.targets,
                                         "event": run.event_key, **dict(decision.details)})

    def action(self, run: RunRecord, outcome: Outcome, *, actor: str, at: float, phase: str = "forward") -> None:
        if outcome.dry_run:
            result = "dry_run"
        elif phase == "rollback":
            result = "rolled_back" if outcome.ok else "rollback_failed"
        else:
            result = "executed" if outcome.ok else "failed"
        self.store.audit.record(self.tenant, actor, "remediation.action", target=outcome.plan.target,
                                reason=outcome.message or outcome.plan.describe(), result=result, at=at,
                                details={"run_id": run.run_id, "playbook": run.playbook, "phase": phase,
                                         **outcome_to_dict(outcome)})

    def executed(self, *, since: float | None = None) -> list[ActionView]:
        """Forward actions executed for real (a failed one counts: it may have acted)."""
        rows = self.store.audit.list(self.tenant, action="remediation.action", since=since, limit=_SCAN)
        return [ActionView(r.target or "", r.at, str(r.details.get("run_id", ""))) for r in rows
                if r.result in ("executed", "failed") and r.details.get("phase") == "forward"]

    # -- locks ----------------------------------------------------------------------------------------------
    def locks(self) -> dict[str, LockView]:
        """The current holder of each target's lock (only targets whose last lock event is an acquisition)."""
        rows = self.store.audit.list(self.tenant, action="remediation.lock", limit=_SCAN)
        out: dict[str, LockView] = {}
        seen: set[str] = set()
        for r in rows:  # newest first
            t = r.target or ""
            if t in seen:
                continue
            seen.add(t)
            if r.result == "acquired":
                out[t] = LockView(t, str(r.details.get("run_id")), float(r.details.get("expires_at", 0.0)))
        return out

    def acquire(self, run: RunRecord, decide: Any, *, actor: str, at: float, ttl_s: float) -> Decision:
        """Take the lock of every target of ``run`` in one transaction when ``decide(locks)`` allows it."""
        with self.store.transaction() as tx:
            led = Ledger(tx, self.tenant)
            verdict: Decision = decide(led.locks())
            if verdict.allowed:
                for t in sorted(set(run.targets)):
                    tx.audit.record(self.tenant, actor, "remediation.lock", target=t, result="acquired", at=at,
                                    reason=f"run {run.run_id}",
                                    details={"run_id": run.run_id, "expires_at": at + ttl_s})
            return verdict

    def release(self, run: RunRecord, *, actor: str, at: float) -> None:
        with self.store.transaction() as tx:
            held = Ledger(tx, self.tenant).locks()
            for t in sorted(set(run.targets)):
                if t in held and held[t].run_id == run.run_id:
                    tx.audit.record(self.tenant, actor, "remediation.lock", target=t, result="released", at=at,
                                    reason=f"run {run.run_id} finished ({run.status})",
                                    details={"run_id": run.run_id})

    # -- outcomes per incident class ------------------------------------------------------------------------
    def outcome(self, run: RunRecord, *, success: bool, at: float) -> None:
        if run.incident_class is None:
            return
        self.store.audit.record(self.tenant, "opsmind", "remediation.outcome", target=run.incident_class,
                                result="success" if success else "failure", at=at,
                                reason=f"playbook {run.playbook} on {run.event_key}: {run.status}",
                                details={"class": run.incident_class, "playbook": run.playbook,
                                         "run_id": run.run_id, "success": success})

    def outcome_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """``(class, playbook) -> (successes, runs)`` learned from recorded outcomes."""
        rows = self.store.audit.list(self.tenant, action="remediation.outcome", limit=_SCAN)
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        for r in rows:
            key = (str(r.details.get("class")), str(r.details.get("playbook")))
            s, n = counts.get(key, (0, 0))
            counts[key] = (s + (1 if r.details.get("success") else 0), n + 1)
        return counts


def approve(store: Store, tenant: str, run_id: str, *, actor: str, at: float, reason: str | None = None) -> RunRecord:
    """A named person approves a pending run (``ConflictError`` if it is not pending or has expired). The engine's
    :meth:`~opsmind.remediate.runner.Remediator.tick` then executes it."""
    who = actor.strip()
    if not who:
        raise ConflictError("an approval needs a named actor")
    why = reason or f"approved by {who}"
    with store.transaction() as tx:
        led = Ledger(tx, tenant)
        cur = led.run(run_id)
        if cur.status == "pending_approval" and cur.expires_at is not None and at > cur.expires_at:
            led.save(cur.model_copy(update={"status": "expired", "reason": "approval expired", "finished_at": at}),
                     actor=who, at=at)
            tx.audit.record(tenant, who, "remediation.approval", target=run_id, result="expired", at=at,
                            reason=f"approval request expired at {cur.expires_at:.0f}")
            rec = None
        elif cur.status != "pending_approval":
            raise ConflictError(f"run {run_id} is {cur.status}, not pending_approval")
        else:
            rec = led.save(cur.model_copy(update={"status": "approved", "approved_by": who, "reason": why}),
                           actor=who, at=at, reason=why)
            tx.audit.record(tenant, who, "remediation.approval", target=run_id, result="approved", at=at,
                            reason=why, details={"playbook": rec.playbook})
    if rec is None:
        raise ConflictError(f"run {run_id}: the approval request expired at {cur.expires_at:.0f}")
    return rec


def deny(store: Store, tenant: str, run_id: str, *, actor: str, at: float, reason: str | None = None) -> RunRecord:
    """A named person denies a pending (or approved, not yet started) run."""
    who = actor.strip()
    if not who:
        raise ConflictError("a denial needs a named actor")
    why = reason or f"denied by {who}"
    rec = Ledger(store, tenant).transition(run_id, ("pending_approval", "approved"), actor=who, at=at, reason=why,
                                           update={"status": "denied", "reason": why, "finished_at": at})
    store.audit.record(tenant, who, "remediation.approval", target=run_id, result="denied", at=at, reason=why,
                       details={"playbook": rec.playbook})
    return rec
