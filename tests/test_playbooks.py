"""Playbooks: the examples validate, malformed ones are reported as file:line: field.path, triggers and
placeholders, the runner's idempotence and suggestions, and the ``opsmind playbook`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsmind.cli.playbook import playbook_app
from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.core.errors import ConfigError
from opsmind.incidents.correlate import IncidentCorrelator
from opsmind.remediate import Event, GuardPolicy, Remediator, load_playbook, load_playbooks, matches
from opsmind.remediate.classes import classify
from opsmind.remediate.executors import EXECUTORS
from opsmind.remediate.playbook import EXECUTOR_KINDS, Playbook, Verification, playbook_schema, render
from opsmind.remediate.verify import resolve
from opsmind.store import Store
from test_guardrails import Recorder, Scripted, playbook, surge

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "playbooks"
cli = CliRunner()

GOOD = """\
name: restart-leaking
risk: low
trigger:
  alert:
    match:
      - 'alertname="MemoryLeak"'
actions:
  - kind: supervisor.restart
    target: "{{ labels.service }}"
verification:
  query: 'max(process_resident_memory_bytes{service="{{ labels.service }}"})'
  op: "<"
  value: 300000000
  within_s: 120
"""


# -- files ------------------------------------------------------------------------------------------------------

def test_examples_validate_and_kinds_match_the_executors() -> None:
    pbs = load_playbooks([EXAMPLES])
    assert sorted(p.name for p in pbs) == ["restart-leaking", "scale-on-surge"]
    assert set(EXECUTOR_KINDS) == set(EXECUTORS)  # the playbook model knows exactly the executors that exist
    res = cli.invoke(playbook_app, ["validate", *map(str, sorted(EXAMPLES.glob("*.yaml")))])
    assert res.exit_code == 0, res.output
    assert "scale-on-surge.yaml: ok (scale-on-surge, risk medium, 1 action(s))" in res.output


@pytest.mark.parametrize(("change", "expected"), [
    (("risk: low", "risk: [low"), ":3: invalid YAML: did not find expected ',' or ']'"),
    (("risk: low", "risk: low\ncolour: red"), ":3: colour: Extra inputs are not permitted (got 'red')"),
    (("within_s: 120", "within_s: soon"), ":14: verification.within_s: Input should be a valid number"),
    (("'alertname=\"MemoryLeak\"'", "'service=~\"(unclosed\"'"),
     ":6: trigger.alert.match[0]: Value error, invalid regular expression '(unclosed'"),
    (("supervisor.restart", "supervisor.explode"),
     ":8: actions[0].kind: Value error, unknown executor kind 'supervisor.explode'"),
    (("target: \"{{ labels.service }}\"", "target: \"{{ __import__('os') }}\""),
     ":9: actions[0].target: Value error, placeholder {{ __import__('os') }} must be a dotted path"),
    (("  op: \"<\"\n", "  op: \"<\"\n  slo: {service: x}\n"), ":11: verification: Value error, give either query"),
])
def test_malformed_playbook_names_file_line_and_field(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert change[0] in GOOD
    f = tmp_path / "bad.yaml"
    f.write_text(GOOD.replace(*change, 1))
    with pytest.raises(ConfigError) as err:
        load_playbook(f)
    assert str(err.value).startswith(f"{f}{expected}"), str(err.value)
    res = cli.invoke(playbook_app, ["validate", str(f)])
    assert res.exit_code == 1 and f"{f}{expected}" in res.output


def test_schema_command_writes_the_published_schema() -> None:
    res = cli.invoke(playbook_app, ["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.output)
    assert schema == playbook_schema()
    assert set(schema["required"]) == {"name", "risk", "trigger", "actions"}
    assert schema["additionalProperties"] is False
    published = json.loads((ROOT / "docs" / "playbook.schema.json").read_text())
    assert published == schema, "regenerate: opsmind playbook schema > docs/playbook.schema.json"


def test_list_command(tmp_path: Path) -> None:
    res = cli.invoke(playbook_app, ["list", str(EXAMPLES), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert [p["name"] for p in json.loads(res.output)] == ["restart-leaking", "scale-on-surge"]
    (tmp_path / "dup.yaml").write_text((EXAMPLES / "scale-on-surge.yaml").read_text())
    res = cli.invoke(playbook_app, ["list", str(EXAMPLES), str(tmp_path / "dup.yaml")])
    assert res.exit_code == 2 and "playbook 'scale-on-surge' is already defined" in res.output


# -- triggers, conditions, placeholders -------------------------------------------------------------------------

def _incident(root_cause: str | None = "checkout", alertname: str = "HighLatency") -> Any:
    corr = IncidentCorrelator()
    inc = corr.add(Alert(labels={"alertname": alertname, "service": "checkout", "severity": "critical"},
                         starts_at=1000.0))
    corr.add(Alert(labels={"alertname": "HighErrorRate", "service": "checkout", "severity": "high"}, starts_at=1010.0))
    if root_cause:
        corr.attach_rca(inc, root_cause)
    return inc


def test_triggers_conditions_and_placeholders() -> None:
    pb = load_playbook(EXAMPLES / "scale-on-surge.yaml")
    ev = Event.from_incident(_incident())
    assert matches(pb, ev)
    assert not matches(pb, Event.from_incident(_incident(root_cause=None)))  # condition: a root cause is known
    assert not matches(pb, Event.from_incident(_incident(alertname="DiskFull")))  # no alert matches
    assert pb.actions[0].render_target(ev.context_for(pb)) == "shop/checkout"
    check = resolve(pb.verification, ev.context_for(pb))  # type: ignore[arg-type]
    assert 'service="checkout"' in (check.query or "")
    # placeholders are looked up, never evaluated; quotes are escaped for PromQL
    assert render('x{s="{{ labels.s }}"}', {"labels": {"s": 'a"b'}}, escape=True) == 'x{s="a\\"b"}'
    with pytest.raises(ConfigError, match=r"has no 'incident\.nope'"):
        render("{{ incident.nope }}", ev.context)
    leak = load_playbook(EXAMPLES / "restart-leaking.yaml")
    hit = Event.from_anomaly(7, service="cart", metric="memory", severity="critical", at=5.0)
    assert matches(leak, hit) and leak.actions[0].render_target(hit.context_for(leak)) == "cart"
    assert not matches(leak, Event.from_anomaly(8, service="cart", metric="memory", severity="medium", at=5.0))
    assert not matches(leak, Event.from_anomaly(9, service="cart", metric="cpu", severity="critical", at=5.0))
    fc = Playbook.model_validate({"name": "f", "risk": "low", "trigger": {"forecast": {"service": "*",
                                  "within_s": 3600}}, "actions": [{"kind": "shell", "target": "x"}]})
    assert matches(fc, Event.from_forecast(service="cart", metric="rate", breach_at=1000.0, at=0.0))
    assert not matches(fc, Event.from_forecast(service="cart", metric="rate", breach_at=9000.0, at=0.0))


def test_slo_verification_resolves_to_a_query() -> None:
    settings = Settings.model_validate({"services": [{
        "name": "checkout", "metrics": {"p95": "histogram_quantile(0.95, x)", "err": "rate(e[1m])",
                                        "rate": "rate(r[1m])"},
        "roles": {"latency": "p95", "errors": "err", "load": "rate"},
        "slo": {"latency_ms": 250, "availability": 0.999}}]})
    lat = resolve(Verification(slo={"service": "checkout"}), {}, settings.services)
    assert (lat.query, lat.op, lat.value) == ("max((histogram_quantile(0.95, x)) * 1000)", "<=", 250)
    avail = resolve(Verification(slo={"service": "checkout", "objective": "availability"}), {}, settings.services)
    assert (avail.query, avail.op, avail.value) == ("1 - sum(rate(e[1m])) / sum(rate(r[1m]))", ">=", 0.999)
    with pytest.raises(ConfigError, match="'cart' has no SLO"):
        resolve(Verification(slo={"service": "cart"}), {}, settings.services)


# -- runner -----------------------------------------------------------------------------------------------------

def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'opsmind.db'}")


def test_runner_is_idempotent_and_notifies(tmp_path: Path) -> None:
    ex = Recorder()
    seen: list[str] = []
    with _store(tmp_path) as store:
        rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), store, {ex.kind: ex},
                         Scripted([True]), playbooks=[playbook()], policy=GuardPolicy(approval_from="never"),
                         notify=lambda r: seen.append(r.status))
        first = rem.handle(surge("cart", 0.0), 0.0)
        again = rem.handle(surge("cart", 0.0), 10.0)  # the same alert delivered again
        assert [r.status for r in first] == ["succeeded"] and again == [] and ex.executed() == ["shop/cart"]
        assert seen == ["succeeded"]
        # every decision is in the audit log: who, what, when, why, result
        rows = store.audit.list("default", action="remediation.guard")
        assert {r.details["guard"] for r in rows} == {"allow_list", "maintenance", "circuit_breaker", "rate_limit",
                                                      "blast_radius", "dry_run", "approval", "lock"}
        assert all(r.actor == "opsmind" and r.reason and r.at == 0.0 for r in rows)


def test_failed_action_rolls_back_the_earlier_ones(tmp_path: Path) -> None:
    ex = Recorder()

    class Broken(Recorder):
        def execute(self, plan: Any, dry_run: bool = True) -> Any:
            if dry_run:
                return super().execute(plan, dry_run)
            raise RuntimeError("API server said no")

    bad = Broken("kubernetes.restart")
    pb = playbook(actions=[{"kind": "kubernetes.scale", "target": "shop/cart", "params": {"replicas": 5}},
                           {"kind": "kubernetes.restart", "target": "shop/cart"}])
    with _store(tmp_path) as store:
        rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), store,
                         {ex.kind: ex, bad.kind: bad}, Scripted([True]), playbooks=[pb],
                         policy=GuardPolicy(approval_from="never"))
        (run,) = rem.handle(surge("x", 0.0), 0.0)
    assert run.status == "failed" and "API server said no" in run.reason
    assert ex.calls == [("execute", "shop/cart", 5), ("rollback", "shop/cart", 4)]


def test_suggestions_learn_from_outcomes(tmp_path: Path) -> None:
    ex = Recorder()
    with _store(tmp_path) as store:
        verifier = Scripted([True])
        pbs = [playbook("scale-a"), playbook("scale-b")]
        rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), store, {ex.kind: ex},
                         verifier, playbooks=pbs, policy=GuardPolicy(approval_from="never"))
        # scale-a succeeds 3 times of 4, scale-b once of 3 on the same class of event
        for i, (name, ok) in enumerate([("scale-a", True), ("scale-a", True), ("scale-a", False), ("scale-a", True),
                                        ("scale-b", True), ("scale-b", False), ("scale-b", False)]):
            verifier.answers = [ok]
            rem.handle(surge("cart", 10_000.0 * i, i), 10_000.0 * i, only=[name])
        sugg = rem.suggest(surge("cart", 99_999.0, 99))
    assert [(s.playbook, s.successes, s.n) for s in sugg] == [("scale-a", 3, 4), ("scale-b", 1, 3)]
    assert sugg[0].success_rate == 0.75
    assert classify(surge("cart", 0.0)) == "traffic:cart:surge"
    assert classify(Event.from_incident(_incident())) == "latency:checkout:higherrorrate"


# -- CLI against a store ----------------------------------------------------------------------------------------

def test_cli_test_approve_deny_audit(tmp_path: Path) -> None:
    db = tmp_path / "opsmind.db"
    with Store.open(f"sqlite:///{db}") as store:
        store.tenants.ensure("default")
        key = store.incidents.save("default", _incident()).key
        ex = Recorder()
        pb = playbook("gated", risk="high", guardrails={"approval_ttl_s": 10 ** 10})
        rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), store, {ex.kind: ex},
                         Scripted([True]), playbooks=[pb], policy=GuardPolicy(approval_from="high"))
        (one,) = rem.handle(surge("cart", 0.0, 1), 0.0)
        (two,) = rem.handle(surge("cart", 0.0, 2), 0.0)
    assert one.status == two.status == "pending_approval"

    # dry-run the example playbook against the stored incident, with the real executors (no cluster here: the
    # current replica count cannot be read, so the blast-radius guard says it would refuse)
    res = cli.invoke(playbook_app, ["test", str(EXAMPLES / "scale-on-surge.yaml"), "--incident", key,
                                    "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    run = json.loads(res.output)
    assert run["status"] == "dry_run" and run["targets"] == ["shop/checkout"]
    assert run["plans"][0]["describe"] == ("kubernetes.scale on shop/checkout: set spec.replicas of deployment "
                                           "shop/checkout to 6")
    assert "would be blocked by blast_radius" in run["reason"]
    res = cli.invoke(playbook_app, ["test", str(EXAMPLES / "restart-leaking.yaml"), "--incident", key, "--db",
                                    str(db)])
    assert res.exit_code == 1 and "does not trigger on incident" in res.output
    res = cli.invoke(playbook_app, ["test", str(EXAMPLES / "scale-on-surge.yaml"), "--incident", "inc-nope",
                                    "--db", str(db)])
    assert res.exit_code == 2 and "'inc-nope' not found" in res.output

    res = cli.invoke(playbook_app, ["approve", one.run_id, "--actor", "alice", "--db", str(db)])
    assert res.exit_code == 0 and f"{one.run_id}: approved by alice" in res.output
    res = cli.invoke(playbook_app, ["approve", one.run_id, "--actor", "alice", "--db", str(db)])
    assert res.exit_code == 1 and "is approved, not pending_approval" in res.output
    res = cli.invoke(playbook_app, ["deny", two.run_id, "--actor", "bob", "--reason", "not now", "--db", str(db)])
    assert res.exit_code == 0 and f"{two.run_id}: denied by bob" in res.output

    res = cli.invoke(playbook_app, ["audit", "--db", str(db), "--format", "json", "--limit", "1000"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    approvals = {(r["actor"], r["result"], r["target"]) for r in rows if r["action"] == "remediation.approval"}
    assert approvals == {("alice", "approved", one.run_id), ("bob", "denied", two.run_id)}
    assert any(r["actor"] == "cli" and r["result"] == "dry_run" for r in rows)
    res = cli.invoke(playbook_app, ["audit", "--db", str(db), "--run", two.run_id])
    assert res.exit_code == 0 and "not now" in res.output
    res = cli.invoke(playbook_app, ["runs", "--db", str(db), "--status", "denied", "--format", "json"])
    assert [r["run_id"] for r in json.loads(res.output)] == [two.run_id]
    # an approved run can still be denied before the engine starts it; then it never runs
    res = cli.invoke(playbook_app, ["deny", one.run_id, "--actor", "carol", "--db", str(db)])
    assert res.exit_code == 0 and "denied by carol" in res.output
    with Store.open(f"sqlite:///{db}") as store:
        rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), store, {ex.kind: ex},
                         Scripted([True]), playbooks=[pb], policy=GuardPolicy(approval_from="high"))
        assert rem.tick(10.0) == [] and ex.executed() == []


# -- end to end with a real executor and a real Prometheus ------------------------------------------------------

def test_real_shell_action_undone_when_prometheus_says_it_did_not_help(tmp_path: Path, prometheus: Any) -> None:
    import re

    from opsmind.remediate.executors import build_executor
    from opsmind.remediate.verify import PrometheusVerifier
    from opsmind.sources.prometheus import Prometheus, PrometheusSettings
    from test_guardrails import FakeClock

    flag = re.escape(str(tmp_path)) + r"/flag-[a-z]+"
    shell = build_executor("shell", {"allow": [{"executable": "/usr/bin/touch", "args": [flag]},
                                               {"executable": "/usr/bin/rm", "args": ["-f", flag]}]})
    path = str(tmp_path) + "/flag-{{ labels.service }}"

    def pb(value: float) -> Playbook:
        return Playbook.model_validate({
            "name": f"flag-{int(value)}", "risk": "low", "trigger": {"alert": {"match": ['alertname="Surge"']}},
            "actions": [{"kind": "shell", "target": "{{ labels.service }}",
                         "params": {"argv": ["/usr/bin/touch", path], "undo": ["/usr/bin/rm", "-f", path]}}],
            "verification": {"query": "max(opsmind_test_live)", "op": "<", "value": value, "within_s": 30}})

    prom = Prometheus(PrometheusSettings(url=prometheus.url))
    clock = FakeClock(0.0)
    with _store(tmp_path) as store:
        rem = Remediator(Settings.model_validate({"remediation": {"dry_run": False}}), store, {"shell": shell},
                         PrometheusVerifier(prom, clock=clock, sleep=clock.sleep), playbooks=[pb(1), pb(100)],
                         policy=GuardPolicy(approval_from="never"))
        (bad,) = rem.handle(surge("cart", 0.0), 0.0, only=["flag-1"])  # 42 < 1 never holds
        assert bad.status == "rolled_back", bad.reason
        assert not (tmp_path / "flag-cart").exists()  # created, then removed by the undo command
        assert [o["ok"] for o in bad.rollbacks] == [True]
        (good,) = rem.handle(surge("shop", 100.0), 100.0, only=["flag-100"])  # 42 < 100 holds
        assert good.status == "succeeded" and (tmp_path / "flag-shop").exists()
    prom.close()
