"""Shared fixtures. Each area keeps its helpers and fixtures in its own module under tests/ and imports them here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # so test modules can import the helper modules beside them

from servers import alertmanager, alertmanager_bin, prometheus, prometheus_basic_auth, prometheus_bin, promtool_bin

__all__ = ["alertmanager", "alertmanager_bin", "prometheus", "prometheus_basic_auth", "prometheus_bin", "promtool_bin"]
