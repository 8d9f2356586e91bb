"""opsmind's HTTP API (FastAPI): :func:`create_app` builds it from the settings."""

from __future__ import annotations

from opsmind.api.app import create_app

__all__ = ["create_app"]
