"""The engine: a cycle against a real Prometheus scraping the simulator, source outages (backoff, stale marking),
feedback calibration, and the same records from a thread pool and a process pool."""

from __future__ import annotations

import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from opsmind.cli.serve import init, serve
from opsmind.config import Settings, load_settings
from opsmind.core import FloatArray
from opsmind.core.alerts import Alert
from opsmind.detect import Detector
from opsmind.engine import DetectTask, Engine, ScrapeSource, ThresholdSettings, detect_series
from opsmind.sim import System, default_topology, serve_metrics
from opsmind.store import Store
from opsmind.telemetry import Telemetry
from servers import PrometheusProcess, free_port

pytestmark = pytest.mark.integration

T0 = 1_704_067_200.0


def _times(n: int) -> FloatArray:
    return np.asarray(T0 + 60.0 * np.arange(n), dtype=np.float64)


@contextmanager
def live_simulator() -> Iterator[str]:
    """The simulator stepped on the wall clock every 0.25 s, its metrics served at the yielded host:port."""
    system = System(default_topology(), seed=3)
    last = [time.time() - 1.0]
    system.step(last[0], 1.0)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.25):
            now = time.time()
            system.step(now, now - last[0])
            last[0] = now

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    server = serve_metrics(system)
    try:
        yield f"{server.host}:{server.port}"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def _settings(db: Path, prometheus_url: str | None = None, **engine: object) -> Settings:
    services = [
        {"name": name, "metrics": {"rate": f'rate(http_requests_total{{service="{name}"}}[5s])',
                                   "latency_p95": f'http_request_duration_seconds{{service="{name}",quantile="0.95"}}'},
         "roles": {"load": "rate", "latency": "latency_p95"}, "calls": calls}
        for name, calls in (("frontend", ["cart"]), ("cart", []))
    ]
    data: dict[str, object] = {"store": {"url": f"sqlite:///{db}"}, "services": services,
                               "engine": {"scrape_interval_s": 1.0, "history_s": 120.0, "executor": "thread",
                                          "workers": 2, "stale_after_s": 30.0, "backoff_max_s": 8.0, **engine}}
    if prometheus_url is not None:
        data["prometheus"] = {"url": prometheus_url, "retries": 0, "timeout_s": 2.0}
    return Settings.model_validate(data)


def test_cycle_against_prometheus_then_backoff_and_stale_marking(prometheus_bin: str, tmp_path: Path) -> None:
    with live_simulator() as target:
        prom = PrometheusProcess(prometheus_bin, tmp_path, scrape_targets=[target])
        prom.start()
        try:
            prom.wait_for_samples('http_requests_total{service="cart"}', 1)
            time.sleep(8.0)  # a few scrapes, so rates exist
            settings = _settings(tmp_path / "engine.db", prom.url)
            telemetry = Telemetry()
            with Store.open(settings.store) as store:
                engine = Engine(settings, store, telemetry=telemetry)
                first = engine.run_cycle()
                assert first.errors == (), first.errors
                assert first.sources == {"prometheus": True}
                series = store.series.list("default")
                assert {(s.service, s.name) for s in series} == {
                    ("frontend", "rate"), ("frontend", "latency_p95"), ("cart", "rate"), ("cart", "latency_p95")}
                lat = next(s for s in series if s.service == "cart" and s.name == "latency_p95")
                # the Prometheus result's labels (minus __name__), and the configured service
                assert lat.labels == {"quantile": "0.95", "service": "cart", "instance": target,
                                      "job": "opsmind-test"}
                n1 = store.samples.count("default", lat.id)
                assert n1 >= 3 and first.trained == first.inserted > 0
                state = store.models.latest("default", lat.id, "detector")
                assert state.kind == "opsmind" and state.n_train == n1

                time.sleep(3.0)
                second = engine.run_cycle()
                n2 = store.samples.count("default", lat.id)
                assert n2 > n1 and second.scored > 0  # only the new samples, scored by the trained detector
                assert second.inserted == second.scored
                # the state is saved every state_every_s (300 s), not every cycle...
                assert store.models.latest("default", lat.id, "detector").version == state.version

                prom.stop()
                now = time.time() + 5.0  # samples are due: the engine asks Prometheus
                down = engine.run_cycle(now)
                assert down.sources == {"prometheus": False} and down.inserted == 0
                assert any("prometheus down" in e for e in down.errors)
                assert b'opsmind_source_up{source="prometheus"} 0.0' in telemetry.render()
                assert engine.status()["sources"] == {"prometheus": False}
                waiting = engine.run_cycle(now + 0.5)  # within the backoff: not even tried
                assert not any("down" in e for e in waiting.errors)
                retry = engine.run_cycle(now + 2.0)  # backoff over: tried, failed again, longer wait
                assert any("next try in 2 s" in e for e in retry.errors)
                assert all(s.stale_since is None for s in store.series.list("default"))
                stale = engine.run_cycle(now + 60.0)
                assert stale.stale == 4
                assert all(s.stale_since is not None for s in store.series.list("default"))
                engine.stop()
                # ...and at a clean stop, so a restart scores nothing again
                saved = store.models.latest("default", lat.id, "detector")
                assert saved.version > state.version and saved.n_train == n2
        finally:
            prom.stop()


def _scrape_source(values: dict[str, np.ndarray], times: np.ndarray) -> ScrapeSource:
    src = ScrapeSource([], clock=lambda: float(times[-1]))
    for svc, v in values.items():
        src.add_series("queue_depth", {"service": svc}, times, v)
    return src


def _engine_settings(db: Path, services: list[str], executor: str) -> Settings:
    return Settings.model_validate({
        "store": {"url": f"sqlite:///{db}"},
        "services": [{"name": s, "metrics": {"depth": f'queue_depth{{service="{s}"}}'}} for s in services],
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": executor, "workers": 2},
    })


def _series(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10.0 + np.sin(np.arange(n) * 2 * np.pi / 96) + rng.normal(0, 0.1, n)


def _ingest(client: Any, name: str, series: dict[str, tuple[dict[str, str], FloatArray]], times: FloatArray,
            lo: int, hi: int) -> None:
    """POST rows ``lo:hi`` of each ``{key: (labels, values)}`` series (metric ``name``) to ``/api/v1/ingest``, in
    that order (so the first gets the lowest id when new)."""
    body = {"series": [{"name": name, "labels": labels,
                        "samples": [[float(t), float(v)] for t, v in zip(times[lo:hi], x[lo:hi], strict=True)]}
                       for labels, x in series.values()]}
    response = client.post("/api/v1/ingest", json=body)
    assert response.status_code == 200, response.text


def _state_summary(service: str | None, state: bytes, t_next: float) -> tuple[str | None, float | None, int, float]:
    """What a stored detector state knows: last scored time, samples seen, and its score of a new sample."""
    model = pickle.loads(state)
    return service, model.last_ts, model.n_seen, float(model.detector.score_one(t_next, 12.0))


def test_thread_and_process_executors_give_the_same_records(tmp_path: Path) -> None:
    n_train, n_live = 800, 60
    times = _times(n_train + n_live)
    values = {f"svc{i}": _series(times.shape[0], i) for i in range(3)}
    values["svc1"][n_train + 30] = 25.0  # one clear anomaly
    values["svc2"][n_train + 10 : n_train + 20] += 4.0
    records = {}
    for executor in ("thread", "process"):
        settings = _engine_settings(tmp_path / f"{executor}.db", list(values), executor)
        with Store.open(settings.store) as store:
            engine = Engine(settings, store, source=_scrape_source(values, times))
            engine.run_cycle(float(times[n_train - 1]))  # train on the history
            for k in range(n_train + 9, n_train + n_live, 10):
                engine.run_cycle(float(times[k]))
            engine.stop()
            names = {s.id: s.service for s in store.series.list("default")}
            records[executor] = (
                sorted((names[a.series_id], a.ts, round(a.probability, 12), a.severity)
                       for a in store.anomalies.list("default", limit=1000)),
                sorted(_state_summary(names[sid], store.models.latest("default", sid, "detector").load(),
                                      float(times[-1]) + 60.0) for sid in names),
            )
    anomalies, _ = records["thread"]
    assert {a[0] for a in anomalies} >= {"svc1", "svc2"}
    assert any(a[0] == "svc1" and a[1] == times[n_train + 30] for a in anomalies)
    assert records["process"] == records["thread"]


def test_false_positive_feedback_raises_the_series_threshold(tmp_path: Path) -> None:
    n_train = 800
    times = _times(n_train + 200)
    base = _series(times.shape[0], 7)
    # Find a spike whose anomaly probability is between the base threshold (0.5) and the threshold the series
    # gets after false-positive feedback: the decision must then differ.
    probe = detect_series(DetectTask(key=0, spec={"type": "opsmind"}, state=None, ts=times[:n_train],
                                     values=base[:n_train]))
    spike_at = n_train + 100

    def probability(height: float) -> float:
        x = base[n_train:spike_at + 1].copy()
        x[-1] = height
        res = detect_series(DetectTask(key=0, spec={"type": "opsmind"}, state=probe.state,
                                       ts=times[n_train:spike_at + 1], values=x))
        return res.last_probability

    lo, hi = 10.5, 14.0  # bisection to a spike of probability about 0.7
    assert probability(lo) < 0.5 < 0.9 < probability(hi)
    for _ in range(40):
        chosen = 0.5 * (lo + hi)
        p = probability(chosen)
        if 0.6 <= p <= 0.8:
            break
        lo, hi = (chosen, hi) if p < 0.6 else (lo, chosen)
    assert 0.6 <= p <= 0.8, p
    values = {"a": base.copy(), "b": base.copy()}
    for v in values.values():
        v[spike_at] = chosen
    settings = _engine_settings(tmp_path / "fb.db", ["a", "b"], "thread")
    with Store.open(settings.store) as store:
        engine = Engine(settings, store, source=_scrape_source(values, times))
        engine.feedback_ttl_s = 0.0
        engine.run_cycle(float(times[n_train - 1]))
        ids = {s.service: s.id for s in store.series.list("default")}
        # people said series a's alerts were false positives (on earlier, unrelated anomalies)
        for i, author in enumerate(("ann", "bob", "cy", "dee", "eve", "fay")):
            rec = store.anomalies.record("default", ids["a"], float(times[10 + i]), 0.7, severity="low")
            store.feedback.mark("default", rec.id, "false_positive", author)
        engine.run_cycle(float(times[spike_at + 5]))
        flagged = {s: [a.ts for a in store.anomalies.list("default", series_id=i, since=float(times[n_train]))]
                   for s, i in ids.items()}
        engine.stop()
    assert flagged["b"] == [float(times[spike_at])]  # no feedback: the spike is an anomaly
    assert flagged["a"] == []  # false-positive feedback raised a's threshold above the spike's probability


def test_threshold_settings_reach_the_work_function() -> None:
    times = _times(900)
    x = _series(900, 1)
    x[850] = 30.0
    trained = detect_series(DetectTask(key=1, spec={"type": "opsmind"}, state=None, ts=times[:800], values=x[:800]))
    assert trained.trained == 800 and trained.findings == ()
    low = detect_series(DetectTask(key=1, spec={"type": "opsmind"}, state=trained.state, ts=times[800:],
                                   values=x[800:], threshold=ThresholdSettings(threshold=0.5)))
    assert [f.ts for f in low.findings] == [float(times[850])]
    ev = low.findings[0].evidence("opsmind")
    assert ev["value"] == 30.0 and 9.0 < ev["baseline"] < 11.5 and ev["window"][1] == float(times[850])
    assert ev["threshold"] == 0.5 and ev["method"] == "opsmind"
    again = detect_series(DetectTask(key=1, spec={"type": "opsmind"}, state=low.state, ts=times[800:],
                                     values=x[800:]))
    assert again.findings == () and again.scored == 0  # already scored: a replay decides nothing twice


def test_a_lasting_change_is_learned_after_max_protected_samples() -> None:
    # A very anomalous sample is not learned (an incident must not become normal), but after MAX_PROTECTED of
    # them in a row every sample is learned until the probability drops: learning one in every MAX_PROTECTED
    # left window detectors scoring their stale window, and an alert firing for an hour after a 5-minute spike.
    from opsmind.detect import Thresholder
    from opsmind.engine.detection import MAX_PROTECTED, SeriesModel, _score

    class Always(Detector):
        def __init__(self) -> None:
            self.learned = 0

        def score_one(self, t: float, x: float | FloatArray) -> float:
            return 0.99

        def learn_one(self, t: float, x: float | FloatArray) -> None:
            self.learned += 1

    det = Always()
    model = SeriesModel(spec={}, detector=det, thresholder=Thresholder(threshold=0.5), last_ts=0.0)
    times = _times(200)
    _score(model, times, np.ones(200), DetectTask(key=1, spec={}, state=None, ts=times, values=np.ones(200)))
    assert det.learned == 200 - MAX_PROTECTED and model.protected == MAX_PROTECTED


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("init")(init)
    app.command("serve")(serve)
    return app


def test_init_writes_an_annotated_config_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "opsmind.yaml"
    result = CliRunner().invoke(_cli(), ["init", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.count("#") > 40  # annotated
    settings = load_settings(path)
    assert [s.name for s in settings.services] == ["checkout", "payment"]
    assert settings.services[0].roles["load"] == "rate" and settings.prometheus is not None
    again = CliRunner().invoke(_cli(), ["init", str(path)])
    assert again.exit_code == 2 and "exists" in again.output


def test_serve_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("engine:\n  scrape_interval_s: -1\n")
    result = CliRunner().invoke(_cli(), ["serve", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml:2" in lines[0] and "scrape_interval_s" in lines[0]


def test_serve_runs_the_engine_and_the_api_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "opsmind.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'serve.db'}'}}\n"
                      f"api: {{port: {port}, anonymous_scopes: [read]}}\n"
                      "services: [{name: web, metrics: {rate: 'sum(rate(x[1m]))'}}]\n"
                      "engine: {scrape_interval_s: 0.5, executor: thread}\n")
    code = "import typer; from opsmind.cli.serve import serve; typer.run(serve)"
    proc = subprocess.Popen([sys.executable, "-c", code, "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).json()
                if body.get("engine") and body["engine"]["cycles"] >= 2:
                    health = body
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert health is not None, proc.communicate()[1][-2000:] if proc.poll() is not None else "no health"
        assert health["engine"]["running"] is True and health["engine"]["sources"] == {}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class RecordingDispatcher:
    """Stands in for the notifier (tested on its own with a real Alertmanager): records what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Alert], float]] = []

    def sync(self, tenant: str, firing: list[Alert], now: float) -> None:
        self.calls.append((tenant, list(firing), now))


def test_anomalies_become_alerts_incidents_and_a_dispatcher_sync(tmp_path: Path) -> None:
    n_train = 800
    times = _times(n_train + 40)
    values = {"web": _series(times.shape[0], 1), "db": _series(times.shape[0], 2)}
    values["db"][n_train + 5 : n_train + 12] += 8.0
    settings = Settings.model_validate({
        "store": {"url": f"sqlite:///{tmp_path / 'alerts.db'}"},
        "services": [{"name": "web", "metrics": {"depth": 'queue_depth{service="web"}'}, "calls": ["db"]},
                     {"name": "db", "metrics": {"depth": 'queue_depth{service="db"}'}}],
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1},
    })
    dispatcher = RecordingDispatcher()
    with Store.open(settings.store) as store:
        engine = Engine(settings, store, source=_scrape_source(values, times), dispatcher=dispatcher)
        engine.run_cycle(float(times[n_train - 1]))
        report = engine.run_cycle(float(times[n_train + 8]))
        assert report.anomalies >= 1 and report.firing == 1 and len(report.incidents) == 1
        tenant, firing, now = dispatcher.calls[-1]
        assert tenant == "default" and now == float(times[n_train + 8])
        by_name = {a.labels["alertname"]: a for a in firing}
        anomaly, incident = by_name["OpsmindAnomaly"], by_name["OpsmindIncident"]
        db_id = next(s.id for s in store.series.list("default") if s.service == "db")
        assert dict(anomaly.labels) == {"alertname": "OpsmindAnomaly", "series": 'depth{service="db"}',
                                        "series_id": str(db_id), "service": "db",
                                        "severity": anomaly.labels["severity"], "tenant": "default"}
        assert anomaly.labels["severity"] in ("critical", "high", "medium", "low")
        assert {"summary", "description", "opsmind_url"} <= set(anomaly.annotations)
        assert anomaly.starts_at == float(times[n_train + 5])
        stored = store.incidents.get("default", incident.labels["incident"])
        assert stored.services == ["db"] and stored.status == "open"
        assert [a.fingerprint for a in stored.alerts] == [anomaly.fingerprint]
        rec = store.anomalies.list("default", series_id=db_id)[-1]
        assert rec.detector == "opsmind" and rec.evidence["method"] == "opsmind"
        assert set(rec.evidence) >= {"value", "baseline", "window", "threshold"}
        # the anomaly ends: the alert resolves, and so does the incident
        engine.run_cycle(float(times[n_train + 39]))
        assert [a.labels["alertname"] for a in dispatcher.calls[-1][1]] == []
        assert store.incidents.get("default", stored.key).status == "resolved"
        engine.stop()


# -- series pushed through the API ---------------------------------------------------------------------------------


def test_series_pushed_through_the_api_are_detected_too(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from opsmind.api import create_app

    n_train = 800
    times = _times(n_train + 60)
    values = {"a": _series(times.shape[0], 11), "b": _series(times.shape[0], 12)}
    values["a"][n_train + 30] = 25.0  # one clear anomaly in the pushed series a
    settings = Settings.model_validate({
        "store": {"url": f"sqlite:///{tmp_path / 'pushed.db'}"}, "api": {"anonymous_scopes": ["read", "write"]},
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1},
    })  # no configured service: the engine pulls nothing itself

    def push(client: TestClient, lo: int, hi: int) -> None:
        _ingest(client, "queue_depth", {svc: ({"service": svc, "queue": "orders"}, values[svc]) for svc in ("a", "b")},
                times, lo, hi)

    with Store.open(settings.store) as store, TestClient(create_app(settings, store=store)) as client:
        engine = Engine(settings, store)
        push(client, 0, n_train)
        first = engine.run_cycle(float(times[n_train - 1]))
        assert first.errors == () and first.pulled == 2 * n_train and first.trained == 2 * n_train
        assert first.inserted == 0  # the API stored the samples; the engine does not write them again
        ids = {s.service: s.id for s in store.series.list("default")}
        assert store.models.latest("default", ids["a"], "detector").n_train == n_train
        assert store.samples.count("default", ids["a"]) == n_train

        push(client, n_train, n_train + 60)
        second = engine.run_cycle(float(times[-1]))
        assert second.scored == 120 and second.trained == 0 and second.anomalies >= 1
        flagged = store.anomalies.list("default", series_id=ids["a"])
        assert float(times[n_train + 30]) in [a.ts for a in flagged]
        assert flagged[0].detector == "opsmind" and flagged[0].evidence["value"] == 25.0
        assert store.anomalies.list("default", series_id=ids["b"]) == []
        assert store.samples.count("default", ids["a"]) == n_train + 60
        again = engine.run_cycle(float(times[-1]) + 60.0)  # nothing new: nothing scored twice
        assert again.scored == 0 and again.anomalies == 0

        # a restarted engine resumes from the stored model state instead of training again
        engine.stop()
        restarted = Engine(settings, store)
        restarted.pushed_per_cycle = 1  # bounded: one series a cycle, taking turns
        more = _times(n_train + 80)[n_train + 60:]
        for svc in ("a", "b"):
            values[svc] = np.concatenate([values[svc], _series(20, 13)])
        times = np.concatenate([times, more])
        push(client, n_train + 60, n_train + 80)
        turn1 = restarted.run_cycle(float(times[-1]))
        turn2 = restarted.run_cycle(float(times[-1]) + 1.0)
        turn3 = restarted.run_cycle(float(times[-1]) + 2.0)
        assert (turn1.scored, turn2.scored, turn3.scored) == (20, 20, 0) and turn1.trained == turn2.trained == 0
        restarted.stop()


def test_configured_services_without_a_source_are_analysed_from_pushed_samples(tmp_path: Path) -> None:
    # services configured for their roles, SLOs and call graph, with samples pushed (no Prometheus, no scrape)
    from fastapi.testclient import TestClient

    from opsmind.api import create_app

    times = _times(860)
    values = _series(860, 31)
    values[830] = 25.0
    settings = Settings.model_validate({
        "store": {"url": f"sqlite:///{tmp_path / 'configured-pushed.db'}"}, "api": {"anonymous_scopes": ["write"]},
        "services": [{"name": "web", "metrics": {"depth": 'queue_depth{service="web"}'}}],
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1},
    })
    with Store.open(settings.store) as store, TestClient(create_app(settings, store=store)) as client:
        def push(lo: int, hi: int) -> None:
            _ingest(client, "depth", {"web": ({"service": "web"}, values)}, times, lo, hi)

        engine = Engine(settings, store)
        engine.run_cycle(float(times[0]) - 60.0)  # a cycle before anything was pushed
        push(0, 800)
        first = engine.run_cycle(float(times[799]))
        push(800, 860)
        second = engine.run_cycle(float(times[-1]))
        assert (first.trained, second.scored) == (800, 60) and second.anomalies >= 1, (first, second)
        assert engine.series_map() == {"web": {"depth": store.series.list("default")[0].id}}  # what RCA reads
        engine.stop()


def test_rca_leaves_out_the_capacity_metrics_of_a_service_opsmind_scaled(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from opsmind.core.graph import CallGraph
    from opsmind.engine.rca import incident_rca, own_changes
    from opsmind.rca import RcaSettings

    def outcome(target: str, before: dict[str, Any], changed: bool = True, dry: bool = False) -> dict[str, Any]:
        return {"target": target, "changed": changed, "dry_run": dry, "before": before}

    def run(started: float, *outcomes: dict[str, Any], playbook: str = "pb") -> Any:
        return SimpleNamespace(dry_run=False, started_at=started, playbook=playbook, outcomes=list(outcomes),
                               targets=[o["target"] for o in outcomes])

    runs = [run(500.0, outcome("shop/web-deploy", {"replicas": 2}), outcome("db", {"restarted_at": None})),
            run(100.0, outcome("web", {"replicas": 2}, dry=True)), run(10.0, outcome("web", {"replicas": 3}, False)),
            run(5000.0, outcome("web", {"replicas": 2})), run(700.0, outcome("prod/db", {"replicas": 1}), playbook="x")]
    targets = {"web": "web", "db": "db", "shop/web-deploy": "web"}  # a Deployment named unlike its service
    # replica changes in the window only; the restart in the same run as a scale-out is not one
    assert own_changes(runs, targets, 0.0, 1000.0) == {"web": (500.0, "pb"), "db": (700.0, "x")}

    t = T0 + 60.0 * np.arange(150)
    rng = np.random.default_rng(5)
    metrics = {("web", "latency"): 0.1 + 0.005 * rng.standard_normal(150),
               ("web", "memory"): 1e9 + 1e7 * rng.standard_normal(150),
               ("web", "cpu"): 1 + 0.02 * rng.standard_normal(150),
               ("db", "latency"): 0.05 + 0.002 * rng.standard_normal(150),
               ("db", "cpu"): 1 + 0.02 * rng.standard_normal(150)}
    onset = 100
    metrics[("db", "latency")][onset:] += 0.02  # the cause: db slows down...
    metrics[("web", "latency")][onset:] += 0.02  # ...and so does web, which calls it
    metrics[("web", "memory")][onset + 1:] += 5e8  # opsmind scales web out a minute later: its totals jump
    metrics[("web", "cpu")][onset + 1:] += 0.5
    with Store.open(f"sqlite:///{tmp_path / 'rca.db'}") as store:
        store.tenants.ensure("default")
        series: dict[str, dict[str, int]] = {}
        for (svc, metric), x in metrics.items():
            sid = store.series.upsert("default", metric, {"service": svc}).id
            store.samples.insert("default", sid, t, x)
            series.setdefault(svc, {})[metric] = sid
        graph = CallGraph.from_mapping({"web": ["db"], "db": []})
        rca = RcaSettings()
        blamed, _ = incident_rca(store, "default", series, graph, float(t[onset]), rca)
        assert blamed == "web"  # the scale-out looks like the biggest change
        top, payload = incident_rca(store, "default", series, graph, float(t[onset]), rca,
                                    changed={"web": (float(t[onset + 1]), "scale-out")})
        assert top == "db", payload["ranking"]
        assert any(n.startswith("web: cpu, memory left out") and "scale-out" in n for n in payload["notes"])


def test_a_restart_keeps_the_open_alert_of_a_pushed_series_that_sends_nothing_new(tmp_path: Path) -> None:
    # pushed series are picked up when new samples arrive; one whose alert was open when the engine stopped must
    # be known at once, or the first cycle after a restart would resolve its alert (and incident) for no reason
    from fastapi.testclient import TestClient

    from opsmind.api import create_app

    n_train = 800
    times = _times(n_train + 10)
    values = _series(times.shape[0], 21)
    values[n_train:] += 40.0  # still anomalous at the last sample
    quiet = _series(times.shape[0], 22)
    settings = Settings.model_validate({
        "store": {"url": f"sqlite:///{tmp_path / 'pushed-alert.db'}"}, "api": {"anonymous_scopes": ["write"]},
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1},
    })
    with Store.open(settings.store) as store, TestClient(create_app(settings, store=store)) as client:
        def push(lo: int, hi: int) -> None:  # the quiet one gets the lower id
            _ingest(client, "queue_depth", {"quiet": ({"service": "quiet"}, quiet), "a": ({"service": "a"}, values)},
                    times, lo, hi)

        engine = Engine(settings, store)
        push(0, n_train)
        engine.run_cycle(float(times[n_train - 1]))
        push(n_train, n_train + 10)
        report = engine.run_cycle(float(times[-1]))
        assert report.firing == 1 and len(store.incidents.list("default")) == 1
        key = store.incidents.list("default")[0].key
        engine.stop()

        restarted = Engine(settings, store)
        restarted.pushed_per_cycle = 1  # fewer than the pushed series: they are looked at in turns
        after = restarted.run_cycle(float(times[-1]) + 60.0)  # nothing new was pushed
        assert after.firing == 1, after
        assert [a.labels["alertname"] for a in restarted.firing(float(times[-1]) + 60.0)].count("OpsmindAnomaly") == 1
        assert store.incidents.get("default", key).status == "open"
        restarted.stop()


# -- remediation ---------------------------------------------------------------------------------------------------


def _remediation_settings(tmp_path: Path, db: str) -> Settings:
    """Two services; a playbook that runs an allow-listed command (``mktemp`` in ``tmp_path/ran``, so each
    execution leaves one file) for every incident."""
    ran = tmp_path / "ran"
    ran.mkdir(exist_ok=True)
    playbook = tmp_path / "note-incident.yaml"
    playbook.write_text(
        "name: note-incident\nrisk: low\n"
        "trigger: {incident: {match: []}}\n"
        "actions:\n"
        f"  - {{kind: shell, target: local, params: {{argv: [/usr/bin/mktemp, -p, '{ran}', 'ran.XXXXXX']}}}}\n")
    return Settings.model_validate({
        "store": {"url": f"sqlite:///{tmp_path / db}"},
        "services": [{"name": "web", "metrics": {"depth": 'queue_depth{service="web"}'}, "calls": ["db"]},
                     {"name": "db", "metrics": {"depth": 'queue_depth{service="db"}'}}],
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1},
        "remediation": {"playbooks": [str(playbook)], "dry_run": False, "executors": {"shell": {"allow": [
            {"executable": "/usr/bin/mktemp", "args": ["-p", re.escape(str(ran)), r"ran\.XXXXXX"]}]}}},
    })


def test_engine_hands_incidents_to_the_remediator_and_a_restart_does_not_run_it_again(tmp_path: Path) -> None:
    n_train = 800
    times = _times(n_train + 40)
    values = {"web": _series(times.shape[0], 1), "db": _series(times.shape[0], 2)}
    values["db"][n_train + 5 : n_train + 30] += 8.0
    settings = _remediation_settings(tmp_path, "remediate.db")
    with Store.open(settings.store) as store:
        engine = Engine(settings, store, source=_scrape_source(values, times))
        assert engine.remediator is not None and sorted(engine.remediator.executors) == ["shell"]
        assert engine.remediator.verifier is None  # no Prometheus configured
        engine.run_cycle(float(times[n_train - 1]))
        report = engine.run_cycle(float(times[n_train + 8]))
        assert len(report.incidents) == 1
        assert engine.remediation is not None and engine.remediation.wait_idle(60)
        runs = engine.remediator.ledger.runs()
        assert [(r.playbook, r.event_key, r.status) for r in runs] == [
            ("note-incident", f"incident:{report.incidents[0]}", "succeeded")]
        assert len(list((tmp_path / "ran").iterdir())) == 1
        engine.run_cycle(float(times[n_train + 12]))  # still open: handed again, not run again
        assert engine.remediation.wait_idle(60)
        engine.stop()

        restarted = Engine(settings, store, source=_scrape_source(values, times))
        restarted.run_cycle(float(times[n_train + 16]))
        assert [i.id for i in restarted.incidents.firing_incidents("default")] == list(report.incidents)
        assert restarted.remediation is not None and restarted.remediation.wait_idle(60)
        restarted.stop()
        assert len(restarted.remediator.ledger.runs()) == 1  # type: ignore[union-attr]
        assert len(list((tmp_path / "ran").iterdir())) == 1
        actions = store.audit.list("default", action="remediation.action")
        assert [(a.target, a.result) for a in actions] == [("local", "executed")]


class _BlockingVerifier:
    """A verifier that waits until the test lets it answer (a verification taking its ``within_s``)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def verify(self, check: Any, context: Any, start: float) -> Any:
        from opsmind.remediate import VerifyResult

        self.started.set()
        assert self.release.wait(60)
        return VerifyResult(False, 3.0, "still bad", 1, start, start + 300.0)


def test_a_waiting_verification_never_blocks_the_cycle_and_failures_only_count(tmp_path: Path) -> None:
    from opsmind.engine.remediation import build_remediator
    from opsmind.remediate import Remediator
    from opsmind.remediate.executors import build_executor

    n_train = 800
    times = _times(n_train + 40)
    values = {"web": _series(times.shape[0], 1), "db": _series(times.shape[0], 2)}
    values["db"][n_train + 5 : n_train + 30] += 8.0
    settings = _remediation_settings(tmp_path, "verify.db")
    playbook = Path(settings.remediation.playbooks[0])
    playbook.write_text(playbook.read_text() + "verification: {query: 'up', op: '<', value: 1, within_s: 300}\n"
                        "rollback: {mode: none}\n")
    verifier = _BlockingVerifier()
    telemetry = Telemetry()
    with Store.open(settings.store) as store:
        remediator = build_remediator(settings, store, verifier=verifier)
        engine = Engine(settings, store, source=_scrape_source(values, times), remediator=remediator,
                        telemetry=telemetry)
        engine.run_cycle(float(times[n_train - 1]))
        engine.run_cycle(float(times[n_train + 8]))
        assert verifier.started.wait(60)  # the worker waits in the verification ...
        later = engine.run_cycle(float(times[n_train + 10]))  # ... and the cycles go on
        assert later.errors == () and engine.status()["cycles"] == 3
        assert [r.status for r in remediator.ledger.runs()] == ["running"]
        verifier.release.set()
        assert engine.remediation is not None and engine.remediation.wait_idle(60)
        (run,) = remediator.ledger.runs()
        assert run.status == "failed" and run.verification is not None and not run.verification["ok"]
        engine.stop()

        class Broken(Remediator):
            def handle(self, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("boom")

        settings2 = _remediation_settings(tmp_path, "broken.db")
        with Store.open(settings2.store) as store2:
            shell = build_executor("shell", settings2.remediation.executors["shell"])
            broken = Engine(settings2, store2, source=_scrape_source(values, times), telemetry=telemetry,
                            remediator=Broken(settings2, store2, {"shell": shell}))
            broken.run_cycle(float(times[n_train - 1]))
            report = broken.run_cycle(float(times[n_train + 8]))
            assert broken.remediation is not None and broken.remediation.wait_idle(60)
            assert report.errors == () and len(report.incidents) == 1  # the engine went on
            assert broken.remediation.errors >= 1 and "boom" in (broken.remediation.last_error or "")
            broken.stop()
            counted = re.search(rb'opsmind_engine_errors_total\{stage="remediation"\} (\d+)', telemetry.render())
            assert counted is not None and int(counted.group(1)) == broken.remediation.errors


def test_remediation_events_from_anomalies_and_capacity_breaches(tmp_path: Path) -> None:
    from opsmind.engine.remediation import RemediationLoop, anomaly_event, build_remediator

    settings = _remediation_settings(tmp_path, "events.db")
    with Store.open(settings.store) as store:
        store.tenants.ensure("default")
        sid = store.series.upsert("default", "memory", {"service": "db"}, service="db").id
        rec = store.anomalies.record("default", sid, T0, 0.97, severity="high", detector="opsmind",
                                     evidence={"value": 520.0, "baseline": 400.0, "window": [T0 - 60, T0],
                                               "method": "opsmind", "threshold": 0.9})
        ev = anomaly_event(rec, "db", "memory", {"service": "db"})
        assert ev.key == f"anomaly:{rec.id}" and ev.severity == "high" and ev.service == "db"
        assert ev.context["event"]["value"] == 520.0 and ev.context["event"]["baseline"] == 400.0
        assert ev.context["event"]["ratio"] == pytest.approx(1.3)

        store.recommendations.save("default", "capacity", "db", T0, summary="breach in 40 min", service="db",
                                   payload={"breach": True, "breach_at": T0 + 2400.0, "replicas": 2})
        store.recommendations.save("default", "capacity", "web", T0, summary="no breach", service="web",
                                   payload={"breach": False, "breach_at": None})
        loop = RemediationLoop(build_remediator(settings, store))
        events = loop.events(incidents=[], anomalies=[ev], store=store, tenant="default",
                             load_metrics={"db": "rate"}, now=T0 + 60.0)
        assert [e.kind for e in events] == ["anomaly", "forecast"]
        fc = events[1]
        assert fc.service == "db" and fc.metric == "rate" and fc.breach_in_s == pytest.approx(2340.0)
        assert fc.key == f"forecast:db:rate:{int(T0 + 2400.0)}"  # stable: a restarted engine hands the same key
        again = loop.events(incidents=[], anomalies=[], store=store, tenant="default", load_metrics={}, now=T0 + 120)
        assert again == []  # each breach once


def test_open_incidents_are_handed_out_as_snapshots(tmp_path: Path) -> None:
    """The incident alert and the remediator read open incidents outside the service's lock while webhook alerts
    keep arriving: what they were handed must not change under them."""
    from opsmind.engine.incidents import IncidentService

    settings = _settings(tmp_path / "snap.db")
    with Store.open(settings.store) as store:
        service = IncidentService(store, settings)
        first = Alert(labels={"alertname": "HighLatency", "service": "frontend"}, starts_at=T0)
        service.receive("default", [first], T0)
        (snapshot,) = service.firing_incidents("default")
        joining = Alert(labels={"alertname": "Errors", "service": "cart"}, starts_at=T0 + 30)
        service.receive("default", [joining], T0 + 30)
        (now,) = service.firing_incidents("default")
        assert now.id == snapshot.id and len(now.alerts) == 2 and now.services == {"frontend", "cart"}
        assert len(snapshot.alerts) == 1 and snapshot.services == {"frontend"}


def test_pushed_counters_are_analysed_as_rates(tmp_path: Path) -> None:
    """remote_write and JSON ingest carry counters (``*_total``) as running totals: the engine analyses their
    per-second rate, so a process restart (a counter reset) is no anomaly and a surge in traffic is."""
    from fastapi.testclient import TestClient

    from opsmind.api import create_app

    n_train, n = 800, 860
    times = _times(n)
    step = float(times[1] - times[0])
    rng = np.random.default_rng(5)
    rate = {"a": 10.0 + rng.normal(0, 0.3, n), "b": 10.0 + rng.normal(0, 0.3, n)}
    rate["a"][n_train + 30] = 30.0  # a one-step surge in a's traffic
    totals = {svc: np.cumsum(r * step) for svc, r in rate.items()}
    totals["b"][n_train + 20:] -= totals["b"][n_train + 19]  # b restarts: its counter starts again from zero
    settings = Settings.model_validate({
        "store": {"url": f"sqlite:///{tmp_path / 'counters.db'}"}, "api": {"anonymous_scopes": ["read", "write"]},
        "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1},
    })
    with Store.open(settings.store) as store, TestClient(create_app(settings, store=store)) as client:
        engine = Engine(settings, store)
        series = {svc: ({"service": svc}, totals[svc]) for svc in ("a", "b")}
        _ingest(client, "http_requests_total", series, times, 0, n_train)
        assert engine.run_cycle(float(times[n_train - 1])).errors == ()
        _ingest(client, "http_requests_total", series, times, n_train, n)
        report = engine.run_cycle(float(times[-1]))
        assert report.errors == () and report.scored == 2 * (n - n_train)
        ids = {s.service: s.id for s in store.series.list("default")}
        flagged = store.anomalies.list("default", series_id=ids["a"])
        assert float(times[n_train + 30]) in [a.ts for a in flagged]
        assert any(a.evidence["value"] == pytest.approx(30.0) for a in flagged)  # the rate, not the total
        assert store.anomalies.list("default", series_id=ids["b"]) == []
        engine.stop()


def test_a_crash_between_state_saves_scores_the_stored_samples_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Detector states are saved every ``state_every_s``, not every cycle. After a crash the restarted engine
    scores the samples stored since the last save from the store (the scrape endpoint has only new ones) and ends
    with the records of a run that was never interrupted."""
    n_train, n_live, crash = 800, 60, 839
    times = _times(n_train + n_live)
    values = {f"svc{i}": _series(times.shape[0], i) for i in range(2)}
    values["svc0"][n_train + 30] = 25.0
    values["svc1"][n_train + 10 : n_train + 20] += 4.0

    def settings(name: str) -> Settings:
        return Settings.model_validate({
            "store": {"url": f"sqlite:///{tmp_path / name}"},
            "services": [{"name": s, "metrics": {"depth": f'queue_depth{{service="{s}"}}'}} for s in values],
            "engine": {"scrape_interval_s": 60.0, "history_s": 86400.0, "executor": "thread", "workers": 1,
                       "state_every_s": 3600.0}})

    def records(store: Store) -> tuple[list[Any], list[Any]]:
        names = {s.id: s.service for s in store.series.list("default")}
        return (sorted((names[a.series_id], a.ts, round(a.probability, 12), a.severity)
                       for a in store.anomalies.list("default", limit=1000)),
                sorted(_state_summary(names[sid], store.models.latest("default", sid, "detector").load(),
                                      float(times[-1]) + 60.0) for sid in names))

    cycles = [n_train - 1, *range(n_train + 9, n_train + n_live, 10)]
    whole = settings("whole.db")
    with Store.open(whole.store) as store:
        engine = Engine(whole, store, source=_scrape_source(values, times))
        for k in cycles:
            engine.run_cycle(float(times[k]))
        engine.stop()
        expected = records(store)
    assert any(a[0] == "svc0" and a[1] == times[n_train + 30] for a in expected[0])

    crashed = settings("crashed.db")
    with Store.open(crashed.store) as store:
        engine = Engine(crashed, store, source=_scrape_source(values, times))
        for k in (c for c in cycles if c <= crash):
            engine.run_cycle(float(times[k]))
        ran = len([c for c in cycles if c <= crash])
        versions = [store.models.latest("default", s.id, "detector").version for s in store.series.list("default")]
        assert max(versions) < ran  # saved at the first cycle and when an alert opened or closed, not every cycle
        monkeypatch.setattr(engine, "_flush_states", lambda: None)  # a crash: nothing saved at the end
        engine.stop()

        later = {svc: v[crash + 1:] for svc, v in values.items()}
        restarted = Engine(crashed, store, source=_scrape_source(later, times[crash + 1:]))
        first = restarted.run_cycle(float(times[crash + 10]))
        assert first.errors == () and first.scored > 2 * 10  # the 10 new samples, and stored ones again
        for k in (c for c in cycles if c > crash + 10):
            restarted.run_cycle(float(times[k]))
        restarted.stop()
        assert records(store) == expected
