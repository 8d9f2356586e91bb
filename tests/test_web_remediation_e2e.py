"""The dashboard's remediation pieces end to end: the real API on a SQLite store, served by uvicorn on a free loopback
port, driven in headless Debian Chromium through Playwright.

A run waiting for approval is approved (with a reason) and another denied from the Remediation view, and the store
then holds them approved by the token's name and denied; a run created while the page is open arrives over the
event stream; on an incident's page the suggested playbooks show their success rate and count, and a dry-run shows
the plan without executing anything. The executor is the real shell executor with an allow-list (``touch`` into
the test's folder). Screenshots go to ``tests/artifacts/remediation.png`` and ``remediation-incident.png``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from browser import Browser, screenshot
from browser import browser as open_browser
from opsmind.api.server import BackgroundServer
from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.incidents.correlate import Incident, TrackedAlert
from opsmind.remediate import Event, Ledger, Remediator
from opsmind.store import Store

DOCS_PLAYBOOKS = Path(__file__).resolve().parent.parent / "docs" / "playbooks"
TENANT = "default"

uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")

from opsmind.api import create_app  # noqa: E402
from opsmind.api.remediation_views import build_remediator  # noqa: E402

TOUCH = """\
name: touch-marker
description: Touch a marker file named after the root cause (a harmless command on the allow-list).
risk: high
trigger:
  incident:
    match: ['alertname="HighLatency"']
actions:
  - kind: shell
    target: "{{{{ incident.root_cause }}}}"
    params:
      argv: ["/usr/bin/touch", "{folder}/marker-{{{{ incident.root_cause }}}}"]
rollback: {{mode: none}}
"""

LOW = """\
name: note-low
description: Leave a note file for the on-call engineer; low risk, runs without approval.
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
guardrails: {{target_per_s: 60}}
"""


@dataclass
class Env:
    store: Store
    rem: Remediator
    folder: Path
    base: str
    token: str
    now: float
    runs: dict[str, str]  # name -> run id
    incident: str


def add_incident(store: Store, key: str, service: str, now: float) -> str:
    alert = Alert(labels={"alertname": "HighLatency", "service": service, "severity": "critical"},
                  starts_at=now - 600, annotations={"summary": f"p95 latency of {service} above 300 ms"})
    inc = Incident(id=key, started_at=now - 600, last_activity=now - 60,
                   alerts={alert.fingerprint: TrackedAlert(alert, service, now - 600, now - 60, 4)},
                   services={service}, priority="P2", score=0.8, severity=3, root_cause=service,
                   evidence=[f"{service} latency p95 up 4x"])
    return store.incidents.save(TENANT, inc).key


def event(store: Store, key: str) -> Event:
    return Event.from_incident(store.incidents.get(TENANT, key))


@contextlib.contextmanager
def serve(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on ``port`` (a free loopback port by default); yields the base URL."""
    with BackgroundServer(app, port=port) as server:
        yield server.url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("remediation-web")
    books = folder / "playbooks"
    books.mkdir()
    (books / "touch.yaml").write_text(TOUCH.format(folder=folder))
    (books / "low.yaml").write_text(LOW.format(folder=folder))
    settings = Settings.model_validate({
        "tenant": TENANT,
        "remediation": {
            "playbooks": [str(books), str(DOCS_PLAYBOOKS)], "dry_run": False,
            "executors": {"shell": {"allow": [{"executable": "/usr/bin/touch",
                                               "args": [f"{folder}/(marker|low)-[a-z]+"]}]}},
        },
    })
    store = Store.open(f"sqlite:///{folder / 'web.db'}")
    store.tenants.ensure(TENANT)
    now = time.time()
    rem = build_remediator(settings, store)
    _, token = store.tokens.create(TENANT, "carol", ["write"])
    runs: dict[str, str] = {}
    # history: note-low worked twice on this class of incident (payments latency), once it was only dry-run
    for i, key in enumerate(("inc-old-1", "inc-old-2")):
        add_incident(store, key, "payments", now - 7200 + 1800 * i)
        run = rem.handle(event(store, key), now - 7200 + 1800 * i, only=["note-low"])[0]
        assert run.status == "succeeded", run.reason
        runs[f"done{i}"] = run.run_id
    add_incident(store, "inc-dry", "payments", now - 900)
    runs["dry"] = rem.handle(event(store, "inc-dry"), now - 900, dry_run=True, only=["note-low"])[0].run_id
    for name, service in (("approve", "checkout"), ("deny", "search")):
        key = add_incident(store, f"inc-{name}", service, now - 300)
        run = rem.handle(event(store, key), now - 300, only=["touch-marker"])[0]
        assert run.status == "pending_approval"
        runs[name] = run.run_id
    incident = add_incident(store, "inc-web-payments", "payments", now - 120)

    app = create_app(settings, store=store, remediator=rem)
    app.state.opsmind.event_poll_s = 0.2
    with serve(app) as base:
        yield Env(store, rem, folder, base, token, now, runs, incident)
    store.close()


@pytest.fixture(scope="module")
def browser(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    token = f"localStorage.setItem('opsmind.token', {env.token!r});"
    with open_browser(tmp_path_factory.mktemp("chromium-profile"), env.base, height=900, init_script=token) as b:
        yield b



def test_the_remediation_view_lists_approvals_runs_playbooks_and_audit(browser: Browser, env: Env) -> None:
    page = browser.open("/remediation")
    page.wait_for_selector(f'#approvals .approval[data-run-id="{env.runs["approve"]}"]')
    cards = page.locator("#approvals .approval")
    assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.runId)")) == sorted(
        [env.runs["approve"], env.runs["deny"]])
    card = page.locator(f'#approvals .approval[data-run-id="{env.runs["approve"]}"]')
    assert f"/usr/bin/touch {env.folder}/marker-checkout" in card.locator(".plan").inner_text()
    assert "approval" in card.locator(".guards").inner_text()
    assert page.locator("#pending-approvals").inner_text() == "2"
    statuses = page.locator("#runs details.run").evaluate_all("els => els.map(e => e.dataset.status)")
    assert sorted(statuses) == sorted(["succeeded", "succeeded", "dry_run", "pending_approval", "pending_approval"])
    dry = page.locator(f'#runs details.run[data-run-id="{env.runs["dry"]}"]')
    assert "dry run" in dry.locator("summary").inner_text()
    done = page.locator(f'#runs details.run[data-run-id="{env.runs["done1"]}"]')
    done.locator("summary").click()
    done.locator(".outcomes li.ok").wait_for()
    assert "no verification configured" in done.locator(".verification").inner_text()
    names = page.locator("#playbooks tr[data-playbook]").evaluate_all("els => els.map(e => e.dataset.playbook)")
    assert sorted(names) == ["note-low", "restart-leaking", "scale-on-surge", "touch-marker"]
    assert page.locator("#audit tbody tr").count() > 5
    assert browser.errors == [], "\n".join(browser.errors)


def test_a_pending_run_is_approved_and_another_denied_from_the_dashboard(browser: Browser, env: Env,
                                                                         tmp_path: Path) -> None:
    page = browser.open("/remediation")
    run_id = env.runs["approve"]
    page.locator(f'#approvals .approval[data-run-id="{run_id}"] button[data-action="approve"]').click()
    page.locator("#reason-dialog #reason-input").fill("plan checked on the dashboard")
    page.locator('#reason-dialog button[data-action="confirm"]').click()
    page.wait_for_selector(f'#runs details.run[data-run-id="{run_id}"][data-status="approved"]')
    page.wait_for_selector(f'#approvals .approval[data-run-id="{run_id}"]', state="detached")
    rec = Ledger(env.store, TENANT).run(run_id)
    assert (rec.status, rec.approved_by, rec.reason) == ("approved", "carol", "plan checked on the dashboard")
    assert not (env.folder / "marker-checkout").exists()  # the engine executes it on its next cycle, not the API

    page.locator(f'#runs details.run[data-run-id="{run_id}"] summary').click()
    page.locator(f'#runs details.run[data-run-id="{run_id}"] .guards').wait_for()
    screenshot(page, "remediation.png", tmp_path)  # one run approved, one still waiting

    other = env.runs["deny"]
    page.locator(f'#approvals .approval[data-run-id="{other}"] button[data-action="deny"]').click()
    page.locator('#reason-dialog button[data-action="cancel"]').click()  # cancelling changes nothing
    assert Ledger(env.store, TENANT).run(other).status == "pending_approval"
    page.locator(f'#approvals .approval[data-run-id="{other}"] button[data-action="deny"]').click()
    page.locator("#reason-dialog #reason-input").fill("release freeze")
    page.locator('#reason-dialog button[data-action="confirm"]').click()
    page.wait_for_selector(f'#runs details.run[data-run-id="{other}"][data-status="denied"]')
    denied = Ledger(env.store, TENANT).run(other)
    assert (denied.status, denied.reason) == ("denied", "release freeze")
    page.wait_for_selector("#approvals .empty")
    page.wait_for_function("document.getElementById('pending-approvals').hidden")
    page.wait_for_selector('#audit td:has-text("release freeze")')
    assert browser.errors == [], "\n".join(browser.errors)


def test_a_new_pending_run_arrives_live(browser: Browser, env: Env) -> None:
    page = browser.open("/remediation")
    page.wait_for_selector("#live[data-state=live]")
    page.wait_for_selector("#runs details.run")
    key = add_incident(env.store, "inc-live", "cart", env.now)
    run = env.rem.handle(event(env.store, key), env.now, only=["touch-marker"])[0]
    page.wait_for_selector(f'#approvals .approval[data-run-id="{run.run_id}"]')
    page.wait_for_function("document.getElementById('pending-approvals').textContent === '1'")
    assert browser.errors == [], "\n".join(browser.errors)


def test_incident_page_suggests_playbooks_and_dry_runs_one(browser: Browser, env: Env, tmp_path: Path) -> None:
    page = browser.open(f"/incidents/{env.incident}")
    page.wait_for_selector('#suggestions .suggestion[data-playbook="note-low"]')
    order = page.locator("#suggestions .suggestion").evaluate_all("els => els.map(e => e.dataset.playbook)")
    assert order[0] == "note-low"
    low = page.locator('#suggestions .suggestion[data-playbook="note-low"]')
    assert "100% success · 2 of 2 runs" in low.locator(".rate").inner_text()
    touch = page.locator('#suggestions .suggestion[data-playbook="touch-marker"]')
    assert "never tried" in touch.locator(".rate").inner_text()
    before = len(Ledger(env.store, TENANT).runs())
    (env.folder / "low-payments").unlink(missing_ok=True)  # the history's real runs touched it
    low.locator('button[data-action="dry-run"]').click()
    result = low.locator(".dry-result")
    result.wait_for()
    assert result.get_attribute("data-status") == "dry_run"
    assert f"/usr/bin/touch {env.folder}/low-payments" in result.locator(".plan").inner_text()
    assert "a dry run was requested" in result.inner_text()
    assert "allow list" in result.locator(".guards").inner_text()
    assert not (env.folder / "low-payments").exists()  # planned, never executed
    runs = Ledger(env.store, TENANT).runs()
    assert len(runs) == before + 1 and runs[0].status == "dry_run" and runs[0].event_key == f"incident:{env.incident}"
    screenshot(page, "remediation-incident.png", tmp_path)
    assert browser.errors == [], "\n".join(browser.errors)


def test_the_validator_shows_the_line_and_field_of_an_error(browser: Browser) -> None:
    page = browser.open("/remediation")
    page.locator("#playbooks .validator > summary").click()
    page.locator("#playbook-text").fill("name: broken\nrisk: low\ntrigger:\n  alert:\n    match: ['a=\"b\"']\n"
                                        "actions:\n  - kind: supervisor.explode\n    target: web\n")
    page.locator("#playbooks .validate-row button").click()
    page.wait_for_selector("#playbooks .validate-result.bad")
    text = page.locator("#playbooks .validate-result").inner_text()
    assert text.startswith("<body>:7: actions[0].kind: ") and "(body.actions[0].kind)" in text
    page.locator("#playbook-text").fill(LOW.format(folder="/tmp").replace("note-low", "brand-new"))
    page.locator("#playbooks .validate-row button").click()
    page.wait_for_selector("#playbooks .validate-result.ok")
    assert page.locator("#playbooks .validate-result").inner_text() == "valid: brand-new (risk low, 1 action)"
    # the browser logs the 422 of the malformed playbook as a failed resource: that one is expected
    browser.errors[:] = [e for e in browser.errors if "status of 422" not in e]
    assert browser.errors == [], "\n".join(browser.errors)


def test_the_remediation_view_fits_a_phone(browser: Browser, env: Env) -> None:
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for route in ("/remediation", f"/incidents/{env.incident}"):
            browser.open(route)
            page.wait_for_selector("#runs details.run, #suggestions .suggestion")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"#{route} scrolls sideways on a phone ({width} px)"
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
    assert browser.errors == [], "\n".join(browser.errors)
