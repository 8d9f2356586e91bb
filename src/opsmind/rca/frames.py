"""Reshaping query results into the per-service frames RCA works on (pure functions, no I/O)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pandas as pd

from opsmind.core import DataError, Frame

__all__ = ["merge_columns", "parse_series_name", "split_by_label"]

_SERIES = re.compile(r"^(?P<name>[^{]*)\{(?P<labels>.*)\}$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_series_name(text: str) -> tuple[str, dict[str, str]]:
    """``(metric name, labels)`` of a series name as Prometheus prints it.

    >>> parse_series_name('up{instance="a:9100", job="api"}')
    ('up', {'instance': 'a:9100', 'job': 'api'})
    >>> parse_series_name("scalar")
    ('scalar', {})
    """
    m = _SERIES.match(text.strip())
    if not m:
        return text, {}
    labels = {k: bytes(v, "utf-8").decode("unicode_escape") for k, v in _LABEL.findall(m.group("labels"))}
    return m.group("name"), labels


def split_by_label(frame: Frame, label: str, metric: str) -> tuple[dict[str, Frame], list[str]]:
    """One single-column frame (column ``metric``) per value of ``label`` among the series of ``frame``.

    Series without the label are skipped (and said so); several series with the same value are averaged.

    >>> f = Frame.from_arrays([0, 60_000_000_000], [[1.0, 2.0], [3.0, 4.0]],
    ...                       ['cpu{service="a"}', 'cpu{service="b"}'])
    >>> frames, notes = split_by_label(f, "service", "cpu")
    >>> sorted(frames), frames["b"].column("cpu").tolist(), notes
    (['a', 'b'], [2.0, 4.0], [])
    """
    groups: dict[str, list[int]] = defaultdict(list)
    notes: list[str] = []
    missing = 0
    for j, col in enumerate(frame.columns):
        _, labels = parse_series_name(col)
        if label not in labels:
            missing += 1
            continue
        groups[labels[label]].append(j)
    if missing:
        notes.append(f"{metric}: {missing} series without a {label!r} label skipped")
    out: dict[str, Frame] = {}
    for svc, idx in groups.items():
        with np.errstate(all="ignore"):
            values = np.nanmean(frame.values[:, idx], axis=1) if len(idx) > 1 else frame.values[:, idx[0]]
        if len(idx) > 1:
            notes.append(f"{metric}: {len(idx)} series of {svc} averaged")
        out[svc] = Frame(frame.timestamps, np.asarray(values, dtype=np.float64)[:, None], (metric,), svc)
    return out, notes


def merge_columns(parts: Mapping[str, Mapping[str, Frame]]) -> dict[str, Frame]:
    """Per service, the columns of several single-metric frames joined on time (outer join, NaN where absent).

    ``parts`` maps a metric name to its per-service frames (as :func:`split_by_label` returns them).
    """
    by_service: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for frames in parts.values():
        for svc, f in frames.items():
            by_service[svc].append(f.to_pandas().set_index("timestamp"))
    out: dict[str, Frame] = {}
    for svc, dfs in by_service.items():
        joined = pd.concat(dfs, axis=1, join="outer").sort_index()
        if joined.empty:
            continue
        joined = joined.reset_index().rename(columns={"index": "timestamp"})
        try:
            out[svc] = Frame.from_pandas(joined, timestamp="timestamp", name=svc)
        except DataError:
            continue
    return out
