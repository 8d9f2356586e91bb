"""The default ensemble's parts: recent range excess, novelty calibration period, thresholder hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.core import ConfigError, FloatArray, Frame
from opsmind.detect import Ensemble, RangeExcess, RecentRangeExcess, Thresholder, WindowNovelty


def _frame(x: FloatArray) -> Frame:
    ts = (np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(x.size) * np.timedelta64(300, "s"))
    return Frame.from_arrays(ts, x)


def _noise(n: int, seed: int = 0) -> FloatArray:
    return np.random.default_rng(seed).normal(0.0, 1.0, n)


def test_recent_range_forgets_old_extremes() -> None:
    x = np.clip(_noise(3000), -3.0, 3.0)
    x[200] = 40.0  # an old spike: all-time range stays [-3, 40] for good
    x[2500] = 8.0  # later excursion: inside the all-time range, beyond the last 1000 rows' range
    recent = RecentRangeExcess(memory=1000, warmup=100).score(_frame(x))
    alltime = RangeExcess(warmup=100).score(_frame(x))
    assert alltime[2500] == 0.0
    lo, hi = x[1500:2500].min(), x[1500:2500].max()  # the envelope of the last 1000 rows
    assert recent[2500] == pytest.approx((8.0 - hi) / (hi - lo), rel=1e-12)
    assert recent[200] > 5.0  # the spike itself is beyond the range then too
    assert recent[1500:2500].max() < 0.05 and recent[2501:].max() < 0.05


def test_recent_range_warmup_and_parameters() -> None:
    x = np.arange(50, dtype=np.float64)  # every value a new high
    scores = RecentRangeExcess(memory=10, warmup=20).score(_frame(x))
    assert np.all(scores[:20] == 0.0) and np.all(scores[20:] > 0.0)
    with pytest.raises(ConfigError, match="memory"):
        RecentRangeExcess(memory=0).score(_frame(x))


def test_novelty_calibration_period_raises_the_base() -> None:
    x = np.sin(np.arange(4000) * 2 * np.pi / 50) + 0.05 * _noise(4000, 1)
    x[500:510] += 3.0  # a burst after the warm-up, inside a 750-row calibration period
    plain = WindowNovelty(warmup=300).score(_frame(x))
    same = WindowNovelty(warmup=300, calibration=100).score(_frame(x))  # shorter than the warm-up: the warm-up
    longer = WindowNovelty(warmup=300, calibration=750).score(_frame(x))
    np.testing.assert_array_equal(plain, same)
    np.testing.assert_array_equal(plain[:510], longer[:510])  # same scores until the reference differs
    # the burst stays in the base, so later novelty is measured against it: lower by a lot
    assert longer[1500:].max() < 0.5 * plain[1500:].max()
    # the running-max part alone (no likelihood) is never higher anywhere
    ratio_plain = WindowNovelty(warmup=300, likelihood_window=0).score(_frame(x))
    ratio_longer = WindowNovelty(warmup=300, likelihood_window=0, calibration=750).score(_frame(x))
    assert np.all(ratio_longer <= ratio_plain) and ratio_longer[1500:].sum() < 0.5 * ratio_plain[1500:].sum()
    with pytest.raises(ConfigError, match="calibration"):
        WindowNovelty(calibration=0).score(_frame(x))


def test_thresholder_hysteresis_is_the_default() -> None:
    probs = [0.9, 0.9, 0.9, 0.1, 0.9]
    t = [0.0, 40000.0, 80000.0, 90000.0, 120000.0]  # beyond the 8 h suppression each time
    th = Thresholder()
    assert [th.process_one(a, p).is_anomaly for a, p in zip(t, probs, strict=True)] == [True, False, False, False, True]
    th = Thresholder(clear=None)
    assert [th.process_one(a, p).is_anomaly for a, p in zip(t, probs, strict=True)] == [True, True, True, False, True]
    th = Thresholder(threshold=0.1, refractory_s=None, refractory=0)  # clear above the threshold counts as it
    assert [th.process_one(float(i), p).is_anomaly for i, p in enumerate([0.5, 0.5, 0.05, 0.5])] == [
        True, False, False, True]
    with pytest.raises(ConfigError, match="clear"):
        Thresholder(clear=1.5)


def test_ensemble_small_excursion_beyond_range_is_not_an_alert() -> None:
    x = np.sin(np.arange(2000) * 2 * np.pi / 100) + 0.05 * _noise(2000, 2)
    top = float(x[:1500].max())
    x[1500] = top + 0.001  # a new high by a hair
    x[1800] = top + 1.0  # a new high by half the range
    p = Ensemble().score(_frame(x))
    assert p[1800] > 0.9
    assert p[1500] < 0.5
