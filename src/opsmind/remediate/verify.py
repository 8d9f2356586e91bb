"""Verification: after a playbook's actions, poll a Prometheus query until its condition holds or time runs out.

:func:`evaluate` is pure (the latest value of every returned series must satisfy the comparison; no data is a
failure); :class:`PrometheusVerifier` polls through :class:`opsmind.sources.prometheus.Prometheus` with an
injectable ``clock`` and ``sleep``, so a test can run a five-minute verification instantly.

>>> check = Verification(query="max(latency_seconds)", op="<", value=0.5)
>>> evaluate(check, [0.2, 0.4]).ok, evaluate(check, [0.2, 0.7]).ok, evaluate(check, []).ok
(True, False, False)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.remediate.playbook import Verification, render

__all__ = ["Check", "PrometheusVerifier", "Verifier", "VerifyResult", "evaluate", "resolve"]


@dataclass(frozen=True)
class Check:
    """One evaluation: whether it held, the worst value seen, and why."""

    ok: bool
    value: float | None
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    value: float | None
    detail: str
    checks: int
    started_at: float
    finished_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "value": self.value, "detail": self.detail, "checks": self.checks,
                "started_at": self.started_at, "finished_at": self.finished_at}


class Verifier(Protocol):
    def verify(self, check: Verification, context: Mapping[str, Any], start: float) -> VerifyResult: ...


class QueryClient(Protocol):
    def query(self, promql: str, time: Any = None, *, now: Any = None) -> Any: ...


def evaluate(check: Verification, values: Sequence[float]) -> Check:
    """Whether every finite value satisfies ``check`` (no value: not verified)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return Check(False, None, "the query returned no data")
    bad = [v for v in finite if not check.holds(v)]
    worst = bad[0] if bad else (max(finite) if check.op in ("<", "<=") else min(finite))
    cmp = f"{check.op} {check.value:g}" if check.value is not None else check.op
    if bad:
        return Check(False, worst, f"{len(bad)} of {len(finite)} series fail {cmp} (e.g. {worst:g})")
    return Check(True, worst, f"all {len(finite)} series hold {cmp} (worst {worst:g})")


def resolve(check: Verification, context: Mapping[str, Any], services: Sequence[Any] = ()) -> Verification:
    """A verification with a concrete query: placeholders filled (PromQL-escaped) or the SLO turned into one."""
    if check.query is not None:
        return check.model_copy(update={"query": render(check.query, context, escape=True)})
    assert check.slo is not None
    ref = check.slo
    svc = next((s for s in services if getattr(s, "name", None) == ref.service), None)
    if svc is None or svc.slo is None:
        raise ConfigError(f"verification.slo: service {ref.service!r} has no SLO in the configuration")
    if ref.objective == "latency":
        metric = svc.roles.get("latency")
        if metric is None or svc.slo.latency_ms is None:
            raise ConfigError(f"verification.slo: service {ref.service!r} needs roles.latency and slo.latency_ms")
        query = f"max(({svc.metrics[metric]}) * {ref.latency_unit_s * 1000:g})"
        return check.model_copy(update={"query": query, "op": "<=", "value": svc.slo.latency_ms, "slo": None})
    errors, load = svc.roles.get("errors"), svc.roles.get("load")
    if errors is None or load is None or svc.slo.availability is None:
        raise ConfigError(f"verification.slo: service {ref.service!r} needs roles.errors, roles.load and "
                          f"slo.availability")
    query = f"1 - sum({svc.metrics[errors]}) / sum({svc.metrics[load]})"
    return check.model_copy(update={"query": query, "op": ">=", "value": svc.slo.availability, "slo": None})


class PrometheusVerifier:
    """Poll ``check.query`` every ``interval_s`` until it holds or ``within_s`` has passed since ``start``.

    Parameters
    ----------
    prometheus
        A :class:`~opsmind.sources.prometheus.Prometheus` (anything with its ``query``).
    services
        Configured services, to resolve ``slo`` references.
    clock, sleep
        The time source and the wait; tests pass a fake pair.
    """

    def __init__(self, prometheus: QueryClient, *, services: Sequence[Any] = (),
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.prometheus = prometheus
        self.services = services
        self.clock = clock
        self.sleep = sleep

    def _values(self, query: str) -> list[float]:
        frame = self.prometheus.query(query)
        vals = getattr(frame, "values", None)
        if vals is None or len(vals) == 0:
            return []
        return [float(v) for v in vals[-1]]

    def verify(self, check: Verification, context: Mapping[str, Any], start: float) -> VerifyResult:
        concrete = resolve(check, context, self.services)
        assert concrete.query is not None
        checks = 0
        last = Check(False, None, "not checked")
        while True:
            checks += 1
            try:
                last = evaluate(concrete, self._values(concrete.query))
            except OpsmindError as exc:
                last = Check(False, None, f"query failed: {exc}")
            now = self.clock()
            if last.ok:
                return VerifyResult(True, last.value, last.detail, checks, start, now)
            if now - start + concrete.interval_s > concrete.within_s:
                return VerifyResult(False, last.value, f"not recovered within {concrete.within_s:g} s: "
                                    f"{last.detail}", checks, start, now)
            self.sleep(concrete.interval_s)
