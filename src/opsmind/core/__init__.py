"""Types, errors, registry and helpers shared by every package."""

from __future__ import annotations

from opsmind.core.errors import ConfigError, DataError, NotFittedError, OpsmindError, SourceError
from opsmind.core.registry import Registry
from opsmind.core.series import FloatArray, Frame, to_seconds

__all__ = [
    "ConfigError",
    "DataError",
    "FloatArray",
    "Frame",
    "NotFittedError",
    "OpsmindError",
    "Registry",
    "SourceError",
    "to_seconds",
]
