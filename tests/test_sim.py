"""The workload simulator: traffic shape, queueing, incidents and their propagation, exposition, determinism."""

from __future__ import annotations

import itertools

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsmind.core import ConfigError, FloatArray
from opsmind.sim import (
    DEFAULT_START_S,
    Call,
    Incident,
    IncidentKind,
    Service,
    System,
    Topology,
    daily_shape,
    default_topology,
    render,
    schedule,
    serve_metrics,
    simulate,
)

DAY = 86400.0
NOON = DEFAULT_START_S + 12 * 3600.0
STEP = 15.0


def _run(incidents: list[Incident], hours: float = 1.0, seed: int = 3) -> dict[str, FloatArray]:
    """Gauges from noon for ``hours`` (rows: steps, columns: services)."""
    times = NOON + STEP * np.arange(1, int(hours * 240) + 1)
    return System(incidents=incidents, seed=seed).advance(times, STEP)


def test_daily_shape_peaks_in_the_afternoon_and_bottoms_out_at_night() -> None:
    hours = np.arange(0, 24, 0.25)
    shape = np.asarray(daily_shape(DEFAULT_START_S + hours * 3600.0))
    assert 12 <= hours[np.argmax(shape)] <= 18
    assert hours[np.argmin(shape)] <= 6
    sim = simulate(hours=24.0, incidents=(), seed=1)
    rate = sim.frames["frontend"].column("rate_rps").reshape(24, -1).mean(axis=1)
    assert rate[13:17].mean() > 2.5 * rate[1:5].mean()


def test_latency_and_errors_grow_with_utilisation() -> None:
    times = NOON + 3 * 3600.0 + STEP * np.arange(1, 41)
    util, p95, err = [], [], []
    for peak in (100.0, 400.0, 700.0, 900.0, 1200.0):
        g = System(seed=0, peak_rps=peak).advance(times, STEP)
        util.append(g["utilisation"][:, 0].mean())
        p95.append(g["latency_p95_s"][:, 0].mean())
        err.append(g["error_ratio"][:, 0].mean())
    assert np.all(np.diff(util) > 0) and util[-1] == pytest.approx(1.0)
    assert np.all(np.diff(p95) > 0)
    assert p95[-1] > 10 * p95[0]  # saturated: requests wait in a backlog
    assert err[-1] > 10 * err[0]  # and time out


# kind, target, magnitude, (target metric), (caller, caller metric), unrelated service
CASES: list[tuple[IncidentKind, str, float | None, str, tuple[str, str], str]] = [
    ("cpu_hog", "cart", None, "cpu_cores", ("frontend", "latency_p95_s"), "catalog"),
    ("memory_leak", "catalog", 3e6, "memory_bytes", ("recommendation", "latency_p95_s"), "cart"),
    ("latency_injection", "payment", None, "latency_p95_s", ("checkout", "latency_p95_s"), "catalog"),
    ("error_burst", "currency", None, "error_ratio", ("checkout", "error_ratio"), "catalog"),
    ("traffic_spike", "checkout", 2.0, "rate_rps", ("frontend", "latency_p95_s"), "catalog"),
]


@pytest.mark.parametrize(("kind", "target", "magnitude", "metric", "caller", "unrelated"), CASES)
def test_incident_moves_target_and_callers_not_unrelated_services(
    kind: IncidentKind, target: str, magnitude: float | None, metric: str, caller: tuple[str, str], unrelated: str
) -> None:
    topo = default_topology()
    start = NOON + 1800.0
    incident = Incident(kind, target, start_s=start, duration_s=300.0, magnitude=magnitude)
    with_inc, without = _run([incident]), _run([])
    rows = slice(119, 139)  # the steps whose time t falls in the incident window [start, start + 300 s)
    late = slice(131, 139)  # its last two minutes (a leak takes time to hurt)
    t_idx, c_idx, u_idx = topo.index(target), topo.index(caller[0]), topo.index(unrelated)
    assert caller[0] in topo.ancestors(target) and unrelated not in topo.ancestors(target) | {target}

    def mean(g: dict[str, FloatArray], m: str, i: int, r: slice) -> float:
        return float(g[m][r, i].mean())

    assert mean(with_inc, metric, t_idx, rows) > 1.5 * mean(without, metric, t_idx, rows)
    assert mean(with_inc, caller[1], c_idx, late) > 1.1 * mean(without, caller[1], c_idx, late)
    for m in ("rate_rps", "latency_p95_s", "error_ratio", "cpu_cores", "memory_bytes"):
        np.testing.assert_allclose(with_inc[m][:, u_idx], without[m][:, u_idx], rtol=1e-9, err_msg=m)
    # Before the incident nothing differs anywhere; after it (and its backlog) has cleared, the target recovers.
    np.testing.assert_allclose(with_inc[metric][:119], without[metric][:119], rtol=1e-9)
    assert mean(with_inc, metric, t_idx, slice(160, 240)) == pytest.approx(
        mean(without, metric, t_idx, slice(160, 240)), rel=0.05)


def test_schedule_names_a_known_root_cause_for_each_incident() -> None:
    topo = default_topology()
    incs = schedule(topo, NOON, NOON + 6 * 3600.0, every_s=600.0, duration_s=300.0, seed=5)
    assert len(incs) == 36  # the first after one duration, then every 600 s while one still fits
    assert {i.kind for i in incs} == {"cpu_hog", "memory_leak", "latency_injection", "error_burst", "traffic_spike"}
    assert all(i.target == "frontend" for i in incs if i.kind == "traffic_spike")
    assert all(b.start_s >= a.end_s for a, b in itertools.pairwise(incs))
    sim = simulate(hours=2.0, seed=5)
    for inc in sim.incidents:
        assert sim.labels(inc.target).sum() >= 300.0 / STEP


def test_exposition_parses_with_conventional_names_and_labels() -> None:
    system = System(seed=0)
    assert render(system) == ""
    system.step(NOON, STEP)
    first = {f.name: f for f in text_string_to_metric_families(render(system))}
    system.step(NOON + STEP, STEP)
    second = {f.name: f for f in text_string_to_metric_families(render(system))}
    assert set(second) >= {"http_requests", "http_requests_errors", "http_request_duration_seconds",
                           "process_cpu_seconds", "process_resident_memory_bytes"}
    assert second["http_requests"].type == "counter"
    assert second["http_request_duration_seconds"].type == "summary"
    names = set(default_topology().names)
    for fam in second.values():
        assert {s.labels["service"] for s in fam.samples} == names
    quantiles = {s.labels.get("quantile") for s in second["http_request_duration_seconds"].samples}
    assert quantiles == {"0.5", "0.95", None}
    for counter in ("http_requests", "process_cpu_seconds"):
        before = {s.labels["service"]: s.value for s in first[counter].samples}
        assert all(s.value > before[s.labels["service"]] for s in second[counter].samples)


def test_same_seed_same_data_and_stepping_equals_batch() -> None:
    a, b, c = simulate(hours=3.0, seed=11), simulate(hours=3.0, seed=11), simulate(hours=3.0, seed=12)
    assert a.incidents == b.incidents
    np.testing.assert_array_equal(a.wide().values, b.wide().values)
    assert not np.allclose(a.wide().values, c.wide().values)
    times = NOON + STEP * np.arange(1, 121)
    incs = [Incident("traffic_spike", "frontend", NOON + 300.0, 600.0, magnitude=3.0)]  # saturates: backlog
    batch = System(incidents=incs, seed=2).advance(times, STEP)
    stepper = System(incidents=incs, seed=2)
    steps = [stepper.step(float(t), STEP) for t in times]
    np.testing.assert_allclose(np.array([s.latency_p95_s for s in steps]), batch["latency_p95_s"], rtol=1e-12)
    np.testing.assert_array_equal(np.array([s.rate_rps for s in steps]), batch["rate_rps"])


def test_metrics_server_serves_on_a_free_loopback_port() -> None:
    system = System(seed=0)
    system.step(NOON, STEP)
    server = serve_metrics(system, host="127.0.0.1", port=0)
    try:
        assert server.port > 0
        resp = httpx.get(server.url, timeout=5.0)
        assert resp.status_code == 200
        assert 'http_requests_total{service="frontend"}' in resp.text
        system.step(NOON + STEP, STEP)  # the server reads the newest snapshot
        assert httpx.get(server.url, timeout=5.0).text != resp.text
    finally:
        server.close()


def test_bad_topologies_and_incidents_are_rejected() -> None:
    with pytest.raises(ConfigError, match="cycle"):
        Topology((Service("a"), Service("b")), (Call("a", "b"), Call("b", "a")), entry="a")
    with pytest.raises(ConfigError, match="unknown service 'c'"):
        Topology((Service("a"),), (Call("a", "c"),), entry="a")
    with pytest.raises(ConfigError, match="kind"):
        Incident("disk_full", "cart", 0.0, 60.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no service 'nope'"):
        System(incidents=[Incident("cpu_hog", "nope", 0.0, 60.0)])
    with pytest.raises(ConfigError, match="increase"):
        System().advance(np.array([2.0, 1.0]), STEP)
