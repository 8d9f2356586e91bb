"""One test per guardrail; each fails when its guard is removed (the unguarded path would visibly act).

The executor is a recording test double of the Executor protocol (the real executors are tested on their own);
the store is a real SQLite file; the rollback test verifies against a real Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.remediate import Event, GuardPolicy, Playbook, Remediator, RunRecord, approve, deny
from opsmind.remediate.executors.base import Outcome, Plan
from opsmind.remediate.ledger import Ledger
from opsmind.remediate.playbook import Verification
from opsmind.remediate.verify import PrometheusVerifier, VerifyResult
from opsmind.sources.prometheus import Prometheus, PrometheusSettings
from opsmind.store import ConflictError, Store


class Recorder:
    """An executor double: keeps replicas per target, records every real execute and rollback."""

    def __init__(self, kind: str = "kubernetes.scale", replicas: int = 4) -> None:
        self.kind = kind
        self.state: dict[str, int] = {}
        self.default = replicas
        self.calls: list[tuple[str, str, Any]] = []
        self.during: Callable[[], None] | None = None

    def plan(self, target: str, action: Mapping[str, Any]) -> Plan:
        reps = action.get("replicas")
        return Plan(self.kind, target, dict(action), (f"set replicas of {target} to {reps}",))

    def execute(self, plan: Plan, dry_run: bool = True) -> Outcome:
        before = {"replicas": self.state.get(plan.target, self.default)}
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=False, before=before)
        self.calls.append(("execute", plan.target, plan.action.get("replicas")))
        self.state[plan.target] = int(plan.action.get("replicas", before["replicas"]))
        return Outcome(plan, ok=True, dry_run=False, changed=True, before=before,
                       after={"replicas": self.state[plan.target]})

    def rollback(self, outcome: Outcome, dry_run: bool = True) -> Outcome:
        assert outcome.before is not None
        self.calls.append(("rollback", outcome.plan.target, outcome.before["replicas"]))
        self.state[outcome.plan.target] = int(outcome.before["replicas"])
        return Outcome(outcome.plan, ok=True, dry_run=dry_run, changed=True, before=outcome.after,
                       after=outcome.before)

    def executed(self) -> list[str]:
        return [t for op, t, _ in self.calls if op == "execute"]


class Scripted:
    """A verifier double: answers from a list (the last answer repeats), optionally running a hook while
    'waiting' (the run is in progress and holds its locks)."""

    def __init__(self, answers: Sequence[bool], hook: Callable[[], None] | None = None) -> None:
        self.answers = list(answers)
        self.hook = hook
        self.calls = 0

    def verify(self, check: Verification, context: Mapping[str, Any], start: float) -> VerifyResult:
        self.calls += 1
        if self.hook is not None:
            self.hook()
        ok = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return VerifyResult(ok, 1.0, "scripted", 1, start, start + 30.0)


GENEROUS = {"max_runs": 1000, "per_s": 60, "target_max_runs": 1000, "target_per_s": 60, "max_targets": 10,
            "max_replica_share": 10, "breaker_failures": 1000, "breaker_cooldown_s": 60}


def playbook(name: str = "scale", *, risk: str = "low", guardrails: Mapping[str, Any] | None = None,
             actions: list[dict[str, Any]] | None = None, verification: bool = True,
             rollback: str = "auto") -> Playbook:
    return Playbook.model_validate({
        "name": name, "risk": risk,
        "trigger": {"alert": {"match": ['alertname="Surge"']}},
        "actions": actions or [{"kind": "kubernetes.scale", "target": "shop/{{ labels.service }}",
                                "params": {"replicas": 5}}],
        "verification": {"query": "max(up)", "op": ">", "value": 0, "within_s": 60} if verification else None,
        "rollback": {"mode": rollback},
        "guardrails": {**GENEROUS, **(guardrails or {})},
    })


def surge(service: str, at: float, n: int = 0) -> Event:
    return Event.from_alert(Alert(labels={"alertname": "Surge", "service": service, "n": str(n)}, starts_at=at))


def remediator(store: Store, pb: Playbook, ex: Recorder, verifier: Any = None, *, dry_run: bool = False,
               policy: GuardPolicy | None = None, settings: Settings | None = None) -> Remediator:
    cfg = settings or Settings.model_validate({"remediation": {"dry_run": dry_run}})
    return Remediator(cfg, store, {ex.kind: ex}, verifier if verifier is not None else Scripted([True]),
                      playbooks=[pb], policy=policy or GuardPolicy(approval_from="never"))


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store.open(f"sqlite:///{tmp_path / 'opsmind.db'}") as s:
        yield s


def guards_of(run: RunRecord) -> dict[str, str]:
    return {g["guard"]: g["outcome"] for g in run.guards}


# -- the guards -------------------------------------------------------------------------------------------------

def test_dry_run_is_the_default(store: Store) -> None:
    ex = Recorder()
    rem = remediator(store, playbook(), ex, settings=Settings())  # remediation.dry_run defaults to True
    (run,) = rem.handle(surge("cart", 0.0), 0.0)
    assert run.status == "dry_run" and run.dry_run
    assert ex.executed() == []  # planned and its state read, nothing changed
    assert run.plans[0]["describe"] == "kubernetes.scale on shop/cart: set replicas of shop/cart to 5"
    assert run.befores == [{"replicas": 4}]
    rows = store.audit.list("default", action="remediation.guard")
    assert any(r.details["guard"] == "dry_run" and r.result == "dry_run" for r in rows)
    # and with dry-run switched off the same event acts
    live = remediator(store, playbook(), ex, dry_run=False)
    (run,) = live.handle(surge("cart", 1.0, n=1), 1.0)
    assert run.status == "succeeded" and ex.executed() == ["shop/cart"]


def test_allow_list_refuses_unlisted_kind_or_target(store: Store) -> None:
    ex = Recorder()
    policy = GuardPolicy(approval_from="never", allow=[{"target": "staging/*", "kinds": ["kubernetes.*"]}])
    pb = playbook(actions=[{"kind": "kubernetes.scale", "target": "{{ labels.service }}", "params": {"replicas": 5}}])
    rem = remediator(store, pb, ex, policy=policy)
    (run,) = rem.handle(surge("prod/cart", 0.0), 0.0)
    assert run.status == "blocked" and guards_of(run)["allow_list"] == "deny"
    assert "prod/cart" in run.reason and ex.executed() == []
    (run,) = rem.handle(surge("staging/cart", 1.0), 1.0)
    assert run.status == "succeeded" and ex.executed() == ["staging/cart"]


def test_rate_limits_per_playbook_and_per_target(store: Store) -> None:
    ex = Recorder()
    # per playbook: at most 2 runs per hour, each on a different target
    rem = remediator(store, playbook("per-playbook", guardrails={"max_runs": 2, "per_s": 3600}), ex)
    statuses = [rem.handle(surge(f"svc{i}", 60.0 * i, i), 60.0 * i)[0].status for i in range(5)]
    assert statuses == ["succeeded", "succeeded", "blocked", "blocked", "blocked"]
    assert len(ex.executed()) == 2
    assert rem.handle(surge("svc9", 3601.0, 9), 3601.0)[0].status == "succeeded"  # the first left the window
    # per target: one action on a target per 30 minutes, whatever the playbook's budget
    ex2 = Recorder()
    rem2 = remediator(store, playbook("per-target", guardrails={"target_max_runs": 1, "target_per_s": 1800}), ex2)
    statuses = [rem2.handle(surge("cart", 10_000.0 + 60 * i, i), 10_000.0 + 60 * i)[0].status for i in range(4)]
    assert statuses == ["succeeded", "blocked", "blocked", "blocked"]
    assert ex2.executed() == ["shop/cart"]
    assert rem2.handle(surge("cart", 11_801.0, 99), 11_801.0)[0].status == "succeeded"


def test_lock_one_run_per_target_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Store.open(url) as first_store, Store.open(url) as second_store:  # two processes sharing the database
        ex = Recorder()
        pb = playbook(guardrails={"lock_ttl_s": 900})
        second = remediator(second_store, pb, ex)
        nested: list[RunRecord] = []
        # while the first run verifies (it holds the lock on shop/cart), the second process gets an alert
        verifier = Scripted([True], hook=lambda: nested.extend(second.handle(surge("cart", 5.0, 2), 5.0)))
        first = remediator(first_store, pb, ex, verifier)
        (run,) = first.handle(surge("cart", 0.0, 1), 0.0)
        assert run.status == "succeeded"
        assert [r.status for r in nested] == ["blocked"] and guards_of(nested[0])["lock"] == "deny"
        assert ex.executed() == ["shop/cart"]
        # released when the run finished: the next alert acts
        (again,) = second.handle(surge("cart", 100.0, 3), 100.0)
        assert again.status == "succeeded" and ex.executed() == ["shop/cart", "shop/cart"]
        # a run that died holding the lock blocks until the lock times out
        crashed = again.model_copy(update={"run_id": "run-crashed", "targets": ["shop/cart"]})
        Ledger(first_store, "default").acquire(crashed, lambda locks: _allow(), actor="test", at=200.0, ttl_s=900)
        assert second.handle(surge("cart", 300.0, 4), 300.0)[0].status == "blocked"
        assert second.handle(surge("cart", 1101.0, 5), 1101.0)[0].status == "succeeded"


def _allow() -> Any:
    from opsmind.remediate.guardrails import Decision

    return Decision("lock", "allow", "test")


def test_blast_radius_caps_targets_and_replica_share(store: Store) -> None:
    ex = Recorder(replicas=4)
    two = [{"kind": "kubernetes.scale", "target": "shop/cart", "params": {"replicas": 5}},
           {"kind": "kubernetes.scale", "target": "shop/checkout", "params": {"replicas": 5}}]
    rem = remediator(store, playbook("wide", actions=two, guardrails={"max_targets": 1}), ex)
    (run,) = rem.handle(surge("x", 0.0), 0.0)
    assert run.status == "blocked" and guards_of(run)["blast_radius"] == "deny" and ex.executed() == []
    # 4 -> 8 replicas changes 100 % of them; the cap is 50 %
    big = [{"kind": "kubernetes.scale", "target": "shop/cart", "params": {"replicas": 8}}]
    rem = remediator(store, playbook("big", actions=big, guardrails={"max_replica_share": 0.5}), ex)
    (run,) = rem.handle(surge("x", 1.0), 1.0)
    assert run.status == "blocked" and "100%" in run.reason and ex.executed() == []
    ok = [{"kind": "kubernetes.scale", "target": "shop/cart", "params": {"replicas": 6}}]
    rem = remediator(store, playbook("ok", actions=ok, guardrails={"max_replica_share": 0.5}), ex)
    assert rem.handle(surge("x", 2.0), 2.0)[0].status == "succeeded" and ex.executed() == ["shop/cart"]


def test_circuit_breaker_opens_after_failed_verifications(store: Store) -> None:
    ex = Recorder()
    verifier = Scripted([False])
    pb = playbook(guardrails={"breaker_failures": 2, "breaker_cooldown_s": 600})
    rem = remediator(store, pb, ex, verifier)
    s = [rem.handle(surge(f"s{i}", 10.0 * i, i), 10.0 * i)[0].status for i in range(4)]
    assert s == ["rolled_back", "rolled_back", "blocked", "blocked"]  # open: no third attempt
    assert len(ex.executed()) == 2
    # half-open after the cool-down: one trial; it fails, so the breaker opens again
    assert rem.handle(surge("t1", 700.0, 10), 700.0)[0].status == "rolled_back"
    assert rem.handle(surge("t2", 710.0, 11), 710.0)[0].status == "blocked"
    # a successful trial closes it
    verifier.answers = [True]
    assert rem.handle(surge("t3", 1400.0, 12), 1400.0)[0].status == "succeeded"
    assert rem.handle(surge("t4", 1410.0, 13), 1410.0)[0].status == "succeeded"
    assert len(ex.executed()) == 5


def test_approval_gate_with_expiry(store: Store) -> None:
    ex = Recorder()
    pb = playbook(risk="high", guardrails={"approval_ttl_s": 600})
    rem = remediator(store, pb, ex, policy=GuardPolicy(approval_from="high"))
    (run,) = rem.handle(surge("cart", 0.0), 0.0)
    assert run.status == "pending_approval" and run.expires_at == 600.0 and ex.executed() == []
    assert rem.handle(surge("cart", 0.0), 1.0) == []  # the same alert again: idempotent while pending
    # too late: the request expired, approving it is refused and nothing runs
    with pytest.raises(ConflictError, match="expired"):
        approve(store, "default", run.run_id, actor="alice", at=601.0)
    assert rem.tick(602.0) == [] and ex.executed() == []
    assert Ledger(store, "default").run(run.run_id).status == "expired"
    # in time: a named person approves, the next tick executes
    (run2,) = rem.handle(surge("cart", 1000.0, 1), 1000.0)
    with pytest.raises(ConflictError, match="named actor"):
        approve(store, "default", run2.run_id, actor=" ", at=1001.0)
    approved = approve(store, "default", run2.run_id, actor="alice", at=1100.0)
    assert approved.status == "approved" and approved.approved_by == "alice"
    (done,) = rem.tick(1200.0)
    assert done.status == "succeeded" and ex.executed() == ["shop/cart"]
    # denied: never runs
    (run3,) = rem.handle(surge("cart", 5000.0, 2), 5000.0)
    assert deny(store, "default", run3.run_id, actor="bob", at=5001.0).status == "denied"
    assert rem.tick(5002.0) == [] and ex.executed() == ["shop/cart"]
    who = {(r.actor, r.result) for r in store.audit.list("default", action="remediation.approval")}
    assert who == {("alice", "expired"), ("alice", "approved"), ("bob", "denied")}


def test_maintenance_window_blocks_automatic_actions(store: Store) -> None:
    saturday = 2 * 86400.0 + 21 * 86400.0  # 1970-01-03 (day 2) was a Saturday; three weeks later too
    inside, outside = saturday + 3 * 3600.0, saturday + 5 * 3600.0  # 03:00 and 05:00 UTC
    window = [{"days": ["sat"], "start": "02:00", "end": "04:00"}]
    ex = Recorder()
    rem = remediator(store, playbook("block", guardrails={"maintenance": window}), ex)
    (run,) = rem.handle(surge("a", inside), inside)
    assert run.status == "blocked" and guards_of(run)["maintenance"] == "deny" and ex.executed() == []
    assert rem.handle(surge("b", outside), outside)[0].status == "succeeded"
    # mode `only`: the reverse
    ex2 = Recorder()
    rem2 = remediator(store, playbook("only", guardrails={"maintenance": window, "maintenance_mode": "only"}), ex2)
    assert rem2.handle(surge("c", outside + 1), outside + 1)[0].status == "blocked"
    assert rem2.handle(surge("d", inside + 1), inside + 1)[0].status == "succeeded"
    assert ex2.executed() == ["shop/d"]
    # a global window applies to every playbook
    ex3 = Recorder()
    policy = GuardPolicy(approval_from="never", maintenance=[{"start_at": 0.0, "end_at": 10.0 ** 10}])
    assert remediator(store, playbook("global"), ex3, policy=policy).handle(surge("e", 5.0), 5.0)[0].status \
        == "blocked"
    assert ex3.executed() == []


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rollback_on_failed_verification(store: Store, prometheus: Any) -> None:
    ex = Recorder(replicas=4)
    prom = Prometheus(PrometheusSettings(url=prometheus.url))
    clock = FakeClock(1000.0)
    verifier = PrometheusVerifier(prom, clock=clock, sleep=clock.sleep)
    # opsmind_test_live is 42 and 7: "below 1" never holds, so the scale-up must be undone
    pb = Playbook.model_validate({
        "name": "scale", "risk": "low", "trigger": {"alert": {"match": ['alertname="Surge"']}},
        "actions": [{"kind": "kubernetes.scale", "target": "shop/{{ labels.service }}", "params": {"replicas": 6}}],
        "verification": {"query": 'max(opsmind_test_live{kind=~"a|b"})', "op": "<", "value": 1,
                         "within_s": 60, "interval_s": 15},
        "guardrails": GENEROUS})
    rem = remediator(store, pb, ex, verifier)
    (run,) = rem.handle(surge("cart", 1000.0), 1000.0)
    assert run.status == "rolled_back"
    assert ex.calls == [("execute", "shop/cart", 6), ("rollback", "shop/cart", 4)]
    assert ex.state["shop/cart"] == 4
    assert run.verification is not None and run.verification["ok"] is False and run.verification["value"] == 42.0
    assert run.verification["checks"] == 5 and clock.sleeps == [15.0] * 4  # at 0, 15, 30, 45 and 60 s
    phases = [(r.details["phase"], r.result) for r in store.audit.list("default", action="remediation.action")]
    assert ("rollback", "rolled_back") in phases
    # a verification that holds keeps the change
    pb_ok = pb.model_copy(update={"verification": Verification(query="max(opsmind_test_live)", op=">", value=1)})
    (ok,) = remediator(store, pb_ok, ex, verifier).handle(surge("checkout", 2000.0), 2000.0)
    assert ok.status == "succeeded" and ex.state["shop/checkout"] == 6
    prom.close()
