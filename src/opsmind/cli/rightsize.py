"""``opsmind rightsize``: container requests and limits from usage, what they cost, and patches to apply them."""

from __future__ import annotations

import csv
import json
import math
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.table import Table

from opsmind.core import OpsmindError


class Strategy(StrEnum):
    opsmind = "opsmind"
    vpa = "vpa"
    krr_simple = "krr-simple"


class Fmt(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    yaml = "yaml"


class Unit(StrEnum):
    cores = "cores"
    millicores = "millicores"
    percent = "percent"


_SCALE = {Unit.cores: 1.0, Unit.millicores: 0.001, Unit.percent: 0.01}


def _settings_help() -> str:
    from opsmind.rightsize.aware import ForecastAwareSettings
    from opsmind.rightsize.krr import KRRSettings
    from opsmind.rightsize.vpa import VPASettings

    parts = []
    for name, model in (("opsmind", ForecastAwareSettings), ("vpa", VPASettings), ("krr-simple", KRRSettings)):
        fields = "; ".join(f"{k} ({(f.description or '').rstrip('.')})" for k, f in model.model_fields.items())
        parts.append(f"{name} settings: {fields}.")
    return "Strategy setting KEY=VALUE (repeatable; durations like 12h). " + " ".join(parts)


def _parse_sets(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise OpsmindError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def rightsize(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="CSV or Parquet files, one per workload: timestamp,cpu_cores[,memory_bytes]."),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus base URL with cAdvisor and kube-state-metrics.")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    workload: Annotated[
        str | None, typer.Option("--workload", "-w", help="Only workloads whose name matches this regex.")
    ] = None,
    strategy: Annotated[Strategy, typer.Option("--strategy", "-s", help="Rightsizing strategy.")] = Strategy.opsmind,
    settings: Annotated[list[str] | None, typer.Option("--set", help=_settings_help())] = None,
    start: Annotated[str, typer.Option("--start", help="History start (with --prometheus).")] = "now-14d",
    end: Annotated[str, typer.Option("--end", help="History end.")] = "now",
    step: Annotated[str, typer.Option("--step", help="Sample spacing (with --prometheus).")] = "5m",
    unit: Annotated[Unit, typer.Option("--unit", help="Unit of the CPU column in FILEs.")] = Unit.cores,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Price provider: aws, gcp, azure (default: OpenCost's "
                                 "unit prices; machines from every provider).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="Price region (with --prices or --provider).")] = None,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="Price catalog file (CSV/JSON) added to the built-in one.")
    ] = None,
    current_machine: Annotated[
        str | None, typer.Option("--current-machine", help="Machine type the workload runs on now (for savings).")
    ] = None,
    output: Annotated[Fmt, typer.Option("--format", "-f", help="table, or json/csv/yaml on stdout.")] = Fmt.table,
    patch_dir: Annotated[
        Path | None, typer.Option("--patch-dir", help="Write one kubectl-appliable YAML per workload here.")
    ] = None,
) -> None:
    """Recommend CPU and memory requests and limits per workload, with cost, risk and the cheapest machine."""
    from opsmind.pricing import builtin_catalog, load_catalog
    from opsmind.rightsize import WorkloadUsage, build_recommender
    from opsmind.rightsize.report import rightsize_rows

    try:
        recommender = build_recommender({"type": strategy.value, "params": _parse_sets(settings)})
        usages = _load(files, prometheus, namespace, workload, start, end, step, _SCALE[unit])
        catalog = builtin_catalog()
        if prices is not None:
            catalog = catalog.merged(load_catalog(prices, provider=provider, region=region))
        unit_prices = catalog.unit_prices(provider, region)
        current = catalog.find(current_machine, provider) if current_machine else None
        rows, recs = rightsize_rows(usages, recommender, unit_prices, catalog=catalog, provider=provider,
                                    region=region, current_machine=current)
        if patch_dir is not None:
            from opsmind.rightsize.patch import workload_patches

            items = [(u, r) for u, r in zip(usages, recs, strict=True) if r.defined]
            patches = workload_patches(items)  # type: ignore[arg-type]
            patch_dir.mkdir(parents=True, exist_ok=True)
            for fname, text in patches.items():
                (patch_dir / fname).write_text(text)
    except (OpsmindError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _ = WorkloadUsage
    if output is Fmt.table:
        _print_table(rows, unit_prices.describe(), recommender.name)
        if patch_dir is not None:
            Console().print(f"wrote {len(patches)} patch file(s) to {patch_dir}")
        return
    if output is Fmt.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif output is Fmt.yaml:
        yaml.safe_dump([r.to_dict() for r in rows], sys.stdout, sort_keys=False)
    else:
        flat = [r.flat() for r in rows]
        if flat:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)


def _load(files: list[Path] | None, prometheus: str | None, namespace: str | None, workload: str | None,
          start: str, end: str, step: str, scale: float) -> list[Any]:
    from opsmind.rightsize import WorkloadUsage

    if bool(files) == bool(prometheus):
        raise OpsmindError("give FILE ... or --prometheus URL (one of them)")
    if files:
        from opsmind.bench.rightsize import load_trace
        from opsmind.sources.files import read_frame

        out = []
        for f in files:
            if f.name.endswith(".gz"):  # read_frame reads plain CSV and Parquet; pandas reads gzipped CSV
                data = load_trace(f)
                out.append(WorkloadUsage.from_frame(data.cpu if data.memory is None else _join(data), name=data.name,
                                                    cpu_scale=scale))
                continue
            frame = read_frame(f)
            out.append(WorkloadUsage.from_frame(frame, name=Path(f).stem, cpu_scale=scale))
        return out
    from opsmind.sources.kube_metrics import fetch_containers
    from opsmind.sources.prometheus import Prometheus, PrometheusSettings

    assert prometheus is not None
    with Prometheus(PrometheusSettings(url=prometheus)) as prom:
        found = fetch_containers(prom, start, end, step, namespace=namespace, workload=workload,
                                 now=datetime.now(UTC))
    return [WorkloadUsage.from_metrics(m) for m in found]


def _join(data: Any) -> Any:
    """CPU and memory of a one-pod workload back in one frame (columns cpu_cores, memory_bytes)."""
    from opsmind.core import Frame

    values = np.column_stack([data.cpu.values[:, 0], data.memory.values[:, 0]])
    return Frame(data.cpu.timestamps, values, ("cpu_cores", "memory_bytes"), data.name)


def _money(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"${v:,.2f}"


def _arrow(cur: str, new: str) -> str:
    return new if cur == "-" else f"{cur} → {new}"


def _print_table(rows: list[Any], prices: str, strategy: str) -> None:
    from opsmind.rightsize import fmt_cpu, fmt_memory

    console = Console()
    table = Table(title=f"rightsizing ({strategy}): {len(rows)} workload(s)")
    for col in ("workload", "class", "CPU request", "memory req / limit", "$/month", "risk", "cheapest machine"):
        table.add_column(col, justify="right" if col in ("$/month", "risk") else "left", overflow="fold")
    why: list[str] = []
    for r in rows:
        cls = f"{r.workload_class} ({r.pattern})" if r.pattern else (r.workload_class or "-")
        if not r.defined:
            table.add_row(r.name, cls, "[yellow]undefined[/yellow]", "-", _money(r.monthly_cost_current), "-", "-")
            why.append(f"[yellow]{r.name}: undefined, because {r.reason}[/yellow]")
            continue
        cpu = _arrow(fmt_cpu(r.cpu_request_current), fmt_cpu(r.cpu_request))
        if r.cpu_schedule:
            vals = [s["cpu_cores"] for s in r.cpu_schedule["segments"]]
            cpu += f" (schedule {fmt_cpu(min(vals))}-{fmt_cpu(max(vals))})"
        if r.cpu_limit is not None:
            cpu += f", limit {fmt_cpu(r.cpu_limit)}"
        mem = (_arrow(fmt_memory(r.memory_request_current), fmt_memory(r.memory_request)) + " / "
               + fmt_memory(r.memory_limit)) if r.memory_request is not None else "undefined"
        cost = _money(r.monthly_cost)
        if r.monthly_delta is not None:
            sign = "+" if r.monthly_delta >= 0 else "-"
            cost = f"{_money(r.monthly_cost_current)} → {cost} ({sign}{_money(abs(r.monthly_delta))})"
        risk = "-" if r.risk_over_request_pct is None else f"{r.risk_over_request_pct:.1f}% above"
        if r.oom_kills:
            risk += f", {r.oom_kills} OOM"
        machine = "-" if r.machine is None else f"{r.machine} {_money(r.machine_monthly)}"
        if r.machine_spot_monthly is not None:
            machine += f" (spot {_money(r.machine_spot_monthly)})"
        if r.machine_savings is not None:
            machine += f", saves {_money(r.machine_savings)}"
        table.add_row(r.name, cls, cpu, mem, cost, risk, machine)
        extra = "; ".join(r.notes)
        why.append(f"{r.name}: {r.reason}" + (f"; {extra}" if extra else "") + (f"; spot: {r.spot}" if r.spot else ""))
    console.print(table)
    for line in why:
        console.print(f"- {line}", highlight=False)
    console.print(f"prices: {prices}", highlight=False)
