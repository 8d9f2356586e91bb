"""What the remediation routes answer: playbooks in a readable form, run summaries, the remediation audit log and
playbook suggestions, plus how the API builds its :class:`~opsmind.remediate.Remediator` from the settings.

Runs live in the audit log (:mod:`opsmind.remediate.ledger`): each status change of a run appends a
``remediation.run`` entry holding the run's snapshot, which is also what the ``remediation`` server-sent event
sends (:func:`sse_read`, :func:`sse_render`).

>>> from opsmind.remediate import Playbook
>>> pb = Playbook.model_validate({"name": "p", "risk": "low", "trigger": {"schedule": {"every": "1h"}},
...                              "actions": [{"kind": "shell", "target": "web-1"}]})
>>> trigger_text(pb)
'schedule: every 1h'
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.core.yamlconf import load_model_text
from opsmind.remediate.classes import Suggestion
from opsmind.remediate.guardrails import ApprovalGate, GuardPolicy
from opsmind.remediate.ledger import RunRecord, RunStatus
from opsmind.remediate.playbook import Playbook, load_playbook
from opsmind.store import AuditRecord, Store

if TYPE_CHECKING:
    from opsmind.config import Settings
    from opsmind.remediate.runner import Remediator

__all__ = [
    "AUDIT_ACTIONS",
    "ActionOut",
    "AuditList",
    "DecisionIn",
    "PlaybookList",
    "PlaybookOut",
    "RemediationHandle",
    "RunList",
    "RunSummary",
    "SuggestionList",
    "SuggestionOut",
    "TestIn",
    "ValidateIn",
    "ValidateOut",
    "audit_entries",
    "build_remediator",
    "playbook_out",
    "playbook_sources",
    "run_summary",
    "sse_read",
    "sse_render",
    "sse_version",
    "trigger_text",
    "validate_text",
    "verification_text",
]

#: Audit actions the remediation audit log is made of (everything the ledger and the runner write).
AUDIT_ACTIONS: tuple[str, ...] = ("remediation.run", "remediation.guard", "remediation.action", "remediation.lock",
                                  "remediation.approval", "remediation.outcome", "remediation.notify",
                                  "remediation.run.skipped")
SSE_WINDOW = 50
_MAX_TEXT = 256 * 1024
_MAX_ALIASES = 50
_MAX_DEPTH = 64


# ---- models ----------------------------------------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionOut(_Out):
    name: str | None = Field(None, description="The step's label, when the playbook gives one.")
    kind: str = Field(..., description="Executor kind, e.g. `kubernetes.scale`.")
    target: str = Field(..., description="Target as written (may hold `{{ ... }}` placeholders).")


class PlaybookOut(_Out):
    name: str
    description: str
    risk: str = Field(..., description="low, medium, high, critical.")
    enabled: bool
    dry_run: bool = Field(..., description="The playbook always plans only.")
    trigger_kind: str = Field(..., description="incident, alert, anomaly, forecast or schedule.")
    trigger: str = Field(..., description="The trigger in one readable line.")
    conditions: list[str] = Field(default_factory=list, description="Conditions that must all hold.")
    actions: list[ActionOut]
    verification: str | None = Field(None, description="What must hold after the actions, or null for none.")
    rollback: str = Field(..., description="Rollback mode: auto, actions or none.")
    approval_required: bool = Field(..., description="Runs wait for a named person's approval.")
    source: str | None = Field(None, description="The file the playbook was loaded from.")


class PlaybookList(_Out):
    playbooks: list[PlaybookOut]


class ValidateIn(_In):
    text: str = Field(..., max_length=_MAX_TEXT, description="The playbook's YAML text.")


class ValidateOut(_Out):
    ok: bool = True
    name: str
    risk: str
    actions: int = Field(..., description="Number of actions.")
    loaded: bool = Field(..., description="A playbook of this name is loaded on this server.")


class TestIn(_In):
    incident: str = Field(..., min_length=1, max_length=64, description="Key of a stored incident (`inc-...`).")


class DecisionIn(_In):
    reason: str | None = Field(None, max_length=2000, description="Why (recorded in the audit log).")


class RunSummary(_Out):
    """A run without its bulky parts (plans as lines; outcomes, rollbacks and context in the full record)."""

    run_id: str
    version: int
    playbook: str
    risk: str
    event_kind: str
    event_key: str
    status: RunStatus
    dry_run: bool
    reason: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None = Field(None, description="When a pending approval expires.")
    approved_by: str | None
    incident_class: str | None
    targets: list[str]
    plan: list[str] = Field(..., description="One line per planned action: what would change.")
    guards: list[dict[str, Any]] = Field(..., description="Each guard's decision: guard, outcome, reason.")
    actions: int = Field(..., description="Actions executed (forward).")
    actions_failed: int
    rollbacks: int = Field(..., description="Rollback steps taken.")
    verification: dict[str, Any] | None = Field(None, description="ok, value, detail, checks, started_at, "
                                                "finished_at.")


class RunList(_Out):
    remediations: list[RunSummary]


class AuditList(_Out):
    audit: list[AuditRecord]


class SuggestionOut(_Out):
    playbook: str
    success_rate: float | None = Field(..., description="Share of successful runs on this incident class; null "
                                       "when never tried.")
    n: int = Field(..., description="Runs the rate is based on.")
    successes: int
    available: bool = Field(..., description="The playbook is loaded and triggers on this incident (it can be "
                            "dry-run).")
    risk: str | None = None
    description: str | None = None


class SuggestionList(_Out):
    incident: str
    incident_class: str
    suggestions: list[SuggestionOut]


# ---- playbooks -------------------------------------------------------------------------------------------------

def trigger_text(pb: Playbook) -> str:
    """The trigger in one line: ``incident: alertname=~"X", severity="high" (P3 or higher)``."""
    t = pb.trigger
    if t.incident is not None:
        match = ", ".join(str(m) for m in t.incident.match) or "any alert"
        return f"incident: {match} ({t.incident.min_priority} or higher)"
    if t.alert is not None:
        return "alert: " + ", ".join(str(m) for m in t.alert.match)
    if t.anomaly is not None:
        return (f"anomaly: {t.anomaly.service}/{t.anomaly.metric}, severity {t.anomaly.min_severity} "
                f"or higher")
    if t.forecast is not None:
        return f"forecast breach: {t.forecast.service}/{t.forecast.metric} within {t.forecast.within_s:g} s"
    assert t.schedule is not None
    return f"schedule: every {t.schedule.every}"


def verification_text(pb: Playbook) -> str | None:
    v = pb.verification
    if v is None:
        return None
    if v.slo is not None:
        what = f"SLO {v.slo.objective} of {v.slo.service}"
    else:
        what = f"{v.query} {v.op} {v.value:g}" if v.value is not None else str(v.query)
    return f"{what} within {v.within_s:g} s (every {v.interval_s:g} s)"


def playbook_out(pb: Playbook, policy: GuardPolicy, source: str | None) -> PlaybookOut:
    return PlaybookOut(
        name=pb.name, description=" ".join(pb.description.split()), risk=pb.risk, enabled=pb.enabled,
        dry_run=pb.dry_run, trigger_kind=pb.trigger.kind, trigger=trigger_text(pb),
        conditions=[f"{c.path} {c.op} {c.value!r}" if isinstance(c.value, str) else f"{c.path} {c.op} {c.value:g}"
                    for c in pb.conditions],
        actions=[ActionOut(name=a.name, kind=a.kind, target=a.target) for a in pb.actions],
        verification=verification_text(pb), rollback=pb.rollback.mode,
        approval_required=ApprovalGate.required(pb, policy.approval_from), source=source)


def _files(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


def playbook_sources(paths: Iterable[Path | str]) -> dict[str, str]:
    """Playbook name -> the file it is in, for the files and folders given (unreadable files are left out)."""
    out: dict[str, str] = {}
    for f in _files(paths):
        try:
            out.setdefault(load_playbook(f).name, str(f))
        except OpsmindError:
            continue
    return out


_ERROR = re.compile(r"^<body>(?::\d+)?: ([A-Za-z_][A-Za-z0-9_.\[\]]*|\(top level\)): ")


def validate_text(text: str) -> Playbook:
    """The playbook in ``text``; ``ConfigError`` ``<body>:line: field.path: message`` when it is malformed."""
    if len(text) > _MAX_TEXT:
        raise ConfigError(f"<body>: a playbook has at most {_MAX_TEXT} characters, got {len(text)}")
    depth = deepest = 0  # PyYAML's scanner is slow on deeply nested flow collections; playbooks are shallow
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > _MAX_DEPTH:
        raise ConfigError(f"<body>: invalid YAML: brackets nested {deepest} deep, at most {_MAX_DEPTH}")
    try:  # aliases can make a small text a huge document ("billion laughs"); playbooks need few
        aliases = sum(1 for tok in yaml.scan(text, Loader=yaml.SafeLoader) if isinstance(tok, yaml.AliasToken))
    except yaml.YAMLError:
        aliases = 0  # load_model_text reports the syntax error with its line
    if aliases > _MAX_ALIASES:
        raise ConfigError(f"<body>: invalid YAML: {aliases} aliases (*name), at most {_MAX_ALIASES}; write the "
                          f"values out")
    try:
        return load_model_text(text, Playbook, where="<body>")
    except RecursionError:
        raise ConfigError("<body>: invalid YAML: nested too deeply") from None


def error_field(message: str) -> str:
    """``body.actions[0].kind`` from ``<body>:8: actions[0].kind: ...`` (``body`` when no field is named)."""
    m = _ERROR.match(message)
    if m is None or m.group(1) == "(top level)":
        return "body"
    return f"body.{m.group(1)}"


# ---- runs ------------------------------------------------------------------------------------------------------

def run_summary(run: RunRecord) -> RunSummary:
    forward = [o for o in run.outcomes if not o.get("dry_run")]
    return RunSummary(
        run_id=run.run_id, version=run.version, playbook=run.playbook, risk=run.risk, event_kind=run.event_kind,
        event_key=run.event_key, status=run.status, dry_run=run.dry_run, reason=run.reason,
        created_at=run.created_at, updated_at=run.updated_at, started_at=run.started_at,
        finished_at=run.finished_at, expires_at=run.expires_at, approved_by=run.approved_by,
        incident_class=run.incident_class, targets=list(run.targets),
        plan=[str(p.get("describe") or f"{p.get('kind')} on {p.get('target')}") for p in run.plans],
        guards=[{"guard": g.get("guard"), "outcome": g.get("outcome"), "reason": g.get("reason")}
                for g in run.guards],
        actions=len(forward), actions_failed=sum(1 for o in forward if not o.get("ok")),
        rollbacks=len(run.rollbacks), verification=run.verification)


def _run_of(row: AuditRecord) -> RunRecord | None:
    try:
        return RunRecord.model_validate(row.details)
    except ValidationError:
        return None


def sse_read(store: Store, tenant: str) -> list[AuditRecord]:
    """The newest run snapshots (one per status change), for the ``remediation`` event kind."""
    return store.audit.list(tenant, action="remediation.run", limit=SSE_WINDOW)


def sse_version(row: AuditRecord) -> float:
    return float(row.at)


def sse_render(_: Store, __: str, rows: Sequence[AuditRecord], ___: Any) -> list[str]:
    """Each snapshot as the run list answers it (a summary)."""
    out: list[str] = []
    for row in rows:
        run = _run_of(row)
        if run is None:
            out.append(RunSummaryFallback(run_id=row.target or "", status=row.result).model_dump_json())
        else:
            out.append(run_summary(run).model_dump_json())
    return out


class RunSummaryFallback(_Out):
    """What an event carries for a snapshot that cannot be read (written by another opsmind version)."""

    run_id: str
    status: str


# ---- audit -----------------------------------------------------------------------------------------------------

def _compact(row: AuditRecord) -> AuditRecord:
    """A ``remediation.run`` entry with the run's snapshot replaced by its identity (the full run is at
    ``/remediations/{run_id}``)."""
    if row.action != "remediation.run" or not isinstance(row.details, Mapping):
        return row
    d = row.details
    small = {"run_id": d.get("run_id"), "playbook": d.get("playbook"), "status": d.get("status"),
             "version": d.get("version"), "event": d.get("event_key")}
    return row.model_copy(update={"details": small})


def audit_entries(store: Store, tenant: str, *, since: float | None, limit: int,
                  run_id: str | None = None) -> list[AuditRecord]:
    """Remediation audit entries newest first (``remediation.*`` actions), optionally only those about one run."""
    scan = limit if run_id is None else 100_000
    rows: list[AuditRecord] = []
    for action in AUDIT_ACTIONS:
        rows.extend(store.audit.list(tenant, action=action, since=since, limit=scan))
    if run_id is not None:
        rows = [r for r in rows if r.target == run_id
                or (isinstance(r.details, Mapping) and r.details.get("run_id") == run_id)]
    rows.sort(key=lambda r: (r.at, r.id), reverse=True)
    return [_compact(r) for r in rows[:limit]]


def suggestion_out(s: Suggestion, playbooks: Mapping[str, Playbook], available: Iterable[str]) -> SuggestionOut:
    pb = playbooks.get(s.playbook)
    return SuggestionOut(playbook=s.playbook, success_rate=s.success_rate, n=s.n, successes=s.successes,
                         available=s.playbook in set(available), risk=pb.risk if pb else None,
                         description=" ".join(pb.description.split()) if pb else None)


# ---- the remediator the API uses ------------------------------------------------------------------------------

def build_remediator(settings: Settings, store: Store) -> Remediator:
    """The remediator of ``settings.remediation``, built as the engine builds it (its playbooks, an executor per
    action kind they use, a Prometheus verifier when ``settings.prometheus`` is set). ``ConfigError`` when a
    playbook or an executor's settings are malformed."""
    from opsmind.engine.remediation import build_remediator as build

    return build(settings, store)


@dataclass
class RemediationHandle:
    """The API's remediator (built on first use when none was given) and where its playbooks came from."""

    settings: Settings
    store: Store
    remediator: Remediator | None = None
    sources: dict[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Remediator:
        """The remediator; ``ConfigError`` when it cannot be built (tried again on the next call)."""
        with self.lock:
            if self.remediator is None:
                self.remediator = build_remediator(self.settings, self.store)
            return self.remediator

    def source(self, name: str) -> str | None:
        with self.lock:
            if self.sources is None:
                self.sources = playbook_sources(self.settings.remediation.playbooks)
            return self.sources.get(name)
