"""Alerts as Prometheus and Alertmanager know them, and Alertmanager's fingerprint.

An alert's identity is its label set. Alertmanager identifies an alert by the fingerprint of its labels: the
64-bit FNV-1a hash of the label pairs sorted by name, each name and each value followed by the byte 0xFF (the
Prometheus ``model.LabelSet.Fingerprint``), printed as 16 hex digits. A label with an empty value is no label at
all (Prometheus semantics): Alertmanager drops it, and so do :func:`fingerprint` and :class:`Alert`. Two alerts
with the same labels are the same alert, whatever their annotations or times; :func:`fingerprint` reproduces the
value Alertmanager's API v2 shows.

>>> fingerprint({"alertname": "HighLatency", "service": "checkout"})
'6d0181b725a54201'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from opsmind.core.errors import DataError

__all__ = ["SEVERITY_RANK", "Alert", "fingerprint", "severity_rank"]

_OFFSET64 = 14695981039346656037
_PRIME64 = 1099511628211
_MASK64 = (1 << 64) - 1
_SEP = 0xFF
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: How severe each conventional ``severity`` label value is (higher is worse); unknown values count as warning.
SEVERITY_RANK: Mapping[str, int] = MappingProxyType({
    "critical": 4, "page": 4, "error": 3, "high": 3, "major": 3, "warning": 2, "medium": 2, "minor": 2,
    "info": 1, "low": 1, "none": 0,
})


def _add(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _PRIME64) & _MASK64
    return h


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set, as the 16 hex digits its API shows."""
    h = _OFFSET64
    for name in sorted(k for k, v in labels.items() if v != ""):
        h = _add(h, name.encode())
        h = _add(h, bytes([_SEP]))
        h = _add(h, str(labels[name]).encode())
        h = _add(h, bytes([_SEP]))
    return f"{h:016x}"


def severity_rank(value: str | None) -> int:
    """The rank of a ``severity`` label value (2, warning, when missing or unknown)."""
    if value is None:
        return 2
    return SEVERITY_RANK.get(value.strip().lower(), 2)


@dataclass(frozen=True)
class Alert:
    """One alert: labels (its identity), annotations, and when it started and ended (Unix seconds)."""

    labels: Mapping[str, str]
    starts_at: float
    ends_at: float | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""
    status: Literal["firing", "resolved"] = "firing"

    def __post_init__(self) -> None:
        if not any(v != "" for v in self.labels.values()):
            raise DataError("alert without labels: an alert is identified by its labels")
        for name, value in self.labels.items():
            if not isinstance(name, str) or not _LABEL_NAME.match(name):
                raise DataError(f"alert label name {name!r} is not a valid Prometheus label name")
            if not isinstance(value, str):
                raise DataError(f"alert label {name}={value!r}: values must be strings")
        if not math.isfinite(self.starts_at):
            raise DataError(f"alert {self.name}: start time {self.starts_at!r} is not a time")
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise DataError(f"alert {self.name}: ends ({self.ends_at}) before it starts ({self.starts_at})")
        object.__setattr__(self, "labels", MappingProxyType({k: v for k, v in self.labels.items() if v != ""}))
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "(unnamed)")

    @property
    def severity(self) -> int:
        return severity_rank(self.labels.get("severity"))

    def service(self, keys: tuple[str, ...] = ("service", "app", "job", "deployment", "container")) -> str | None:
        """The service the alert is about: the first of ``keys`` present in the labels."""
        for key in keys:
            if self.labels.get(key):
                return self.labels[key]
        return None

    def is_resolved(self, at: float) -> bool:
        return self.status == "resolved" or (self.ends_at is not None and self.ends_at <= at)
