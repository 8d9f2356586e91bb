"""Bayesian online change-point detection (Adams & MacKay, 2007) with a Normal-Gamma model."""

from __future__ import annotations

import math

import numpy as np

from opsmind.core import ConfigError, FloatArray
from opsmind.detect._kernel import IntArray, KernelDetector, jit, robust_scale, window_median
from opsmind.detect.base import DETECTORS, check_positive

__all__ = ["BOCPD"]

# Score of a value whose squared distance to every regime overflows (|x| near 1e154 or more).
_OVERFLOW_SCORE = 1e3


@jit
def _logpdf(x: float, mu: float, beta: float, L: int, tab: FloatArray) -> float:
    # Student-t predictive of a Normal-Gamma posterior after L points (see BOCPD._init_state for the table).
    d = x - mu
    return float(tab[0, L] - 0.5 * math.log(beta) - tab[1, L] * math.log1p(d * d * tab[2, L] / beta))


@jit
def _set_prior(warm: FloatArray, prior: FloatArray, a0: float) -> None:
    srt = np.sort(warm)
    m = window_median(srt, srt.shape[0])
    s = robust_scale(srt, srt.shape[0], m)
    prior[0] = m
    prior[1] = a0 * s * s


@jit
def _logaddexp(u: float, v: float) -> float:
    if u == -np.inf:
        return v
    if v == -np.inf:
        return u
    return max(u, v) + math.log1p(math.exp(-abs(u - v)))


@jit
def _logsumexp(grow: FloatArray, lo: int, hi: int, x: float, mu: FloatArray, beta: FloatArray, logw: FloatArray,
               log_1mh: float, tab: FloatArray) -> float:
    # Fill grow[lo:hi] with log P(run i continues with x, data) and return their log-sum (-inf if empty).
    top = -np.inf
    for i in range(lo, hi):
        grow[i] = log_1mh + logw[i] + _logpdf(x, mu[i], beta[i], i + 1, tab)
        top = max(top, grow[i])
    if top == -np.inf:
        return top
    acc = 0.0
    for i in range(lo, hi):
        acc += math.exp(grow[i] - top)
    return float(top + math.log(acc))


@jit
def _cap(x: float, mu: FloatArray, beta: FloatArray, logw: FloatArray, grow: FloatArray, k: FloatArray,
         a_cap: float, log_z: float) -> None:
    # The last slot holds "R points or more". Its run takes x with the pseudo-counts held at R points (a
    # discounted posterior: its memory fades like an exponential window of ~R points); the run of R - 1 points
    # grows into the slot; the slot keeps the weighted average of the two.
    R = mu.shape[0]
    kc, kg = k[R], k[R - 1]
    mu_c = (kc * mu[R - 1] + x) / (kc + 1.0)
    beta_c = (beta[R - 1] + kc * (x - mu[R - 1]) ** 2 / (2.0 * (kc + 1.0))) * a_cap / (a_cap + 0.5)
    mu_g = (kg * mu[R - 2] + x) / (kg + 1.0)
    beta_g = beta[R - 2] + kg * (x - mu[R - 2]) ** 2 / (2.0 * (kg + 1.0))
    log_w = _logaddexp(grow[R - 1], grow[R - 2])
    p = math.exp(grow[R - 1] - log_w)
    mu[R - 1] = p * mu_c + (1.0 - p) * mu_g
    beta[R - 1] = p * beta_c + (1.0 - p) * beta_g
    logw[R - 1] = log_w - log_z


@jit
def _bocpd_run(xs: FloatArray, mu: FloatArray, beta: FloatArray, logw: FloatArray, ints: IntArray,
               warm: FloatArray, prior: FloatArray, k: FloatArray, tab: FloatArray, a0: float, log_h: float,
               log_1mh: float, short_run: int, out: FloatArray,
               learn: bool) -> None:
    # Run entry i holds the posterior after the last i + 1 points (newest run first); ints = [runs, warm count].
    R = mu.shape[0]
    grow = np.empty(R)
    for t in range(xs.shape[0]):
        x = xs[t]
        out[t] = 0.0
        if not np.isfinite(x):
            continue
        nw = ints[1]
        if nw < warm.shape[0]:  # warm-up: collect values to set the prior's location and scale
            if learn:
                warm[nw] = x
                ints[1] = nw + 1
                if nw + 1 == warm.shape[0]:
                    _set_prior(warm, prior, a0)
            continue
        m = ints[0]
        mu0, beta0 = prior[0], prior[1]
        log_c = log_h + _logpdf(x, mu0, beta0, 0, tab)  # a new run starts at x
        log_g = -np.inf  # x continues one of the current runs
        log_long = -np.inf  # ... one that already has short_run points or more
        if m > 0:
            cut = min(short_run - 1, m)  # entries [0, cut) are runs younger than short_run points
            log_short = _logsumexp(grow, 0, cut, x, mu, beta, logw, log_1mh, tab)
            log_long = _logsumexp(grow, cut, m, x, mu, beta, logw, log_1mh, tab)
            log_g = _logaddexp(log_short, log_long)
        log_z = _logaddexp(log_c, log_g)
        if not log_z > -np.inf:  # |x| so large that (x - mu)^2 overflows: flag it, do not learn it
            out[t] = _OVERFLOW_SCORE
            continue
        if m >= short_run:  # score = -log P(the run holding x started less than short_run points ago)
            out[t] = max(0.0, log_z - log_long)
        if not learn:
            continue
        new_m = min(m + 1, R)
        top = new_m - 1
        if m == R:  # the longest run absorbs the one growing into its slot (total mass is kept)
            _cap(x, mu, beta, logw, grow, k, a0 + 0.5 * R, log_z)
            top = R - 2
        for i in range(top, 0, -1):  # run i - 1 grows into run i (backwards: in place)
            kk = k[i]
            beta[i] = beta[i - 1] + kk * (x - mu[i - 1]) ** 2 / (2.0 * (kk + 1.0))
            mu[i] = (kk * mu[i - 1] + x) / (kk + 1.0)
            logw[i] = grow[i - 1] - log_z
        k0 = k[0]
        beta[0] = beta0 + k0 * (x - mu0) ** 2 / (2.0 * (k0 + 1.0))
        mu[0] = (k0 * mu0 + x) / (k0 + 1.0)
        logw[0] = log_c - log_z
        ints[0] = new_m


@DETECTORS.register("bocpd")
class BOCPD(KernelDetector):
    """Bayesian online change-point detection with a Normal-Gamma (Student-t predictive) model.

    The detector keeps a posterior over the run length (how many recent points share one regime: a Normal
    with unknown mean and variance), and a constant hazard ``1 / hazard_lambda`` that a new regime starts
    at each point. A new regime's prior is centred on the first ``min_history`` values, with their robust
    scale, and is vague about the mean (``kappa0``). The score of ``x`` is ``-log P(the regime holding x began
    fewer than short_run points ago | data up to x)``: near 0 while the data fit a long-lived regime, large at
    a level or variance shift and at a spike. ``short_run = 1`` asks "does x itself start a new regime?",
    which fires at once but is easily explained away by a young regime with heavy tails; the default 5
    collects the evidence of the first few points of a change, so a shift peaks one to three points after it
    starts. Runs of ``max_run_length`` points or more share one slot whose model forgets like an exponential
    window of that many points, which bounds the cost at ``O(max_run_length)`` per point.

    Works well for: piecewise-stationary metrics (deploys, config changes, failovers) with level or variance
    shifts, and spikes. Works poorly for: seasonal or trending series (every slope looks like a stream of
    small changes), strongly autocorrelated noise, and a series whose level wanders far from the warm-up
    values (the new-regime prior is centred there). There is no outlier model: an extreme value is taken for
    the start of a new regime, so the ``short_run`` rows after it also score high.

    Parameters
    ----------
    hazard_lambda
        Expected run length between change points, in points (``> 1``).
    max_run_length
        Run lengths tracked one by one (at least 2); longer runs share the last slot.
    alpha0, kappa0
        Normal-Gamma prior: shape of the precision prior and pseudo-count of the mean.
    short_run
        A regime younger than this many points counts as "a change just happened" (below ``max_run_length``).
    min_history
        Warm-up values that set the prior; they score 0.0.

    Examples
    --------
    >>> import numpy as np
    >>> from opsmind.core import Frame
    >>> x = np.random.default_rng(2).normal(size=400)
    >>> x[250:] += 6.0  # a level shift
    >>> frame = Frame.from_arrays(np.arange(400) * 60 * 10**9, x)
    >>> scores = BOCPD().score(frame)
    >>> 250 <= int(np.argmax(scores)) <= 253, bool(scores[250:254].max() > 10 * np.median(scores))
    (True, True)
    """

    def __init__(self, hazard_lambda: float = 250.0, max_run_length: int = 256, alpha0: float = 1.0,
                 kappa0: float = 0.01, short_run: int = 5, min_history: int = 20) -> None:
        self.hazard_lambda = hazard_lambda
        self.max_run_length = max_run_length
        self.alpha0 = alpha0
        self.kappa0 = kappa0
        self.short_run = short_run
        self.min_history = min_history

    def _validate(self) -> None:
        check_positive("hazard_lambda", self.hazard_lambda)
        if not self.hazard_lambda > 1:
            raise ConfigError(f"hazard_lambda must be > 1, got {self.hazard_lambda!r}")
        check_positive("max_run_length", self.max_run_length, integer=True)
        if self.max_run_length < 2:
            raise ConfigError(f"max_run_length must be at least 2, got {self.max_run_length}")
        check_positive("alpha0", self.alpha0)
        check_positive("kappa0", self.kappa0)
        check_positive("short_run", self.short_run, integer=True)
        if self.short_run >= self.max_run_length:
            raise ConfigError(f"short_run ({self.short_run}) must be below max_run_length ({self.max_run_length})")
        check_positive("min_history", self.min_history, integer=True)

    def _init_state(self) -> None:
        R = int(self.max_run_length)
        # After L points: shape a = alpha0 + L/2, mean pseudo-count k = kappa0 + L; the predictive is a Student-t
        # with nu = 2a dof, location mu and scale^2 = beta v, v = (k + 1) / (a k). Its log density is
        # tab[0] - log(beta)/2 - tab[1] log1p((x - mu)^2 tab[2] / beta), with everything not in beta or mu here.
        L = np.arange(R + 1, dtype=np.float64)
        a = float(self.alpha0) + L / 2.0
        self.k_ = float(self.kappa0) + L
        nu = 2.0 * a
        v = (self.k_ + 1.0) / (a * self.k_)
        lg = np.array([math.lgamma((n + 1.0) / 2.0) - math.lgamma(n / 2.0) for n in nu])
        self.table_ = np.stack([lg - 0.5 * np.log(nu * math.pi * v), (nu + 1.0) / 2.0, 1.0 / (nu * v)])
        self.mu_ = np.zeros(R)
        self.beta_ = np.zeros(R)
        self.logw_ = np.zeros(R)
        self.counts_ = np.zeros(2, dtype=np.int64)  # [runs, warm-up values]
        self.warm_ = np.zeros(int(self.min_history))
        self.prior_ = np.zeros(2)  # [mu0, beta0]

    def _run(self, ts: FloatArray, xs: FloatArray, out: FloatArray, learn: bool) -> None:
        h = 1.0 / float(self.hazard_lambda)
        _bocpd_run(xs, self.mu_, self.beta_, self.logw_, self.counts_, self.warm_, self.prior_, self.k_,
                   self.table_, float(self.alpha0), math.log(h), math.log1p(-h), int(self.short_run), out, learn)
