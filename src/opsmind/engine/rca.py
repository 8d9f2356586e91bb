"""Root-cause analysis of an incident over the stored samples of every configured service.

opsmind's own remediation changes what it measures: scaling a service out adds its new replicas' CPU and memory
to the service's totals. So the capacity metrics (roles ``cpu`` and ``memory``) of a service whose replica count a
remediation run changed are left out of the analysis from the moment the run started (``changed``), and the
result says so; otherwise the next incident's analysis can blame the scale-out that answered it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from opsmind.core import DataError, Frame
from opsmind.core.graph import CallGraph
from opsmind.rca import RcaResult, RcaSettings, analyze
from opsmind.store import Store

__all__ = ["CAPACITY_ROLES", "analysis_window", "incident_rca", "own_changes", "service_frames"]

CAPACITY_ROLES = ("cpu", "memory")  # summed over replicas: a scale-out moves them


def service_frames(store: Store, tenant: str, series: Mapping[str, Mapping[str, int]], start: float,
                   end: float) -> dict[str, Frame]:
    """One frame per service (columns: its metric names) of the stored samples in ``[start, end]``.

    ``series`` maps a service to ``{metric name: series id}``; services without samples there are left out.
    """
    out: dict[str, Frame] = {}
    for service, metrics in series.items():
        if not metrics:
            continue
        names = sorted(metrics)
        try:
            out[service] = store.samples.frame(tenant, [metrics[n] for n in names], start, end, columns=names)
        except DataError:  # no samples in the window
            continue
    return out


def own_changes(runs: Iterable[Any], targets: Mapping[str, str], start: float = -math.inf,
                end: float = math.inf) -> dict[str, tuple[float, str]]:
    """``{service: (start time, playbook)}`` of the earliest remediation run (a
    :class:`~opsmind.remediate.RunRecord`) that started in ``[start, end]`` and changed a replica count (an
    outcome, not a dry run, with ``changed`` and ``replicas`` before it) on each service. Restarts and other
    actions are not counted: they do not add capacity, and a restart's effect (memory dropping back) is the
    evidence of what it fixed. ``targets`` maps an action's target (a service name, a Deployment
    ``namespace/name``) to its service; a target not in it is tried by its last path part (``shop/frontend``)."""
    out: dict[str, tuple[float, str]] = {}
    for run in runs:
        if run.started_at is None or not start <= run.started_at <= end:
            continue
        for o in run.outcomes:
            if o.get("dry_run", run.dry_run) or not o.get("changed") or "replicas" not in (o.get("before") or {}):
                continue
            target = str(o.get("target", ""))
            service = targets.get(target) or targets.get(target.rsplit("/", 1)[-1])
            if service is not None and (service not in out or run.started_at < out[service][0]):
                out[service] = (float(run.started_at), str(run.playbook))
    return out


def _without_capacity(frame: Frame, metrics: Sequence[str], since: float) -> Frame:
    """``frame`` with the columns ``metrics`` missing (NaN) from ``since`` on."""
    cols = [j for j, name in enumerate(frame.columns) if name in metrics]
    late = frame.seconds() >= since
    if not cols or not late.any():
        return frame
    values = frame.values.copy()
    values[np.ix_(late, np.asarray(cols, dtype=np.intp))] = np.nan
    return Frame(frame.timestamps, values, frame.columns, frame.name, frame.notes)


def analysis_window(at: float, settings: RcaSettings, margin_s: float = 120.0) -> tuple[float, float]:
    """The samples an incident noticed at ``at`` is analysed on: the normal window, the search window around
    ``at`` and the anomalous window, with ``margin_s`` on both sides."""
    return (at - settings.search_s - settings.baseline_s - margin_s,
            at + settings.search_s + settings.window_s + margin_s)


def incident_rca(store: Store, tenant: str, series: Mapping[str, Mapping[str, int]], graph: CallGraph,
                 at: float, settings: RcaSettings, *, margin_s: float = 120.0,
                 changed: Mapping[str, tuple[float, str]] | None = None,
                 capacity: Mapping[str, Sequence[str]] | None = None) -> tuple[str | None, dict[str, Any]]:
    """The top-ranked service and the JSON form of the RCA result for an incident noticed at ``at``.

    ``changed`` (from :func:`own_changes`) and ``capacity`` (a service's capacity metric names; default
    ``cpu`` and ``memory``): see the module docstring."""
    start, end = analysis_window(at, settings, margin_s)
    frames = service_frames(store, tenant, series, start, end)
    if not frames:
        return None, {"ranking": [], "notes": ["no stored samples around the incident"]}
    notes = []
    for service, (since, playbook) in sorted((changed or {}).items()):
        frame = frames.get(service)
        if frame is None or not start <= since <= end:
            continue
        metrics = list((capacity or {}).get(service, CAPACITY_ROLES))
        frames[service] = _without_capacity(frame, metrics, since)
        if frames[service] is not frame:
            notes.append(f"{service}: {', '.join(m for m in metrics if m in frame.columns)} left out from "
                         f"{since:.0f} (Unix s): opsmind's playbook {playbook} acted on it then")
    result: RcaResult = analyze(frames, at=at, topology=graph if graph else None, settings=settings)
    top = _top(result.ranking)
    payload = result.to_dict(top=5)
    payload["at"] = at
    if notes:
        payload["notes"] = list(payload.get("notes", [])) + notes
    return top, payload


def _top(ranking: Sequence[Any]) -> str | None:
    if not ranking or not np.isfinite(ranking[0].score) or ranking[0].score <= 0:
        return None
    return str(ranking[0].service)
