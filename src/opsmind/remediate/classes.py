"""Incident classes and playbook suggestions learned from outcomes.

An incident's class is ``symptom:service:pattern``: the symptom from its alert names (latency, errors,
saturation, availability, traffic, or the alert name itself), the root-cause service (or the first affected one),
and the metric pattern (a ``metric`` label, the metric of a ``series`` label such as opsmind's own alerts carry,
the anomalous metric, or the alert name), each normalised to lowercase
``[a-z0-9_]``. Every finished run records ``success``/``failure`` for its (class, playbook); :func:`rank` orders
playbooks for a class by the lower bound of the 90 % Wilson interval of their success rate, so 9 of 10 beats 1 of
1, and reports the raw rate and the count behind it.

>>> normalise("CPU Saturation!")
'cpu_saturation'
>>> signature("HighLatency", "checkout", "cpu_saturation")
'latency:checkout:cpu_saturation'
>>> [(s.playbook, s.successes, s.n) for s in rank({"a": (1, 1), "b": (9, 10), "c": (0, 3)})]
[('b', 9, 10), ('a', 1, 1), ('c', 0, 3)]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from opsmind.remediate.events import Event
from opsmind.remediate.ledger import Ledger

__all__ = ["Suggestion", "classify", "normalise", "rank", "signature", "suggest"]

_SYMPTOMS = (
    ("latency", re.compile(r"latenc|slow|duration|response_?time|p9\d", re.I)),
    ("errors", re.compile(r"error|5xx|fail|exception", re.I)),
    ("saturation", re.compile(r"cpu|memory|mem_|saturat|oom|leak|throttl|disk|heap", re.I)),
    ("availability", re.compile(r"down|unavailab|unreachab|crash|restart|^up$", re.I)),
    ("traffic", re.compile(r"traffic|surge|rate|load|request|qps|rps", re.I)),
)
_Z90 = 1.6449


def normalise(text: str | None) -> str:
    """Lowercase ``[a-z0-9_]``, runs of anything else as one ``_`` (``unknown`` when empty)."""
    out = re.sub(r"[^a-z0-9]+", "_", (text or "").lower()).strip("_")
    return out or "unknown"


def symptom(names: Iterable[str]) -> str:
    items = [n for n in names if n]
    for label, pattern in _SYMPTOMS:
        if any(pattern.search(n) for n in items):
            return label
    return normalise(items[0]) if items else "unknown"


def signature(symptom_or_alert: str, service: str | None, pattern: str | None) -> str:
    """``symptom:service:pattern`` with each part normalised (the first part mapped to a symptom)."""
    return f"{symptom([symptom_or_alert])}:{normalise(service)}:{normalise(pattern)}"


def classify(event: Event) -> str:
    """The class of an incident, alert, anomaly or forecast event."""
    names = [ls.get("alertname", "") for ls in event.label_sets]
    metrics = [ls.get("metric") or ls.get("series", "").split("{")[0] for ls in event.label_sets]
    metrics = [m for m in metrics if m]
    if event.metric:
        metrics.insert(0, event.metric)
    pattern_src = metrics[0] if metrics else next((n for n in sorted(names) if n), event.kind)
    sym = symptom([*sorted(n for n in names if n), *metrics]) if (names or metrics) else normalise(event.kind)
    return f"{sym}:{normalise(event.service)}:{normalise(pattern_src)}"


@dataclass(frozen=True)
class Suggestion:
    playbook: str
    success_rate: float | None  # None when never tried on this class
    n: int
    successes: int
    score: float  # the ranking key: Wilson lower bound (0 when untried)

    def to_dict(self) -> dict[str, object]:
        return {"playbook": self.playbook, "success_rate": self.success_rate, "n": self.n,
                "successes": self.successes}


def _wilson_low(successes: int, n: int) -> float:
    if n == 0:
        return 0.0
    p = successes / n
    z2 = _Z90 * _Z90
    centre = p + z2 / (2 * n)
    margin = _Z90 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (centre - margin) / (1 + z2 / n)


def rank(counts: Mapping[str, tuple[int, int]], candidates: Sequence[str] = ()) -> list[Suggestion]:
    """Playbooks best first from ``{playbook: (successes, runs)}``; ``candidates`` never tried come last."""
    out = [Suggestion(pb, s / n if n else None, n, s, _wilson_low(s, n)) for pb, (s, n) in counts.items()]
    out += [Suggestion(pb, None, 0, 0, 0.0) for pb in candidates if pb not in counts]
    return sorted(out, key=lambda x: (-x.score, -(x.success_rate or 0.0), -x.n, x.playbook))


def suggest(ledger: Ledger, event: Event, candidates: Sequence[str] = ()) -> list[Suggestion]:
    """Suggestions for the event's class from the outcomes recorded in the store."""
    cls = classify(event)
    counts = {pb: c for (k, pb), c in ledger.outcome_counts().items() if k == cls}
    return rank(counts, candidates)
