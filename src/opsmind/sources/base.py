"""The interface every pull source offers: a query over a time range becomes a :class:`~opsmind.core.Frame`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from opsmind.core.series import Frame
from opsmind.sources.timeparse import Duration, TimeLike

__all__ = ["Source"]


@runtime_checkable
class Source(Protocol):
    """Anything that answers ``fetch(query, start, end, step)`` with a ``Frame`` (one column per series)."""

    def fetch(self, query: str, start: TimeLike, end: TimeLike, step: Duration | None = None) -> Frame: ...
