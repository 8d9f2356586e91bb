"""The multivariate detectors: attribution, the refit schedule, and the batch path against the loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from opsmind.core import ConfigError, DataError, FloatArray, Frame
from opsmind.detect import DETECTORS, IsolationForest, RobustMultivariate
from opsmind.detect._buffered import BufferedDetector, window_mean, windowed_features

NAMES = ["robust_multivariate", "iforest", "lof"]
FAULT_DIMS = (3, 7)


def _frame(n: int = 900, d: int = 10, fault: bool = True, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    X = 5.0 + np.sin(2 * np.pi * i / 120.0)[:, None] * np.linspace(0.5, 2.0, d) + rng.normal(scale=0.3, size=(n, d))
    if fault:
        X[800:830, FAULT_DIMS[0]] += 5.0
        X[800:830, FAULT_DIMS[1]] -= 5.0
    ts = np.datetime64("2024-01-01", "ns") + i * np.timedelta64(60, "s")
    return Frame(ts, X, tuple(f"m{j}" for j in range(d)), "mv")


def _build(name: str, **params: int) -> BufferedDetector:
    det = DETECTORS.build({"type": name, "params": {"refit_every": 300, **params}})
    assert isinstance(det, BufferedDetector)
    return det


@pytest.mark.parametrize("name", ["robust_multivariate", "lof"])
def test_fault_on_dims_3_and_7_scores_above_normal_rows(name: str) -> None:
    frame = _frame()
    normal = _build(name).score(frame.slice(0, 800))[400:]
    det = _build(name)
    det.learn(frame.slice(0, 810))
    assert det.score_one(0.0, frame.values[810]) > normal.max()


@pytest.mark.parametrize("name", NAMES)
def test_fault_on_dims_3_and_7_ranks_them_first(name: str) -> None:
    frame = _frame()
    det = _build(name)
    det.learn(frame.slice(0, 810))  # the stream has seen the fault's first ten minutes
    x = frame.values[810]
    attribution = det.explain_one(0.0, x)
    assert attribution.shape == (10,) and np.all(attribution >= 0)
    assert set(np.argsort(-attribution)[:2].tolist()) == set(FAULT_DIMS)


@pytest.mark.parametrize("name", NAMES)
def test_explain_frame_equals_explain_one_loop(name: str) -> None:
    frame = _frame(n=700)
    a, b = _build(name), _build(name)
    a.learn(frame.slice(0, 400))
    b.learn(frame.slice(0, 400))
    batch = a.explain(frame.slice(400))
    ts = frame.seconds()
    loop = []
    for i in range(400, 700):
        loop.append(b.explain_one(ts[i], frame.values[i]))
        b.learn_one(ts[i], frame.values[i])
    np.testing.assert_array_equal(batch, np.array(loop))


def test_robust_attribution_sums_to_score_and_deviations_rank_it() -> None:
    frame = _frame()
    det = RobustMultivariate()
    det.learn(frame.slice(0, 800))
    x = frame.values[815]
    assert det.explain_one(0.0, x).sum() == pytest.approx(det.score_one(0.0, x))
    dev = det.deviations(frame.slice(800, 830))
    assert set(np.argsort(-dev[15])[:2].tolist()) == set(FAULT_DIMS)


def test_nothing_is_scored_before_the_first_fit_and_refits_follow_the_schedule() -> None:
    det = RobustMultivariate(min_train=50, refit_every=100)
    frame = _frame(n=260, fault=False)
    scores = det.score(frame)
    assert np.all(scores[:50] == 0.0)
    assert det.n_learned_ == 260 and det.last_fit_ == 250


def test_nan_rows_score_zero_and_do_not_enter_the_window() -> None:
    frame = _frame(n=500, fault=False)
    values = frame.values.copy()
    values[450, 2] = np.nan
    det = RobustMultivariate(min_train=100)
    scores = det.score(Frame(frame.timestamps, values, frame.columns))
    assert scores[450] == 0.0 and det.n_learned_ == 499


def test_iforest_is_deterministic_with_its_seed_and_pickles() -> None:
    frame = _frame(n=600)
    a, b, c = IsolationForest(seed=3, min_train=300), IsolationForest(seed=3, min_train=300), IsolationForest(
        seed=4, min_train=300)
    sa, sb, sc = a.score(frame), b.score(frame), c.score(frame)
    np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(sa, sc)
    again = pickle.loads(pickle.dumps(a))
    assert again.score_one(0.0, frame.values[5]) == a.score_one(0.0, frame.values[5])


def test_window_features_use_only_the_past() -> None:
    H: FloatArray = np.arange(12, dtype=np.float64).reshape(6, 2)
    np.testing.assert_array_equal(window_mean(H, 3, 3)[:, 0], [4.0, 6.0, 8.0])
    feats = windowed_features(H, 0, 2)
    np.testing.assert_array_equal(feats[:2, 0], [0.0, 2.0])  # values
    np.testing.assert_array_equal(feats[:2, 2], [0.0, 1.0])  # window mean (partial at the start)
    np.testing.assert_array_equal(feats[:2, 4], [0.0, 2.0])  # change from the previous row


def test_bad_configuration_and_width() -> None:
    with pytest.raises(ConfigError):
        RobustMultivariate(window=0).learn_one(0.0, np.ones(3))
    with pytest.raises(ConfigError):
        RobustMultivariate(window=10, buffer=5).learn_one(0.0, np.ones(3))
    det = RobustMultivariate()
    det.learn_one(0.0, np.ones(3))
    with pytest.raises(DataError):
        det.learn_one(60.0, np.ones(4))
