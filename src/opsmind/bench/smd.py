"""``opsmind bench smd``: the Server Machine Dataset (Su et al., KDD 2019), fit on train/, score test/.

Layout of ``--data`` (see ``../shared/benchmarks/smd/SOURCE.md``): ``train/M.txt[.gz]``, ``test/M.txt[.gz]``
(one row per minute, comma-separated values), ``test_label/M.txt`` (one 0/1 per test row) and
``interpretation_label/M.txt`` (``start-end:d1,d2,...``: 0-based start row, exclusive end, 1-based dimensions).

Methods, all in one run: opsmind's multivariate default (:class:`~opsmind.detect.RobustMultivariate`, learns
train/ then scores test/ prequentially), scikit-learn ``IsolationForest`` on the raw dimensions and PyOD
``ECOD``, both with their library defaults (fit on train/, ``decision_function`` on test/), and a seeded random
score (uniform scores, random dimension ranking) as the baseline that shows how much point adjustment inflates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from opsmind.bench.report import BenchResult, BenchRow
from opsmind.bench.smd_metrics import best_f1, hitrate, pa_f1
from opsmind.core import DataError, FloatArray, Frame
from opsmind.detect import DETECTORS
from opsmind.detect.robust_multivariate import RobustMultivariate, score_from_deviations

__all__ = ["METHODS", "MachineRun", "list_machines", "load_machine", "run_machine", "run_smd", "write_results"]

METHODS = ("opsmind", "IsolationForest (scikit-learn, raw)", "ECOD (PyOD)", "random")
TOP_DIMS = 5  # dimensions written per row to --results-dir
NOTES = [
    "`all` = unweighted mean over the machines of each metric.",
    "`best_f1` = point-wise F1 at each method's best threshold for each machine (an oracle threshold: it "
    "compares score rankings, not alerting); `pa_f1` = F1 with point adjustment (Xu et al. 2018: a segment counts "
    "as detected if any of its points is) at the threshold that maximises it. Point adjustment inflates: see "
    "the `random` row.",
    "`hitrate_100` / `hitrate_150` = HitRate@100%/@150% (OmniAnomaly) of opsmind's per-dimension attribution "
    "over the labelled anomalous rows of interpretation_label/; the `random` row ranks dimensions at random; "
    "the library peers give no attribution (`-`).",
    "opsmind = detector `robust_multivariate` with its defaults, one configuration for every machine: learns "
    "train/, then scores test/ prequentially (score each row, then learn it; refit every 1440 rows). Peers use "
    "their library defaults (`IsolationForest(random_state=0)`, `ECOD()`), fit on train/, `decision_function` "
    "on test/. Labels are read only by the scorers.",
]


@dataclass
class MachineRun:
    """Metrics of every method on one machine, and opsmind's per-row output for ``--results-dir``."""

    name: str
    metrics: dict[str, dict[str, float]]
    scores: FloatArray
    labels: npt.NDArray[np.bool_]
    top_dims: list[str]


def _find(folder: Path, name: str) -> Path:
    for suffix in (".txt.gz", ".txt"):
        p = folder / f"{name}{suffix}"
        if p.is_file():
            return p
    raise DataError(f"no {name}.txt or {name}.txt.gz", where=str(folder))


def list_machines(data: Path) -> list[str]:
    """Machine names found in ``data/test``; raises ``DataError`` naming what is missing."""
    if not data.is_dir():
        raise DataError("SMD data folder not found (pass --data DIR)", where=str(data))
    for sub in ("train", "test", "test_label"):
        if not (data / sub).is_dir():
            raise DataError(f"no {sub}/ folder: not an SMD layout (train/, test/, test_label/)", where=str(data))
    names = sorted({p.name.split(".")[0] for p in (data / "test").iterdir() if p.name.endswith((".txt", ".gz"))})
    if not names:
        raise DataError("test/ holds no MACHINE.txt or MACHINE.txt.gz files", where=str(data))
    return names


def _read_matrix(path: Path) -> FloatArray:
    try:
        df = pd.read_csv(path, header=None, dtype=np.float64)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise DataError(f"cannot read numeric rows: {exc}", where=str(path)) from None
    return df.to_numpy(dtype=np.float64)


def _read_truth(path: Path) -> list[tuple[int, int, list[int]]]:
    if not path.is_file():
        return []
    out: list[tuple[int, int, list[int]]] = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            span, dims = line.split(":")
            a, b = span.split("-")
            out.append((int(a), int(b), [int(d) - 1 for d in dims.split(",") if d.strip()]))
        except ValueError:
            raise DataError(f"expected 'start-end:d1,d2,...', got {line!r}", where=str(path), row=i) from None
    return out


def load_machine(data: Path, name: str) -> tuple[Frame, Frame, npt.NDArray[np.bool_], list[tuple[int, int, list[int]]]]:
    """Train and test frames (one row per minute, test following train), test labels and interpretation."""
    train, test = _read_matrix(_find(data / "train", name)), _read_matrix(_find(data / "test", name))
    labels = _read_matrix(_find(data / "test_label", name))[:, 0] > 0.5
    if train.shape[1] != test.shape[1]:
        raise DataError(f"train has {train.shape[1]} columns, test {test.shape[1]}", where=name)
    if len(labels) != len(test):
        raise DataError(f"{len(test)} test rows but {len(labels)} labels", where=name)
    cols = tuple(f"d{j + 1}" for j in range(train.shape[1]))
    minutes = np.arange(len(train) + len(test)).astype("datetime64[m]").astype("datetime64[ns]")
    return (Frame(minutes[: len(train)], train, cols, f"{name}/train"),
            Frame(minutes[len(train):], test, cols, f"{name}/test"),
            labels, _read_truth(data / "interpretation_label" / f"{name}.txt"))


def _metrics(scores: FloatArray, labels: npt.NDArray[np.bool_], ranking: FloatArray | None,
             truth: list[tuple[int, int, list[int]]]) -> dict[str, float]:
    out = {"best_f1": best_f1(scores, labels), "pa_f1": pa_f1(scores, labels)}
    for p in (100, 150):
        out[f"hitrate_{p}"] = hitrate(ranking, truth, labels, p) if ranking is not None else float("nan")
    return out


def run_machine(data: Path, name: str, seed: int = 0) -> MachineRun:
    """Every method on one machine."""
    from pyod.models.ecod import ECOD
    from sklearn.ensemble import IsolationForest

    train, test, labels, truth = load_machine(data, name)
    det = DETECTORS.build("robust_multivariate")
    assert isinstance(det, RobustMultivariate)
    det.learn(train)
    dev = det.deviations(test)
    scores = score_from_deviations(dev)
    rng = np.random.default_rng([seed, sum(name.encode())])
    peers: dict[str, Callable[[], FloatArray]] = {
        METHODS[1]: lambda: -IsolationForest(random_state=seed).fit(train.values).decision_function(test.values),
        METHODS[2]: lambda: ECOD().fit(train.values).decision_function(test.values),
    }
    metrics = {METHODS[0]: _metrics(scores, labels, dev, truth)}
    for method, fn in peers.items():
        metrics[method] = _metrics(np.asarray(fn(), dtype=np.float64), labels, None, truth)
    metrics[METHODS[3]] = _metrics(rng.random(len(test)), labels, rng.random(dev.shape), truth)
    order = np.argsort(-dev, axis=1, kind="stable")[:, :TOP_DIMS]
    terms_pos = np.take_along_axis(dev, order, axis=1) > 1.0  # only dimensions outside their band
    top = [" ".join(str(j + 1) for j, ok in zip(r, m, strict=True) if ok)
           for r, m in zip(order, terms_pos, strict=True)]
    return MachineRun(name, metrics, scores, labels, top)


def write_results(folder: Path, run: MachineRun) -> None:
    """``<machine>.csv`` with opsmind's ``score,is_anomaly,top_dims`` per test row (dims 1-based)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"score": run.scores, "is_anomaly": run.labels.astype(int), "top_dims": run.top_dims}).to_csv(
        folder / f"{run.name}.csv", index=False, float_format="%.6g")


def _limit_threads() -> None:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(1)


def run_smd(data: Path, machines: Sequence[str] | None = None, *, workers: int = 2,
            results_dir: Path | None = None, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Run every method on every machine (``workers`` processes) and build the result rows.

    ``progress`` is called with each machine's name when it is done (e.g. to advance a progress bar).
    """
    t0 = time.perf_counter()
    names = list_machines(data)
    if machines:
        unknown = sorted(set(machines) - set(names))
        if unknown:
            raise DataError(f"unknown machine(s) {', '.join(unknown)}; found: {', '.join(names)}", where=str(data))
        names = [n for n in names if n in machines]
    runs: dict[str, MachineRun] = {}
    done = progress or (lambda _name: None)
    if workers <= 1 or len(names) == 1:
        for n in names:
            runs[n] = run_machine(data, n)
            done(n)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(names)), initializer=_limit_threads) as pool:
            for fut in as_completed([pool.submit(run_machine, data, n) for n in names]):
                r = fut.result()
                runs[r.name] = r
                done(r.name)
    rows: list[BenchRow] = []
    for method in METHODS:
        per = [runs[n].metrics[method] for n in names]
        mean = {k: float(np.nanmean([m[k] for m in per])) if any(np.isfinite(m[k]) for m in per) else float("nan")
                for k in per[0]}
        rows.append(BenchRow(method, mean, "all"))
    for n in names:
        rows += [BenchRow(method, runs[n].metrics[method], n) for method in METHODS]
    if results_dir is not None:
        for n in names:
            write_results(results_dir, runs[n])
    return BenchResult("smd", str(data), time.perf_counter() - t0, rows, notes=list(NOTES))
