"""Remediation playbooks: what triggers them, the ordered actions, how success is verified and how it is undone.

A playbook is a YAML file validated by :class:`Playbook` (unknown fields are errors); :func:`load_playbook` gives
``file:line: field.path: message`` for a malformed one. Targets and parameters may name the triggering event with
``{{ incident.root_cause }}``-style placeholders: a dotted path looked up in a plain dictionary, nothing evaluated.

>>> pb = Playbook.model_validate({
...     "name": "restart-leaking", "risk": "medium",
...     "trigger": {"alert": {"match": ['alertname="MemoryLeak"', 'service=~"check.*"']}},
...     "actions": [{"kind": "supervisor.restart", "target": "{{ labels.service }}"}],
...     "verification": {"query": "max(memory_bytes)", "op": "<", "value": 1e9, "within_s": 300}})
>>> pb.trigger.kind, pb.actions[0].render_target({"labels": {"service": "checkout"}})
('alert', 'checkout')
>>> pb.trigger.alert.match[1].matches({"service": "checkout"})
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from opsmind.core.errors import ConfigError
from opsmind.core.yamlconf import load_model
from opsmind.sources.timeparse import parse_duration

__all__ = [
    "EXECUTOR_KINDS",
    "RISK_TIERS",
    "Action",
    "Condition",
    "GuardrailSettings",
    "MaintenanceWindow",
    "Matcher",
    "Playbook",
    "Rollback",
    "Trigger",
    "Verification",
    "load_playbook",
    "load_playbooks",
    "playbook_schema",
    "render",
    "risk_rank",
]

RiskTier = Literal["low", "medium", "high", "critical"]
RISK_TIERS: tuple[str, ...] = ("low", "medium", "high", "critical")
Severity = Literal["low", "medium", "high", "critical"]

#: Action kinds a playbook may name (the executors in :mod:`opsmind.remediate.executors`). Validation takes
#: another set from the context key ``kinds`` (``Playbook.model_validate(data, context={"kinds": [...]})``).
EXECUTOR_KINDS: tuple[str, ...] = (
    "kubernetes.scale", "kubernetes.restart", "kubernetes.rollback", "kubernetes.cordon",
    "alertmanager.silence", "alertmanager.expire", "http.webhook", "shell", "supervisor.restart",
    "supervisor.start", "supervisor.stop",
)

_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*$")
_ROOTS = ("incident", "event", "labels", "playbook")
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')
_CONDITION = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|==|<=|>=|<|>|=)\s*'
                        r'(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$')
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEK: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def risk_rank(tier: str) -> int:
    """0 for low ... 3 for critical."""
    return RISK_TIERS.index(tier)


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise ConfigError(f"placeholder {{{{ {path} }}}}: the event has no {path!r}")
    if value is None:
        raise ConfigError(f"placeholder {{{{ {path} }}}}: {path!r} is empty for this event")
    return value


def render(text: str, context: Mapping[str, Any], *, escape: bool = False) -> str:
    """Replace each ``{{ dotted.path }}`` by its value in ``context`` (``ConfigError`` when missing). With
    ``escape``, values are escaped for a double-quoted PromQL string.

    >>> render("deploy/{{ incident.root_cause }}", {"incident": {"root_cause": "checkout"}})
    'deploy/checkout'
    """
    def one(m: re.Match[str]) -> str:
        value = str(_lookup(context, m.group(1)))
        return value.replace("\\", "\\\\").replace('"', '\\"') if escape else value

    return _TEMPLATE.sub(one, text)


def _check_placeholders(text: str) -> str:
    for m in _TEMPLATE.finditer(text):
        path = m.group(1)
        if not _PATH.match(path) or path.split(".")[0] not in _ROOTS:
            raise ValueError(f"placeholder {{{{ {path} }}}} must be a dotted path starting with one of "
                             f"{', '.join(_ROOTS)}")
    return text


def _render_params(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole is not None:  # a lone placeholder keeps the value's type (a number stays a number)
            return _lookup(context, whole.group(1))
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: _render_params(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_params(v, context) for v in value]
    return value


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Matcher(_Model):
    """A Prometheus-style label matcher; written as a string (``severity=~"critical|high"``) or a mapping. A
    missing label has the empty value; regular expressions match the whole value."""

    label: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Label name.")
    op: Literal["=", "!=", "=~", "!~"] = Field("=", description="Equal, not equal, regex match, regex no match.")
    value: str = Field("", description="Value or regular expression.")

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _MATCHER.match(data)
            if m is None:
                raise ValueError(f"cannot read {data!r} as a label matcher (examples: alertname=\"X\", "
                                 f"service=~\"check.*\", env!=\"dev\")")
            raw = m.group(3) if m.group(3) is not None else m.group(4)
            return {"label": m.group(1), "op": m.group(2), "value": raw.replace('\\"', '"')}
        return data

    @model_validator(mode="after")
    def _regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.value!r}: {exc}") from None
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = str(labels.get(self.label, ""))
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


class IncidentTrigger(_Model):
    """An incident with an alert whose labels (plus ``incident``, ``priority`` and ``root_cause``) match."""

    match: list[Matcher] = Field(default_factory=list, description="Label matchers, all must hold for one alert.")
    min_priority: Literal["P1", "P2", "P3", "P4"] = Field("P4", description="Lowest incident priority (P1 highest).")


class AlertTrigger(_Model):
    """A firing alert whose labels match."""

    match: list[Matcher] = Field(..., min_length=1, description="Label matchers, all must hold.")


class AnomalyTrigger(_Model):
    """An anomaly on a series of a service."""

    service: str = Field(..., description="The series' service (`*` for any).")
    metric: str = Field("*", description="The series' metric name from the service's `metrics` (`*` for any).")
    min_severity: Severity = Field("medium", description="Lowest anomaly severity that triggers.")


class ForecastTrigger(_Model):
    """A forecast breach: a capacity or SLO breach predicted within ``within_s``."""

    service: str = Field(..., description="The service (`*` for any).")
    metric: str = Field("*", description="The forecast series' metric name (`*` for any).")
    within_s: float = Field(3600.0, gt=0, description="Trigger when the breach is predicted within this long.")


class ScheduleTrigger(_Model):
    """Every ``every`` (a duration: `15m`, `1h`, `1d`), aligned to the Unix epoch."""

    every: str = Field(..., description="Interval between runs, e.g. `1h`.")

    @field_validator("every")
    @classmethod
    def _every(cls, v: str) -> str:
        try:
            seconds = parse_duration(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if seconds < 60:
            raise ValueError("a schedule runs at most once a minute")
        return v

    @property
    def every_s(self) -> float:
        return parse_duration(self.every)


class Trigger(_Model):
    """What starts the playbook: exactly one of ``incident``, ``alert``, ``anomaly``, ``forecast``, ``schedule``."""

    incident: IncidentTrigger | None = None
    alert: AlertTrigger | None = None
    anomaly: AnomalyTrigger | None = None
    forecast: ForecastTrigger | None = None
    schedule: ScheduleTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        given = [k for k in ("incident", "alert", "anomaly", "forecast", "schedule") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of incident, alert, anomaly, forecast, schedule"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("incident", "alert", "anomaly", "forecast", "schedule") if getattr(self, k))


class Condition(_Model):
    """A test on the event, written ``path op value`` (``incident.priority =~ "P1|P2"``, ``event.value > 0.9``).
    Numbers compare as numbers; a missing path is false."""

    path: str = Field(..., description="Dotted path into the event (incident..., event..., labels...).")
    op: Literal["==", "!=", "=~", "!~", "<", "<=", ">", ">="] = "=="
    value: str | float = Field(..., description="What to compare with.")

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _CONDITION.match(data)
            if m is None:
                raise ValueError(f"cannot read {data!r} as a condition (examples: incident.priority == \"P1\", "
                                 f"event.value > 0.9)")
            op = "==" if m.group(2) == "=" else m.group(2)
            raw = m.group(3) if m.group(3) is not None else m.group(4)
            return {"path": m.group(1), "op": op, "value": raw}
        return data

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if self.path.split(".")[0] not in _ROOTS:
            raise ValueError(f"path must start with one of {', '.join(_ROOTS)}")
        if self.op in ("=~", "!~"):
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.value!r}: {exc}") from None
        return self

    def holds(self, context: Mapping[str, Any]) -> bool:
        try:
            have = _lookup(context, self.path)
        except ConfigError:
            return False
        if self.op in ("<", "<=", ">", ">="):
            try:
                a, b = float(have), float(self.value)
            except (TypeError, ValueError):
                return False
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[self.op]
        text, want = str(have), str(self.value)
        if self.op == "==":
            return text == want or _num_eq(have, self.value)
        if self.op == "!=":
            return not (text == want or _num_eq(have, self.value))
        hit = re.fullmatch(want, text) is not None
        return hit if self.op == "=~" else not hit


def _num_eq(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


class Action(_Model):
    """One step: an executor ``kind`` acting on ``target`` with ``params`` (both may hold placeholders)."""

    name: str | None = Field(None, description="A label for the step in plans and the audit log.")
    kind: str = Field(..., description="Executor kind, e.g. `kubernetes.scale`, `supervisor.restart`, `shell`.",
                      json_schema_extra={"enum": list(EXECUTOR_KINDS)})
    target: str = Field(..., min_length=1, description="What the action acts on; may hold `{{ incident.root_cause }}`"
                        "-style placeholders.")
    params: dict[str, Any] = Field(default_factory=dict, description="Executor parameters (placeholders allowed "
                                   "in strings).")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str, info: ValidationInfo) -> str:
        kinds = (info.context or {}).get("kinds") or EXECUTOR_KINDS
        if v not in kinds:
            raise ValueError(f"unknown executor kind {v!r}; known: {', '.join(sorted(kinds))}")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return _check_placeholders(v)

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        for s in _strings(v):
            _check_placeholders(s)
        return v

    def render_target(self, context: Mapping[str, Any]) -> str:
        return render(self.target, context)

    def render_params(self, context: Mapping[str, Any]) -> dict[str, Any]:
        out = _render_params(self.params, context)
        assert isinstance(out, dict)
        return out


class SloRef(_Model):
    """An objective of a configured service (``Settings.services[].slo``)."""

    service: str = Field(..., description="Service name from the configuration.")
    objective: Literal["latency", "availability"] = Field("latency", description="Which objective must hold.")
    latency_unit_s: float = Field(1.0, gt=0, description="Seconds per unit of the latency metric (0.001 if ms).")


class Verification(_Model):
    """Success test after the actions: ``query`` (PromQL; every returned series) ``op`` ``value`` must hold
    within ``within_s``; or ``slo``, an objective of a configured service."""

    query: str | None = Field(None, description="PromQL instant query (placeholders allowed, quoted safely).")
    op: Literal["<", "<=", ">", ">=", "==", "!="] = Field("<=", description="Comparison of each value to `value`.")
    value: float | None = Field(None, description="Threshold for `query`.")
    slo: SloRef | None = Field(None, description="Instead of query/value: an SLO that must hold.")
    within_s: float = Field(300.0, gt=0, le=86400, description="Give up (and roll back) after this long.")
    interval_s: float = Field(15.0, gt=0, description="Seconds between checks.")

    @model_validator(mode="after")
    def _one(self) -> Verification:
        if (self.query is None) == (self.slo is None):
            raise ValueError("give either query (with value) or slo")
        if self.query is not None:
            if self.value is None:
                raise ValueError("a query needs a value to compare with")
            _check_placeholders(self.query)
        return self

    def holds(self, observed: float) -> bool:
        v = float(self.value if self.value is not None else 0.0)
        return {"<": observed < v, "<=": observed <= v, ">": observed > v, ">=": observed >= v,
                "==": observed == v, "!=": observed != v}[self.op]


class Rollback(_Model):
    """How to undo the actions when verification fails: ``auto`` (each executor restores its ``before`` state,
    in reverse order), ``actions`` (the listed actions) or ``none``."""

    mode: Literal["auto", "actions", "none"] = "auto"
    actions: list[Action] = Field(default_factory=list, description="For mode `actions`: what to run instead.")

    @model_validator(mode="after")
    def _actions(self) -> Rollback:
        if self.mode == "actions" and not self.actions:
            raise ValueError("mode 'actions' needs at least one action")
        if self.mode != "actions" and self.actions:
            raise ValueError(f"actions are only used with mode 'actions' (mode is {self.mode!r})")
        return self


class MaintenanceWindow(_Model):
    """A weekly window in UTC (``days`` and ``start``-``end`` as HH:MM; end before start crosses midnight), or
    an absolute one (``start_at``-``end_at``, Unix seconds)."""

    days: list[Weekday] = Field(default_factory=lambda: list(_WEEK), description="Weekdays the window starts on.")
    start: str | None = Field(None, description="Start time HH:MM (UTC).")
    end: str | None = Field(None, description="End time HH:MM (UTC).")
    start_at: float | None = Field(None, description="Absolute start (Unix seconds).")
    end_at: float | None = Field(None, description="Absolute end (Unix seconds).")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v is not None and not _HHMM.match(v):
            raise ValueError(f"use HH:MM (24 h, UTC), got {v!r}")
        return v

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        weekly = self.start is not None and self.end is not None
        absolute = self.start_at is not None and self.end_at is not None
        if weekly == absolute:
            raise ValueError("give start and end (HH:MM), or start_at and end_at (Unix seconds)")
        if absolute and self.end_at <= self.start_at:  # type: ignore[operator]
            raise ValueError("end_at must be after start_at")
        return self

    def contains(self, at: float) -> bool:
        if self.start_at is not None and self.end_at is not None:
            return self.start_at <= at < self.end_at
        assert self.start is not None and self.end is not None
        s = int(self.start[:2]) * 3600 + int(self.start[3:]) * 60
        e = int(self.end[:2]) * 3600 + int(self.end[3:]) * 60
        day = int(at // 86400)
        sec = at - day * 86400
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday (index 3 from Monday)
        days = {_DAYS.index(d) for d in self.days}
        if s < e:
            return weekday in days and s <= sec < e
        if s == e:  # a whole day
            return weekday in days
        return (weekday in days and sec >= s) or (((weekday - 1) % 7) in days and sec < e)


class GuardrailSettings(_Model):
    """Per-playbook limits (the global policy adds the action allow-list and default approval tier)."""

    max_runs: int = Field(3, ge=1, description="At most this many runs of the playbook ...")
    per_s: float = Field(3600.0, gt=0, description="... per this many seconds (sliding window).")
    target_max_runs: int = Field(1, ge=1, description="At most this many executed actions on one target ...")
    target_per_s: float = Field(1800.0, gt=0, description="... per this many seconds (sliding window).")
    max_targets: int = Field(1, ge=1, description="Blast radius: distinct targets one run may act on.")
    max_replica_share: float = Field(0.5, gt=0, le=10, description="Blast radius: largest share of a target's "
                                     "replicas one scale action may add or remove (|new - old| / old).")
    approval_from: RiskTier | Literal["never"] | None = Field(
        None, description="Risk tier from which a human must approve (overrides the global policy).")
    approval_ttl_s: float = Field(3600.0, gt=0, description="A pending approval expires after this long.")
    breaker_failures: int = Field(3, ge=1, description="Consecutive failed verifications that open the breaker.")
    breaker_cooldown_s: float = Field(1800.0, gt=0, description="How long an open breaker blocks before one trial.")
    lock_ttl_s: float = Field(900.0, gt=0, description="A target lock held longer than this is released.")
    maintenance: list[MaintenanceWindow] = Field(default_factory=list, description="Maintenance windows.")
    maintenance_mode: Literal["block", "only"] = Field(
        "block", description="`block`: no automatic action inside a window; `only`: only inside one.")


class Playbook(_Model):
    """A remediation playbook."""

    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Unique name (lowercase, digits, "
                      "`-_.`).")
    description: str = Field("", description="What it fixes and why it is safe.")
    risk: RiskTier = Field(..., description="Risk tier: low, medium, high, critical (approval gate).")
    enabled: bool = Field(True, description="A disabled playbook never triggers.")
    dry_run: bool = Field(False, description="Always plan only, whatever the global setting.")
    trigger: Trigger
    conditions: list[Condition] = Field(default_factory=list, description="All must hold on the event.")
    actions: list[Action] = Field(..., min_length=1, max_length=20, description="Run in order.")
    verification: Verification | None = Field(None, description="What must hold after the actions.")
    rollback: Rollback = Field(default_factory=Rollback, description="How to undo on failed verification.")
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file (``docs/playbook.schema.json``)."""
    schema = Playbook.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://opsmind.dev/playbook.schema.json"
    return schema


def load_playbook(path: Path | str, *, kinds: Iterable[str] | None = None) -> Playbook:
    """A playbook file; ``ConfigError`` naming ``file:line: field.path`` when it is malformed."""
    ctx = {"kinds": tuple(kinds)} if kinds is not None else None
    return load_model(path, Playbook, build=lambda d: Playbook.model_validate(d, context=ctx))


def load_playbooks(paths: Iterable[Path | str], *, kinds: Iterable[str] | None = None) -> list[Playbook]:
    """Every playbook in the files and folders (``*.yaml``/``*.yml``) given; names must be unique."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml")))
        else:
            files.append(p)
    kind_set = tuple(kinds) if kinds is not None else None
    out: list[Playbook] = []
    seen: dict[str, Path] = {}
    for f in files:
        pb = load_playbook(f, kinds=kind_set)
        if pb.name in seen:
            raise ConfigError(f"{f}: name: playbook {pb.name!r} is already defined in {seen[pb.name]}")
        seen[pb.name] = f
        out.append(pb)
    return out
