"""``opsmind bench ...``: benchmark commands on public data (see docs/benchmarks.md)."""

from __future__ import annotations

import typer

bench_app = typer.Typer(
    help="Run a benchmark on public data and print opsmind's figures beside peers and published results.",
    no_args_is_help=True,
)
