"""Root-cause analysis of an incident over the stored samples of every configured service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from opsmind.core import DataError, Frame
from opsmind.core.graph import CallGraph
from opsmind.rca import RcaResult, RcaSettings, analyze
from opsmind.store import Store

__all__ = ["incident_rca", "service_frames"]


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


def incident_rca(store: Store, tenant: str, series: Mapping[str, Mapping[str, int]], graph: CallGraph,
                 at: float, settings: RcaSettings, *, margin_s: float = 120.0) -> tuple[str | None, dict[str, Any]]:
    """The top-ranked service and the JSON form of the RCA result for an incident noticed at ``at``."""
    start = at - settings.search_s - settings.baseline_s - margin_s
    end = at + settings.search_s + settings.window_s + margin_s
    frames = service_frames(store, tenant, series, start, end)
    if not frames:
        return None, {"ranking": [], "notes": ["no stored samples around the incident"]}
    result: RcaResult = analyze(frames, at=at, topology=graph if graph else None, settings=settings)
    top = _top(result.ranking)
    payload = result.to_dict(top=5)
    payload["at"] = at
    return top, payload


def _top(ranking: Sequence[Any]) -> str | None:
    if not ranking or not np.isfinite(ranking[0].score) or ranking[0].score <= 0:
        return None
    return str(ranking[0].service)
