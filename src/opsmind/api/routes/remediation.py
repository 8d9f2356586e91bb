"""Remediation: playbooks (list, validate, dry-run against an incident), runs (list, one, approve, deny), the
remediation audit log, and playbook suggestions for an incident.

Runs are never executed here: a dry run (``POST /playbooks/{name}/test``) only plans and asks every guard, and an
approval only records who approved; the engine's remediator executes approved runs on its next cycle.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from opsmind.api.auth import Principal, ReadPrincipal, WritePrincipal
from opsmind.api.errors import ApiError, responses
from opsmind.api.remediation_views import (
    AuditList,
    DecisionIn,
    PlaybookList,
    RemediationHandle,
    RunList,
    SuggestionList,
    TestIn,
    ValidateOut,
    audit_entries,
    error_field,
    playbook_out,
    run_summary,
    suggestion_out,
    validate_text,
)
from opsmind.api.schemas import MAX_TIME_S
from opsmind.api.state import AppState, get_state
from opsmind.api.views import json_response
from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.remediate import Event, Ledger, Remediator, RunRecord, approve, deny, matches, suggest
from opsmind.remediate.classes import classify
from opsmind.remediate.events import matching
from opsmind.remediate.ledger import RunStatus

__all__ = ["get_remediation", "router"]

router = APIRouter(tags=["remediation"], responses=responses(401, 403, 422))
State = Annotated[AppState, Depends(get_state)]

_YAML_TYPES = ("text/yaml", "application/yaml", "application/x-yaml", "text/x-yaml", "text/plain")
_RUN_ID = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="A run id (`run-...`).")
_EXAMPLE = """name: restart-leaking
risk: low
trigger:
  anomaly: {service: "*", metric: memory, min_severity: high}
actions:
  - kind: supervisor.restart
    target: "{{ event.service }}"
"""


def get_remediation(request: Request) -> RemediationHandle:
    """The app's :class:`RemediationHandle` (``app.state.remediation``), made on first use when the app factory
    did not set one."""
    handle = getattr(request.app.state, "remediation", None)
    if handle is None:
        state: AppState = get_state(request)
        handle = RemediationHandle(state.settings, state.store)
        request.app.state.remediation = handle
    assert isinstance(handle, RemediationHandle)
    return handle


Handle = Annotated[RemediationHandle, Depends(get_remediation)]


def _remediator(handle: RemediationHandle) -> Remediator:
    try:
        return handle.get()
    except ConfigError as exc:
        raise ApiError(503, f"remediation is not available: {exc}", code="remediation_unavailable") from None


def _name(principal: Principal) -> str:
    """The name the audit log records: the token's name (``admin`` for the admin token, else ``anonymous``)."""
    return principal.actor.removeprefix("token:")


def _actor(principal: Principal) -> str:
    """The name recorded for an approval or a denial, which needs a named person (a token)."""
    if principal.actor == "anonymous":
        raise ApiError(403, "approving or denying a run needs a named person: send your token "
                       "(Authorization: Bearer <token>)")
    return _name(principal)


# ---- playbooks -------------------------------------------------------------------------------------------------

@router.get("/playbooks", response_model=PlaybookList, summary="List the loaded playbooks",
            responses=responses(503))
def list_playbooks(_: ReadPrincipal, handle: Handle) -> Response:
    rem = _remediator(handle)
    return json_response(PlaybookList(playbooks=[playbook_out(pb, rem.policy, handle.source(pb.name))
                                                 for pb in rem.playbooks]))


_VALIDATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The playbook as YAML text (`Content-Type: text/yaml`), or JSON `{\"text\": \"<yaml>\"}`.",
        "content": {
            "text/yaml": {"schema": {"type": "string"}, "example": _EXAMPLE},
            "application/json": {"schema": {"type": "object", "required": ["text"], "additionalProperties": False,
                                            "properties": {"text": {"type": "string"}}},
                                 "example": {"text": _EXAMPLE}},
        },
    },
}


@router.post("/playbooks/validate", response_model=ValidateOut, summary="Validate a playbook",
             responses=responses(400, 413, 415), openapi_extra=_VALIDATE_BODY)
async def validate_playbook(request: Request, _: ReadPrincipal, handle: Handle) -> ValidateOut:
    """Check a playbook without loading it: `{"ok": true, "name"}`, or a 422 whose message is
    `<body>:line: field.path: message`."""
    ctype = request.headers.get("content-type", "text/yaml").split(";")[0].strip().lower()
    raw = await request.body()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}", field="body") from None
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc.msg} at character {exc.pos}",
                           code="invalid_json", field="body") from None
        if not isinstance(data, dict) or set(data) != {"text"} or not isinstance(data["text"], str):
            raise ApiError(422, 'body: expected {"text": "<the playbook as YAML>"}', field="body.text")
        body = data["text"]
    elif ctype not in _YAML_TYPES:
        raise ApiError(415, f"send the playbook as text/yaml or as JSON {{\"text\": ...}}, not {ctype}",
                       field="header.Content-Type")
    try:
        pb = validate_text(body)
    except ConfigError as exc:
        raise ApiError(422, str(exc), code="invalid_playbook", field=error_field(str(exc))) from None
    try:
        loaded = any(p.name == pb.name for p in handle.get().playbooks)
    except ConfigError:
        loaded = False
    return ValidateOut(name=pb.name, risk=pb.risk, actions=len(pb.actions), loaded=loaded)


@router.post("/playbooks/{name}/test", response_model=RunRecord, summary="Dry-run a playbook against an incident",
             responses=responses(404, 503))
def test_playbook(name: Annotated[str, Path(min_length=1, max_length=100)],
                  body: Annotated[TestIn, Body(examples=[{"incident": "inc-1a2b3c"}])],
                  principal: WritePrincipal, state: State, handle: Handle) -> Response:
    """Plan the playbook for the incident and ask every guard, executing nothing (`dry_run` and `force`): the run
    is recorded as `dry_run` with its plans and each guard's decision."""
    base = _remediator(handle)
    pb = next((p for p in base.playbooks if p.name == name), None)
    if pb is None:
        known = ", ".join(p.name for p in base.playbooks) or "none"
        raise ApiError(404, f"no playbook named {name!r} is loaded (loaded: {known})", field="path.name")
    event = Event.from_incident(state.store.incidents.get(principal.tenant, body.incident))
    if not matches(pb, event):
        why = "is disabled" if not pb.enabled else f"does not trigger on it (trigger: {pb.trigger.kind})"
        raise ApiError(422, f"playbook {name} {why}; incident {body.incident}", code="not_triggered",
                       field="body.incident")
    rem = Remediator(base.settings, state.store, base.executors, base.verifier, playbooks=[pb], policy=base.policy,
                     tenant=principal.tenant, actor=_name(principal))
    try:
        runs = rem.handle(event, state.clock(), dry_run=True, force=True, only=[pb.name])
    except OpsmindError as exc:
        raise ApiError(422, f"playbook {name}: {exc}", field="path.name") from None
    if not runs:  # matches() held above, so handle() plans it; this is a guard against a changed runner
        raise ApiError(422, f"playbook {name} started no run for incident {body.incident}", field="body.incident")
    return json_response(runs[0])


# ---- runs ------------------------------------------------------------------------------------------------------

@router.get("/remediations", response_model=RunList, summary="List remediation runs")
def list_runs(principal: ReadPrincipal, state: State,
              status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
              playbook: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    runs = [r for r in Ledger(state.store, principal.tenant).runs()
            if status in (None, r.status) and playbook in (None, r.playbook)][:limit]
    return json_response(RunList(remediations=[run_summary(r) for r in runs]))


@router.get("/remediations/audit", response_model=AuditList, summary="The remediation audit log")
def list_audit(principal: ReadPrincipal, state: State,
               since: Annotated[float | None, Query(ge=0, le=MAX_TIME_S, description="Unix seconds.")] = None,
               run: Annotated[str | None, Query(min_length=1, max_length=64,
                                                description="Only entries about this run.")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Every remediation decision, newest first: who (`actor`), what (`action`, `target`), when (`at`), why
    (`reason`) and the `result`. Run snapshots (`remediation.run`) carry only the run's identity here."""
    rows = audit_entries(state.store, principal.tenant, since=since, limit=limit, run_id=run)
    return json_response(AuditList(audit=rows))


@router.get("/remediations/{run_id}", response_model=RunRecord, summary="One run, in full",
            responses=responses(404))
def get_run(run_id: Annotated[str, _RUN_ID], principal: ReadPrincipal, state: State) -> Response:
    """The run with its plans, the state read before each action, each guard's decision, the outcomes,
    the rollbacks and the verification."""
    return json_response(Ledger(state.store, principal.tenant).run(run_id))


@router.post("/remediations/{run_id}/approve", response_model=RunRecord, summary="Approve a pending run",
             responses=responses(404, 409))
def approve_run(run_id: Annotated[str, _RUN_ID], principal: WritePrincipal, state: State,
                body: Annotated[DecisionIn | None, Body()] = None) -> Response:
    """A named person (the token's name) approves a run waiting for approval; the engine executes it on its next
    cycle. 409 when the run is not pending (or its request expired)."""
    rec = approve(state.store, principal.tenant, run_id, actor=_actor(principal), at=state.clock(),
                  reason=body.reason if body else None)
    return json_response(rec)


@router.post("/remediations/{run_id}/deny", response_model=RunRecord, summary="Deny a pending run",
             responses=responses(404, 409))
def deny_run(run_id: Annotated[str, _RUN_ID], principal: WritePrincipal, state: State,
             body: Annotated[DecisionIn | None, Body()] = None) -> Response:
    """A named person denies a run waiting for approval (or approved and not started). 409 otherwise."""
    rec = deny(state.store, principal.tenant, run_id, actor=_actor(principal), at=state.clock(),
               reason=body.reason if body else None)
    return json_response(rec)


# ---- suggestions ------------------------------------------------------------------------------------------------

@router.get("/incidents/{key}/suggestions", response_model=SuggestionList, summary="Playbooks suggested for an "
            "incident", responses=responses(404, 503))
def incident_suggestions(key: Annotated[str, Path(min_length=1, max_length=64)], principal: ReadPrincipal,
                         state: State, handle: Handle) -> Response:
    """The playbooks that trigger on the incident, and those that worked on incidents of its class, best observed
    success rate first (lower bound of the 90 % Wilson interval), with the count behind each rate."""
    rem = _remediator(handle)
    event = Event.from_incident(state.store.incidents.get(principal.tenant, key))
    candidates = [p.name for p in matching(rem.playbooks, event)]
    ranked = suggest(Ledger(state.store, principal.tenant), event, candidates)
    by_name = {p.name: p for p in rem.playbooks}
    return json_response(SuggestionList(incident=key, incident_class=classify(event),
                                        suggestions=[suggestion_out(s, by_name, candidates) for s in ranked]))
