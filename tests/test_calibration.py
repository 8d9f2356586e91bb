"""Feedback calibration: the formula's properties, and its measured effect on the default detector.

The measurement: a synthetic series (daily cycle + noise) with injected anomalies of known windows is scored
once by the default detector (causal, so every row's probability uses only the past). Alerts of a training
segment are recorded in a real SQLite store and marked by a "person" through ``store.feedback``; the threshold
recomputed from ``store.feedback.counts`` is then compared with the base threshold on a later, held-out
segment that took no part in the feedback.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from opsmind.core import ConfigError, DataError, FloatArray, Frame
from opsmind.detect.base import DETECTORS
from opsmind.detect.calibration import CEILING, FLOOR, calibrated_threshold
from opsmind.detect.threshold import Thresholder
from opsmind.store import Store

TENANT = "acme"
BASE = 0.5
STEP_S = 60.0
T0 = 1_700_000_000.0
N = 12_000
TRAIN = (2_000, 7_000)  # rows [2000, 7000): the first 2000 rows are the detector's warm-up and calibration
HELD_OUT = (7_000, N)
TAIL = 15  # rows after an injected window still counted as the same anomaly


# ---- the formula ------------------------------------------------------------------------------------------------

def test_no_feedback_keeps_the_base() -> None:
    for base in (0.1, 0.5, 0.9, 1.0):
        assert calibrated_threshold(base, {}) == base
        assert calibrated_threshold(base, {"true_positive": 7}) == base


def test_direction_and_monotonicity() -> None:
    fps = [calibrated_threshold(BASE, {"false_positive": k}) for k in range(0, 30)]
    assert all(b > a for a, b in itertools.pairwise(fps) if b < CEILING)
    misses = [calibrated_threshold(BASE, {"missed": k}) for k in range(0, 30)]
    assert all(b < a for a, b in itertools.pairwise(misses) if b > FLOOR)
    # true positives pull a moved threshold back toward the base, from either side
    up = [calibrated_threshold(BASE, {"false_positive": 4, "true_positive": k}) for k in (0, 5, 50, 5000)]
    assert up[0] > up[1] > up[2] > up[3] > BASE and up[3] - BASE < 1e-3
    down = [calibrated_threshold(BASE, {"missed": 4, "true_positive": k}) for k in (0, 5, 50, 5000)]
    assert down[0] < down[1] < down[2] < down[3] < BASE and BASE - down[3] < 1e-3


def test_bounded_smooth_and_deterministic() -> None:
    assert calibrated_threshold(BASE, {"false_positive": 10**9}) == CEILING
    assert calibrated_threshold(BASE, {"missed": 10**9}) == FLOOR
    # one more verdict never moves the threshold by more than a bounded step
    fps = [calibrated_threshold(BASE, {"false_positive": k}) for k in range(51)]
    steps = [b - a for a, b in itertools.pairwise(fps)]
    assert max(steps) < 0.2
    assert calibrated_threshold(0.7, {"false_positive": 3, "missed": 1, "true_positive": 2}) == \
        calibrated_threshold(0.7, {"false_positive": 3, "missed": 1, "true_positive": 2, "other": 9})
    # a base outside the bounds stays reachable: a false positive never lowers a threshold of 1.0
    assert calibrated_threshold(1.0, {"false_positive": 3}) == 1.0
    assert calibrated_threshold(0.1, {"missed": 3}) == 0.1


@pytest.mark.parametrize("counts", [{"false_positive": -1}, {"missed": 1.5e300 * 1e10}, {"true_positive": "3"},
                                    {"missed": True}])
def test_bad_counts_name_the_key(counts: dict[str, object]) -> None:
    with pytest.raises(DataError, match=next(iter(counts))):
        calibrated_threshold(BASE, counts)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"base": 0.0}, {"base": 1.5}, {"base": BASE, "prior": 0.0},
                                    {"base": BASE, "floor": 0.9, "ceiling": 0.8}])
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        calibrated_threshold(counts={"missed": 1}, **kwargs)


# ---- the measured effect ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """A scored series: times, probabilities, and the injected windows (start row, length)."""

    seconds: FloatArray
    probability: FloatArray
    real: list[tuple[int, int]]  # anomalies a person confirms
    weak: list[tuple[int, int]]  # real but faint anomalies (the misses)
    benign: list[tuple[int, int]]  # bumps a person calls normal

    def truth(self) -> np.ndarray:
        out = np.zeros(len(self.seconds), dtype=bool)
        for s, d in self.real + self.weak:
            out[s:s + d + TAIL] = True
        return out


def _shape(rng: np.random.Generator, d: int) -> FloatArray:
    shapes: list[FloatArray] = [np.ones(d), np.linspace(0.0, 1.0, d), np.sin(np.arange(d, dtype=float))]
    return shapes[int(rng.integers(0, 3))]


def scenario(seed: int, *, benign_every: int, benign_size: tuple[float, float], real_every: int,
             real_size: tuple[float, float]) -> Scenario:
    rng = np.random.default_rng(seed)
    t = T0 + STEP_S * np.arange(N, dtype=float)
    x = 10.0 + 2.0 * np.sin(2 * np.pi * t / 86_400.0) + rng.normal(size=N) * 0.3
    real: list[tuple[int, int]] = []
    benign: list[tuple[int, int]] = []
    for start in range(TRAIN[0] + 300, N - 100, real_every):
        d = int(rng.integers(5, 20))
        x[start:start + d] += rng.uniform(*real_size) * rng.choice([-1.0, 1.0]) * _shape(rng, d)
        real.append((start, d))
    busy = np.zeros(N, dtype=bool)
    for s, d in real:
        busy[max(0, s - 60):s + d + 60] = True
    if benign_every:
        for start in range(1000, N - 100, benign_every):
            b = start + int(rng.integers(0, benign_every // 2))
            if busy[b:b + 40].any():
                continue
            d = int(rng.integers(2, 20))
            x[b:b + d] += rng.uniform(*benign_size) * rng.choice([-1.0, 1.0]) * _shape(rng, d)
            benign.append((b, d))
    frame = Frame.from_arrays(np.round(t * 1e9).astype(np.int64).astype("datetime64[ns]"), x[:, None], ["latency"])
    p = DETECTORS.build("opsmind").score(frame)
    return Scenario(t, p, real if real_size[0] >= 3.0 else [], real if real_size[0] < 3.0 else [], benign)


@dataclass(frozen=True)
class Outcome:
    alerts: list[int]
    false_positives: list[int]
    hits: list[tuple[int, int]]  # injected windows with an alert inside


def decide(sc: Scenario, threshold: float, rows: tuple[int, int], windows: list[tuple[int, int]]) -> Outcome:
    lo, hi = rows
    flags, _ = Thresholder(threshold=threshold, refractory_s=1800.0).process(sc.probability[lo:hi], sc.seconds[lo:hi])
    alerts = [int(i) + lo for i in np.flatnonzero(flags)]
    truth = sc.truth()
    hits = [(s, d) for s, d in windows if lo <= s < hi and any(s <= i < s + d + TAIL for i in alerts)]
    return Outcome(alerts, [i for i in alerts if not truth[i]], hits)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'opsmind.db'}") as s:
        s.tenants.ensure(TENANT)
        yield s


SEEDS = (1, 2, 3, 4)  # one series each; the figures are totals over the four


def _mark_alerts(store: Store, sid: int, sc: Scenario, alerts: list[int]) -> None:
    """The engine records the alerts; a person marks each one true or false."""
    truth = sc.truth()
    for i in alerts:
        record = store.anomalies.record(TENANT, sid, float(sc.seconds[i]), float(sc.probability[i]),
                                        severity="medium", detector="opsmind")
        store.feedback.mark(TENANT, record.id, "true_positive" if truth[i] else "false_positive", "oncall")


def test_false_positive_feedback_cuts_false_alarms_on_held_out_data(store: Store) -> None:
    fp_before = fp_after = hits_before = hits_after = n_real = 0
    lines = []
    for seed in SEEDS:
        sc = scenario(seed, benign_every=200, benign_size=(2.5, 4.5), real_every=1300, real_size=(8.0, 14.0))
        sid = store.series.upsert(TENANT, "latency", {"service": "checkout", "instance": f"i{seed}"}).id
        _mark_alerts(store, sid, sc, decide(sc, BASE, TRAIN, sc.real).alerts)
        counts = store.feedback.counts(TENANT, sid)
        calibrated = calibrated_threshold(BASE, counts)
        before = decide(sc, BASE, HELD_OUT, sc.real)
        after = decide(sc, calibrated, HELD_OUT, sc.real)
        assert calibrated > BASE, counts
        assert set(after.hits) == set(before.hits), f"seed {seed}: a real anomaly was lost ({calibrated:.3f})"
        fp_before += len(before.false_positives)
        fp_after += len(after.false_positives)
        hits_before += len(before.hits)
        hits_after += len(after.hits)
        n_real += len([w for w in sc.real if HELD_OUT[0] <= w[0] < HELD_OUT[1]])
        lines.append(f"seed {seed}: {counts['false_positive']} FP + {counts['true_positive']} TP marked, threshold "
                     f"{BASE} -> {calibrated:.3f}, held-out FP {len(before.false_positives)} -> "
                     f"{len(after.false_positives)}")
    figures = (f"held-out false positives {fp_before} -> {fp_after}; real anomalies detected {hits_before}/{n_real} "
               f"-> {hits_after}/{n_real}; " + "; ".join(lines))
    assert fp_before >= 10, figures  # there was something to cut
    assert fp_after <= 0.7 * fp_before, figures
    assert hits_after == hits_before >= 0.9 * n_real, figures
    print(figures)


def test_missed_feedback_lowers_the_threshold_and_catches_weaker_anomalies(store: Store) -> None:
    hits_before = hits_after = n_weak = fp_before = fp_after = 0
    caught: list[tuple[int, int]] = []
    lowered = 0
    lines = []
    for seed in SEEDS:
        sc = scenario(seed, benign_every=0, benign_size=(0.0, 0.0), real_every=500, real_size=(0.7, 1.1))
        sid = store.series.upsert(TENANT, "latency", {"service": "checkout", "instance": f"i{seed}"}).id
        train = decide(sc, BASE, TRAIN, sc.weak)
        for s, _ in sorted(set(w for w in sc.weak if TRAIN[0] <= w[0] < TRAIN[1]) - set(train.hits)):
            store.feedback.report_missed(TENANT, sid, float(sc.seconds[s]), "oncall")  # a faint one opsmind missed
        # the person confirms the faint anomalies that were flagged (noise alerts are the other test's subject)
        _mark_alerts(store, sid, sc, [i for i in train.alerts if sc.truth()[i]])
        counts = store.feedback.counts(TENANT, sid)
        calibrated = calibrated_threshold(BASE, counts)
        before = decide(sc, BASE, HELD_OUT, sc.weak)
        after = decide(sc, calibrated, HELD_OUT, sc.weak)
        assert counts["missed"] >= 3, counts
        lowered += calibrated < BASE
        assert set(before.hits) <= set(after.hits), f"seed {seed}: lowering the threshold lost a detection"
        caught += sorted(set(after.hits) - set(before.hits))
        hits_before += len(before.hits)
        hits_after += len(after.hits)
        fp_before += len(before.false_positives)
        fp_after += len(after.false_positives)
        n_weak += len([w for w in sc.weak if HELD_OUT[0] <= w[0] < HELD_OUT[1]])
        lines.append(f"seed {seed}: {counts['missed']} missed + {counts['true_positive']} TP + "
                     f"{counts['false_positive']} FP marked, threshold {BASE} -> {calibrated:.3f}, held-out hits "
                     f"{len(before.hits)} -> {len(after.hits)}")
    figures = (f"held-out weak anomalies detected {hits_before}/{n_weak} -> {hits_after}/{n_weak} "
               f"({len(caught)} newly caught); held-out false positives {fp_before} -> {fp_after} (the price); "
               + "; ".join(lines))
    assert lowered == len(SEEDS), figures
    assert caught, figures
    assert hits_after >= hits_before + 3, figures
    print(figures)
