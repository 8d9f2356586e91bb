"""The remediation runner: event -> matching playbooks -> plans -> guardrails -> actions -> verification ->
rollback on failure -> notification and records.

A run goes ``planned`` -> ``blocked`` (a guard refused) | ``dry_run`` (planned only) | ``pending_approval`` ->
``approved`` | ``denied`` | ``expired``; an allowed run goes ``running`` -> ``succeeded`` | ``rolled_back``
(verification failed, actions undone) | ``failed`` (an action failed or nothing to undo with) |
``rollback_failed``. Every step is an audit record; the run itself is kept as versioned snapshots in the audit log
(:mod:`opsmind.remediate.ledger`).

The runner does I/O (executors, verifier, store); every decision is made by the pure guards in
:mod:`opsmind.remediate.guardrails` with ``now`` passed in. The only clock is the verifier's (the end of a
verification is its ``finished_at``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.remediate import guardrails as g
from opsmind.remediate.classes import Suggestion, classify, suggest
from opsmind.remediate.events import Event, matching
from opsmind.remediate.executors.base import Executor, Outcome, Plan
from opsmind.remediate.ledger import Ledger, RunRecord, plan_from_dict, plan_to_dict
from opsmind.remediate.playbook import Action, Playbook, load_playbooks
from opsmind.remediate.verify import Verifier, VerifyResult
from opsmind.store import Store

if TYPE_CHECKING:
    from opsmind.config import Settings

__all__ = ["Remediator"]

_DEDUPE = frozenset({"pending_approval", "approved", "running", "succeeded", "denied", "dry_run"})


class Remediator:
    """Runs playbooks for events under the guardrails.

    Parameters
    ----------
    settings
        ``settings.remediation`` (``dry_run``, ``playbooks``, and ``guardrails`` when the configuration has it),
        ``settings.tenant``.
    store
        Where runs, decisions, locks and outcomes are recorded (the audit log).
    executors
        Executor by action kind (``{"kubernetes.scale": ..., "shell": ...}``).
    verifier
        Checks a playbook's verification (a :class:`~opsmind.remediate.verify.PrometheusVerifier`); without one a
        playbook that asks for verification fails safe: its actions are rolled back.
    playbooks
        The playbooks (default: loaded from ``settings.remediation.playbooks``).
    policy
        Global guardrails (default: ``settings.remediation.guardrails`` if present, else :class:`GuardPolicy()`).
    notify
        Called with each run that finished, was blocked, or waits for approval.
    """

    def __init__(self, settings: Settings, store: Store, executors: Mapping[str, Executor],
                 verifier: Verifier | None = None, *, playbooks: Sequence[Playbook] | None = None,
                 policy: g.GuardPolicy | None = None, notify: Callable[[RunRecord], None] | None = None,
                 tenant: str | None = None, actor: str = "opsmind") -> None:
        self.settings = settings
        self.store = store
        self.executors = dict(executors)
        self.verifier = verifier
        self.playbooks = list(playbooks) if playbooks is not None else load_playbooks(
            settings.remediation.playbooks)
        self.policy = policy or settings.remediation.guardrails
        self.notify = notify
        self.tenant = tenant or settings.tenant
        self.actor = actor
        self.ledger = Ledger(store, self.tenant)
        self.store.tenants.ensure(self.tenant)

    # -- public ---------------------------------------------------------------------------------------------
    def playbook(self, name: str) -> Playbook:
        for pb in self.playbooks:
            if pb.name == name:
                return pb
        raise ConfigError(f"no playbook named {name!r}; known: {', '.join(p.name for p in self.playbooks)}")

    def handle(self, event: Event, now: float, *, dry_run: bool | None = None, force: bool = False,
               only: Sequence[str] | None = None) -> list[RunRecord]:
        """Run every matching playbook for ``event`` at ``now``; returns the runs started (a playbook that already
        has an open, successful, denied or dry run for this event is skipped unless ``force``)."""
        out: list[RunRecord] = []
        existing = self.ledger.runs()
        for pb in matching(self.playbooks, event):
            if only is not None and pb.name not in only:
                continue
            key = event.key_for(pb)
            if not force and any(r.playbook == pb.name and r.event_key == key and r.status in _DEDUPE
                                 for r in existing):
                continue
            out.append(self._start(pb, event, key, now, dry_run))
        return out

    def tick(self, now: float) -> list[RunRecord]:
        """Expire pending approvals, execute approved runs, and fire schedule playbooks due at ``now``."""
        out: list[RunRecord] = []
        for run in self.ledger.runs():
            if run.status == "pending_approval" and run.expires_at is not None and now > run.expires_at:
                try:
                    rec = self.ledger.transition(run.run_id, ("pending_approval",), actor=self.actor, at=now,
                                                 update={"status": "expired", "finished_at": now,
                                                         "reason": "approval request expired"})
                except OpsmindError:
                    continue
                self.store.audit.record(self.tenant, self.actor, "remediation.approval", target=run.run_id,
                                        result="expired", at=now,
                                        reason=f"approval request expired at {run.expires_at:.0f}")
                out.append(rec)
                self._notify(rec)
            elif run.status == "approved":
                try:
                    out.append(self.resume(run.run_id, now))
                except OpsmindError as exc:  # e.g. the playbook was removed from the configuration
                    with contextlib.suppress(OpsmindError):
                        out.append(self.ledger.transition(run.run_id, ("approved",), actor=self.actor, at=now,
                                                          update={"status": "blocked", "finished_at": now,
                                                                  "reason": f"cannot run: {exc}"}))
        out.extend(self.handle(Event.tick(now), now))
        return out

    def resume(self, run_id: str, now: float) -> RunRecord:
        """Execute an approved run (what :meth:`tick` does for each; safe to call from several processes)."""
        run = self.ledger.run(run_id)
        pb = self.playbook(run.playbook)
        gate = g.ApprovalGate().decide(pb, self.policy.approval_from, status=run.status, expires_at=run.expires_at,
                                       approved_by=run.approved_by, at=now)
        self.ledger.decision(run, gate, actor=self.actor, at=now)
        if not gate.allowed:
            return run
        plans = [plan_from_dict(p) for p in run.plans]
        return self._execute(pb, run, plans, now, from_status=("approved",))

    def suggest(self, event: Event) -> list[Suggestion]:
        """Playbooks for the event's class, best observed success rate first, with the count behind it."""
        return suggest(self.ledger, event, [p.name for p in matching(self.playbooks, event)])

    # -- a run ----------------------------------------------------------------------------------------------
    def _start(self, pb: Playbook, event: Event, key: str, now: float, dry_run: bool | None) -> RunRecord:
        ctx = event.context_for(pb)
        run = RunRecord(run_id=RunRecord.new_id(), playbook=pb.name, risk=pb.risk, event_kind=event.kind,
                        event_key=key, created_at=now, updated_at=now, incident_class=classify(event),
                        context=_jsonable(ctx))
        try:
            plans = [self._plan(a, ctx, run.run_id, now) for a in pb.actions]
        except (OpsmindError, ValueError, TypeError, KeyError) as exc:
            return self._blocked(run, g.Decision("plan", "deny", f"cannot plan: {exc}"), now)
        befores = [self._before(p) for p in plans]
        run = run.model_copy(update={"plans": [plan_to_dict(p) for p in plans], "befores": befores,
                                     "targets": sorted({p.target for p in plans})})
        dry = g.DryRun().decide(default=self.settings.remediation.dry_run, playbook=pb, requested=dry_run)
        checks = self._checks(pb, run, plans, befores, now)
        if dry.outcome == "dry_run":
            return self._dry(run, dry, checks, now)
        for d in checks:
            self.ledger.decision(run, d, actor=self.actor, at=now)
            run = _with_guard(run, d)
            if not d.allowed:
                return self._blocked(run, d, now, recorded=True)
        self.ledger.decision(run, dry, actor=self.actor, at=now)
        gate = g.ApprovalGate().decide(pb, self.policy.approval_from, status="planned", expires_at=None,
                                       approved_by=None, at=now)
        self.ledger.decision(run, gate, actor=self.actor, at=now)
        run = _with_guard(_with_guard(run, dry), gate)
        if gate.outcome == "pending":
            run = self.ledger.save(run.model_copy(update={
                "status": "pending_approval", "dry_run": False, "reason": gate.reason,
                "expires_at": now + pb.guardrails.approval_ttl_s}), actor=self.actor, at=now)
            self._notify(run)
            return run
        run = self.ledger.save(run.model_copy(update={"dry_run": False}), actor=self.actor, at=now)
        return self._execute(pb, run, plans, now, from_status=("planned",))

    def _plan(self, action: Action, ctx: Mapping[str, Any], run_id: str, now: float) -> Plan:
        ex = self.executors.get(action.kind)
        if ex is None:
            raise ConfigError(f"no executor for {action.kind!r} (have: {', '.join(sorted(self.executors))})")
        params = {"at": now, **action.render_params(ctx), "run_id": run_id}
        return ex.plan(action.render_target(ctx), params)

    def _before(self, plan: Plan) -> dict[str, Any] | None:
        """The target's current state, read by a dry run (for the blast radius and the plan shown)."""
        try:
            out = self.executors[plan.kind].execute(plan, dry_run=True)
        except Exception:  # an executor that raises: the state is unknown (the blast radius then refuses scaling)
            return None
        return dict(out.before) if out.before is not None else None

    def _checks(self, pb: Playbook, run: RunRecord, plans: Sequence[Plan],
                befores: Sequence[Mapping[str, Any] | None], now: float) -> list[g.Decision]:
        """The guards evaluated before anything executes (in order; the first refusal decides)."""
        runs = [r.view() for r in self.ledger.runs()]
        limits = pb.guardrails
        return [
            g.AllowList().decide(self.policy.allow, plans),
            g.Maintenance().decide([(self.policy.maintenance, self.policy.maintenance_mode),
                                    (limits.maintenance, limits.maintenance_mode)], now),
            g.CircuitBreaker().decide(pb.name, limits, runs, now, run.run_id),
            g.RateLimit().decide(pb.name, limits, plans, runs, self.ledger.executed(), now, run.run_id),
            g.BlastRadius().decide(limits, plans, befores),
        ]

    def _dry(self, run: RunRecord, dry: g.Decision, checks: Sequence[g.Decision], now: float) -> RunRecord:
        self.ledger.decision(run, dry, actor=self.actor, at=now)
        run = _with_guard(run, dry)
        for d in checks:
            run = _with_guard(run, d)
        refused = next((d for d in checks if not d.allowed), None)
        reason = dry.reason + (f"; would be blocked by {refused.guard}: {refused.reason}" if refused else "")
        run = self.ledger.save(run.model_copy(update={"status": "dry_run", "dry_run": True, "reason": reason,
                                                      "finished_at": now}), actor=self.actor, at=now)
        self._notify(run)
        return run

    def _blocked(self, run: RunRecord, d: g.Decision, now: float, recorded: bool = False) -> RunRecord:
        if not recorded:
            self.ledger.decision(run, d, actor=self.actor, at=now)
            run = _with_guard(run, d)
        run = self.ledger.save(run.model_copy(update={"status": "blocked", "reason": f"{d.guard}: {d.reason}",
                                                      "finished_at": now}), actor=self.actor, at=now)
        self._notify(run)
        return run

    def _execute(self, pb: Playbook, run: RunRecord, plans: Sequence[Plan], now: float,
                 from_status: Sequence[str]) -> RunRecord:
        if run.status == "approved":  # time passed since planning: check the time-dependent guards again
            runs = [r.view() for r in self.ledger.runs()]
            for d in (g.Maintenance().decide([(self.policy.maintenance, self.policy.maintenance_mode),
                                              (pb.guardrails.maintenance, pb.guardrails.maintenance_mode)], now),
                      g.CircuitBreaker().decide(pb.name, pb.guardrails, runs, now, run.run_id),
                      g.RateLimit().decide(pb.name, pb.guardrails, plans, runs, self.ledger.executed(), now,
                                           run.run_id)):
                self.ledger.decision(run, d, actor=self.actor, at=now)
                if not d.allowed:
                    return self._blocked(_with_guard(run, d), d, now, recorded=True)
        lock = self.ledger.acquire(run, lambda locks: g.TargetLock().decide(run.run_id, run.targets, locks, now),
                                   actor=self.actor, at=now, ttl_s=pb.guardrails.lock_ttl_s)
        self.ledger.decision(run, lock, actor=self.actor, at=now)
        run = _with_guard(run, lock)
        if not lock.allowed:
            return self._blocked(run, lock, now, recorded=True)
        try:
            run = self.ledger.transition(run.run_id, from_status, actor=self.actor, at=now,
                                         update={"status": "running", "started_at": now, "guards": run.guards,
                                                 "reason": "executing"})
        except OpsmindError as exc:  # another process started (or denied) it first: leave its record alone
            self.ledger.release(run, actor=self.actor, at=now)
            self.store.audit.record(self.tenant, self.actor, "remediation.run.skipped", target=run.run_id,
                                    result="skipped", reason=str(exc), at=now)
            return self.ledger.run(run.run_id)
        try:
            run = self._act(pb, run, plans, now)
        finally:
            self.ledger.release(run, actor=self.actor, at=run.finished_at or now)
        self.ledger.outcome(run, success=run.status == "succeeded", at=run.finished_at or now)
        self._notify(run)
        return run

    def _act(self, pb: Playbook, run: RunRecord, plans: Sequence[Plan], now: float) -> RunRecord:
        done: list[Outcome] = []
        failed: Outcome | None = None
        for plan in plans:
            out = self._run_one(plan)
            self.ledger.action(run, out, actor=self.actor, at=now)
            done.append(out)
            if not out.ok:
                failed = out
                break
        outcomes = [_outcome_dict(o) for o in done]
        if failed is not None:
            rb = self._rollback(pb, run, done, now)
            status = "failed" if all(r["ok"] for r in rb) else "rollback_failed"
            return self.ledger.save(run.model_copy(update={
                "status": status, "outcomes": outcomes, "rollbacks": rb, "finished_at": now,
                "reason": f"action failed: {failed.message or failed.plan.describe()}"}), actor=self.actor, at=now)
        result = self._verify(pb, run, now)
        end = max(now, result.finished_at)
        if result.ok:
            return self.ledger.save(run.model_copy(update={
                "status": "succeeded", "outcomes": outcomes, "verification": result.to_dict(), "finished_at": end,
                "reason": f"verified: {result.detail}"}), actor=self.actor, at=end)
        rb = self._rollback(pb, run, done, end)
        if pb.rollback.mode == "none":
            status = "failed"
        else:
            status = "rolled_back" if all(r["ok"] for r in rb) else "rollback_failed"
        return self.ledger.save(run.model_copy(update={
            "status": status, "outcomes": outcomes, "rollbacks": rb, "verification": result.to_dict(),
            "finished_at": end, "reason": f"verification failed: {result.detail}"}), actor=self.actor, at=end)

    def _run_one(self, plan: Plan) -> Outcome:
        try:
            return self.executors[plan.kind].execute(plan, dry_run=False)
        except Exception as exc:  # the contract says execute never raises; a third-party executor might
            return Outcome(plan, ok=False, dry_run=False, changed=False, message=f"{type(exc).__name__}: {exc}")

    def _verify(self, pb: Playbook, run: RunRecord, now: float) -> VerifyResult:
        check = pb.verification
        if check is None:
            return VerifyResult(True, None, "no verification configured", 0, now, now)
        if self.verifier is None:
            return VerifyResult(False, None, "no verifier available (Prometheus not configured)", 0, now, now)
        try:
            return self.verifier.verify(check, run.context, now)
        except (OpsmindError, ValueError) as exc:
            return VerifyResult(False, None, f"verification could not run: {exc}", 0, now, now)

    def _rollback(self, pb: Playbook, run: RunRecord, done: Sequence[Outcome], at: float) -> list[dict[str, Any]]:
        """Undo in reverse order (``auto``), or run the playbook's rollback actions; one dict per step."""
        out: list[dict[str, Any]] = []
        if pb.rollback.mode == "none":
            return out
        if pb.rollback.mode == "actions":
            for action in pb.rollback.actions:
                try:
                    plan = self._plan(action, run.context, run.run_id + "-rollback", at)
                except (OpsmindError, ValueError, TypeError, KeyError) as exc:
                    out.append({"ok": False, "target": action.target, "message": f"cannot plan: {exc}"})
                    continue
                res = self._run_one(plan)
                self.ledger.action(run, res, actor=self.actor, at=at, phase="rollback")
                out.append(_outcome_dict(res))
            return out
        for prev in reversed(done):
            if not prev.changed:
                continue
            if not prev.plan.reversible:
                out.append({"ok": False, "target": prev.plan.target, "kind": prev.plan.kind,
                            "message": "not reversible"})
                continue
            try:
                res = self.executors[prev.plan.kind].rollback(prev, dry_run=False)
            except Exception as exc:
                res = Outcome(prev.plan, ok=False, dry_run=False, changed=False,
                              message=f"{type(exc).__name__}: {exc}")
            self.ledger.action(run, res, actor=self.actor, at=at, phase="rollback")
            out.append(_outcome_dict(res))
        return out

    def _notify(self, run: RunRecord) -> None:
        if self.notify is not None:
            try:
                self.notify(run)
            except Exception as exc:  # a failing notifier must not undo a run; it is recorded
                self.store.audit.record(self.tenant, self.actor, "remediation.notify", target=run.run_id,
                                        result="failed", reason=f"{type(exc).__name__}: {exc}", at=run.updated_at)


def _with_guard(run: RunRecord, d: g.Decision) -> RunRecord:
    entry = {"guard": d.guard, "outcome": d.outcome, "reason": d.reason}
    return run.model_copy(update={"guards": [*run.guards, entry]})


def _outcome_dict(out: Outcome) -> dict[str, Any]:
    from opsmind.remediate.ledger import outcome_to_dict

    return outcome_to_dict(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
