"""The remediation routes: playbooks (list, validate, dry-run against an incident), runs (list, one, approve,
deny), the remediation audit log, suggestions for an incident, and the ``remediation`` server-sent event.

Real parts: a SQLite store, the real shell executor with an allow-list (``/usr/bin/touch`` into the test's folder
only), playbooks written by the test plus the examples in ``docs/playbooks/``, and the runner executing an approved
run on its tick (the engine's job) to show that an approval given over the API is what lets a command run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsmind.api import create_app
from opsmind.api.remediation_views import build_remediator
from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.incidents.correlate import Incident, TrackedAlert
from opsmind.remediate import Event, Ledger, Remediator
from opsmind.store import Store

DOCS_PLAYBOOKS = Path(__file__).resolve().parent.parent / "docs" / "playbooks"
TENANT = "default"
NOW = 1_790_000_000.0
ADMIN = "admin-secret-for-tests"

TOUCH = """\
name: touch-marker
description: Touch a marker file named after the root cause (a harmless command on the allow-list).
risk: high
trigger:
  incident:
    match:
      - 'alertname="HighLatency"'
actions:
  - name: touch the marker
    kind: shell
    target: "{{{{ incident.root_cause }}}}"
    params:
      argv: ["/usr/bin/touch", "{folder}/marker-{{{{ incident.root_cause }}}}"]
rollback:
  mode: none
guardrails:
  max_targets: 1
"""

LOW = """\
name: note-low
description: A low-risk playbook for the same incidents (no approval needed).
risk: low
trigger:
  incident:
    match: ['alertname="HighLatency"']
actions:
  - kind: shell
    target: "{{{{ incident.root_cause }}}}"
    params:
      argv: ["/usr/bin/touch", "{folder}/low-{{{{ incident.root_cause }}}}"]
rollback: {{mode: none}}
"""

BAD_KIND = """\
name: broken
risk: low
trigger:
  alert:
    match: ['alertname="X"']
actions:
  - kind: supervisor.explode
    target: web
"""


@dataclass
class Env:
    client: TestClient
    store: Store
    rem: Remediator
    folder: Path
    writer: str  # token secrets
    reader: str
    other: str

    def auth(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}


def incident(store: Store, key: str, service: str, *, alertname: str = "HighLatency", tenant: str = TENANT) -> str:
    alert = Alert(labels={"alertname": alertname, "service": service, "severity": "critical"}, starts_at=NOW - 300)
    inc = Incident(id=key, started_at=NOW - 300, last_activity=NOW - 30,
                   alerts={alert.fingerprint: TrackedAlert(alert, service, NOW - 300, NOW - 30, 2)},
                   services={service}, priority="P1", score=0.9, severity=4, root_cause=service)
    return store.incidents.save(tenant, inc).key


def _app(settings: Settings, store: Store, rem: Remediator) -> Any:
    return create_app(settings, store=store, clock=lambda: NOW, remediator=rem)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "touch.yaml").write_text(TOUCH.format(folder=tmp_path))
    (books / "low.yaml").write_text(LOW.format(folder=tmp_path))
    settings = Settings.model_validate({
        "tenant": TENANT,
        "api": {"admin_token": ADMIN, "anonymous_scopes": ["read", "write"]},
        "remediation": {
            "playbooks": [str(books), str(DOCS_PLAYBOOKS)], "dry_run": False,
            "executors": {"shell": {"allow": [{"executable": "/usr/bin/touch",
                                               "args": [f"{tmp_path}/(marker|low)-[a-z]+"]}]}},
        },
    })
    with Store.open(f"sqlite:///{tmp_path / 'opsmind.db'}") as store:
        store.tenants.ensure(TENANT)
        store.tenants.ensure("other")
        rem = build_remediator(settings, store)
        _, writer = store.tokens.create(TENANT, "alice", ["write"])
        _, reader = store.tokens.create(TENANT, "robot", ["read"])
        _, other = store.tokens.create("other", "mallory", ["admin"])
        with TestClient(_app(settings, store, rem)) as client:
            yield Env(client, store, rem, tmp_path, writer, reader, other)


def pending(env: Env, key: str, service: str) -> str:
    """A run of the high-risk playbook waiting for approval (what the engine's remediator makes of an incident)."""
    incident(env.store, key, service)
    runs = env.rem.handle(Event.from_incident(env.store.incidents.get(TENANT, key)), NOW, only=["touch-marker"])
    assert [r.status for r in runs] == ["pending_approval"]
    return runs[0].run_id


def error(res: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert res.status_code == status, res.text
    body: dict[str, Any] = res.json()["error"]
    assert set(body) == {"code", "message", "field"}
    if code is not None:
        assert body["code"] == code
    assert "\n" not in body["message"]
    return body


# ---- playbooks -------------------------------------------------------------------------------------------------

def test_playbooks_lists_each_loaded_playbook_readably(env: Env) -> None:
    res = env.client.get("/api/v1/playbooks", headers=env.auth(env.reader))
    assert res.status_code == 200, res.text
    books = {p["name"]: p for p in res.json()["playbooks"]}
    assert set(books) == {"touch-marker", "note-low", "scale-on-surge", "restart-leaking"}
    touch = books["touch-marker"]
    assert touch["risk"] == "high" and touch["approval_required"] is True
    assert touch["trigger"] == 'incident: alertname="HighLatency" (P4 or higher)'
    assert touch["actions"] == [{"name": "touch the marker", "kind": "shell", "target": "{{ incident.root_cause }}"}]
    assert touch["rollback"] == "none" and touch["verification"] is None
    assert touch["source"] == str(env.folder / "playbooks" / "touch.yaml")
    surge = books["scale-on-surge"]
    assert surge["approval_required"] is False and surge["rollback"] == "auto"
    assert surge["verification"].endswith("< 0.25 within 600 s (every 15 s)")
    assert surge["conditions"] == ["incident.root_cause != ''"]
    assert books["restart-leaking"]["trigger"] == "anomaly: */memory, severity high or higher"
    assert books["restart-leaking"]["source"] == str(DOCS_PLAYBOOKS / "restart-leaking.yaml")


def test_playbooks_need_a_token_when_anonymous_has_no_read(tmp_path: Path) -> None:
    settings = Settings.model_validate({"tenant": TENANT})
    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as store:
        rem = build_remediator(settings, store)
        with TestClient(_app(settings, store, rem)) as client:
            error(client.get("/api/v1/playbooks"), 401, "unauthorized")
            error(client.get("/api/v1/remediations"), 401)


def test_validate_accepts_yaml_text_and_json(env: Env) -> None:
    text = LOW.format(folder=env.folder)
    res = env.client.post("/api/v1/playbooks/validate", content=text, headers={"Content-Type": "text/yaml"})
    assert res.status_code == 200, res.text
    assert res.json() == {"ok": True, "name": "note-low", "risk": "low", "actions": 1, "loaded": True}
    res = env.client.post("/api/v1/playbooks/validate", json={"text": text.replace("note-low", "fresh")})
    assert res.status_code == 200, res.text
    assert res.json()["name"] == "fresh" and res.json()["loaded"] is False


def test_validate_names_line_and_field_of_a_malformed_playbook(env: Env) -> None:
    res = env.client.post("/api/v1/playbooks/validate", content=BAD_KIND, headers={"Content-Type": "text/yaml"})
    body = error(res, 422, "invalid_playbook")
    assert body["message"].startswith("<body>:7: actions[0].kind: ")
    assert "unknown executor kind 'supervisor.explode'" in body["message"]
    assert body["field"] == "body.actions[0].kind"
    body = error(env.client.post("/api/v1/playbooks/validate", json={"text": "name: x\n  risk: [low\n"}), 422)
    assert body["message"].startswith("<body>:2: invalid YAML") and body["field"] == "body"
    body = error(env.client.post("/api/v1/playbooks/validate", content="- a\n- b\n",
                                 headers={"Content-Type": "application/yaml"}), 422)
    assert "expected a mapping" in body["message"]


def test_validate_refuses_bad_bodies_with_4xx(env: Env) -> None:
    url = "/api/v1/playbooks/validate"
    error(env.client.post(url, content=b"<x/>", headers={"Content-Type": "application/xml"}), 415)
    error(env.client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400,
          "invalid_json")
    assert error(env.client.post(url, json={"yaml": "x"}), 422)["field"] == "body.text"
    error(env.client.post(url, json=["x"]), 422)
    error(env.client.post(url, content=b"name: \xff\xfe", headers={"Content-Type": "text/yaml"}), 400)
    # documents that would take the YAML parser or the validator very long are refused with a 422
    body = error(env.client.post(url, json={"text": "a: " + "[" * 5000 + "]" * 5000}), 422, "invalid_playbook")
    assert "nested 5000 deep" in body["message"]
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    assert "80 aliases" in error(env.client.post(url, json={"text": bomb}), 422)["message"]
    deep = "\n".join(" " * i + f"k{i}:" for i in range(900))
    assert error(env.client.post(url, json={"text": deep}), 422)["message"].startswith("<body>")
    error(env.client.post(url, json={"text": "x" * (256 * 1024 + 1)}), 422)


def test_dry_run_against_an_incident_plans_and_never_executes(env: Env) -> None:
    key = incident(env.store, "inc-api-1", "checkout")
    res = env.client.post("/api/v1/playbooks/touch-marker/test", json={"incident": key}, headers=env.auth(env.writer))
    assert res.status_code == 200, res.text
    run = res.json()
    assert run["status"] == "dry_run" and run["dry_run"] is True
    assert run["playbook"] == "touch-marker" and run["targets"] == ["checkout"]
    assert run["event_key"] == f"incident:{key}"
    marker = env.folder / "marker-checkout"
    assert run["plans"][0]["describe"] == f"shell on checkout: run /usr/bin/touch {marker} on checkout (timeout 30 s)"
    guards = {g["guard"]: g["outcome"] for g in run["guards"]}
    assert guards["dry_run"] == "dry_run" and guards["allow_list"] == "allow" and guards["blast_radius"] == "allow"
    assert "a dry run was requested" in run["reason"]
    assert not marker.exists()
    trail = env.client.get(f"/api/v1/remediations/audit?run={run['run_id']}").json()["audit"]
    assert trail and {r["actor"] for r in trail} == {"alice"}
    assert not any(r["action"] == "remediation.action" for r in trail)  # nothing executed
    # recorded: the run is listed, and a second dry run of the same incident is a new run (force)
    again = env.client.post("/api/v1/playbooks/touch-marker/test", json={"incident": key}).json()
    assert again["run_id"] != run["run_id"]
    listed = env.client.get("/api/v1/remediations?status=dry_run").json()["remediations"]
    assert {r["run_id"] for r in listed} == {run["run_id"], again["run_id"]}
    assert not marker.exists()


def test_dry_run_says_which_guard_would_refuse(env: Env) -> None:
    """A command off the allow-list cannot be planned: the dry run is blocked and says why."""
    key = incident(env.store, "inc-api-upper", "Checkout9")  # the allow-list only takes [a-z]+
    run = env.client.post("/api/v1/playbooks/note-low/test", json={"incident": key}).json()
    assert run["status"] == "blocked"
    assert "is refused" in run["reason"] and run["guards"][0]["guard"] == "plan"


def test_dry_run_4xx(env: Env) -> None:
    key = incident(env.store, "inc-api-2", "checkout")
    other = incident(env.store, "inc-api-3", "checkout", alertname="DiskFull")
    url = "/api/v1/playbooks/touch-marker/test"
    error(env.client.post(url, json={"incident": key}, headers=env.auth(env.reader)), 403, "forbidden")
    body = error(env.client.post("/api/v1/playbooks/nope/test", json={"incident": key}), 404, "not_found")
    assert "touch-marker" in body["message"]
    error(env.client.post(url, json={"incident": "inc-missing"}), 404)
    body = error(env.client.post(url, json={"incident": other}), 422, "not_triggered")
    assert body["field"] == "body.incident"
    error(env.client.post(url, json={}), 422, "validation_error")
    error(env.client.post(url, json={"incident": key, "execute": True}), 422)
    # another tenant's incident is a 404, even for its admin
    error(env.client.post(url, json={"incident": key}, headers=env.auth(env.other)), 404)


# ---- runs, approvals -------------------------------------------------------------------------------------------

def test_approve_records_the_token_name_and_the_engine_then_executes(env: Env) -> None:
    run_id = pending(env, "inc-api-4", "payments")
    marker = env.folder / "marker-payments"
    listed = env.client.get("/api/v1/remediations?status=pending_approval").json()["remediations"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert listed[0]["plan"] == [f"shell on payments: run /usr/bin/touch {marker} on payments (timeout 30 s)"]
    assert listed[0]["expires_at"] == NOW + 3600
    assert not marker.exists()

    res = env.client.post(f"/api/v1/remediations/{run_id}/approve", json={"reason": "looked at the plan"},
                          headers=env.auth(env.writer))
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "approved" and res.json()["approved_by"] == "alice"
    assert res.json()["reason"] == "looked at the plan"
    assert Ledger(env.store, TENANT).run(run_id).status == "approved"
    assert not marker.exists()  # the API never executes

    env.rem.tick(NOW + 5)  # the engine's next cycle
    assert marker.exists()
    full = env.client.get(f"/api/v1/remediations/{run_id}").json()
    assert full["status"] == "succeeded" and full["outcomes"][0]["ok"] is True
    assert full["verification"]["detail"] == "no verification configured"
    summary = env.client.get("/api/v1/remediations?playbook=touch-marker&limit=1").json()["remediations"][0]
    assert summary["run_id"] == run_id and summary["actions"] == 1 and summary["actions_failed"] == 0

    error(env.client.post(f"/api/v1/remediations/{run_id}/approve", headers=env.auth(env.writer)), 409, "conflict")
    error(env.client.post(f"/api/v1/remediations/{run_id}/deny", headers=env.auth(env.writer)), 409)


def test_deny_and_its_4xx(env: Env) -> None:
    run_id = pending(env, "inc-api-5", "search")
    url = f"/api/v1/remediations/{run_id}"
    body = error(env.client.post(f"{url}/approve"), 403)  # anonymous has write here, but is nobody
    assert "named person" in body["message"]
    error(env.client.post(f"{url}/approve", headers=env.auth(env.reader)), 403)
    error(env.client.post(f"{url}/approve", headers=env.auth(env.other)), 404)  # another tenant's run
    error(env.client.post("/api/v1/remediations/run-unknown/approve", headers=env.auth(env.writer)), 404)
    error(env.client.post(f"{url}/deny", json={"reason": 5}, headers=env.auth(env.writer)), 422)
    error(env.client.post(f"{url}/deny", json={"why": "x"}, headers=env.auth(env.writer)), 422)
    error(env.client.get("/api/v1/remediations/bad id"), 422)

    res = env.client.post(f"{url}/deny", headers={"Authorization": f"Bearer {ADMIN}"})
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "denied" and res.json()["reason"] == "denied by admin"
    error(env.client.post(f"{url}/approve", headers=env.auth(env.writer)), 409)
    env.rem.tick(NOW + 5)
    assert not (env.folder / "marker-search").exists()


def test_an_expired_request_cannot_be_approved(env: Env, tmp_path: Path) -> None:
    run_id = pending(env, "inc-api-6", "cart")
    settings = env.client.app.state.opsmind.settings  # type: ignore[attr-defined]
    later = NOW + 3601
    app = _app(settings, env.store, env.rem)
    app.state.opsmind.clock = lambda: later
    with TestClient(app) as client:
        body = error(client.post(f"/api/v1/remediations/{run_id}/approve", headers=env.auth(env.writer)), 409)
    assert "expired" in body["message"]
    assert Ledger(env.store, TENANT).run(run_id).status == "expired"


def test_runs_list_filters_and_validates(env: Env) -> None:
    a = pending(env, "inc-api-7", "alpha")
    b = pending(env, "inc-api-8", "beta")
    env.client.post(f"/api/v1/remediations/{a}/deny", headers=env.auth(env.writer))
    runs = env.client.get("/api/v1/remediations").json()["remediations"]
    assert {r["run_id"]: r["status"] for r in runs} == {a: "denied", b: "pending_approval"}
    assert env.client.get("/api/v1/remediations?limit=1").json()["remediations"][0]["run_id"] in (a, b)
    assert env.client.get("/api/v1/remediations?playbook=note-low").json() == {"remediations": []}
    error(env.client.get("/api/v1/remediations?status=sideways"), 422)
    error(env.client.get("/api/v1/remediations?limit=0"), 422)
    assert env.client.get("/api/v1/remediations", headers=env.auth(env.other)).json() == {"remediations": []}
    error(env.client.get(f"/api/v1/remediations/{a}", headers=env.auth(env.other)), 404)
    full = env.client.get(f"/api/v1/remediations/{b}").json()
    assert full["plans"][0]["kind"] == "shell" and full["context"]["incident"]["key"] == "inc-api-8"
    assert [g["guard"] for g in full["guards"]][-1] == "approval"


# ---- audit, suggestions ---------------------------------------------------------------------------------------

def test_audit_log_has_every_decision_with_who_and_why(env: Env) -> None:
    run_id = pending(env, "inc-api-9", "orders")
    env.client.post(f"/api/v1/remediations/{run_id}/approve", json={"reason": "ok by me"},
                    headers=env.auth(env.writer))
    audit = env.client.get("/api/v1/remediations/audit").json()["audit"]
    assert all(r["action"].startswith("remediation.") for r in audit)
    assert [r["at"] for r in audit] == sorted((r["at"] for r in audit), reverse=True)
    approval = next(r for r in audit if r["action"] == "remediation.approval")
    assert (approval["actor"], approval["target"], approval["result"], approval["reason"]) == (
        "alice", run_id, "approved", "ok by me")
    guards = [r for r in audit if r["action"] == "remediation.guard"]
    assert {g["details"]["guard"] for g in guards} >= {"allow_list", "blast_radius", "approval"}
    snap = next(r for r in audit if r["action"] == "remediation.run")
    assert set(snap["details"]) == {"run_id", "playbook", "status", "version", "event"}
    assert len(env.client.get("/api/v1/remediations/audit?limit=2").json()["audit"]) == 2
    mine = env.client.get(f"/api/v1/remediations/audit?run={run_id}").json()["audit"]
    assert mine and all(r["target"] == run_id or r["details"].get("run_id") == run_id for r in mine)
    assert env.client.get(f"/api/v1/remediations/audit?since={NOW + 1}").json() == {"audit": []}
    error(env.client.get("/api/v1/remediations/audit?since=-1"), 422)
    assert env.client.get("/api/v1/remediations/audit", headers=env.auth(env.other)).json() == {"audit": []}


def test_suggestions_rank_by_observed_success_with_the_count(env: Env) -> None:
    key = incident(env.store, "inc-api-10", "payments")
    res = env.client.get(f"/api/v1/incidents/{key}/suggestions")
    assert res.status_code == 200, res.text
    first = res.json()
    assert first["incident_class"] == "latency:payments:highlatency"
    assert {s["playbook"]: (s["n"], s["success_rate"], s["available"]) for s in first["suggestions"]} == {
        "touch-marker": (0, None, True), "note-low": (0, None, True), "scale-on-surge": (0, None, True)}
    # note-low worked on this class of incident twice
    led = Ledger(env.store, TENANT)
    for i, inc_key in enumerate(("inc-api-11", "inc-api-12")):
        incident(env.store, inc_key, "payments")
        run = env.rem.handle(Event.from_incident(env.store.incidents.get(TENANT, inc_key)), NOW + 2000 * i,
                             only=["note-low"])[0]
        assert run.status == "succeeded", run.reason
        assert led.run(run.run_id).incident_class == first["incident_class"]
    ranked = env.client.get(f"/api/v1/incidents/{key}/suggestions").json()["suggestions"]
    assert [s["playbook"] for s in ranked] == ["note-low", "scale-on-surge", "touch-marker"]
    assert ranked[0] == {"playbook": "note-low", "success_rate": 1.0, "n": 2, "successes": 2, "available": True,
                         "risk": "low", "description": ranked[0]["description"]}
    error(env.client.get("/api/v1/incidents/inc-missing/suggestions"), 404)
    error(env.client.get(f"/api/v1/incidents/{key}/suggestions", headers=env.auth(env.other)), 404)


def test_broken_playbooks_make_remediation_unavailable_not_a_500(tmp_path: Path) -> None:
    """The app starts; the routes that need the playbooks answer 503 naming the file, line and field."""
    (tmp_path / "bad.yaml").write_text(BAD_KIND)
    settings = Settings.model_validate({"tenant": TENANT, "api": {"anonymous_scopes": ["read", "write"]},
                                        "remediation": {"playbooks": [str(tmp_path / "bad.yaml")]}})
    with Store.open(f"sqlite:///{tmp_path / 'b.db'}") as store, \
            TestClient(create_app(settings, store=store)) as client:
        body = error(client.get("/api/v1/playbooks"), 503, "remediation_unavailable")
        assert "bad.yaml:7: actions[0].kind" in body["message"]
        incident(store, "inc-b", "checkout")
        error(client.get("/api/v1/incidents/inc-b/suggestions"), 503)
        # what needs no playbook still answers
        assert client.get("/api/v1/remediations").json() == {"remediations": []}
        assert client.get("/api/v1/health").status_code == 200


# ---- events, OpenAPI ------------------------------------------------------------------------------------------

def test_each_status_change_is_one_remediation_event(env: Env) -> None:
    from opsmind.api.events import EventCursor

    cursor = EventCursor()
    cursor.prime(env.store, TENANT, None)
    run_id = pending(env, "inc-api-13", "events")
    env.client.post(f"/api/v1/remediations/{run_id}/approve", headers=env.auth(env.writer))
    sent = [e for e in cursor.poll(env.store, TENANT) if e.startswith("event: remediation")]
    statuses = [json.loads(e.split("data: ", 1)[1])["status"] for e in sent]
    assert statuses == ["pending_approval", "approved"]
    first = json.loads(sent[0].split("data: ", 1)[1])
    assert first["run_id"] == run_id and first["plan"] and "plans" not in first
    assert cursor.poll(env.store, TENANT) == []


def test_openapi_documents_the_routes_and_models(env: Env) -> None:
    spec = env.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/playbooks", "/api/v1/playbooks/validate", "/api/v1/playbooks/{name}/test",
                 "/api/v1/remediations", "/api/v1/remediations/audit", "/api/v1/remediations/{run_id}",
                 "/api/v1/remediations/{run_id}/approve", "/api/v1/remediations/{run_id}/deny",
                 "/api/v1/incidents/{key}/suggestions"):
        assert path in paths, path
    validate = paths["/api/v1/playbooks/validate"]["post"]
    assert set(validate["requestBody"]["content"]) == {"text/yaml", "application/json"}
    assert "422" in validate["responses"]
    approve = paths["/api/v1/remediations/{run_id}/approve"]["post"]["responses"]
    assert {"200", "404", "409"} <= set(approve)
    assert {"PlaybookList", "RunList", "RunSummary", "RunRecord", "AuditList", "SuggestionList"} <= set(
        spec["components"]["schemas"])
