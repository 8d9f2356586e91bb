"""What ``opsmind demo`` runs, without the terminal and the web server: the simulator as a Prometheus target, the
engine reading it through its ``/metrics`` endpoint, and the score against the injected incidents.

:class:`DemoRun` owns a :class:`~opsmind.sim.System` with incidents scheduled every ``every_s`` simulated seconds,
serves its metrics (:func:`~opsmind.sim.serve_metrics`), and scrapes them with a
:class:`~opsmind.engine.sources.ScrapeSource` at every simulation step, stamped with the simulated time. The
engine runs a cycle every ``cycle_s`` simulated seconds over the same configuration a user would write
(:func:`demo_settings`: one PromQL query per service and metric, the call graph, an SLO).

The warm-up (hours of history before the live part, so detectors are trained) is simulated in one vectorised
call and handed to the scrape source as the samples the exporter would have shown at each step (the same
counters, quantiles and gauges); only the live part goes through HTTP, which would take minutes for hours of
history. Time never comes from a clock: the caller decides how fast to step (the CLI paces to ``--speed``; the
tests do not pace at all).

With ``demo_settings(..., remediation=True)`` the run also remediates (:mod:`opsmind.engine.demo_remediation`):
the demo's playbooks scale and restart simulated services through the simulator's hooks, verified on the same
scraped samples on simulated time. After each engine cycle, and after each step that decided a verification, the
run waits until the remediation worker is idle or waits for a verification, so a run is as reproducible fast-
forwarded as paced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opsmind.config import Settings
from opsmind.engine.demo_remediation import DEMO_PLAYBOOKS, SimVerifier, demo_executors, load_demo_playbooks
from opsmind.engine.detection import ThresholdSettings
from opsmind.engine.engine import CycleReport, Engine
from opsmind.engine.remediation import build_remediator
from opsmind.engine.sources import ScrapeSource
from opsmind.remediate import RunRecord
from opsmind.sim import DEFAULT_START_S, Incident, MetricsServer, System, default_topology, schedule, serve_metrics
from opsmind.store import IncidentRecord, Store
from opsmind.telemetry import Telemetry

__all__ = ["LIVE_START_S", "DemoRun", "DemoScore", "InjectedResult", "RemediationScore", "demo_settings"]

LIVE_START_S = DEFAULT_START_S + 16 * 3600.0  # 16:00 UTC: the warm-up has seen the daily peak (15:00)
# Incidents a few simulated minutes apart, each detected on many series: alerts open at a high probability, re-arm
# once it has dropped below 0.5 (and 5 minutes after the last alert), and resolve 2 minutes after it was last
# that high.
DEMO_THRESHOLD = ThresholdSettings(threshold=0.9, refractory_s=300.0, clear=0.5, resolve_after_s=120.0)


def demo_settings(store_url: str, *, port: int = 8080, cycle_s: float = 60.0, history_s: float = 6 * 3600.0,
                  executor: str = "thread", workers: int | None = 2,
                  services: Sequence[str] | None = None, remediation: bool = False) -> Settings:
    """The configuration the demo runs: the simulated shop's services (all, or those named), their metrics,
    call graph and SLOs; with ``remediation``, the demo's playbooks, executed (not dry-run: it is a simulation)
    and approval-free (their risk tiers are below ``approval_from``)."""
    topo = default_topology()
    watched = [n for n in topo.names if services is None or n in services]
    services_cfg = []
    for name in watched:
        sel = f'{{service="{name}"}}'
        services_cfg.append({
            "name": name,
            "metrics": {
                "rate": f"rate(http_requests_total{sel}[1m])",
                "errors": f"rate(http_requests_errors_total{sel}[1m])",
                "latency_p95": f'http_request_duration_seconds{{service="{name}",quantile="0.95"}}',
                "cpu": f"rate(process_cpu_seconds_total{sel}[1m])",
                "memory": f"process_resident_memory_bytes{sel}",
            },
            "roles": {"load": "rate", "latency": "latency_p95", "errors": "errors", "cpu": "cpu",
                      "memory": "memory"},
            "slo": {"latency_ms": 500.0, "latency_quantile": 0.95},
            "calls": [c for c in topo.callees(name) if c in watched],
            "min_replicas": 1,
            "max_replicas": 20,
        })
    remediate: dict[str, Any] = {}
    if remediation:
        remediate = {"playbooks": [str(DEMO_PLAYBOOKS)], "dry_run": False, "guardrails": {"approval_from": "high"}}
    return Settings.model_validate({
        "remediation": remediate,
        "tenant": "default",
        "store": {"url": store_url},
        "api": {"host": "127.0.0.1", "port": port, "anonymous_scopes": ["read", "write"]},
        "services": services_cfg,
        "engine": {
            "scrape_interval_s": cycle_s, "history_s": history_s, "executor": executor, "workers": workers,
            "forecast_every_s": 3600.0, "forecast_horizon_s": 3 * 3600.0, "capacity_every_s": 3600.0,
            "scale_every_s": 900.0, "rightsize_every_s": 6 * 3600.0, "stale_after_s": 600.0,
            # incidents a few simulated minutes apart: alerts join one only within a minute of its activity
            "correlator": {"window_s": 60.0, "close_after_s": 1800.0},
        },
    })


@dataclass(frozen=True)
class InjectedResult:
    """One injected incident and what opsmind made of it."""

    incident: Incident
    detected: bool
    key: str | None = None  # the opsmind incident that matched it
    root_cause: str | None = None
    rank: int | None = None  # rank of the injected cause in opsmind's RCA, when it ran

    @property
    def top1(self) -> bool:
        return self.root_cause is not None and self.root_cause == self.incident.target


@dataclass(frozen=True)
class DemoScore:
    injected: tuple[InjectedResult, ...] = field(default_factory=tuple)

    @property
    def detected(self) -> int:
        return sum(r.detected for r in self.injected)

    @property
    def top1(self) -> int:
        return sum(r.top1 for r in self.injected)

    def line(self) -> str:
        return f"demo summary: injected={len(self.injected)} detected={self.detected} root_cause_top1={self.top1}"


@dataclass(frozen=True)
class RemediationScore:
    """What remediation did: runs that acted, verified, rolled back, and runs a guard blocked."""

    runs: tuple[RunRecord, ...] = ()

    @property
    def executed(self) -> int:
        return sum(r.started_at is not None for r in self.runs)

    @property
    def verified(self) -> int:
        return sum(r.status == "succeeded" and r.verification is not None and bool(r.verification.get("ok"))
                   for r in self.runs)

    @property
    def rolled_back(self) -> int:
        return sum(r.status == "rolled_back" for r in self.runs)

    @property
    def blocked(self) -> int:
        return sum(r.status == "blocked" for r in self.runs)

    def line(self) -> str:
        return (f"remediation: runs={self.executed} verified={self.verified} rolled_back={self.rolled_back} "
                f"blocked={self.blocked}")


class DemoRun:
    """The simulator, its metrics endpoint, the scrape source and the engine (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store, *, seed: int = 0, step_s: float = 15.0,
                 every_s: float = 600.0, incident_s: float = 300.0, first_s: float = 180.0,
                 warmup_s: float = 6 * 3600.0, telemetry: Telemetry | None = None,
                 start_s: float = LIVE_START_S) -> None:
        topo = default_topology()
        self.settings = settings
        self.store = store
        self.step_s = step_s
        self.warmup_s = warmup_s
        self.start_s = start_s
        self.t = start_s - warmup_s
        incidents = schedule(topo, start_s, start_s + 7 * 86400.0, every_s=max(every_s, incident_s),
                             duration_s=incident_s, first_s=first_s, seed=seed)
        self.system = System(topo, incidents=incidents, seed=seed)
        self.server: MetricsServer = serve_metrics(self.system)
        self.source = ScrapeSource([self.server.url], keep_s=settings.engine.history_s + 3600.0,
                                   clock=lambda: self.t)
        self.verifier: SimVerifier | None = None
        remediator = None
        if settings.remediation.playbooks:
            self.verifier = SimVerifier(self.source, services=settings.services)
            remediator = build_remediator(
                settings, store, playbooks=[pb for path in settings.remediation.playbooks
                                            for pb in load_demo_playbooks(path)],
                executors=demo_executors(self.system, lambda: self.t), verifier=self.verifier)
        self.engine = Engine(settings, store, telemetry=telemetry, clock=lambda: self.t, source=self.source,
                             remediator=remediator)
        self.engine.threshold = DEMO_THRESHOLD
        self._last_cycle = -np.inf
        self.last_report: CycleReport | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def warm_up(self, until: float | None = None) -> CycleReport:
        """Simulate the warm-up history, hand it to the scrape source, and run the first engine cycle (which
        stores the history and trains every detector). ``until`` (a later step time) continues the simulation
        up to there the same way, e.g. to resume a run after a restart."""
        dt = self.step_s
        end = self.start_s if until is None else float(until)
        n = round((end - (self.start_s - self.warmup_s)) / dt)
        times = end - dt * np.arange(n - 1, -1, -1, dtype=np.float64)
        gauges = self.system.advance(times, dt)
        for name, labels, values in _exposition_history(self.system.topology.names, gauges, dt):
            self.source.add_series(name, labels, times, values)
        self.t = float(times[-1])
        return self._cycle()

    def step(self) -> tuple[list[Incident], CycleReport | None]:
        """One simulation step: the incidents that started in it, and the engine's report when a cycle ran."""
        t0 = self.t
        self.t = t0 + self.step_s
        self.system.step(self.t, self.step_s)
        self.source.refresh(self.t)
        started = [i for i in self.system.incidents if t0 < i.start_s <= self.t]
        decided = self.verifier.on_step(self.t) if self.verifier is not None else 0
        report = None
        if self.t - self._last_cycle >= self.settings.engine.scrape_interval_s - 1e-6:
            report = self._cycle()
        if decided or report is not None:
            self.settle()
        return started, report

    def settle(self, timeout_s: float = 120.0) -> None:
        """Wait (wall clock) until the remediation worker is idle or waits for a verification, which only further
        simulation steps can decide."""
        loop = self.engine.remediation
        if loop is None or self.verifier is None:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not loop.idle() and not self.verifier.waiting():
            time.sleep(0.002)

    def remediation(self) -> RemediationScore:
        """The remediation runs so far (oldest first)."""
        rem = self.engine.remediator
        if rem is None:
            return RemediationScore()
        return RemediationScore(tuple(sorted(rem.ledger.runs(), key=lambda r: (r.created_at, r.run_id))))

    def _cycle(self) -> CycleReport:
        self._last_cycle = self.t
        self.last_report = self.engine.run_cycle(self.t)
        return self.last_report

    def injected(self) -> list[Incident]:
        return [i for i in self.system.incidents if i.start_s <= self.t]

    def score(self) -> DemoScore:
        """Each injected incident matched to the first opsmind incident that started during it (or up to a
        minute before), with that incident's root cause."""
        records = self.store.incidents.list(self.settings.tenant, limit=10_000)
        out = []
        used: set[str] = set()
        for inc in self.injected():
            match = _match(inc, records, used)
            if match is None:
                out.append(InjectedResult(inc, False))
                continue
            used.add(match.key)
            rank = None
            if isinstance(match.rca, dict):
                names = [c.get("service") for c in match.rca.get("ranking", [])]
                rank = names.index(inc.target) + 1 if inc.target in names else None
            out.append(InjectedResult(inc, True, match.key, match.root_cause, rank))
        return DemoScore(tuple(out))

    def close(self) -> None:
        if self.verifier is not None:
            self.verifier.close()
        self.engine.stop()
        self.server.close()


def _match(inc: Incident, records: list[IncidentRecord], used: set[str]) -> IncidentRecord | None:
    cands = [r for r in records if r.key not in used and inc.start_s - 60.0 <= r.started_at < inc.end_s]
    return min(cands, key=lambda r: r.started_at) if cands else None


def _exposition_history(names: tuple[str, ...], gauges: dict[str, Any], dt: float,
                        ) -> list[tuple[str, dict[str, str], np.ndarray]]:
    """The samples the simulator's exporter (:mod:`opsmind.sim.exposition`) shows after each step: cumulative
    counters from a fresh start, summary quantiles and gauges."""
    requests = gauges["rate_rps"] * dt
    errors = gauges["error_ratio"] * np.maximum(requests, 1.0)
    out: list[tuple[str, dict[str, str], np.ndarray]] = []
    per: list[tuple[str, dict[str, str], Callable[[int], np.ndarray]]] = [
        ("http_requests_total", {}, lambda i: np.cumsum(requests[:, i])),
        ("http_requests_errors_total", {}, lambda i: np.cumsum(errors[:, i])),
        ("process_cpu_seconds_total", {}, lambda i: np.cumsum(gauges["cpu_cores"][:, i] * dt)),
        ("http_request_duration_seconds", {"quantile": "0.5"}, lambda i: gauges["latency_p50_s"][:, i]),
        ("http_request_duration_seconds", {"quantile": "0.95"}, lambda i: gauges["latency_p95_s"][:, i]),
        ("process_resident_memory_bytes", {}, lambda i: gauges["memory_bytes"][:, i]),
        ("opsmind_sim_utilisation_ratio", {}, lambda i: gauges["utilisation"][:, i]),
    ]
    for i, svc in enumerate(names):
        for name, extra, values in per:
            out.append((name, {"service": svc, **extra}, np.asarray(values(i), dtype=np.float64)))
    return out
