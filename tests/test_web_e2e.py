"""The dashboard end to end: the real API (``create_app``) on a SQLite store the test fills, served by uvicorn on a
free loopback port, driven in headless Debian Chromium through Playwright's sync API.

Checks what a person sees: every service card, the anomaly timeline, a series chart with markers and forecast
bands, an incident's root cause, feedback stored from a click, a new anomaly arriving over server-sent events
without a reload, no console errors. Saves full-page screenshots to ``tests/artifacts/`` (and the pytest tmp dir).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser import Browser, screenshot
from browser import browser as open_browser
from opsmind.api.server import BackgroundServer
from opsmind.config import ApiSettings, Settings
from opsmind.core.alerts import Alert
from opsmind.forecast.base import Forecast
from opsmind.incidents.correlate import Incident, TrackedAlert
from opsmind.rca.model import Cause, Evidence, Indicator, Onset, RcaResult
from opsmind.store import Store
from servers import free_port

TENANT = "default"
SERVICES = ("checkout", "payments", "frontend", "inventory")
STEP_S = 30.0
HISTORY_S = 2 * 3600.0

uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
api_module = pytest.importorskip("opsmind.api", reason="opsmind.api (create_app) is not available")


# ---- the data the test fills the store with --------------------------------------------------------------------

@dataclass
class Seeded:
    now: float
    series: dict[tuple[str, str], int] = field(default_factory=dict)
    anomalies: list[int] = field(default_factory=list)
    chart_series: int = 0
    chart_anomalies: list[int] = field(default_factory=list)
    incident: str = ""
    root_cause: str = "payments"


def _wave(t: np.ndarray, base: float, amp: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out: np.ndarray = base + amp * np.sin(2 * np.pi * t / 3600.0) + rng.normal(0.0, amp * 0.08, t.shape[0])
    return out


def seed(store: Store, now: float) -> Seeded:
    """Two hours of RED/USE series for four services, anomalies on payments and checkout, a forecast with 80 and
    95 % bands, an incident whose RCA ranks payments first, and two recommendations."""
    out = Seeded(now=now)
    store.tenants.ensure(TENANT)
    ts = np.arange(now - HISTORY_S, now + 1e-9, STEP_S).round(3)
    metrics = {"rate": (120.0, 30.0), "errors": (0.4, 0.1), "latency_p95": (0.18, 0.02), "cpu": (0.45, 0.1),
               "memory": (6.2e8, 2e7)}
    for i, svc in enumerate(SERVICES):
        for j, (name, (base, amp)) in enumerate(metrics.items()):
            sid = store.series.upsert(TENANT, name, {"service": svc, "job": svc}).id
            values = _wave(ts, base * (1 + 0.3 * i), amp, seed=10 * i + j)
            if svc == "payments" and name == "latency_p95":
                values[-12:] += np.linspace(0.4, 0.9, 12)  # the incident: payments latency climbs
            store.samples.insert(TENANT, sid, ts, values)
            out.series[(svc, name)] = sid

    lat = out.series[("payments", "latency_p95")]
    lat_values = store.samples.read(TENANT, lat).values
    for k, sev in ((-10, "medium"), (-6, "high"), (-2, "critical")):
        a = store.anomalies.record(TENANT, lat, float(ts[k]), {"medium": 0.91, "high": 0.97, "critical": 0.995}[sev],
                                   severity=sev, score=4.0 - k / 10, detector="opsmind",
                                   evidence={"value": float(lat_values[k]), "baseline": 0.18,
                                             "window": [float(ts[k - 20]), float(ts[k])], "method": "opsmind",
                                             "threshold": 0.9})
        out.anomalies.append(a.id)
        out.chart_anomalies.append(a.id)
    err = out.series[("checkout", "errors")]
    a = store.anomalies.record(TENANT, err, float(ts[-3]), 0.93, severity="high", detector="opsmind",
                               evidence={"value": 1.9, "baseline": 0.52, "window": [float(ts[-30]), float(ts[-3])],
                                         "method": "opsmind", "threshold": 0.9})
    out.anomalies.append(a.id)
    out.chart_series = lat

    horizon = 40
    fts = now + STEP_S * np.arange(1, horizon + 1)
    mean = 0.2 + 0.05 * np.sin(np.arange(horizon) / 6.0)
    widen = np.linspace(0.02, 0.08, horizon)
    store.forecasts.save(TENANT, lat, Forecast(
        timestamps=(fts * 1e3).astype(np.int64).astype("datetime64[ms]").astype("datetime64[ns]"), mean=mean,
        intervals={80: (mean - widen, mean + widen), 95: (mean - 1.6 * widen, mean + 1.6 * widen)},
        method="holt_winters", notes=("seasonality 120 steps",)), issued_at=now)

    alerts = {}
    for svc, name in (("payments", "latency_p95"), ("checkout", "errors")):
        alert = Alert(labels={"alertname": "OpsmindAnomaly", "service": svc, "severity": "critical",
                              "series_id": str(out.series[(svc, name)]), "series": f"{name}{{service=\"{svc}\"}}",
                              "tenant": TENANT},
                      starts_at=now - 300, annotations={"summary": f"{name} of {svc} is anomalous"})
        alerts[alert.fingerprint] = TrackedAlert(alert=alert, service=svc, first_seen=now - 300, last_seen=now - 30,
                                                 repeats=3)

    def evidence(metric: str, normal: float, observed: float, detail: str) -> Indicator:
        return Indicator(metric, abs(observed - normal) * 10,
                         Evidence("metrics", "deviation", normal, normal * 0.1, observed, now - 280, detail))

    rca = RcaResult(
        onset=Onset(now - 300, True, "checkout errors", 7.4, ""),
        ranking=(Cause("payments", 0.92, (evidence("latency_p95", 0.18, 1.05, "p95 latency up 5.8x"),
                                          evidence("cpu", 0.6, 0.93, ""))),
                 Cause("checkout", 0.41, (evidence("errors", 0.52, 1.9, "errors follow payments latency"),)),
                 Cause("inventory", 0.08, ())),
        notes=("frontend had no samples in the last minute",))
    inc = Incident(id="inc-web-1", started_at=now - 300, last_activity=now - 30, alerts=alerts,
                   services={"payments", "checkout"}, priority="P1", score=0.87, severity=4, blast_radius=0.5,
                   slo_impact=0.3, root_cause="payments", rca=rca.to_dict(),
                   evidence=["2 alerts on 2 services within 5 minutes", "checkout calls payments",
                             "root cause attached: payments"])
    out.incident = store.incidents.save(TENANT, inc).key

    store.recommendations.save(TENANT, "rightsize", "inventory/inventory", now - 600, summary="cpu request 2 -> 0.75",
                               service="inventory", savings_per_month=84.5,
                               payload={"cpu_request": 0.75, "memory_request": 7.0e8})
    store.recommendations.save(TENANT, "scale", "checkout/checkout", now - 120, summary="scale out before the peak",
                               service="checkout", savings_per_month=-12.0, payload={"replicas": 6, "current": 4})
    return out


# ---- server and browser ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def serve(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on ``port`` (a free loopback port by default); yields the base URL."""
    with BackgroundServer(app, port=port) as server:
        yield server.url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Seeded, str]]:
    tmp = tmp_path_factory.mktemp("web")
    store = Store.open(f"sqlite:///{tmp / 'web.db'}")
    data = seed(store, time.time())
    settings = Settings(tenant=TENANT, api=ApiSettings(anonymous_scopes=["read", "write"]))
    app = api_module.create_app(settings, store=store)
    # these tests write to the store behind the API's back and then read lists at once: without the 1 s read cache
    # (documented as "records written by other processes show within 1 s") those reads are deterministic
    app.state.opsmind.reads.ttl_s = 0.0
    with serve(app) as base:
        yield store, data, base
    store.close()


@pytest.fixture(scope="module")
def browser(env: tuple[Store, Seeded, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with open_browser(tmp_path_factory.mktemp("chromium-profile"), env[2], height=800) as b:
        yield b


def _no_errors(b: Browser) -> None:
    assert b.errors == [], "\n".join(b.errors)


# ---- tests ---------------------------------------------------------------------------------------------------

def test_overview_shows_every_service_card(browser: Browser, tmp_path: Path) -> None:
    page = browser.open("/")
    page.wait_for_selector(".card[data-service]")
    cards = page.locator(".card[data-service]")
    assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.service)")) == sorted(SERVICES)
    payments = page.locator('.card[data-service="payments"]')
    assert payments.locator(".health").get_attribute("aria-label").startswith("health ")
    assert "rate" in payments.locator(".metrics").inner_text().lower()
    page.wait_for_selector('.card[data-service="checkout"] .spark path.spark-line')
    page.wait_for_selector("#live[data-state=live]")
    screenshot(page, "dashboard.png", tmp_path)
    _no_errors(browser)


def test_timeline_lists_the_seeded_anomalies_newest_first(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    _, data, _ = env
    page = browser.open("/anomalies")
    page.wait_for_selector("#live[data-state=live]")  # the view is loaded and its event stream open: no re-render
    page.wait_for_selector(".timeline .event")
    ids = page.locator(".timeline .event").evaluate_all("els => els.map(e => Number(e.dataset.anomalyId))")
    assert sorted(ids) == sorted(data.anomalies)
    times = page.locator(".timeline .event time").evaluate_all("els => els.map(e => Date.parse(e.dateTime))")
    assert times == sorted(times, reverse=True)
    critical = page.locator(f'.event[data-anomaly-id="{data.chart_anomalies[-1]}"]')
    assert "ev-critical" in (critical.get_attribute("class") or "").split()
    assert "payments" in critical.inner_text() and "100%" in critical.inner_text()  # p=0.995
    _no_errors(browser)


def test_series_chart_draws_samples_markers_and_forecast_bands(browser: Browser, env: tuple[Store, Seeded, str],
                                                               tmp_path: Path) -> None:
    _, data, _ = env
    page = browser.open(f"/series/{data.chart_series}")
    page.wait_for_selector("svg.chart path.line")
    line = page.locator("svg.chart path.line").get_attribute("d") or ""
    assert line.startswith("M") and line.count("L") > 100  # 6 h range holds the 2 h of 30 s samples
    markers = page.locator("svg.chart circle.marker")
    assert sorted(markers.evaluate_all("els => els.map(e => Number(e.dataset.anomalyId))")) == \
        sorted(data.chart_anomalies)
    for band in ("band-80", "band-95"):
        assert (page.locator(f"svg.chart path.{band}").get_attribute("d") or "").endswith("Z")
    assert page.locator("svg.chart path.forecast-mean").count() == 1
    assert page.locator("svg.chart text.tick").count() >= 6  # time and value axis labels
    box = page.locator("svg.chart rect.overlay").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    tooltip = page.locator(".chart-wrap .tooltip")
    tooltip.wait_for(state="visible")
    assert "value" in tooltip.inner_text() or "forecast" in tooltip.inner_text()
    screenshot(page, "dashboard-series.png", tmp_path)
    _no_errors(browser)


def test_incident_detail_shows_the_root_cause_and_evidence(browser: Browser, env: tuple[Store, Seeded, str],
                                                           tmp_path: Path) -> None:
    _, data, _ = env
    page = browser.open("/incidents")
    row = page.locator(f'tr[data-key="{data.incident}"]')
    row.wait_for()
    assert "P1" in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_selector("[data-testid=root-cause]")
    assert data.root_cause in page.locator("[data-testid=root-cause]").inner_text()
    names = page.locator(".candidate .name").all_inner_texts()
    assert names == ["payments", "checkout", "inventory"]
    assert "latency_p95" in page.locator(".candidate.first .indicators").inner_text()
    assert "checkout calls payments" in page.locator(".evidence-lines").inner_text()
    assert page.locator("#alerts-title").inner_text() == "Alerts (2)"
    screenshot(page, "dashboard-incident.png", tmp_path)
    _no_errors(browser)


def test_false_alarm_click_stores_feedback(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    store, data, _ = env
    target = data.anomalies[-1]
    page = browser.open("/anomalies")
    page.wait_for_selector("#live[data-state=live]")  # the view is loaded and its event stream open: no re-render
    row = page.locator(f'.event[data-anomaly-id="{target}"]')
    row.locator("button.fb-false").click()
    row.locator(".fb-state", has_text="false alarm").wait_for()
    assert row.locator("button.fb-false").get_attribute("aria-pressed") == "true"
    stored = store.feedback.list(TENANT, anomaly_id=target)
    assert [f.verdict for f in stored] == ["false_positive"]
    page.reload()  # the stored verdict comes back with the anomaly
    page.locator(f'.event[data-anomaly-id="{target}"] .fb-state', has_text="false alarm").wait_for()
    _no_errors(browser)


def test_new_anomaly_appears_live_without_reload(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    store, data, _ = env
    page = browser.open("/anomalies")
    page.wait_for_selector(".timeline .event")
    page.wait_for_selector("#live[data-state=live]")
    page.evaluate("window.__sameDocument = true")
    sid = data.series[("frontend", "rate")]
    new = store.anomalies.record(TENANT, sid, data.now + 1.0, 0.99, severity="critical", detector="opsmind",
                                 evidence={"value": 9.0, "baseline": 160.0, "window": [data.now - 60, data.now + 1],
                                           "method": "opsmind", "threshold": 0.9})
    row = page.locator(f'.timeline .event[data-anomaly-id="{new.id}"]')
    row.wait_for()
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    first = page.locator(".timeline .event").first.get_attribute("data-anomaly-id")
    assert first == str(new.id)
    assert "frontend" in row.inner_text()
    _no_errors(browser)


def test_new_incident_appears_live_in_the_list(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    store, data, _ = env
    page = browser.open("/incidents")
    page.wait_for_selector(f'tr[data-key="{data.incident}"]')
    page.wait_for_selector("#live[data-state=live]")
    page.evaluate("window.__sameDocument = true")
    alert = Alert(labels={"alertname": "OpsmindAnomaly", "service": "inventory", "severity": "high"},
                  starts_at=data.now - 5)
    tracked = TrackedAlert(alert=alert, service="inventory", first_seen=data.now - 5, last_seen=data.now)
    store.incidents.save(TENANT, Incident(id="inc-web-live", started_at=data.now - 5, last_activity=data.now,
                                          alerts={alert.fingerprint: tracked}, services={"inventory"},
                                          priority="P3", score=0.3))
    row = page.locator('tr[data-key="inc-web-live"]')
    row.wait_for()
    assert "P3" in row.inner_text() and "inventory" in row.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    badge = page.locator("#open-incidents")
    assert badge.inner_text() == "2"
    _no_errors(browser)


def test_the_event_stream_reconnects_after_a_server_restart(browser: Browser,
                                                            env: tuple[Store, Seeded, str]) -> None:
    store, data, _ = env
    settings = Settings(tenant=TENANT, api=ApiSettings(anonymous_scopes=["read", "write"]))
    port = free_port()
    page = browser.page.context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    live = page.locator("#live")
    try:
        with serve(api_module.create_app(settings, store=store), port) as base:
            page.goto(f"{base}/#/anomalies")
            page.wait_for_selector("#live[data-state=live]")
        page.wait_for_selector("#live[data-state=offline]")
        assert live.inner_text().strip() == "reconnecting"
        cpu = data.series[("inventory", "cpu")]
        missed = store.anomalies.record(TENANT, cpu, data.now + 2.0, 0.95, severity="high", detector="opsmind")
        with serve(api_module.create_app(settings, store=store), port):
            page.wait_for_selector("#live[data-state=live]", timeout=45_000)  # backoff doubles from 1 s
            # written while the server was down: the view reloads after reconnecting
            page.locator(f'.timeline .event[data-anomaly-id="{missed.id}"]').wait_for()
            new = store.anomalies.record(TENANT, cpu, data.now + 3.0, 0.96, severity="high", detector="opsmind")
            page.locator(f'.timeline .event[data-anomaly-id="{new.id}"]').wait_for()
    finally:
        page.close()
    unexpected = [e for e in errors if "ERR_CONNECTION_REFUSED" not in e and "ERR_EMPTY_RESPONSE" not in e
                  and "ERR_INCOMPLETE_CHUNKED_ENCODING" not in e]
    assert unexpected == [], "\n".join(unexpected)


def test_recommendations_show_savings_and_total(browser: Browser) -> None:
    page = browser.open("/recommendations")
    page.wait_for_selector("tr[data-rec-id]")
    assert page.locator("tr[data-rec-id]").count() == 2
    assert page.locator(".savings-total").inner_text() == "$85"  # the negative saving (a scale-out) is not counted
    _no_errors(browser)


def test_a_401_asks_for_a_token_and_keeps_it(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    store, _, _ = env
    secret = "web-e2e-admin-secret"
    settings = Settings(tenant=TENANT, api=ApiSettings(anonymous_scopes=[], admin_token=secret))
    with serve(api_module.create_app(settings, store=store)) as base:
        page = browser.page.context.new_page()  # another origin (port): its own local storage
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        try:
            page.goto(f"{base}/#/incidents")
            dialog = page.locator("#token-dialog")
            dialog.wait_for(state="visible")
            page.wait_for_selector("#live[data-state=auth]")
            page.click("#token-cancel")  # no token: the refusal is explained, nothing pretends to be empty
            page.locator(".empty strong", has_text="Could not load incidents.").wait_for()
            assert "token" in page.locator("#banner").inner_text()
            page.click("#token-button")
            dialog.wait_for(state="visible")
            page.fill("#token-input", secret)
            page.click("#token-form button[type=submit]")
            page.wait_for_selector("tr[data-key]")
            page.wait_for_selector("#live[data-state=live]")  # the event stream sends the header too
            assert page.evaluate("localStorage.getItem('opsmind.token')") == secret
            page.reload()
            page.wait_for_selector("tr[data-key]")
            assert not dialog.is_visible()
        finally:
            page.close()
    unexpected = [e for e in errors if "401" not in e]  # the browser logs the refused requests themselves
    assert unexpected == [], "\n".join(unexpected)


def test_relative_times_count_from_the_servers_clock(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    # `opsmind demo` serves simulated time: "5m ago" must count from the server's now, not the browser's
    store, _, _ = env
    settings = Settings(tenant=TENANT, api=ApiSettings(anonymous_scopes=["read"]))
    with serve(api_module.create_app(settings, store=store, clock=lambda: time.time() + 3 * 86400)) as base:
        page = browser.page.context.new_page()
        try:
            page.goto(f"{base}/#/anomalies")
            page.wait_for_selector(".timeline .event .rel")
            texts = page.locator(".timeline .event .rel").evaluate_all("els => els.map(e => e.textContent.trim())")
            assert texts and all(t == "3d ago" for t in texts), texts
        finally:
            page.close()


def test_an_empty_tenant_gets_empty_states(browser: Browser, env: tuple[Store, Seeded, str]) -> None:
    store, _, _ = env
    settings = Settings(tenant="fresh", api=ApiSettings(anonymous_scopes=["read"]))
    with serve(api_module.create_app(settings, store=store)) as base:
        page = browser.page.context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        try:
            for route, text in (("/", "No services yet."), ("/anomalies", "No anomalies yet."),
                                ("/incidents", "No open incidents."), ("/recommendations", "No recommendations yet.")):
                page.goto(f"{base}/#{route}")
                page.locator(".empty strong", has_text=text).wait_for()
            assert page.locator("#banner").is_hidden()
            page.goto(f"{base}/#/incidents/inc-missing")  # an unknown id: the API's message in the banner
            page.locator(".empty strong", has_text="This incident could not be loaded.").wait_for()
            banner = page.locator("#banner")
            assert banner.is_visible() and "inc-missing" in banner.inner_text()
        finally:
            page.close()
    assert [e for e in errors if "404" not in e] == []


def test_narrow_screen_keeps_every_view_usable(browser: Browser, env: tuple[Store, Seeded, str],
                                               tmp_path: Path) -> None:
    _, data, _ = env
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for route, ready in (("/", ".card[data-service]"), ("/anomalies", ".timeline .event"),
                             (f"/series/{data.chart_series}", "svg.chart path.line"),
                             (f"/incidents/{data.incident}", "[data-testid=root-cause]"),
                             ("/recommendations", "tr[data-rec-id]")):
            browser.open(route)
            page.wait_for_selector(ready)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"#{route} scrolls sideways on a phone ({width} px)"
        browser.open("/")
        page.wait_for_selector(".card[data-service] .spark path.spark-line")
        screenshot(page, "dashboard-narrow.png", tmp_path)
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})
    _no_errors(browser)

