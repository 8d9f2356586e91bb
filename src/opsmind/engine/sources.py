"""Where the engine pulls samples from, and how it waits for a source that is down.

:class:`ScrapeSource` reads Prometheus text-format ``/metrics`` endpoints directly (what ``opsmind demo`` uses for
the simulator, when no Prometheus server runs): each :meth:`ScrapeSource.refresh` scrapes every target and keeps
the samples, stamped with the engine's clock, for ``keep_s`` seconds; :meth:`ScrapeSource.fetch` answers a query
from them. It understands the queries a scrape can answer: a selector ``name{label="v", other=~"re"}`` and a
counter rate ``rate(selector[1m])`` (also ``irate`` and ``increase``). Anything else is a ``ConfigError`` that
names the query; use a Prometheus server for real PromQL.

:class:`PullSource` wraps a source with its health: after a failure the source is tried again after an
exponentially growing wait (up to ``backoff_max_s``), and ``opsmind_source_up`` says whether it answered.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from opsmind.core import ConfigError, Frame, SourceError
from opsmind.core.counters import reset_adjusted
from opsmind.sources.prometheus import Prometheus, series_name
from opsmind.sources.timeparse import Duration, TimeLike, parse_duration, parse_time

__all__ = ["PullSource", "ScrapeSource", "Selector", "parse_query"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^\s*(?P<name>{_NAME})\s*(?:\{{(?P<matchers>[^}}]*)\}})?\s*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_RANGE = re.compile(r"^\s*(?P<fn>rate|irate|increase)\s*\(\s*(?P<sel>[^\[]+)\[(?P<window>[^\]]+)\]\s*\)\s*$")
_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Selector:
    """A parsed query: metric name, label matchers ``(label, op, value)``, and an optional range function."""

    name: str
    matchers: tuple[tuple[str, str, str], ...] = ()
    function: str | None = None
    window_s: float = 0.0

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if name != self.name:
            return False
        for label, op, value in self.matchers:
            have = labels.get(label, "")
            ok = (have == value if op == "=" else have != value if op == "!=" else
                  re.fullmatch(value, have) is not None if op == "=~" else re.fullmatch(value, have) is None)
            if not ok:
                return False
        return True


def parse_query(query: str) -> Selector:
    """The :class:`Selector` of a query a scrape can answer (``ConfigError`` naming the query otherwise).

    >>> parse_query('rate(http_requests_total{service="cart"}[1m])')
    Selector(name='http_requests_total', matchers=(('service', '=', 'cart'),), function='rate', window_s=60.0)
    """
    fn, window_s, text = None, 0.0, query
    m = _RANGE.match(query)
    if m:
        fn, text = m["fn"], m["sel"]
        try:
            window_s = parse_duration(m["window"].strip())
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"query {query!r}: bad range [{m['window']}]: {exc}") from None
    sel = _SELECTOR.match(text)
    if not sel:
        raise ConfigError(f"query {query!r}: a scrape source answers only a selector name{{label=\"value\"}} or "
                          f"rate(selector[1m]); use a Prometheus server for other PromQL")
    matchers: list[tuple[str, str, str]] = []
    body = (sel["matchers"] or "").strip()
    pos = 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if not mm or mm.end() == pos:
            raise ConfigError(f"query {query!r}: cannot read the label matchers at {body[pos:]!r}")
        label, op, raw = mm.groups()
        value = raw.encode("utf-8").decode("unicode_escape")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"query {query!r}: bad regular expression {value!r}: {exc}") from None
        matchers.append((label, op, value))
        pos = mm.end()
    return Selector(sel["name"], tuple(matchers), fn, window_s)


class ScrapeSource:
    """Scrapes Prometheus text-format endpoints and answers queries from what it kept (see the module docstring).

    ``clock`` stamps the samples of a scrape when :meth:`refresh` is called without a time (the demo passes the
    simulated time). With no targets it only answers from the samples given to :meth:`add_series`. Thread-safe.
    """

    kind = "scrape"

    def __init__(self, targets: Sequence[str], *, keep_s: float = 86400.0, timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.time, client: httpx.Client | None = None) -> None:
        self.targets = list(targets)
        self.keep_s = keep_s
        self._clock = clock
        self._client = client or httpx.Client(timeout=timeout_s)
        self._own_client = client is None
        self._lock = threading.Lock()
        self._samples: dict[_Key, deque[tuple[float, float]]] = {}

    @property
    def name(self) -> str:
        return "scrape"

    def refresh(self, now: float | None = None) -> int:
        """Scrape every target once; returns the samples kept. ``SourceError`` when a target cannot be read."""
        t = self._clock() if now is None else float(now)
        texts = []
        for url in self.targets:
            try:
                response = self._client.get(url)
            except httpx.HTTPError as exc:
                raise SourceError(f"scrape {url}: {type(exc).__name__}: {exc}") from None
            if response.status_code != 200:
                raise SourceError(f"scrape {url}: HTTP {response.status_code}")
            texts.append(response.text)
        return sum(self.add_text(text, t) for text in texts)

    def add_text(self, text: str, t: float) -> int:
        """Keep the samples of one exposition ``text`` at time ``t``; returns how many."""
        rows: list[tuple[_Key, float]] = []
        try:
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    rows.append(((s.name, tuple(sorted(s.labels.items()))), float(s.value)))
        except ValueError as exc:
            raise SourceError(f"scrape: not the Prometheus text format: {exc}") from None
        with self._lock:
            for key, value in rows:
                buf = self._samples.setdefault(key, deque())
                if buf and buf[-1][0] >= t:
                    continue
                buf.append((t, value))
                while buf and buf[0][0] < t - self.keep_s:
                    buf.popleft()
        return len(rows)

    def add_series(self, name: str, labels: dict[str, str], ts: Sequence[float] | np.ndarray,
                   values: Sequence[float] | np.ndarray) -> None:
        """Keep the samples one series showed earlier (a target's history, e.g. before the source started)."""
        key: _Key = (name, tuple(sorted(labels.items())))
        with self._lock:
            buf = self._samples.setdefault(key, deque())
            for t, v in sorted(zip(np.asarray(ts, dtype=float).tolist(), np.asarray(values, dtype=float).tolist(),
                                   strict=True)):
                if not buf or t > buf[-1][0]:
                    buf.append((t, v))

    def fetch(self, query: str, start: TimeLike, end: TimeLike, step: Duration | None = None) -> Frame:
        """The kept samples of the matching series with ``start <= t <= end`` (``step`` is not needed: the
        samples are the scrapes). One column per series, named as Prometheus names it."""
        sel = parse_query(query)
        lo, hi = parse_time(start), parse_time(end)
        with self._lock:
            found = [(name, dict(labels), list(buf)) for (name, labels), buf in self._samples.items()
                     if sel.matches(name, dict(labels))]
        columns: dict[str, dict[float, float]] = {}
        for name, labels, points in found:
            if sel.function is None:
                col = series_name({"__name__": name, **labels})
                columns[col] = {t: v for t, v in points if lo <= t <= hi}
            else:
                col = series_name(labels)
                columns[col] = _counter_rate(points, sel.function, sel.window_s, lo, hi)
        return _frame(columns, query)

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def _counter_rate(points: list[tuple[float, float]], fn: str, window_s: float, lo: float, hi: float,
                  ) -> dict[float, float]:
    """Per-second rate (or increase) of a counter over ``window_s`` before each sample, resets corrected."""
    if len(points) < 2:
        return {}
    t = np.array([p[0] for p in points])
    v = np.array([p[1] for p in points])
    adjusted = reset_adjusted(v)
    out: dict[float, float] = {}
    for i in range(1, len(t)):
        if not lo <= t[i] <= hi:
            continue
        j = i - 1 if fn == "irate" else int(np.searchsorted(t, t[i] - window_s - 1e-9, side="left"))
        j = min(j, i - 1)
        dt = t[i] - t[j]
        if dt <= 0:
            continue
        inc = adjusted[i] - adjusted[j]
        out[float(t[i])] = float(inc if fn == "increase" else inc / dt)
    return out


def _frame(columns: dict[str, dict[float, float]], query: str) -> Frame:
    names = sorted(c for c in columns if columns[c])
    stamps = np.array(sorted({t for c in names for t in columns[c]}), dtype=np.float64)
    values = np.full((stamps.shape[0], len(names)), np.nan)
    pos = {t: i for i, t in enumerate(stamps.tolist())}
    for j, c in enumerate(names):
        for t, v in columns[c].items():
            values[pos[t], j] = v
    ts = np.rint(stamps * 1000.0).astype(np.int64).astype("datetime64[ms]").astype("datetime64[ns]")
    return Frame(ts, values, tuple(names), query)


@dataclass
class PullSource:
    """A source with its health: up or down, failures in a row, and when to try it again."""

    name: str
    source: ScrapeSource | Prometheus
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    up: bool = True
    failures: int = 0
    next_try: float = -math.inf
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ready(self, now: float) -> bool:
        """Whether the source may be asked now (it is up, or its backoff is over)."""
        return now >= self.next_try

    def refresh(self, now: float) -> None:
        """Scrape (a scrape source); a Prometheus server needs nothing."""
        if isinstance(self.source, ScrapeSource):
            self.source.refresh(now)

    def fetch(self, query: str, start: float, end: float, step: float) -> Frame:
        if isinstance(self.source, Prometheus):
            return self.source.query_range(query, start, end, step)
        return self.source.fetch(query, start, end, step)

    def failed(self, now: float, error: str) -> float:
        """Record a failure; returns the wait before the next try."""
        with self._lock:
            self.failures += 1
            self.up = False
            self.last_error = error
            wait = min(self.backoff_max_s, self.backoff_s * 2.0 ** (self.failures - 1))
            self.next_try = now + wait
            return wait

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.up = True
            self.last_error = None
            self.next_try = -math.inf

    def close(self) -> None:
        self.source.close()
