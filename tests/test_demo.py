"""``opsmind demo``: the simulator, live detection and the ground-truth summary, in plain (non-terminal) mode."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from opsmind.cli.main import app
from opsmind.detect import DETECTORS


def test_demo_runs_for_a_fixed_time_and_prints_the_summary() -> None:
    if "opsmind" not in DETECTORS:
        pytest.skip("default detector not registered yet")
    result = CliRunner().invoke(
        app, ["demo", "--duration", "5", "--speed", "600", "--warmup-hours", "4", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    match = re.fullmatch(r"demo summary: injected=(\d+) detected=(\d+)", lines[-1])
    assert match, lines[-1]
    injected, detected = int(match[1]), int(match[2])
    assert injected >= 1 and 1 <= detected <= injected
    assert any(" INCIDENT " in line and "root cause" in line for line in lines)
    assert any(" DETECTED " in line and "severity=" in line for line in lines)
    assert "\x1b[" not in result.output  # plain lines, no live view, when stdout is not a terminal
