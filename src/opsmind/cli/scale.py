"""``opsmind scale ...``: replay a load trace under a scaling policy; set a Deployment's replicas (dry-run)."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from opsmind.core import OpsmindError

scale_app = typer.Typer(help="Autoscaling: replay traces under a policy, and actuate a Kubernetes Deployment.",
                        no_args_is_help=True)


class PolicyName(StrEnum):
    hpa = "hpa"
    opsmind = "opsmind"
    holt_winters = "holt-winters"
    effective = "effective"


class Format(StrEnum):
    table = "table"
    json = "json"


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@scale_app.command("simulate")
def simulate(
    trace: Annotated[Path, typer.Argument(help="CSV or Parquet load trace: a timestamp column and a value column.")],
    policy: Annotated[PolicyName, typer.Option("--policy", "-p", help="Scaling policy.")] = PolicyName.opsmind,
    output: Annotated[Format, typer.Option("--format", "-f", help="table, or JSON on stdout.")] = Format.table,
    column: Annotated[str | None, typer.Option("--column", "-c", help="Value column (default: the first).")] = None,
    mu: Annotated[float, typer.Option("--mu", min=1e-9, help="Requests per second one replica serves.")] = 10.0,
    slo: Annotated[float, typer.Option("--slo", min=1e-9, help="Latency SLO in seconds on the quantile below.")] = 0.5,
    slo_quantile: Annotated[
        float, typer.Option("--slo-quantile", min=0.5, max=0.999, help="SLO quantile of the response time.")
    ] = 0.95,
    startup: Annotated[float, typer.Option("--startup", min=0, help="Seconds before a new replica serves.")] = 120.0,
    min_replicas: Annotated[int, typer.Option("--min", min=1, help="Fewest replicas.")] = 1,
    max_replicas: Annotated[int, typer.Option("--max", min=1, help="Most replicas.")] = 100,
    size: Annotated[
        int, typer.Option("--size", min=0, help="Scale the trace so its 99th percentile needs this many replicas "
                          "(0: the values are already requests per second).")
    ] = 25,
    warmup: Annotated[float, typer.Option("--warmup", min=0, help="Days of history before scoring starts.")] = 2.0,
    step: Annotated[float, typer.Option("--step", min=1, help="Control step in seconds.")] = 60.0,
    target: Annotated[
        float, typer.Option("--target", min=0.05, max=1.0, help="CPU target of the HPA-based policies (0.7 = 70 %).")
    ] = 0.7,
    actions: Annotated[
        Path | None, typer.Option("--actions", help="Write every scaling decision (with its explanation) here: "
                                  ".json or .yaml.")
    ] = None,
) -> None:
    """Replay TRACE under a policy: SLO-violation minutes, replica-hours, scaling actions, under/over-provisioning."""
    from opsmind.scale import ServiceModel
    from opsmind.scale import simulate as run
    from opsmind.scale.kube import recommendations
    from opsmind.sources.files import read_frame

    err = Console(stderr=True)
    try:
        model = ServiceModel(mu=mu, slo_latency_s=slo, slo_quantile=slo_quantile, startup_s=startup)
        if min_replicas > max_replicas:
            raise OpsmindError(f"--min ({min_replicas}) is above --max ({max_replicas})")
        frame = read_frame(trace, columns=[column] if column else None)
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"replaying under {policy.value}", total=None)
            prepared, result = run(frame, policy.value, model, step_s=step, column=column,
                                   size_replicas=size or None, warmup_s=warmup * 86400.0, min_replicas=min_replicas,
                                   max_replicas=max_replicas, target_utilization=target,
                                   progress=lambda n: bar.advance(task, n))
        if actions is not None and result is not None:
            yaml_out = actions.suffix.lower() in (".yaml", ".yml")
            actions.write_text(recommendations(result.actions, "yaml" if yaml_out else "json"))
    except (OpsmindError, OSError) as exc:
        _fail(str(exc))
    for note in prepared.notes:
        err.print(f"[yellow]note:[/yellow] {prepared.name}: {note}")
    if result is None:
        skipped: dict[str, Any] = {"trace": prepared.name, "policy": policy.value, "scored": False,
                                   "notes": prepared.notes}
        if output is Format.json:
            typer.echo(json.dumps(skipped, indent=2))
        else:
            err.print(f"[red]not replayed:[/red] {prepared.notes[-1] if prepared.notes else 'unusable trace'}")
        return
    for note in result.notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    summary: dict[str, Any] = {"trace": prepared.name, "policy": policy.value, "service": model.describe(),
               "scale": prepared.scale, **result.summary(),
               "last_actions": [a.to_dict() for a in result.actions[-5:]]}
    summary["metrics"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in result.metrics.items()}
    if output is Format.json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    t = Table(title=f"{prepared.name} under {policy.value}  ({model.describe()})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result.metrics.items():
        t.add_row(k, "-" if not math.isfinite(v) else f"{v:,.2f}")
    t.add_row("scored minutes", f"{int(result.scored.sum() * step / 60):,}")
    console.print(t)
    for a in result.actions[-5:]:
        console.print(f"  {a.to_dict()['time']}  {a.explain()}")


@scale_app.command("apply")
def apply(
    deployment: Annotated[str, typer.Option("--deployment", "-d", help="Deployment name.")],
    replicas: Annotated[int, typer.Option("--replicas", "-r", min=0, help="Replica count to set.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")] = "default",
    execute: Annotated[
        bool, typer.Option("--execute", help="Really patch the Deployment (default: dry run, print the plan).")
    ] = False,
    host: Annotated[str | None, typer.Option("--host", help="API server URL (default: kubeconfig/in-cluster).")] = None,
    kubeconfig: Annotated[str | None, typer.Option("--kubeconfig", help="Path of a kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context.")] = None,
) -> None:
    """Set a Deployment's replica count through the Kubernetes API (apps/v1 scale); a dry run unless --execute."""
    from opsmind.scale.kube import KubernetesScaler

    try:
        if execute:
            scaler = KubernetesScaler.connect(namespace, deployment, host=host, kubeconfig=kubeconfig, context=context)
        else:
            scaler = KubernetesScaler(namespace, deployment)
        outcome = scaler.execute(scaler.plan(replicas), dry_run=not execute)
    except OpsmindError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(outcome.to_dict(), indent=2))
