"""Trace-based service ranking: which services changed between baseline traces and incident traces.

:func:`rank_services` compares, per service, three signals between a baseline window and an incident window and
ranks services by the strongest one:

- **self latency**: per ``(service, operation)``, the spans' self time (duration minus time spent in child calls,
  :func:`~opsmind.traces.graph.self_times`), so a slow callee does not blame its callers. Score: the larger of
  the median's shift and the 90th percentile's shift, in units of the baseline's scaled MAD (at least 1 ms, so
  sub-millisecond jitter of a near-constant operation does not count; the p90 shift is scaled by at least the
  baseline's p90-minus-median spread);
- **self errors**: the share of spans that error while none of their children does (errors that originate in the
  service, not ones it passes on): the two-proportion z statistic of the rise;
- **network**: per cross-service call measured by a client span, the client-minus-server time (network and
  queueing), scored like self latency; a service's network score is the median over the call edges it takes part
  in, so the service common to many slow edges stands out rather than each of its peers;
- a service absent from the incident although the baseline makes that very unlikely (it appears in a share ``f``
  of baseline traces and ``(1 - f) ** incident_traces < 0.001``) is scored as if all its expected spans failed.

Each score is multiplied by a sample-size confidence ``n / (n + 10)`` (``n`` the harmonic mean of the two
windows' counts). The service score is the largest signal (>= 0); the evidence lists the numbers behind it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from opsmind.core.spans import Trace
from opsmind.traces.graph import calls, self_times

__all__ = ["rank_services"]

_TIME_FLOOR_US = 1000.0  # changes well below a millisecond do not matter for request latency


def _confidence(n_b: int, n_i: int) -> float:
    n = 2.0 / (1.0 / n_b + 1.0 / n_i)
    return n / (n + 10.0)


def _latency_change(base: Sequence[float], inc: Sequence[float]) -> tuple[float, dict[str, Any]]:
    b = np.asarray(base, dtype=np.float64)
    i = np.asarray(inc, dtype=np.float64)
    med_b, p90_b = (float(v) for v in np.quantile(b, [0.5, 0.9]))
    med_i, p90_i = (float(v) for v in np.quantile(i, [0.5, 0.9]))
    scale = max(1.4826 * float(np.median(np.abs(b - med_b))), _TIME_FLOOR_US)
    z = max((med_i - med_b) / scale, (p90_i - p90_b) / max(scale, p90_b - med_b))
    score = z * _confidence(b.size, i.size)
    return score, {"score": round(score, 4), "z": round(z, 3),
                   "baseline_p50_ms": round(med_b / 1e3, 3), "incident_p50_ms": round(med_i / 1e3, 3),
                   "baseline_n": int(b.size), "incident_n": int(i.size)}


def _two_proportion_z(k_b: int, n_b: int, k_i: int, n_i: int) -> float:
    pooled = (k_b + k_i) / (n_b + n_i)
    if pooled <= 0.0 or pooled >= 1.0:  # no failures at all, or failures only: no change to measure
        return 0.0
    return (k_i / n_i - k_b / n_b) / math.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / n_i))


def _error_change(k_b: int, n_b: int, k_i: int, n_i: int) -> tuple[float, float]:
    z = _two_proportion_z(k_b, n_b, k_i, n_i)
    return z * _confidence(n_b, n_i), z


class _Window:
    """Per-service samples of one window of traces."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = len(traces)
        self.self_us: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.spans: dict[str, int] = defaultdict(int)
        self.self_errors: dict[str, int] = defaultdict(int)
        self.network: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.in_traces: dict[str, int] = defaultdict(int)
        for t in traces:
            for svc in t.services():
                self.in_traces[svc] += 1
            own = self_times(t)
            for s in t.spans:
                self.self_us[(s.service, s.operation)].append(own[s.span_id])
                self.spans[s.service] += 1
                if s.error and not any(c.error for c in t.children(s.span_id)):
                    self.self_errors[s.service] += 1
            for c in calls(t):
                if c.client is not c.callee:
                    self.network[(c.caller.service, c.callee.service)].append(
                        max(0, c.client.duration_us - c.callee.duration_us))


def rank_services(baseline: Sequence[Trace], incident: Sequence[Trace], *,
                  min_samples: int = 5) -> list[tuple[str, float, dict[str, Any]]]:
    """Services ranked by how much their traces changed from ``baseline`` to ``incident``, most changed first.

    Returns ``(service, score, evidence)`` triples; services seen in either window are all listed (score 0 when
    nothing could be compared). Operations and edges with fewer than ``min_samples`` spans in a window are not
    scored (the evidence says so).

    Examples
    --------
    >>> from opsmind.core.spans import Span
    >>> def tr(i, db_us):
    ...     return Trace.from_spans([Span(f"t{i}", "a", None, "web", "GET", 0, 1000 + db_us),
    ...                              Span(f"t{i}", "b", "a", "db", "query", 500, 500 + db_us)])
    >>> base = [tr(i, 300 + i % 7) for i in range(40)]
    >>> slow = [tr(i, 3000 + i % 7) for i in range(40)]
    >>> [name for name, _, _ in rank_services(base, slow)]
    ['db', 'web']
    """
    b, i = _Window(baseline), _Window(incident)
    services = sorted(set(b.spans) | set(i.spans))
    out: list[tuple[str, float, dict[str, Any]]] = []
    network_z: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for edge in sorted(set(b.network) & set(i.network)):
        if len(b.network[edge]) >= min_samples and len(i.network[edge]) >= min_samples:
            z, _ = _latency_change(b.network[edge], i.network[edge])
            for svc in edge:
                network_z[svc].append((z, f"{edge[0]}->{edge[1]}"))
    for svc in services:
        evidence: dict[str, Any] = {}
        lat_best, lat_ev = 0.0, None
        skipped = 0
        for (s, op), base_samples in b.self_us.items():
            inc_samples = i.self_us.get((s, op), [])
            if s != svc:
                continue
            if len(base_samples) < min_samples or len(inc_samples) < min_samples:
                skipped += 1
                continue
            z, ev = _latency_change(base_samples, inc_samples)
            if lat_ev is None or z > lat_best:
                lat_best, lat_ev = z, {"operation": op, **ev}
        if lat_ev is not None:
            evidence["self_latency"] = lat_ev
        if skipped:
            evidence["operations_not_scored"] = skipped
        nb, ni = b.spans.get(svc, 0), i.spans.get(svc, 0)
        kb, ki = b.self_errors.get(svc, 0), i.self_errors.get(svc, 0)
        # absent from the incident although the baseline makes that very unlikely (P < 0.001)
        seen = b.in_traces.get(svc, 0) / b.traces if b.traces else 0.0
        missing = nb >= min_samples and ni == 0 and i.traces > 0 and (1.0 - seen) ** i.traces < 1e-3
        if missing:
            expected = max(1, round(nb * i.traces / max(1, b.traces)))
            err_score, err_z = _error_change(kb, nb, expected, expected)
            evidence["missing"] = {"baseline_spans": nb, "expected_incident_spans": expected}
        elif nb >= min_samples and ni >= min_samples:
            err_score, err_z = _error_change(kb, nb, ki, ni)
        else:
            err_score, err_z = 0.0, 0.0
        if nb or ni:
            evidence["self_errors"] = {"score": round(err_score, 4), "z": round(err_z, 3),
                                       "baseline_rate": round(kb / nb, 4) if nb else None,
                                       "incident_rate": round(ki / ni, 4) if ni else None,
                                       "baseline_n": nb, "incident_n": ni}
        net = 0.0
        if network_z.get(svc):
            zs = sorted(z for z, _ in network_z[svc])
            net = float(np.median(zs))
            worst = max(network_z[svc])
            evidence["network"] = {"score": round(net, 4), "edges": len(zs), "worst_edge": worst[1],
                                   "worst_edge_score": round(worst[0], 4)}
        parts = {"self_latency": lat_best, "self_errors": err_score, "network": net}
        signal = max(parts, key=lambda k: parts[k])
        score = max(0.0, parts[signal])
        evidence["signal"] = signal if score > 0 else "none"
        out.append((svc, round(score, 6), evidence))
    return sorted(out, key=lambda r: (-r[1], r[0]))
