"""The error hierarchy. Every message names what is wrong and where (file, row, column, series or field)."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "NotFittedError",
    "OpsmindError",
    "SourceError",
]


class OpsmindError(Exception):
    """Base class of every error opsmind raises on purpose."""


class DataError(OpsmindError, ValueError):
    """Input data is malformed: the message names the file, row and column at fault."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.where = where
        self.row = row
        self.column = column
        parts = [p for p in (where, f"row {row}" if row is not None else None,
                             f"column {column!r}" if column is not None else None) if p]
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(OpsmindError, ValueError):
    """A setting or a component specification is invalid: the message names the field."""


class SourceError(OpsmindError):
    """A data source (an HTTP API, a file system) failed or refused a request."""


class NotFittedError(OpsmindError, RuntimeError):
    """A model was asked for a result before it learned anything."""
