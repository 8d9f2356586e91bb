"""``opsmind rca``: which service caused the incident at a time, and the evidence, from files or Prometheus."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsmind.core import OpsmindError


def rca(
    at: Annotated[str, typer.Option("--at", help="When the incident started or was noticed: RFC 3339 "
                                                 "(naive = UTC), unix seconds or now-<duration>.")],
    metrics: Annotated[
        Path | None,
        typer.Option("--metrics", help="Folder of per-service metric CSV files: <service>.csv, or the Nezha layout "
                     "(<pod>_metric.csv[.gz], front_service.csv for SLIs, dependency.csv for call edges, "
                     "source_50/destination_50.csv for per-edge latency)."),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option("--query", help="NAME=PROMQL (with --prometheus, repeatable): one metric per service, the "
                     "series told apart by --service-label, e.g. 'cpu=sum by (service) (rate(cpu_seconds[1m]))'."),
    ] = None,
    sli_query: Annotated[
        list[str] | None,
        typer.Option("--sli-query", help="NAME=PROMQL (with --prometheus, repeatable): a frontend SLI for the "
                     "onset, e.g. 'p95=histogram_quantile(0.95, sum by (le) (rate(http_duration_bucket[1m])))'."),
    ] = None,
    service_label: Annotated[
        str, typer.Option("--service-label", help="Label naming the service in --query results.")
    ] = "service",
    step: Annotated[str, typer.Option("--step", help="Query resolution (with --prometheus).")] = "60s",
    traces: Annotated[
        Path | None, typer.Option("--traces", help="Spans around the incident: Jaeger JSON, OTLP JSON or CSV file "
                                                   "or folder (also gives the call graph).")
    ] = None,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Log CSV file or folder (Nezha layout: TimeUnixNano, PodName, Log).")
    ] = None,
    calls: Annotated[
        Path | None, typer.Option("--calls", help="CSV of call edges: caller and callee columns (e.g. Source, Target).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Services to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")] = False,
) -> None:
    """Rank the services that most likely caused an incident, with the metrics, edges, traces and logs behind it."""
    from opsmind.rca import RcaSettings, analyze
    from opsmind.sources.timeparse import parse_time

    err = Console(stderr=True)
    settings = RcaSettings()
    try:
        at_s = parse_time(at, now=datetime.now(UTC))
        case = _load(metrics, prometheus, query, sli_query, service_label, step, at_s, settings)
        if calls is not None:
            from opsmind.bench.rca import read_calls_file

            case = replace(case, calls=case.calls + read_calls_file(calls))
        if traces is not None:
            from opsmind.sources.traces import read_spans

            batch = read_spans(traces)
            case = replace(case, spans=list(batch.spans), notes=case.notes + batch.warnings)
        if logs is not None:
            from opsmind.bench.rca import read_log_dir

            log_notes: list[str] = []
            case = replace(case, logs=read_log_dir(logs, log_notes), notes=case.notes + tuple(log_notes))
        result = analyze(case, at_s, settings=settings)
    except (OpsmindError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(top=top), indent=2))
        return
    console = Console()
    console.print(f"[bold]onset[/bold] {result.onset}")
    table = Table(title=f"likely root causes (top {min(top, len(result.ranking))} of {len(result.ranking)})")
    table.add_column("#", justify="right")
    table.add_column("service")
    table.add_column("score", justify="right")
    table.add_column("evidence")
    for i, cause in enumerate(result.ranking[:top], start=1):
        lines = [f"[cyan]{ind.metric}[/cyan] {ind.score:.3g}: {ind.evidence}" for ind in cause.indicators[:3]]
        table.add_row(str(i), cause.service, f"{cause.score:.3g}", "\n".join(lines) or "-")
    console.print(table)
    for note in result.notes:
        if not note.startswith("onset:"):  # the onset line above says it
            err.print(f"[yellow]note:[/yellow] {note}")


def _load(metrics: Path | None, prometheus: str | None, query: list[str] | None, sli_query: list[str] | None,
          service_label: str, step: str, at_s: float, settings: Any) -> Any:
    from opsmind.core import Frame
    from opsmind.rca import Case

    if (metrics is None) == (prometheus is None):
        raise OpsmindError("give either --metrics DIR or --prometheus URL with --query NAME=PROMQL")
    if metrics is not None:
        from opsmind.bench.rca import read_case_dir

        return read_case_dir(metrics)
    if not query:
        raise OpsmindError("--prometheus needs at least one --query NAME=PROMQL")
    from opsmind.rca.frames import merge_columns, split_by_label
    from opsmind.sources.prometheus import Prometheus, PrometheusSettings

    start = at_s - settings.baseline_s - settings.search_s
    end = at_s + settings.search_s + settings.window_s
    parts: dict[str, Any] = {}
    notes: list[str] = []
    slis = None
    with Prometheus(PrometheusSettings(url=prometheus)) as prom:
        for name, promql in (_named(q) for q in query):
            frame = prom.query_range(promql, start, end, step)
            parts[name], split_notes = split_by_label(frame, service_label, name)
            notes += split_notes
        sli_parts = {}
        for name, promql in (_named(q) for q in sli_query or []):
            frame = prom.query_range(promql, start, end, step)
            if frame.ndim:
                sli_parts[name] = {"sli": Frame(frame.timestamps, frame.values[:, :1], (name,), name)}
        if sli_parts:
            slis = merge_columns(sli_parts).get("sli")
    per_service = merge_columns(parts)
    if not per_service:
        raise OpsmindError(f"no series with a {service_label!r} label in the query results")
    return Case(metrics=per_service, slis=slis, notes=tuple(notes))


def _named(text: str) -> tuple[str, str]:
    name, sep, promql = text.partition("=")
    if not sep or not name.strip() or not promql.strip() or not name.strip().replace("_", "").isalnum():
        raise OpsmindError(f"expected NAME=PROMQL, got {text!r}")
    return name.strip(), promql.strip()
