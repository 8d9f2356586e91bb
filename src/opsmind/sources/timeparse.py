"""Time and duration arguments as people type them, parsed once at the edge into Unix seconds.

A time is a ``datetime`` (naive means UTC), Unix seconds (``int``, ``float`` or a numeric string), an RFC 3339
string (``2024-01-01T00:00:00Z``) or a relative form (``now``, ``now-2h``, ``now+1h30m``). Relative forms need
``now``, which the caller passes in: nothing here reads the clock.

A duration is seconds (``int``/``float``), a ``timedelta`` or a Prometheus duration string (``15s``, ``1h30m``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from opsmind.core.errors import ConfigError

__all__ = ["Duration", "TimeLike", "parse_duration", "parse_time"]

TimeLike = datetime | float | int | str
Duration = float | int | str | timedelta

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_RELATIVE = re.compile(r"now\s*(?:([+-])\s*(\S+))?")
_NANOS = re.compile(r"(\.\d{6})\d+")


def parse_duration(value: Duration) -> float:
    """Seconds in a duration: a number of seconds, a ``timedelta`` or a string like ``"1h30m"``.

    Examples
    --------
    >>> parse_duration("1h30m"), parse_duration("15s"), parse_duration(2.5), parse_duration("250ms")
    (5400.0, 15.0, 2.5, 0.25)
    """
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"cannot read {value!r} as a duration (examples: 30, '15s', '1h30m', '2d')")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def parse_time(value: TimeLike, now: datetime | float | None = None) -> float:
    """Unix seconds of a time argument; ``now`` (datetime or Unix seconds) is needed for relative forms.

    Examples
    --------
    >>> parse_time("2024-01-01T00:00:00Z")
    1704067200.0
    >>> parse_time("now-2h", now=1704067200.0)
    1704060000.0
    >>> parse_time(datetime(2024, 1, 1))
    1704067200.0
    >>> parse_time("2024-01-01T00:00:00.250000001Z")
    1704067200.25
    """
    if isinstance(value, datetime):
        return _datetime_seconds(value)
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        if now is None:
            raise ConfigError(f"relative time {value!r} needs the caller's current time (now=...)")
        base = _datetime_seconds(now) if isinstance(now, datetime) else float(now)
        sign, amount = relative.groups()
        if sign is None:
            return base
        delta = parse_duration(amount)
        return base - delta if sign == "-" else base + delta
    try:
        return float(text)
    except ValueError:
        pass
    try:
        # Go and most APIs print nanoseconds; Python reads at most microseconds.
        parsed = datetime.fromisoformat(_NANOS.sub(r"\1", text.replace("z", "Z")))
    except ValueError:
        raise ConfigError(
            f"cannot read {value!r} as a time (examples: 1704067200, '2024-01-01T00:00:00Z', 'now-2h')"
        ) from None
    return _datetime_seconds(parsed)


def _datetime_seconds(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
