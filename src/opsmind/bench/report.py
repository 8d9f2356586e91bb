"""The benchmark output contract: one result type, a Rich table, the JSON file and docs/benchmarks.md.

Every ``opsmind bench NAME`` command builds a :class:`BenchResult` and hands it to :func:`publish`, which prints
the table, writes ``--json`` if asked, and replaces the section of ``docs/benchmarks.md`` between
``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->`` with the new output. The figures in that file are
only ever written here, by a run.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["BenchResult", "BenchRow", "default_data_dir", "publish", "render_markdown"]


@dataclass
class BenchRow:
    """One method's metrics, optionally for one dataset (series, machine, trace, system)."""

    method: str
    metrics: dict[str, float]
    dataset: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.dataset is not None:
            out["dataset"] = self.dataset
        out["metrics"] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.metrics.items()}
        return out


@dataclass
class BenchResult:
    benchmark: str
    data: str
    runtime_s: float
    results: list[BenchRow]
    command: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "data": self.data,
            "runtime_s": round(self.runtime_s, 3),
            "results": [r.to_json() for r in self.results],
        }

    def rows(self, dataset: str | None = None) -> list[BenchRow]:
        return [r for r in self.results if r.dataset == dataset]


def default_data_dir(name: str) -> Path:
    """Where ``../shared/benchmarks/NAME`` is: next to the working directory or next to the source checkout."""
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / ".." / "shared" / "benchmarks" / name]
    candidates += [p / ".." / "shared" / "benchmarks" / name for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[0]


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, int) or (float(v).is_integer() and abs(v) >= 10):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.0f}"
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"


def _metric_keys(rows: list[BenchRow]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r.metrics if k not in keys]
    return keys


def table(result: BenchResult, dataset: str | None = None, *, all_rows: bool = True) -> Table:
    """A Rich table of the rows: all of them, or only those of ``dataset`` when ``all_rows`` is false."""
    rows = result.results if all_rows else result.rows(dataset)
    keys = _metric_keys(rows)
    show_ds = any(r.dataset is not None for r in rows)
    t = Table(title=f"opsmind bench {result.benchmark}  ({result.runtime_s:.1f} s)")
    if show_ds:
        t.add_column("dataset")
    t.add_column("method")
    for k in keys:
        t.add_column(k, justify="right")
    for r in rows:
        cells = [r.dataset or ""] if show_ds else []
        style = "bold" if r.method == "opsmind" else None
        t.add_row(*cells, r.method, *[_fmt(r.metrics.get(k)) for k in keys], style=style)
    return t


def render_markdown(result: BenchResult, summary_dataset: str | None = None) -> str:
    """The section written to docs/benchmarks.md."""
    lines = [f"## {result.benchmark}", ""]
    if result.command:
        lines += [f"Command: `{result.command}`", ""]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        f"Run {stamp} on {platform.node() or 'unknown host'} ({platform.machine()}, "
        f"Python {platform.python_version()}); data `{result.data}`; wall time {result.runtime_s:.1f} s.",
        "",
    ]
    for n in result.notes:
        lines.append(f"- {n}")
    if result.notes:
        lines.append("")
    groups: list[str | None] = []
    for r in result.results:
        if r.dataset not in groups:
            groups.append(r.dataset)
    if summary_dataset is not None and summary_dataset in groups:
        groups.remove(summary_dataset)
        groups.insert(0, summary_dataset)
    for g in groups:
        rows = [r for r in result.results if r.dataset == g]
        keys = _metric_keys(rows)
        if g is not None and len(groups) > 1:
            lines += [f"### {g}", ""]
        lines.append("| method | " + " | ".join(keys) + " |")
        lines.append("|---|" + "---:|" * len(keys))
        for r in rows:
            name = f"**{r.method}**" if r.method == "opsmind" else r.method
            lines.append(f"| {name} | " + " | ".join(_fmt(r.metrics.get(k)) for k in keys) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(result: BenchResult, path: Path, summary_dataset: str | None = None) -> None:
    """Replace this benchmark's section of ``path`` (creating the file or the section if needed)."""
    start, end = f"<!-- bench:{result.benchmark}:start -->", f"<!-- bench:{result.benchmark}:end -->"
    body = f"{start}\n{render_markdown(result, summary_dataset)}{end}\n"
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nEvery section below is written by its `opsmind bench` command; do not edit by hand.\n\n"
    )
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + body + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def publish(
    result: BenchResult,
    *,
    json_path: Path | None,
    docs_path: Path | None,
    console: Console | None = None,
    summary_dataset: str | None = None,
) -> None:
    """Print the table, write the JSON file and the docs section."""
    console = console or Console()
    if summary_dataset is not None and any(r.dataset is not None for r in result.results):
        console.print(table(result, summary_dataset, all_rows=False))
    else:
        console.print(table(result))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        console.print(f"wrote {json_path}")
    if docs_path is not None:
        write_docs(result, docs_path, summary_dataset)
        console.print(f"updated {docs_path}")
