"""The Universal Scalability Law (Gunther): throughput as a function of the number of replicas (or nodes, threads).

``X(N) = lam N / (1 + sigma (N - 1) + kappa N (N - 1))``

``lam`` is the throughput of one replica, ``sigma`` the contention (the serial fraction, Amdahl's law when
``kappa = 0``) and ``kappa`` the coherency cost (crosstalk between replicas). With ``kappa > 0`` throughput peaks at
``N* = sqrt((1 - sigma) / kappa)`` and falls beyond it. The fit is non-linear least squares with ``sigma, kappa``
in ``[0, 1]`` (scipy's ``curve_fit``), from at least three distinct replica counts.

>>> n = np.array([1, 2, 4, 8, 16, 32])
>>> fit = fit_usl(n, 100 * n / (1 + 0.05 * (n - 1) + 0.001 * n * (n - 1)))
>>> round(fit.sigma, 4), round(fit.kappa, 5), round(fit.peak_replicas, 1)
(0.05, 0.001, 30.8)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import OptimizeWarning, curve_fit

from opsmind.core import DataError

__all__ = ["USLFit", "fit_usl", "usl_throughput"]


def usl_throughput(n: npt.ArrayLike, lam: float, sigma: float, kappa: float) -> npt.NDArray[np.float64]:
    """Throughput at ``n`` replicas under the USL."""
    n_a = np.asarray(n, dtype=np.float64)
    return np.asarray(lam * n_a / (1.0 + sigma * (n_a - 1.0) + kappa * n_a * (n_a - 1.0)), dtype=np.float64)


@dataclass(frozen=True)
class USLFit:
    """A fitted USL curve and how well it fits."""

    lam: float
    sigma: float
    kappa: float
    r2: float
    n_points: int
    notes: tuple[str, ...] = field(default=())

    def throughput(self, n: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return usl_throughput(n, self.lam, self.sigma, self.kappa)

    @property
    def peak_replicas(self) -> float:
        """Where throughput peaks (``inf`` when there is no coherency cost)."""
        if self.kappa <= 0:
            return math.inf
        return math.sqrt(max(1.0 - self.sigma, 0.0) / self.kappa)

    @property
    def peak_throughput(self) -> float:
        n = self.peak_replicas
        if math.isinf(n):
            return self.lam / self.sigma if self.sigma > 0 else math.inf
        return float(self.throughput(n))


def fit_usl(replicas: npt.ArrayLike, throughput: npt.ArrayLike, *, where: str = "data") -> USLFit:
    """Fit the USL to pairs of (replicas, throughput). Needs three or more distinct replica counts.

    Rows with a missing or non-positive value are dropped (and counted in the notes).
    """
    n = np.asarray(replicas, dtype=np.float64).ravel()
    x = np.asarray(throughput, dtype=np.float64).ravel()
    if n.shape != x.shape:
        raise DataError(f"USL fit: {len(n)} replica counts but {len(x)} throughputs", where=where)
    ok = np.isfinite(n) & np.isfinite(x) & (n >= 1) & (x > 0)
    notes: list[str] = []
    if not ok.all():
        notes.append(f"dropped {int((~ok).sum())} rows with missing, zero or negative values")
    n, x = n[ok], x[ok]
    distinct = np.unique(n)
    if len(distinct) < 3:
        raise DataError(
            f"USL fit: need throughput at 3 or more distinct replica counts, have {len(distinct)} "
            f"({', '.join(f'{v:g}' for v in distinct) or 'none'})", where=where)
    # One replica's throughput: from N = 1 if measured, else extrapolated from the smallest N.
    smallest = distinct[0]
    lam0 = float(np.median(x[n == smallest]) / smallest)
    p0 = (lam0, 0.01, 0.0001)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # the covariance is not used
            popt, _ = curve_fit(usl_throughput, n, x, p0=p0, bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, 1.0]),
                                maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise DataError(f"USL fit did not converge: {exc}", where=where) from exc
    lam, sigma, kappa = (float(v) for v in popt)
    resid = x - usl_throughput(n, lam, sigma, kappa)
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    if r2 < 0.8:
        notes.append(f"poor fit (R^2 = {r2:.2f}): throughput may not be limited by replicas in this data")
    return USLFit(lam=lam, sigma=sigma, kappa=kappa, r2=r2, n_points=len(n), notes=tuple(notes))
