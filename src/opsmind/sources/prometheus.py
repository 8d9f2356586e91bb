"""A client of the Prometheus HTTP API (``/api/v1/query_range`` and ``/api/v1/query``) returning frames.

Long ranges are split into requests of at most ``max_points`` (11,000, Prometheus' own limit) samples per series
on one step grid, and stitched back without duplicates or holes. 5xx answers, connection errors and timeouts are
retried with exponential backoff; 4xx answers (bad PromQL, bad parameters) raise :class:`~opsmind.core.SourceError`
at once with Prometheus' own message and the query.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
import numpy as np
from pydantic import Field

from opsmind.core.errors import ConfigError, SourceError
from opsmind.core.series import Frame
from opsmind.sources.http import ApiClient, BasicAuth, HttpSettings, error_text, one_line
from opsmind.sources.timeparse import Duration, TimeLike, parse_duration, parse_time

__all__ = ["BasicAuth", "Prometheus", "PrometheusSettings", "choose_step", "plan_chunks", "series_name"]

MAX_POINTS = 11_000
_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)


class PrometheusSettings(HttpSettings):
    """Where Prometheus is and how to talk to it.

    Examples
    --------
    >>> PrometheusSettings(url="http://127.0.0.1:9090", retries=2).retries
    2
    """

    url: str = Field("http://127.0.0.1:9090", description="Base URL of the Prometheus server.")
    max_points: int = Field(MAX_POINTS, ge=2, le=MAX_POINTS, description="Samples per series in one request.")


def choose_step(range_s: float, max_points: int = MAX_POINTS) -> float:
    """The finest round step (1s, 15s, 1m, 5m, ...) giving at most ``max_points`` samples over ``range_s``.

    Examples
    --------
    >>> choose_step(3600), choose_step(2 * 86400), choose_step(30 * 86400)
    (1.0, 30.0, 300.0)
    """
    for step in _STEPS_S:
        if range_s / step <= max_points - 1:
            return float(step)
    return float(math.ceil(range_s / (max_points - 1)))


def series_name(labels: Mapping[str, str]) -> str:
    """A label set rendered the way Prometheus prints it.

    Examples
    --------
    >>> series_name({"__name__": "up", "job": "api", "instance": "a:9100"})
    'up{instance="a:9100", job="api"}'
    """
    rest = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{rest}}}" if rest or "__name__" not in labels else labels["__name__"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def plan_chunks(start_s: float, end_s: float, step_s: float, max_points: int = MAX_POINTS) -> list[tuple[int, int]]:
    """Split one step grid from ``start_s`` to ``end_s`` into requests of at most ``max_points`` samples.

    Returns the ``(start_ms, end_ms)`` of each request; the next one starts one step after the previous ends.

    Examples
    --------
    >>> plan_chunks(0, 10, 1, max_points=4)
    [(0, 3000), (4000, 7000), (8000, 10000)]
    """
    start_ms, end_ms, step_ms = round(start_s * 1000), round(end_s * 1000), round(step_s * 1000)
    if step_ms <= 0:
        raise ConfigError(f"step must be at least 1 ms, got {step_s!r} s")
    if end_ms < start_ms:
        raise ConfigError(f"end ({end_s}) is before start ({start_s})")
    span_ms = (max_points - 1) * step_ms
    last_ms = start_ms + (end_ms - start_ms) // step_ms * step_ms
    chunks = []
    chunk_start = start_ms
    while chunk_start <= last_ms:
        chunks.append((chunk_start, min(chunk_start + span_ms, last_ms)))
        chunk_start += span_ms + step_ms
    return chunks


class Prometheus(ApiClient):
    """Range and instant queries against one Prometheus server; a :class:`~opsmind.sources.base.Source`.

    Parameters
    ----------
    settings
        URL, timeout, retries and credentials.
    sleep
        What waits between retries (``time.sleep``); a test may pass a recorder.

    Examples
    --------
    >>> prom = Prometheus(PrometheusSettings(url="http://127.0.0.1:9090"))
    >>> prom.plan(0, 2 * 86400, 15)[:2]
    [(0, 164985000), (165000000, 172800000)]
    >>> prom.close()
    """

    kind = "prometheus"
    settings: PrometheusSettings

    def __init__(self, settings: PrometheusSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(settings, sleep=sleep)

    def fetch(self, query: str, start: TimeLike, end: TimeLike, step: Duration | None = None) -> Frame:
        """The ``Source`` protocol: :meth:`query_range` with absolute times."""
        return self.query_range(query, start, end, step)

    def plan(self, start_s: float, end_s: float, step_s: float) -> list[tuple[int, int]]:
        """The ``(start_ms, end_ms)`` of each request (see :func:`plan_chunks`)."""
        return plan_chunks(start_s, end_s, step_s, self.settings.max_points)

    def query_range(
        self,
        promql: str,
        start: TimeLike,
        end: TimeLike,
        step: Duration | None = None,
        *,
        now: datetime | float | None = None,
    ) -> Frame:
        """One column per series, aligned on timestamps, NaN where a series has no sample.

        ``now`` (the caller's clock) resolves relative times such as ``"now-2h"``. ``step`` defaults to
        :func:`choose_step` of the range. A query that matches nothing gives a frame with no rows and no columns.
        """
        start_s, end_s = parse_time(start, now), parse_time(end, now)
        step_s = parse_duration(step) if step is not None else choose_step(end_s - start_s, self.settings.max_points)
        samples: dict[str, dict[int, float]] = {}
        warnings: list[str] = []
        for chunk_start, chunk_end in self.plan(start_s, end_s, step_s):
            params = {"query": promql, "start": _ms_text(chunk_start), "end": _ms_text(chunk_end),
                      "step": _ms_text(round(step_s * 1000))}
            data = self._request("/api/v1/query_range", params, promql, warnings)
            _collect(data, samples, promql)
        return _to_frame(samples, promql, warnings)

    def query(self, promql: str, time: TimeLike | None = None, *, now: datetime | float | None = None) -> Frame:
        """An instant query at ``time`` (Prometheus' current time when None): one row, one column per series.

        A scalar result is one column named ``scalar``; a range selector (``up[5m]``) gives its raw samples.
        """
        params = {"query": promql}
        if time is not None:
            params["time"] = _ms_text(round(parse_time(time, now) * 1000))
        warnings: list[str] = []
        data = self._request("/api/v1/query", params, promql, warnings)
        samples: dict[str, dict[int, float]] = {}
        _collect(data, samples, promql)
        return _to_frame(samples, promql, warnings)

    def _request(self, path: str, params: dict[str, str], promql: str, warnings: list[str]) -> Any:
        """POST with retries; the ``data`` member of a successful answer."""
        where = self._where(path)
        response = self._send("POST", path, context=f"query: {promql!r}", data=params)
        body = _json(response, where, promql)
        if body.get("status") != "success":
            raise SourceError(f"{where}: {error_text(response)} (query: {promql!r})")
        warnings.extend(str(w) for w in body.get("warnings") or [])
        return body.get("data")


def _collect(data: Any, samples: dict[str, dict[int, float]], promql: str) -> None:
    """Add the samples of one answer (matrix, vector or scalar) to ``samples`` keyed by series name."""
    if not isinstance(data, dict) or "result" not in data:
        raise SourceError(f"prometheus: answer without a result (query: {promql!r})")
    kind, result = data.get("resultType"), data["result"]
    if kind == "scalar":
        samples.setdefault("scalar", {})[round(float(result[0]) * 1000)] = float(result[1])
        return
    if kind not in ("matrix", "vector"):
        raise SourceError(f"prometheus: a {kind} result is not a time series (query: {promql!r})")
    for series in result:
        points = samples.setdefault(series_name(series.get("metric", {})), {})
        pairs = series.get("values", []) if kind == "matrix" else [series["value"]] if "value" in series else []
        for ts, value in pairs:
            points[round(float(ts) * 1000)] = float(value)


def _to_frame(samples: dict[str, dict[int, float]], promql: str, warnings: list[str]) -> Frame:
    names = sorted(samples)
    stamps = np.array(sorted({ms for points in samples.values() for ms in points}), dtype=np.int64)
    values = np.full((stamps.size, len(names)), np.nan)
    position = {int(ms): i for i, ms in enumerate(stamps)}
    for j, name in enumerate(names):
        for ms, value in samples[name].items():
            values[position[ms], j] = value
    timestamps = stamps.astype("datetime64[ms]").astype("datetime64[ns]")
    return Frame(timestamps, values, tuple(names), promql, tuple(dict.fromkeys(warnings)))


def _json(response: httpx.Response, where: str, promql: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SourceError(f"{where}: answer is not JSON: {one_line(response.text)[:200]!r} (query: {promql!r})"
                          ) from None
    if not isinstance(body, dict):
        raise SourceError(f"{where}: answer is not a JSON object (query: {promql!r})")
    return body


def _ms_text(ms: int) -> str:
    if ms < 0:
        return "-" + _ms_text(-ms)
    return f"{ms // 1000}.{ms % 1000:03d}"
