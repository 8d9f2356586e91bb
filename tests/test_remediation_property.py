"""Property: no sequence of incidents makes the remediator exceed a configured limit.

Hypothesis draws sequences of alerts (targets, replica counts, times, verification results, and whether the alert
arrives while the previous run is still verifying, as another process would see it). The executor double records
every real action with the time and the run; afterwards the record is checked against every limit: runs per
playbook per window, actions per target per window, targets per run, share of replicas changed, one run per target
at a time, the circuit breaker, and the maintenance window.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.remediate import Event, GuardPolicy, Playbook, Remediator
from opsmind.remediate.executors.base import Outcome, Plan
from opsmind.remediate.playbook import MaintenanceWindow, Verification
from opsmind.remediate.verify import VerifyResult
from opsmind.store import Store

LIMITS = {"max_runs": 3, "per_s": 1800.0, "target_max_runs": 2, "target_per_s": 900.0, "max_targets": 2,
          "max_replica_share": 1.0, "breaker_failures": 2, "breaker_cooldown_s": 1200.0, "lock_ttl_s": 10_000.0,
          "maintenance": [{"start": "01:00", "end": "02:00"}]}
WINDOW = MaintenanceWindow(start="01:00", end="02:00")
TARGETS = ("a", "b", "c")


def playbooks() -> list[Playbook]:
    common = {"risk": "low", "guardrails": LIMITS,
              "verification": {"query": "max(up)", "op": ">", "value": 0, "within_s": 60}}
    one = {"name": "one", "trigger": {"alert": {"match": ['alertname="One"']}},
           "actions": [{"kind": "scale", "target": "{{ labels.t0 }}", "params": {"replicas": "{{ labels.r }}"}}]}
    three = {"name": "three", "trigger": {"alert": {"match": ['alertname="Three"']}},
             "actions": [{"kind": "scale", "target": f"{{{{ labels.t{i} }}}}", "params": {"replicas": "{{ labels.r }}"}}
                         for i in range(3)]}
    return [Playbook.model_validate({**common, **pb}, context={"kinds": ["scale"]}) for pb in (one, three)]


@dataclass
class Executed:
    run_id: str
    playbook: str
    target: str
    at: float
    before: int
    after: int


class World:
    """The executor double and the test's clock: real actions are logged with the time they happened."""

    kind = "scale"

    def __init__(self) -> None:
        self.now = 0.0
        self.replicas: dict[str, int] = {}
        self.log: list[Executed] = []
        self.holding: dict[str, str] = {}  # target -> run currently acting on it
        self.violations: list[str] = []
        self.playbook_of: dict[str, str] = {}

    def plan(self, target: str, action: Mapping[str, Any]) -> Plan:
        params = {**action, "replicas": int(action["replicas"])}  # a real executor validates and coerces
        return Plan(self.kind, target, params, (f"scale {target} to {params['replicas']}",))

    def execute(self, plan: Plan, dry_run: bool = True) -> Outcome:
        old = self.replicas.get(plan.target, 4)
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=False, before={"replicas": old})
        run_id = str(plan.action["run_id"])
        holder = self.holding.get(plan.target)
        if holder is not None and holder != run_id:
            self.violations.append(f"{run_id} acted on {plan.target} while {holder} held it")
        self.holding[plan.target] = run_id
        new = int(plan.action["replicas"])
        self.log.append(Executed(run_id, self.playbook_of.get(run_id, "?"), plan.target, self.now, old, new))
        self.replicas[plan.target] = new
        return Outcome(plan, ok=True, dry_run=False, changed=new != old, before={"replicas": old},
                       after={"replicas": new})

    def rollback(self, outcome: Outcome, dry_run: bool = True) -> Outcome:
        assert outcome.before is not None
        self.replicas[outcome.plan.target] = int(outcome.before["replicas"])
        return Outcome(outcome.plan, ok=True, dry_run=dry_run, changed=True, before=outcome.after,
                       after=outcome.before)

    def finished(self, run_id: str) -> None:
        for t in [t for t, r in self.holding.items() if r == run_id]:
            del self.holding[t]


@dataclass(frozen=True)
class Step:
    playbook: str  # One | Three
    targets: tuple[str, str, str]
    replicas: int
    dt: float
    verified: bool
    nested: bool  # arrives while the previous run verifies


steps = st.lists(st.builds(
    Step,
    playbook=st.sampled_from(["One", "Three"]),
    targets=st.tuples(*[st.sampled_from(TARGETS)] * 3),
    replicas=st.integers(2, 9),
    dt=st.sampled_from([31.0, 31.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0, 7200.0]),
    verified=st.sampled_from([True, False, False]),
    nested=st.booleans(),
), min_size=1, max_size=18)

_tenants = itertools.count()


class Verifier:
    def __init__(self, world: World) -> None:
        self.world = world
        self.answers: list[bool] = []
        self.hooks: list[Any] = []

    def verify(self, check: Verification, context: Mapping[str, Any], start: float) -> VerifyResult:
        if self.hooks:
            self.hooks.pop(0)()
        ok = self.answers.pop(0) if self.answers else True
        return VerifyResult(ok, 1.0, "drawn", 1, start, start + 30.0)


def event(step: Step, at: float, n: int) -> Event:
    labels = {"alertname": step.playbook, "t0": step.targets[0], "t1": step.targets[1], "t2": step.targets[2],
              "r": str(step.replicas), "n": str(n)}
    return Event.from_alert(Alert(labels=labels, starts_at=at))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=steps)
# explicit cases that reach each limit for sure: the breaker (two failures, then a third attempt), the lock (an
# alert on the same target while a run verifies), the rate limits, the replica share
@example(seq=[Step("One", ("a", "a", "a"), 5, 31.0, False, False), Step("One", ("b", "a", "a"), 5, 31.0, False, False),
              Step("One", ("c", "a", "a"), 5, 31.0, True, False)])
@example(seq=[Step("One", ("a", "a", "a"), 5, 31.0, True, False), Step("One", ("a", "a", "a"), 6, 31.0, True, True),
              Step("One", ("b", "a", "a"), 5, 31.0, True, False)])
@example(seq=[Step("One", (t, "a", "a"), 5, 31.0, True, False) for t in "abcabc"])
@example(seq=[Step("One", ("a", "a", "a"), 5, 3631.0, True, False)])  # 01:00:31 UTC, inside the window
@example(seq=[Step("Three", ("a", "b", "b"), 9, 31.0, True, False), Step("One", ("c", "a", "a"), 9, 31.0, True, False)])
def test_no_sequence_exceeds_a_limit(tmp_path_factory: Any, seq: list[Step]) -> None:
    db = _store(tmp_path_factory)
    tenant = f"p{next(_tenants)}"
    world = World()
    verifier = Verifier(world)
    rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), db, {"scale": world}, verifier,
                     playbooks=playbooks(), policy=GuardPolicy(approval_from="never"), tenant=tenant)
    results: dict[str, tuple[str, float | None, float | None]] = {}  # run -> (status, started, finished)

    def run(step: Step, at: float, n: int) -> None:
        world.now = at
        for r in rem.handle(event(step, at, n), at):
            world.finished(r.run_id)
            results[r.run_id] = (r.status, r.started_at, r.finished_at)

    t = 0.0
    pending_nested: list[tuple[Step, int]] = []
    for n, step in enumerate(seq):
        if step.nested and n > 0:
            pending_nested.append((step, n))
            continue
        t += step.dt
        verifier.answers = [step.verified]
        for nested_step, k in pending_nested:  # these arrive while this run verifies
            verifier.answers.append(nested_step.verified)
            verifier.hooks.append(lambda s=nested_step, k=k, at=t + 1.0: run(s, at, k))
        pending_nested = []
        run(step, t, n)
        _label_runs(rem, world)
        verifier.hooks.clear()

    _label_runs(rem, world)
    assert world.violations == []
    check_limits(world, results)


_STORES: dict[str, Store] = {}


def _store(factory: Any) -> Store:
    if "db" not in _STORES:
        path: Path = factory.mktemp("property") / "opsmind.db"
        _STORES["db"] = Store.open(f"sqlite:///{path}")
    return _STORES["db"]


def _label_runs(rem: Remediator, world: World) -> None:
    for r in rem.ledger.runs():
        world.playbook_of[r.run_id] = r.playbook
    for e in world.log:
        e.playbook = world.playbook_of.get(e.run_id, e.playbook)


def check_limits(world: World, results: Mapping[str, tuple[str, float | None, float | None]]) -> None:
    log = world.log
    per_s, max_runs = LIMITS["per_s"], LIMITS["max_runs"]
    # runs per playbook per sliding window
    starts: dict[str, list[float]] = {}
    for run_id in dict.fromkeys(e.run_id for e in log):
        first = min(e.at for e in log if e.run_id == run_id)
        starts.setdefault(next(e.playbook for e in log if e.run_id == run_id), []).append(first)
    for pb, times in starts.items():
        for t in times:
            inside = [s for s in times if t - per_s < s <= t]  # type: ignore[operator]
            assert len(inside) <= max_runs, f"{pb}: {len(inside)} runs in {per_s} s before {t}"
    # actions per target per sliding window
    for target in TARGETS:
        times = [e.at for e in log if e.target == target]
        for t in times:
            inside = [s for s in times if t - LIMITS["target_per_s"] < s <= t]  # type: ignore[operator]
            assert len(inside) <= LIMITS["target_max_runs"], f"{target}: {len(inside)} actions before {t}"
    # blast radius: targets per run, share of replicas
    for run_id in {e.run_id for e in log}:
        assert len({e.target for e in log if e.run_id == run_id}) <= LIMITS["max_targets"]
    for e in log:
        assert abs(e.after - e.before) / e.before <= LIMITS["max_replica_share"] + 1e-9, e
        assert not WINDOW.contains(e.at), f"acted at {e.at} inside the maintenance window"
    # circuit breaker: after 2 consecutive failures, nothing starts within the cool-down of the last one
    for pb in ("one", "three"):
        mine = sorted(((results[r][1], results[r][2], results[r][0]) for r in results
                       if world.playbook_of.get(r) == pb and results[r][1] is not None), key=lambda x: x[0] or 0.0)
        for start, _, _ in mine:
            assert start is not None
            done = sorted((f, s) for st_, f, s in mine if f is not None and f <= start)
            streak, last_fail = 0, None
            for f, s in reversed(done):
                if s not in ("rolled_back", "failed", "rollback_failed"):
                    break
                streak += 1
                last_fail = f if last_fail is None else last_fail
            if streak >= LIMITS["breaker_failures"]:
                assert last_fail is not None
                assert start - last_fail >= LIMITS["breaker_cooldown_s"], f"{pb} started {start} while open"
