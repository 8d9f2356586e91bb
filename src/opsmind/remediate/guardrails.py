"""Guardrails: small pure classes, one decision each, that stand between a playbook and an executed action.

Each guard's ``decide(...)`` takes what it needs (the playbook, the planned actions, the run history from the
store, and ``at``: time is always an argument) and returns a :class:`Decision` with the reason the audit log
records. Nothing here reads a clock or does I/O; :class:`opsmind.remediate.runner.Remediator` loads the history,
calls the guards in order and writes one audit record per decision.

>>> rl = RateLimit()
>>> pb_limits = GuardrailSettings(max_runs=1, per_s=60)
>>> rl.decide_playbook("p", pb_limits, [RunView("r1", "p", "succeeded", started_at=10.0)], at=30.0).allowed
False
>>> rl.decide_playbook("p", pb_limits, [RunView("r1", "p", "succeeded", started_at=10.0)], at=71.0).allowed
True
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmind.remediate.executors.base import Plan
from opsmind.remediate.playbook import GuardrailSettings, MaintenanceWindow, Playbook, RiskTier, risk_rank

__all__ = [
    "ACTIVE",
    "AllowList",
    "AllowRule",
    "ApprovalGate",
    "BlastRadius",
    "CircuitBreaker",
    "Decision",
    "DryRun",
    "GuardPolicy",
    "Maintenance",
    "RateLimit",
    "RunView",
    "TargetLock",
]

#: Run statuses that hold a run open (a new run for the same event does nothing while one is open).
ACTIVE = frozenset({"pending_approval", "approved", "running"})
FAILED = frozenset({"failed", "rolled_back", "rollback_failed"})

Outcome = Literal["allow", "deny", "pending", "dry_run"]


@dataclass(frozen=True)
class Decision:
    """One guard's verdict: ``allow``, ``deny``, ``pending`` (waits for approval) or ``dry_run`` (plan only)."""

    guard: str
    outcome: Outcome
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


@dataclass(frozen=True)
class RunView:
    """What the guards need to know about a past or current run (read from the store)."""

    run_id: str
    playbook: str
    status: str
    started_at: float | None = None  # when its actions began executing (None: never executed for real)
    finished_at: float | None = None
    targets: tuple[str, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class ActionView:
    """One executed (not dry-run, not rollback) action."""

    target: str
    at: float
    run_id: str = ""


@dataclass(frozen=True)
class LockView:
    target: str
    run_id: str
    expires_at: float


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowRule(_Policy):
    """Action kinds allowed on targets matching ``target`` (shell-style globs)."""

    target: str = Field(..., description="Target glob, e.g. `prod/*` or `*`.")
    kinds: list[str] = Field(..., min_length=1, description="Allowed executor kinds (globs, e.g. `kubernetes.*`).")


class GuardPolicy(_Policy):
    """Guardrails that apply to every playbook (each playbook adds its own ``guardrails``)."""

    allow: list[AllowRule] | None = Field(None, description="Allow-list of action kinds per target pattern; when "
                                          "set, an action no rule allows is refused (None: no allow-list).")
    approval_from: RiskTier | Literal["never"] = Field("high", description="Risk tier from which a named person "
                                                       "must approve a run (a playbook may override).")
    maintenance: list[MaintenanceWindow] = Field(default_factory=list, description="Global maintenance windows.")
    maintenance_mode: Literal["block", "only"] = Field("block", description="`block`: no automatic action inside "
                                                       "a window; `only`: only inside one.")


class DryRun:
    """Dry-run is the default: a run executes only when the global setting, the playbook and the caller all say
    so."""

    name = "dry_run"

    def decide(self, *, default: bool, playbook: Playbook, requested: bool | None) -> Decision:
        if default:
            return Decision(self.name, "dry_run", "remediation.dry_run is on (the default): plan only")
        if playbook.dry_run:
            return Decision(self.name, "dry_run", f"playbook {playbook.name} is marked dry_run")
        if requested:
            return Decision(self.name, "dry_run", "a dry run was requested")
        return Decision(self.name, "allow", "remediation.dry_run is off: actions execute")


class AllowList:
    """Every planned action's kind must be allowed on its target by some rule (when an allow-list is set)."""

    name = "allow_list"

    def decide(self, rules: Sequence[AllowRule] | None, plans: Sequence[Plan]) -> Decision:
        if rules is None:
            return Decision(self.name, "allow", "no allow-list configured")
        for p in plans:
            if not any(fnmatch.fnmatchcase(p.target, r.target) and any(fnmatch.fnmatchcase(p.kind, k)
                                                                        for k in r.kinds) for r in rules):
                return Decision(self.name, "deny", f"{p.kind} on {p.target} is not in the allow-list",
                                {"kind": p.kind, "target": p.target})
        return Decision(self.name, "allow", f"all {len(plans)} action(s) are allow-listed")


class Maintenance:
    """No automatic action inside a maintenance window (mode ``block``), or only inside one (mode ``only``)."""

    name = "maintenance"

    def decide(self, windows: Sequence[tuple[Sequence[MaintenanceWindow], str]], at: float) -> Decision:
        for wins, mode in windows:
            inside = any(w.contains(at) for w in wins)
            if mode == "block" and inside:
                return Decision(self.name, "deny", "inside a maintenance window (mode block)")
            if mode == "only" and not inside:
                return Decision(self.name, "deny", "outside every maintenance window (mode only)")
        return Decision(self.name, "allow", "maintenance windows allow it")


class CircuitBreaker:
    """After ``breaker_failures`` consecutive failed runs of a playbook the breaker opens: no run for
    ``breaker_cooldown_s`` after the last failure; then half-open: one trial run at a time; a success closes it."""

    name = "circuit_breaker"

    @staticmethod
    def state(playbook: str, limits: GuardrailSettings, runs: Sequence[RunView], at: float) -> tuple[str, int]:
        """``("closed"|"open"|"half-open", consecutive failures)``."""
        done = sorted((r for r in runs if r.playbook == playbook and r.finished_at is not None
                       and r.started_at is not None and not r.dry_run), key=lambda r: r.finished_at or 0.0)
        streak = 0
        last_fail = None
        for r in reversed(done):
            if r.status not in FAILED:
                break
            streak += 1
            last_fail = r.finished_at if last_fail is None else last_fail
        if streak < limits.breaker_failures:
            return "closed", streak
        assert last_fail is not None
        return ("open" if at - last_fail < limits.breaker_cooldown_s else "half-open"), streak

    def decide(self, playbook: str, limits: GuardrailSettings, runs: Sequence[RunView], at: float,
               run_id: str = "") -> Decision:
        state, streak = self.state(playbook, limits, runs, at)
        info = {"state": state, "failures": streak}
        if state == "closed":
            return Decision(self.name, "allow", f"closed ({streak} consecutive failure(s))", info)
        if state == "open":
            return Decision(self.name, "deny", f"open after {streak} consecutive failed runs; cool-down "
                            f"{limits.breaker_cooldown_s:g} s", info)
        trial = [r for r in runs if r.playbook == playbook and r.status == "running" and r.run_id != run_id]
        if trial:
            return Decision(self.name, "deny", f"half-open: trial run {trial[0].run_id} is in progress", info)
        return Decision(self.name, "allow", "half-open: one trial run after the cool-down", info)


class RateLimit:
    """At most ``max_runs`` executed runs of a playbook per ``per_s``, and ``target_max_runs`` executed actions
    on one target per ``target_per_s`` (sliding windows; dry runs and rollbacks do not count)."""

    name = "rate_limit"

    def decide_playbook(self, playbook: str, limits: GuardrailSettings, runs: Sequence[RunView], at: float,
                        run_id: str = "") -> Decision:
        recent = [r for r in runs if r.playbook == playbook and r.started_at is not None and not r.dry_run
                  and r.run_id != run_id and at - limits.per_s < r.started_at <= at]
        info = {"runs": len(recent), "max_runs": limits.max_runs, "per_s": limits.per_s}
        if len(recent) >= limits.max_runs:
            return Decision(self.name, "deny", f"playbook {playbook} ran {len(recent)} time(s) in the last "
                            f"{limits.per_s:g} s (limit {limits.max_runs})", info)
        return Decision(self.name, "allow", f"{len(recent)} of {limits.max_runs} runs used in {limits.per_s:g} s",
                        info)

    def decide_targets(self, limits: GuardrailSettings, plans: Sequence[Plan], actions: Sequence[ActionView],
                       at: float) -> Decision:
        wanted: dict[str, int] = {}
        for p in plans:
            wanted[p.target] = wanted.get(p.target, 0) + 1
        for target, n in sorted(wanted.items()):
            used = sum(1 for a in actions if a.target == target and at - limits.target_per_s < a.at <= at)
            if used + n > limits.target_max_runs:
                return Decision(self.name, "deny", f"target {target}: {used} action(s) in the last "
                                f"{limits.target_per_s:g} s + {n} planned > limit {limits.target_max_runs}",
                                {"target": target, "used": used, "planned": n})
        return Decision(self.name, "allow", "per-target limits hold")

    def decide(self, playbook: str, limits: GuardrailSettings, plans: Sequence[Plan], runs: Sequence[RunView],
               actions: Sequence[ActionView], at: float, run_id: str = "") -> Decision:
        first = self.decide_playbook(playbook, limits, runs, at, run_id)
        return first if not first.allowed else self.decide_targets(limits, plans, actions, at)


def replica_share(plan: Plan, before: Mapping[str, Any] | None) -> float | None:
    """``|new - old| / old`` for a plan that sets ``replicas`` (1.0 from zero), None when it does not."""
    new = plan.action.get("replicas")
    old = (before or {}).get("replicas")
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return None
    if old <= 0:
        return 0.0 if new == old else 1.0
    return abs(float(new) - float(old)) / float(old)


class BlastRadius:
    """A run acts on at most ``max_targets`` distinct targets and changes at most ``max_replica_share`` of any
    target's replicas (read from each plan's dry-run ``before`` state)."""

    name = "blast_radius"

    def decide(self, limits: GuardrailSettings, plans: Sequence[Plan],
               befores: Sequence[Mapping[str, Any] | None]) -> Decision:
        targets = sorted({p.target for p in plans})
        if len(targets) > limits.max_targets:
            return Decision(self.name, "deny", f"{len(targets)} targets > max_targets {limits.max_targets}",
                            {"targets": targets})
        for p, before in zip(plans, befores, strict=False):
            share = replica_share(p, before)
            if share is None and "replicas" in p.action:
                return Decision(self.name, "deny", f"{p.target}: current replicas unknown, cannot bound the change",
                                {"target": p.target})
            if share is not None and share > limits.max_replica_share + 1e-12:
                return Decision(self.name, "deny", f"{p.target}: changes {share:.0%} of replicas > "
                                f"{limits.max_replica_share:.0%}", {"target": p.target, "share": share})
        return Decision(self.name, "allow", f"{len(targets)} target(s), replica changes within "
                        f"{limits.max_replica_share:.0%}", {"targets": targets})


class ApprovalGate:
    """Runs of a playbook at or above the approval tier wait for a named person; a pending approval expires."""

    name = "approval"

    @staticmethod
    def required(playbook: Playbook, default: str) -> bool:
        tier = playbook.guardrails.approval_from or default
        return tier != "never" and risk_rank(playbook.risk) >= risk_rank(tier)

    def decide(self, playbook: Playbook, default: str, *, status: str, expires_at: float | None,
               approved_by: str | None, at: float) -> Decision:
        if not self.required(playbook, default):
            return Decision(self.name, "allow", f"risk {playbook.risk} needs no approval")
        if status == "denied":
            return Decision(self.name, "deny", "approval was denied")
        if expires_at is not None and at > expires_at and status in ("pending_approval", "expired"):
            return Decision(self.name, "deny", f"approval request expired at {expires_at:.0f}")
        if status == "approved" and approved_by:
            return Decision(self.name, "allow", f"approved by {approved_by}")
        return Decision(self.name, "pending", f"risk {playbook.risk} needs approval by a named person")


class TargetLock:
    """One run per target at a time: a target locked by another run (lock not yet expired) refuses."""

    name = "lock"

    def decide(self, run_id: str, targets: Sequence[str], locks: Mapping[str, LockView], at: float) -> Decision:
        for t in sorted(set(targets)):
            held = locks.get(t)
            if held is not None and held.run_id != run_id and held.expires_at > at:
                return Decision(self.name, "deny", f"target {t} is locked by run {held.run_id} until "
                                f"{held.expires_at:.0f}", {"target": t, "holder": held.run_id})
        return Decision(self.name, "allow", f"{len(set(targets))} target(s) free")
