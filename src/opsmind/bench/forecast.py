"""``opsmind bench forecast``: rolling-origin evaluation of opsmind's default forecaster against statsforecast.

Series (default): the Crane DSP CPU traces and the NASA HTTP 1995 request counts (``--data``, the traces
folder), and NAB's realAWSCloudwatch and realKnownCause series (``--nab-data``); or the CSV/Parquet files given
with ``--series``.

Protocol, the same for every method and series:

- Two resolutions: *fine* (step = max(native step, 5 min)) for the 30 min and 2 h horizons, *coarse* (step =
  max(native step, 1 h)) for the 24 h horizon. Resampling averages (request counts per second are summed).
  A horizon shorter than the step is not evaluated for that series.
- Outages: runs of at least 1 h of exact zeros in an otherwise positive series are gaps
  (:func:`opsmind.forecast.resample.mask_outages`), never scored.
- Rolling origins at the end of each series, ``folds`` origins ``spacing`` apart; each method is fitted on the
  ``train`` window before the origin (folds with less than 2 days of training are dropped) and predicts each
  horizon of that resolution from the same fit. Gaps in the training window are filled along the daily
  profile (:func:`opsmind.forecast.seasonality.fill_gaps`) for the statsforecast peers, which do not accept
  missing values; opsmind receives the gaps as NaN and fills them the same way itself.
- Peers (statsforecast, library defaults): ``SeasonalNaive`` and ``AutoETS`` with the daily period as
  season, ``MSTL`` with the daily and (when the window holds two weeks) weekly periods. statsforecast's ETS
  fits seasonal models only for seasons of at most 24 steps; above that AutoETS is run with season 1, which
  selects among the same non-seasonal models.
- Metrics per fold: MASE (M4: mean absolute error over the horizon divided by the in-sample mean absolute
  error of the seasonal naive forecast with the daily period on the training window, lag 1 when the window
  is shorter than two days), sMAPE in percent (0-200), coverage of the 95 % interval, and the fit + predict
  time in seconds. A series whose MASE scale is zero is excluded with a note.
"""

from __future__ import annotations

import math
import tarfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.bench.report import BenchResult, BenchRow
from opsmind.core import DataError, FloatArray, Frame, OpsmindError
from opsmind.forecast import FORECASTERS
from opsmind.forecast.base import Forecaster, fmt_duration, infer_step
from opsmind.forecast.resample import mask_outages, regularise
from opsmind.forecast.seasonality import fill_gaps

__all__ = [
    "HORIZONS",
    "METHODS",
    "BenchSeries",
    "BenchSettings",
    "load_default_series",
    "load_series_files",
    "run_forecast_bench",
    "run_series",
]

#: (label, seconds, resolution)
HORIZONS: tuple[tuple[str, float, str], ...] = (("h=30m", 1800.0, "fine"), ("h=2h", 7200.0, "fine"),
                                                  ("h=24h", 86400.0, "coarse"))
METHODS = ("opsmind", "SeasonalNaive (statsforecast)", "AutoETS (statsforecast)", "MSTL (statsforecast)")
DAY = 86400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class BenchSettings:
    fine_step_s: float = 300.0
    coarse_step_s: float = 3600.0
    fine_train_s: float = 7 * DAY
    coarse_train_s: float = 28 * DAY
    fine_folds: int = 4
    coarse_folds: int = 4
    fine_spacing_s: float = 12 * 3600.0
    coarse_spacing_s: float = DAY
    min_train_s: float = 2 * DAY
    outage_min_s: float = 3600.0
    opsmind: str | dict[str, Any] = "opsmind"


@dataclass(frozen=True)
class BenchSeries:
    name: str           # e.g. "nab/realKnownCause/nyc_taxi"
    frame: Frame        # one column, native resolution
    how: Literal["mean", "sum"] = "mean"


@dataclass
class SeriesRun:
    name: str
    # (method, horizon label) -> per-fold metric dicts
    folds: dict[tuple[str, str], list[dict[str, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- data -----------------------------------------------------------------------------------------------------


def _crane(folder: Path) -> list[BenchSeries]:
    out = []
    files = sorted(folder.glob("*.csv*"), key=lambda p: (len(p.name), p.name))
    for p in files:
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"cannot read: {exc}", where=str(p)) from None
        ts_col = "ts" if "ts" in df.columns else str(df.columns[0])
        value_col = "value" if "value" in df.columns else str(df.columns[-1])
        frame = Frame.from_pandas(df[[ts_col, value_col]], timestamp=ts_col, name=str(p), row_offset=2)
        out.append(BenchSeries(f"crane_dsp_cpu/{p.name.split('.')[0]}", frame))
    return out


def _nasa(path: Path) -> BenchSeries:
    """Requests per second from 1995-07-01 00:00:01 local time (UTC-4), one integer per second."""
    try:
        with tarfile.open(path, "r:bz2") as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            if member is None:
                raise DataError("archive holds no file", where=str(path))
            fh = tar.extractfile(member)
            if fh is None:
                raise DataError(f"cannot read {member.name}", where=str(path))
            raw = fh.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"cannot read the archive: {exc}", where=str(path)) from None
    try:
        counts = np.array(raw.split(), dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{member.name}: not whitespace-separated numbers ({exc})", where=str(path)) from None
    start = np.datetime64("1995-07-01T04:00:01", "ns")
    ts = start + np.arange(counts.size, dtype=np.int64) * np.timedelta64(1, "s")
    return BenchSeries("nasa_http_1995", Frame(ts, counts[:, None], ("requests",), str(path)), how="sum")


def load_default_series(traces: Path, nab: Path) -> list[BenchSeries]:
    """The default benchmark series; raises ``DataError`` naming a missing folder."""
    crane = traces / "crane_dsp_cpu"
    nasa = traces / "nasa_http_1995" / "workload.tbz2"
    nab_dirs = [nab / "data" / "realAWSCloudwatch", nab / "data" / "realKnownCause"]
    for d in (crane, *nab_dirs):
        if not d.is_dir():
            raise DataError("folder not found (pass --data for the traces, --nab-data for NAB)", where=str(d))
    if not nasa.is_file():
        raise DataError("file not found (pass --data for the traces folder)", where=str(nasa))
    out = _crane(crane)
    out.append(_nasa(nasa))
    for d in nab_dirs:
        for p in sorted(d.glob("*.csv")):
            df = pd.read_csv(p)
            frame = Frame.from_pandas(df, timestamp="timestamp", columns=["value"], name=str(p), row_offset=2)
            out.append(BenchSeries(f"nab/{d.name}/{p.stem}", frame))
    return out


def load_series_files(paths: Sequence[Path]) -> list[BenchSeries]:
    """CSV/Parquet files with a timestamp and a value column (``value`` if there are several)."""
    from opsmind.sources.files import read_frame

    out = []
    for p in paths:
        frame = read_frame(p)
        if frame.ndim > 1:
            if "value" not in frame.columns:
                raise DataError(f"{frame.ndim} value columns and none named 'value': keep one", where=str(p))
            frame = frame.select(["value"])
        out.append(BenchSeries(Path(p).stem, frame))
    return out


# -- one series ------------------------------------------------------------------------------------------------


def _on_grid(series: BenchSeries, step_s: float, outage_s: float
             ) -> tuple[npt.NDArray[np.datetime64], FloatArray, float, list[str]]:
    native = infer_step(series.frame.timestamps)
    step = max(native, step_s)
    frame = regularise(series.frame, step, how=series.how)
    y = frame.values[:, 0].copy()
    y, notes = mask_outages(y, max(1, math.ceil(outage_s / step)))
    return frame.timestamps, y, step, [f"{series.name} ({fmt_duration(step)} steps): {n}" for n in notes]


def _mase_scale(train: FloatArray, m: int) -> float:
    lag = m if train.size >= 2 * m else 1
    d = np.abs(train[lag:] - train[:-lag])
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")


class _Peer:
    """A statsforecast model: fit once, predict per horizon (intervals at 95 %)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def fit(self, y: FloatArray, m: int) -> None:
        from statsforecast.models import MSTL, AutoETS, SeasonalNaive

        if self.kind == "SeasonalNaive":
            model: Any = SeasonalNaive(season_length=m)
        elif self.kind == "AutoETS":
            model = AutoETS(season_length=m if m <= 24 else 1)
        else:
            periods = [m] + ([7 * m] if y.size >= 14 * m else [])
            model = MSTL(season_length=periods)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(y)
        self.model = model

    def predict(self, h: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model.predict(h=h, level=[95])
        return (np.asarray(out["mean"], dtype=np.float64), np.asarray(out["lo-95"], dtype=np.float64),
                np.asarray(out["hi-95"], dtype=np.float64))


def _metrics(actual: FloatArray, mean: FloatArray, lo: FloatArray, hi: FloatArray, scale: float,
             seconds: float) -> dict[str, float]:
    ok = np.isfinite(actual)
    a, f = actual[ok], mean[ok]
    denom = np.abs(a) + np.abs(f)
    smape = np.where(denom > 0, 200.0 * np.abs(a - f) / np.where(denom > 0, denom, 1.0), 0.0)
    return {
        "mase": float(np.mean(np.abs(a - f)) / scale),
        "smape": float(np.mean(smape)),
        "coverage_95": float(np.mean((a >= lo[ok]) & (a <= hi[ok]))),
        "fit_predict_s": seconds,
    }


def run_series(series: BenchSeries, settings: BenchSettings = BenchSettings(),
               methods: Sequence[str] = METHODS) -> SeriesRun:
    """Every method on every fold and horizon of one series."""
    run = SeriesRun(series.name)
    for resolution in ("fine", "coarse"):
        horizons = [(label, sec) for label, sec, res in HORIZONS if res == resolution]
        target = settings.fine_step_s if resolution == "fine" else settings.coarse_step_s
        ts, y, step, notes = _on_grid(series, target, settings.outage_min_s)
        run.notes += notes
        hs = [(label, round(sec / step)) for label, sec in horizons if step <= sec]
        for label, sec in horizons:
            if step > sec:
                run.notes.append(f"{series.name}: step {fmt_duration(step)} is longer than {label[2:]}: "
                                 f"{label} not evaluated")
        if not hs:
            continue
        _run_resolution(series.name, ts, y, step, resolution, hs, settings, methods, run)
    return run


def _run_resolution(name: str, ts: npt.NDArray[np.datetime64], y: FloatArray, step: float, resolution: str,
                    hs: list[tuple[str, int]], settings: BenchSettings, methods: Sequence[str],
                    run: SeriesRun) -> None:
    n = y.size
    m = max(1, round(DAY / step))
    hmax = max(h for _, h in hs)
    folds = settings.fine_folds if resolution == "fine" else settings.coarse_folds
    spacing = max(1, round((settings.fine_spacing_s if resolution == "fine" else settings.coarse_spacing_s) / step))
    train_len = round((settings.fine_train_s if resolution == "fine" else settings.coarse_train_s) / step)
    min_train = round(settings.min_train_s / step)
    origins = [n - hmax - k * spacing for k in range(folds)]
    kept = [o for o in origins if o >= min_train and np.isfinite(y[o:o + hmax]).any()]
    if len(kept) < len(origins):
        run.notes.append(f"{name}: {len(origins) - len(kept)} of {len(origins)} {resolution} folds dropped "
                         f"(less than {fmt_duration(settings.min_train_s)} of training, or no data to score)")
    for o in kept:
        train, train_ts = y[max(0, o - train_len):o], ts[max(0, o - train_len):o]
        scale = _mase_scale(train, m)
        if not (np.isfinite(scale) and scale > 0):
            run.notes.append(f"{name}: MASE scale is zero on the {resolution} training window (the series does "
                             "not change): excluded")
            for key in list(run.folds):
                if key[1] in {label for label, _ in hs}:
                    del run.folds[key]
            return
        filled = fill_gaps(train, [m] if train.size >= 2 * m else [])
        for method in methods:
            t0 = time.perf_counter()
            if method == "opsmind" or not method.endswith("(statsforecast)"):
                spec = settings.opsmind if method == "opsmind" else method
                model: Forecaster | _Peer = FORECASTERS.build(spec)
                assert isinstance(model, Forecaster)
                model.fit(Frame(train_ts, train[:, None], ("y",), name))
            else:
                model = _Peer(method.split(" ")[0])
                model.fit(filled, m)
            fit_s = time.perf_counter() - t0
            for label, h in hs:
                t1 = time.perf_counter()
                if isinstance(model, Forecaster):
                    fc = model.predict(h, levels=(95,))
                    mean, lo, hi = fc.mean, fc.lower(95), fc.upper(95)
                else:
                    mean, lo, hi = model.predict(h)
                seconds = fit_s + time.perf_counter() - t1
                actual = y[o:o + h]
                if not np.isfinite(actual).any():
                    continue
                run.folds.setdefault((method, label), []).append(_metrics(actual, mean, lo, hi, scale, seconds))


# -- the whole benchmark -------------------------------------------------------------------------------------------


def _limit_threads() -> None:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(1)


def _safe_run(series: BenchSeries, settings: BenchSettings, methods: Sequence[str]) -> SeriesRun:
    try:
        return run_series(series, settings, methods)
    except OpsmindError as exc:
        return SeriesRun(series.name, notes=[f"{series.name}: skipped: {exc}"])


def run_forecast_bench(
    series: Sequence[BenchSeries],
    *,
    data: str,
    workers: int = 2,
    settings: BenchSettings = BenchSettings(),
    methods: Sequence[str] = METHODS,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run every method on every series (``workers`` processes) and build the rows (see the module doc)."""
    t0 = time.perf_counter()
    done = progress or (lambda _name: None)
    runs: dict[str, SeriesRun] = {}
    # Longest series first, so the pool does not end on one long straggler.
    order = sorted(series, key=lambda s: -len(s.frame))
    if workers <= 1 or len(order) == 1:
        for s in order:
            runs[s.name] = _safe_run(s, settings, methods)
            done(s.name)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(order)), initializer=_limit_threads) as pool:
            futures = [pool.submit(_safe_run, s, settings, methods) for s in order]
            for fut in as_completed(futures):
                r = fut.result()
                runs[r.name] = r
                done(r.name)
    result = summarise([runs[s.name] for s in series], methods)
    result.data = data
    result.runtime_s = time.perf_counter() - t0
    return result


def summarise(runs: Sequence[SeriesRun], methods: Sequence[str] = METHODS) -> BenchResult:
    """Rows: per method, ``all`` (mean over series and horizons) and one per horizon (mean over series)."""
    keys = ("mase", "smape", "coverage_95", "fit_predict_s")
    cells: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in runs:
        for (method, label), folds in r.folds.items():
            cells.setdefault((method, label), []).append({k: float(np.mean([f[k] for f in folds])) for k in keys})
    rows: list[BenchRow] = []
    labels = [label for label, _, _ in HORIZONS]
    for method in methods:
        every = [c for label in labels for c in cells.get((method, label), [])]
        rows.append(BenchRow(method, _mean(every, keys), "all"))
    for label in labels:
        for method in methods:
            rows.append(BenchRow(method, _mean(cells.get((method, label), []), keys), label))
    n_series = len({r.name for r in runs if r.folds})
    notes = [*NOTES, f"{n_series} series evaluated."]
    for r in runs:
        notes += r.notes
    return BenchResult("forecast", "", 0.0, rows, notes=notes)


def _mean(cells: list[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    return {k: float(np.mean([c[k] for c in cells])) if cells else float("nan") for k in keys}


NOTES = [
    "`all` = mean over series and horizons; `h=...` = mean over series (each series: mean over its folds).",
    "MASE: M4 definition, scale = in-sample MAE of the seasonal naive forecast with the daily period on the "
    "training window (lag 1 when it holds less than two days). sMAPE in percent (0-200). coverage_95 = share "
    "of actuals inside the 95 % interval. fit_predict_s = seconds per fit + predict of one fold (the 30 min and "
    "2 h horizons share one fit at the 5 min resolution).",
    "Resolution: 5 min (native if coarser) for 30 min and 2 h, 1 h (native if coarser) for 24 h; mean per "
    "bucket, NASA requests summed. Training window 7 days (5 min) / 28 days (1 h); 4 origins 12 h apart (5 min), "
    "4 origins 1 day apart (1 h), at the end of each series.",
    "Outages: runs of at least 1 h of zeros in an otherwise positive series are gaps (not scored). Gaps in a "
    "training window are filled along the daily profile for the statsforecast peers; opsmind gets them as NaN.",
    "Peers: statsforecast SeasonalNaive(daily), AutoETS(daily season if <= 24 steps, else 1: statsforecast ETS "
    "has no seasonal models above 24), MSTL(daily, + weekly when the window holds 2 weeks); library defaults.",
]

