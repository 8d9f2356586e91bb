"""Anomaly detectors. Importing this package registers every detector in ``DETECTORS``."""

from __future__ import annotations

from opsmind.detect.base import DETECTORS, Detector

__all__ = ["DETECTORS", "Detector"]
