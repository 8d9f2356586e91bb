"""``opsmind playbook ...``: list and validate playbooks, dry-run one against a stored incident, approve or deny
a pending run, read the remediation audit log, print the playbook JSON Schema."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsmind.cli._store import ConfigOpt, DbOpt, TenantOpt, fail, open_store, settings_from
from opsmind.core.errors import OpsmindError

playbook_app = typer.Typer(help="Remediation playbooks: list, validate, test against an incident, approve, deny, "
                           "audit.", no_args_is_help=True)

_console = Console(width=140)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, or JSON on stdout.")]


def load_executors(settings: Any, kinds: Iterable[str]) -> dict[str, Any]:
    """The executors of ``kinds``, each built from ``settings.remediation.executors[kind]`` when the configuration
    has such a section, else from its defaults."""
    from opsmind.remediate.executors import build_executor

    configured = settings.remediation.executors
    return {k: build_executor(k, configured.get(k)) for k in sorted(set(kinds))}


def _playbook_paths(paths: list[Path], settings: Any) -> list[Path]:
    return paths or list(settings.remediation.playbooks)


@playbook_app.command("list")
def list_(
    paths: Annotated[list[Path] | None, typer.Argument(help="Playbook files or folders (default: the "
                                                       "configuration's remediation.playbooks).")] = None,
    config: ConfigOpt = None,
    output: FormatOpt = Format.table,
) -> None:
    """List playbooks: name, risk, trigger, actions."""
    from opsmind.remediate.playbook import load_playbooks

    try:
        pbs = load_playbooks(_playbook_paths(paths or [], settings_from(config)))
    except OpsmindError as exc:
        fail(str(exc))
    if output is Format.json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in pbs], indent=2))
        return
    table = Table("name", "risk", "trigger", "actions", "verification", "rollback")
    for p in pbs:
        v = p.verification
        table.add_row(p.name, p.risk, p.trigger.kind, ", ".join(f"{a.kind} {a.target}" for a in p.actions),
                      "-" if v is None else (f"within {v.within_s:g} s"), p.rollback.mode)
    _console.print(table)


@playbook_app.command("validate")
def validate(files: Annotated[list[Path], typer.Argument(help="Playbook files to check.")]) -> None:
    """Validate playbook files; a malformed one is reported as file:line: field.path: message."""
    from opsmind.remediate.playbook import load_playbook

    bad = 0
    for f in files:
        try:
            pb = load_playbook(f)
        except OpsmindError as exc:
            bad += 1
            typer.echo(f"{exc}", err=True)
            continue
        typer.echo(f"{f}: ok ({pb.name}, risk {pb.risk}, {len(pb.actions)} action(s))")
    if bad:
        raise typer.Exit(1)


@playbook_app.command("test")
def try_playbook(
    file: Annotated[Path, typer.Argument(help="The playbook to dry-run.")],
    incident: Annotated[str, typer.Option("--incident", "-i", help="Key of a stored incident (inc-...).")],
    db: DbOpt = None,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    output: FormatOpt = Format.table,
) -> None:
    """Dry-run a playbook against a stored incident: the plan, and what each guardrail decides. Nothing changes
    (the run and its decisions are recorded in the audit log as a dry run)."""
    from opsmind.remediate import Event, Remediator, load_playbook, matches

    try:
        settings = settings_from(config)
        pb = load_playbook(file)
        with open_store(settings, db) as store:
            t = tenant or settings.tenant
            event = Event.from_incident(store.incidents.get(t, incident))
            if not matches(pb, event):
                fail(f"playbook {pb.name} does not trigger on incident {incident} (trigger {pb.trigger.kind}: "
                      f"{pb.trigger.model_dump(exclude_none=True)})", 1)
            executors = load_executors(settings, [a.kind for a in pb.actions])
            rem = Remediator(settings, store, executors, playbooks=[pb], tenant=t, actor="cli")
            runs = rem.handle(event, time.time(), dry_run=True, force=True)
    except OpsmindError as exc:
        fail(str(exc))
    run = runs[0]
    if output is Format.json:
        typer.echo(json.dumps(run.model_dump(mode="json"), indent=2))
        return
    _console.print(f"[bold]{pb.name}[/] on {incident}: {run.status} ({run.run_id})")
    for p in run.plans:
        _console.print(f"  plan: {p['describe']}")
    table = Table("guard", "decision", "reason")
    for d in run.guards:
        table.add_row(d["guard"], d["outcome"], d["reason"])
    _console.print(table)
    _console.print(run.reason)


def _decide(verb: str, run_id: str, actor: str, reason: str | None, db: str | None, tenant: str | None,
            config: Path | None) -> None:
    from opsmind.remediate.ledger import approve, deny

    try:
        settings = settings_from(config)
        with open_store(settings, db) as store:
            fn = approve if verb == "approve" else deny
            rec = fn(store, tenant or settings.tenant, run_id, actor=actor, at=time.time(), reason=reason)
    except OpsmindError as exc:
        fail(str(exc), 1)
    typer.echo(f"{rec.run_id}: {rec.status} by {actor} ({rec.playbook} on {rec.event_key})")


ActorOpt = Annotated[str, typer.Option("--actor", "-a", help="Who decides (recorded in the audit log).")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", "-r", help="Why (recorded in the audit log).")]


@playbook_app.command("approve")
def approve_cmd(run_id: Annotated[str, typer.Argument(help="The pending run (run-...).")], actor: ActorOpt,
                reason: ReasonOpt = None, db: DbOpt = None, tenant: TenantOpt = None,
                config: ConfigOpt = None) -> None:
    """Approve a run waiting for approval; the engine executes it on its next cycle."""
    _decide("approve", run_id, actor, reason, db, tenant, config)


@playbook_app.command("deny")
def deny_cmd(run_id: Annotated[str, typer.Argument(help="The pending run (run-...).")], actor: ActorOpt,
             reason: ReasonOpt = None, db: DbOpt = None, tenant: TenantOpt = None,
             config: ConfigOpt = None) -> None:
    """Deny a run waiting for approval."""
    _decide("deny", run_id, actor, reason, db, tenant, config)


@playbook_app.command("runs")
def runs(db: DbOpt = None, tenant: TenantOpt = None, config: ConfigOpt = None,
         status: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
         output: FormatOpt = Format.table) -> None:
    """Remediation runs, newest first."""
    from opsmind.remediate.ledger import Ledger

    try:
        settings = settings_from(config)
        with open_store(settings, db) as store:
            recs = [r for r in Ledger(store, tenant or settings.tenant).runs() if status in (None, r.status)]
    except OpsmindError as exc:
        fail(str(exc))
    if output is Format.json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in recs], indent=2))
        return
    table = Table("run", "playbook", "event", "status", "targets", "reason")
    for r in recs:
        table.add_row(r.run_id, r.playbook, r.event_key, r.status, ", ".join(r.targets), r.reason)
    _console.print(table)


@playbook_app.command("audit")
def audit(db: DbOpt = None, tenant: TenantOpt = None, config: ConfigOpt = None,
          run: Annotated[str | None, typer.Option("--run", help="Only records about this run.")] = None,
          limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000, help="Newest records.")] = 50,
          output: FormatOpt = Format.table) -> None:
    """The remediation audit log, newest first: who, what, when, why, result."""
    try:
        settings = settings_from(config)
        with open_store(settings, db) as store:
            rows = [r for r in store.audit.list(tenant or settings.tenant, limit=100_000)
                    if r.action.startswith("remediation.")
                    and (run is None or r.target == run or (r.details or {}).get("run_id") == run)][:limit]
    except OpsmindError as exc:
        fail(str(exc))
    if output is Format.json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    table = Table("at (UTC)", "actor", "action", "target", "result", "reason")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.at))
        table.add_row(when, r.actor, r.action.removeprefix("remediation."), r.target or "", r.result, r.reason or "")
    _console.print(table)


@playbook_app.command("schema")
def schema() -> None:
    """Print the playbook JSON Schema (``opsmind playbook schema > docs/playbook.schema.json``)."""
    from opsmind.remediate.playbook import playbook_schema

    typer.echo(json.dumps(playbook_schema(), indent=2, sort_keys=False))
