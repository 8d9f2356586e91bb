"""Remediation in ``opsmind demo``: the fast-forwarded demo scales the entry service under a traffic surge
(verified), restarts a leaking service (memory drops, verified), and rolls back a fix that does not help; the
ledger and the audit log show all of it. Plus the simulator's hooks and the verifier on simulated time."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from opsmind.core import ConfigError
from opsmind.engine.demo import LIVE_START_S, DemoRun, demo_settings
from opsmind.engine.demo_remediation import (
    DEMO_PLAYBOOKS,
    SimScale,
    SimVerifier,
    load_demo_playbooks,
    query_values,
)
from opsmind.engine.sources import ScrapeSource
from opsmind.remediate.playbook import Verification
from opsmind.sim import Incident, System
from opsmind.store import Store


def test_fast_forwarded_demo_scales_restarts_and_rolls_back(tmp_path: Path) -> None:
    # Seed 3 (the CLI's default) injects a traffic surge on frontend at 16:03, a latency injection on cart at 16:13
    # and a memory leak on payment at 16:23 (simulated). Nothing is paced: the simulation steps as fast as the
    # engine and the remediation worker keep up, and verifications wait for simulated time only.
    settings = demo_settings(f"sqlite:///{tmp_path / 'demo.db'}", port=0, history_s=6 * 3600.0, remediation=True)
    with Store.open(settings.store) as store:
        run = DemoRun(settings, store, seed=3, warmup_s=6 * 3600.0)
        try:
            assert [(i.kind, i.target) for i in run.system.incidents[:3]] == [
                ("traffic_spike", "frontend"), ("latency_injection", "cart"), ("memory_leak", "payment")]
            run.warm_up()
            memory_before: list[float] = []
            while run.t < run.start_s + 27 * 60:
                run.step()
                memory_before.append(run.system.snapshot.gauges("payment")["memory_bytes"])  # type: ignore[union-attr]
            score = run.remediation()
            runs = {name: [r for r in score.runs if r.playbook == name] for name in (
                "demo-scale-on-surge", "demo-restart-leaking", "demo-scale-entry-on-latency")}
            replicas = run.system.replicas("frontend")
            restarted = run.system.restarted_at("payment")
        finally:
            run.close()
        audit = store.audit.list("default", limit=10_000)
    assert run.engine.remediation is not None and run.engine.remediation.errors == 0

    # (a) the traffic surge: frontend scaled from 2 to 3 replicas, its utilisation verified below 70 %
    surge = [r for r in runs["demo-scale-on-surge"] if r.status == "succeeded"]
    assert len(surge) == 1, [(r.status, r.reason) for r in runs["demo-scale-on-surge"]]
    assert surge[0].targets == ["frontend"] and surge[0].dry_run is False
    assert surge[0].outcomes[0]["before"] == {"replicas": 2} and surge[0].outcomes[0]["after"] == {"replicas": 3}
    assert surge[0].verification is not None and surge[0].verification["ok"]
    assert surge[0].verification["value"] < 0.7
    assert LIVE_START_S + 180 <= surge[0].started_at < LIVE_START_S + 480  # during the surge
    assert replicas == 3

    # (b) the leak: payment restarted, its memory fell back (verified against the value that triggered the run)
    leak = [r for r in runs["demo-restart-leaking"] if r.targets == ["payment"]]
    assert [r.status for r in leak] == ["succeeded"], [(r.status, r.reason) for r in leak]
    assert restarted is not None and LIVE_START_S + 23 * 60 <= restarted < LIVE_START_S + 28 * 60
    trigger = leak[0].context["event"]["value"]
    assert leak[0].verification is not None and leak[0].verification["ok"]
    assert leak[0].verification["value"] < 0.97
    k = int((restarted - LIVE_START_S) // 15)  # the step at the restart (memory_before[i] is at 16:00 + 15 (i+1) s)
    assert max(memory_before[k - 3 : k]) >= trigger * 0.99  # leaking up to the restart ...
    assert memory_before[k] < 0.95 * trigger and memory_before[-1] < 0.95 * trigger  # ... not since

    # (c) the fix that does not help: frontend scaled up on a latency anomaly, verification failed, rolled back
    bad = [r for r in runs["demo-scale-entry-on-latency"] if r.status == "rolled_back"]
    assert bad, [(r.status, r.reason) for r in runs["demo-scale-entry-on-latency"]]
    for r in bad:
        assert r.verification is not None and not r.verification["ok"]
        assert "not recovered within 120 s" in r.reason
        changed = [o for o in r.outcomes if o["changed"]]
        assert all(rb["ok"] for rb in r.rollbacks) and len(r.rollbacks) == len(changed)
        for o, rb in zip(changed, r.rollbacks, strict=True):
            assert rb["after"] == o["before"]  # the replica count put back
    assert score.rolled_back == len(bad) and score.verified >= 2 and score.executed >= 3
    assert score.line().startswith(f"remediation: runs={score.executed} verified={score.verified} ")

    # the audit log has every decision, action, rollback, lock and outcome of those runs
    by_action: dict[str, list[str]] = {}
    for a in audit:
        by_action.setdefault(a.action, []).append(a.result)
    assert {"remediation.run", "remediation.guard", "remediation.action", "remediation.lock",
            "remediation.outcome"} <= set(by_action)
    actions = [(a.target, a.result, a.details.get("phase")) for a in audit if a.action == "remediation.action"]
    assert ("frontend", "executed", "forward") in actions and ("payment", "executed", "forward") in actions
    assert ("frontend", "rolled_back", "rollback") in actions
    outcomes = [(a.details["playbook"], a.result) for a in audit if a.action == "remediation.outcome"]
    assert ("demo-scale-on-surge", "success") in outcomes and ("demo-scale-entry-on-latency", "failure") in outcomes
    guards = {a.details["guard"] for a in audit if a.action == "remediation.guard"}
    assert {"dry_run", "allow_list", "rate_limit", "blast_radius", "approval", "lock"} <= guards


def test_the_demo_playbooks_load_with_the_simulator_kinds_only() -> None:
    pbs = load_demo_playbooks()
    assert sorted(p.name for p in pbs) == ["demo-restart-leaking", "demo-scale-entry-on-latency",
                                          "demo-scale-on-surge"]
    assert all(p.risk in ("low", "medium") and not p.dry_run for p in pbs)  # below the approval tier
    assert {a.kind for p in pbs for a in p.actions} == {"sim.scale", "sim.restart"}
    from opsmind.remediate.playbook import load_playbooks

    with pytest.raises(ConfigError, match=r"actions\[0\]\.kind.*unknown executor kind 'sim\.scale'"):
        load_playbooks([DEMO_PLAYBOOKS / "scale-on-surge.yaml"])  # the real configuration has no simulator
    off = demo_settings("sqlite://", port=0)
    assert off.remediation.playbooks == []  # demo_settings without remediation: detection only
    on = demo_settings("sqlite://", port=0, remediation=True)
    assert on.remediation.dry_run is False and on.remediation.guardrails.approval_from == "high"


def test_simulator_hooks_scale_and_restart() -> None:
    t0 = LIVE_START_S
    leak = Incident("memory_leak", "payment", start_s=t0 + 60, duration_s=600)
    plain, hooked = System(incidents=[leak], seed=5), System(incidents=[leak], seed=5)
    times = t0 - 3600 + 15.0 * np.arange(240)
    assert np.array_equal(plain.advance(times, 15.0)["memory_bytes"], hooked.advance(times, 15.0)["memory_bytes"])
    for k in range(1, 21):  # 5 minutes: the leak grows for 4 of them
        a, b = plain.step(t0 + 15 * k, 15.0), hooked.step(t0 + 15 * k, 15.0)
    assert a.memory_bytes.tolist() == b.memory_bytes.tolist()  # no hook used: the same numbers
    i = a.names.index("payment")
    leaking = float(b.memory_bytes[i])
    assert leaking > 1.5 * 360e6

    hooked.restart("payment", t0 + 300, restart_s=10.0)
    assert hooked.restarted_at("payment") == t0 + 300
    dip = hooked.step(t0 + 315, 15.0)
    same = plain.step(t0 + 315, 15.0)
    assert dip.memory_bytes[i] < 0.75 * leaking < same.memory_bytes[i]  # leaked memory freed, the leak stopped
    assert dip.utilisation[i] > 1.3 * same.utilisation[i]  # one replica down for 10 of the 15 s
    for k in range(22, 30):
        after, leaking_on = hooked.step(t0 + 15 * k, 15.0), plain.step(t0 + 15 * k, 15.0)
    assert after.memory_bytes[i] < 0.75 * leaking < leaking_on.memory_bytes[i]
    assert after.utilisation[i] == pytest.approx(leaking_on.utilisation[i], rel=0.1)  # capacity back

    f = a.names.index("frontend")
    assert hooked.set_replicas("frontend", 4) == 2 and hooked.replicas("frontend") == 4
    scaled, base = hooked.step(t0 + 15 * 30, 15.0), plain.step(t0 + 15 * 30, 15.0)
    assert scaled.utilisation[f] == pytest.approx(base.utilisation[f] / 2, rel=0.1)
    with pytest.raises(ConfigError, match="positive integer"):
        hooked.set_replicas("frontend", 0)
    with pytest.raises(ConfigError, match="no service 'nope'"):
        hooked.restart("nope", t0)


def test_sim_scale_plans_executes_idempotently_and_rolls_back() -> None:
    system = System(seed=1)
    ex = SimScale(system, clock=lambda: 0.0)
    plan = ex.plan("cart", {"replicas": 3, "run_id": "r1"})
    assert plan.describe() == "sim.scale on cart: set the replicas of simulated service cart to 3"
    dry = ex.execute(plan)
    assert dry.dry_run and dry.before == {"replicas": 2} and system.replicas("cart") == 2
    done = ex.execute(plan, dry_run=False)
    assert done.changed and done.after == {"replicas": 3} and system.replicas("cart") == 3
    assert ex.execute(plan, dry_run=False) is done  # the same plan acts once
    undo = ex.rollback(done, dry_run=False)
    assert undo.ok and undo.after == {"replicas": 2} and system.replicas("cart") == 2
    with pytest.raises(ConfigError, match=r"action\.replicas: must be a positive integer"):
        ex.plan("cart", {"replicas": 1.5})
    with pytest.raises(ConfigError, match="no simulated service 'nope'"):
        ex.plan("nope", {"replicas": 2})


def test_the_verifier_waits_for_simulated_time_not_the_wall_clock() -> None:
    source = ScrapeSource([], clock=lambda: 0.0)
    t = 1000.0 + 15.0 * np.arange(4)
    source.add_series("latency_seconds", {"service": "web"}, t, [0.9, 0.8, 0.3, 0.2])
    assert query_values(source, 'latency_seconds{service="web"}', 1030.0) == [0.3]
    assert query_values(source, 'latency_seconds{service="web"} / 0.5', 1030.0) == [0.6]
    verifier = SimVerifier(source)
    results = []
    check = Verification(query='latency_seconds{service="{{ event.service }}"} / {{ event.value }}', op="<",
                         value=0.5, within_s=60.0)
    worker = threading.Thread(target=lambda: results.append(verifier.verify(
        check, {"event": {"service": "web", "value": 0.9}}, 1000.0)))
    worker.start()
    while not verifier.waiting():
        pass
    assert verifier.on_step(1000.0) == 0 and verifier.on_step(1015.0) == 0  # 0.9/0.9, 0.8/0.9: not yet
    assert verifier.on_step(1030.0) == 1  # 0.3/0.9
    worker.join(10)
    (res,) = results
    assert res.ok and res.checks == 3 and res.finished_at == 1030.0 and res.value == pytest.approx(1 / 3)

    late = threading.Thread(target=lambda: results.append(verifier.verify(
        check.model_copy(update={"value": 0.1}), {"event": {"service": "web", "value": 0.9}}, 1000.0)))
    late.start()
    while not verifier.waiting():
        pass
    assert verifier.on_step(1045.0) == 0 and verifier.on_step(1060.0) == 1  # within_s of simulated time passed
    late.join(10)
    assert not results[-1].ok and "not recovered within 60 s" in results[-1].detail
    verifier.close()
    assert not verifier.verify(check, {"event": {"service": "web", "value": 1.0}}, 0.0).ok  # stopped: fails safe
