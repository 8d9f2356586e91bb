"""Behaviour of the robust statistical baselines: mad, iqr, ewma, seasonal, bocpd."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from opsmind.core import ConfigError, FloatArray, Frame
from opsmind.detect import BOCPD, EWMA, Detector, RollingIQR, RollingMAD, SeasonalProfile

DAY = 1440  # minutes


def _frame(x: FloatArray, minutes: npt.NDArray[np.int64] | None = None) -> Frame:
    m = np.arange(x.size) if minutes is None else minutes
    stamps = np.datetime64("2024-01-01T00:00:00", "ns") + np.asarray(m, dtype=np.int64) * np.timedelta64(60, "s")
    return Frame(stamps.astype("datetime64[ns]"), np.asarray(x, dtype=np.float64)[:, None], ("x",))


def _noise(n: int, seed: int = 0) -> FloatArray:
    return 20.0 + np.random.default_rng(seed).normal(size=n)


BASELINES: list[Callable[[], Detector]] = [
    lambda: RollingMAD(window=100),
    lambda: RollingIQR(window=100),
    lambda: EWMA(alpha=0.05),
    lambda: SeasonalProfile(),
    lambda: BOCPD(),
]


@pytest.mark.parametrize("make", BASELINES)
def test_spike_scores_above_every_normal_point(make: Callable[[], Detector]) -> None:
    x = _noise(1500)
    x[1000] += 8.0
    scores = make().score(_frame(x))
    normal = np.delete(scores, 1000)
    assert scores[1000] > normal.max()


@pytest.mark.parametrize("make", BASELINES)
def test_constant_series_scores_zero_and_a_departure_scores_high(make: Callable[[], Detector]) -> None:
    x = np.full(400, 7.0)
    x[300] = 8.0
    det = make()
    scores = det.score(_frame(x))
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0.0)
    # BOCPD keeps a little posterior mass on "a new regime just began" even when nothing changes.
    assert scores[:300].max() <= (1e-3 if isinstance(det, BOCPD) else 0.0)
    assert scores[300:306].max() > 10.0


@pytest.mark.parametrize(("make", "warm"), [
    (lambda: RollingMAD(min_history=30), 30),
    (lambda: RollingIQR(min_history=30), 30),
    (lambda: EWMA(min_history=30), 30),
    (lambda: SeasonalProfile(min_history=30), 30),
    (lambda: BOCPD(min_history=30, short_run=3), 33),  # and then a run of short_run points
])
def test_warm_up_scores_zero(make: Callable[[], Detector], warm: int) -> None:
    x = _noise(200)
    x[5] = 100.0
    x[warm] = 1000.0
    scores = make().score(_frame(x))
    assert np.all(scores[:warm] == 0.0) and scores[warm] > 1.0


def test_mad_matches_a_direct_numpy_computation() -> None:
    x = np.round(_noise(700, seed=3), 1)  # rounding makes ties, which the sorted window must handle
    window, warm = 50, 10
    scores = RollingMAD(window=window, min_history=warm).score(_frame(x))
    for i in range(warm, x.size):
        past = x[max(0, i - window) : i]
        med = np.median(past)
        mad = 1.4826 * np.median(np.abs(past - med))
        expected = abs(x[i] - med) / mad if mad > 0 else abs(x[i] - med) / (1.2533 * np.mean(np.abs(past - med)))
        assert scores[i] == pytest.approx(expected, rel=1e-9)


def test_iqr_matches_numpy_quantiles() -> None:
    x = np.random.default_rng(4).gamma(2.0, size=600)
    window, k = 80, 1.5
    scores = RollingIQR(window=window, k=k).score(_frame(x))
    for i in range(20, x.size):
        q1, q3 = np.quantile(x[max(0, i - window) : i], [0.25, 0.75])
        iqr = q3 - q1
        assert scores[i] == pytest.approx(max(0.0, q1 - k * iqr - x[i], x[i] - q3 - k * iqr) / iqr, rel=1e-9)


def test_ewma_matches_the_recurrence() -> None:
    x = _noise(300, seed=5)
    alpha = 0.1
    scores = EWMA(alpha=alpha, min_history=2).score(_frame(x))
    mean, var, weight = x[0], 0.0, 0.0
    for i in range(1, x.size):
        if i >= 2:
            assert scores[i] == pytest.approx(abs(x[i] - mean) / np.sqrt(var / weight), rel=1e-9)
        diff = x[i] - mean
        mean += alpha * diff
        var = (1 - alpha) * (var + alpha * diff * diff)
        weight = 1 - (1 - alpha) ** i


def test_mad_keeps_flagging_a_burst_that_masks_ewma() -> None:
    x = _noise(600, seed=6)
    x[400:406] += 10.0
    mad = RollingMAD(window=100).score(_frame(x))
    ewma = EWMA(alpha=0.05).score(_frame(x))
    assert mad[400:406].min() > 6.0
    assert ewma[405] < ewma[400] / 2  # the first outliers inflate the EWMA variance


def test_bocpd_scores_the_level_shift() -> None:
    x = _noise(1200, seed=7)
    x[700:] += 5.0
    scores = BOCPD().score(_frame(x))
    assert int(np.argmax(scores)) in range(700, 705)
    assert scores[700:705].max() > 3.0
    assert np.delete(scores, range(700, 710)).max() < scores[700:705].max() / 3
    assert scores[710:].max() < 1.0  # the new level is learned


def test_bocpd_flags_a_variance_change() -> None:
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(size=600), rng.normal(scale=6.0, size=200)])
    scores = BOCPD().score(_frame(x))
    assert scores[600:620].max() > 3 * scores[100:600].max()


def test_bocpd_truncation_does_not_change_short_histories() -> None:
    x = _noise(400, seed=9)
    x[250:] -= 4.0
    short = BOCPD(max_run_length=200).score(_frame(x))
    long = BOCPD(max_run_length=1000).score(_frame(x))
    np.testing.assert_allclose(short[:221], long[:221], rtol=1e-12)  # 20 warm-up points + 200 in one run
    assert np.abs(short - long).max() < 0.5  # and later it stays close


def _daily_peak(days: int, seed: int = 0) -> FloatArray:
    """Flat load with a busy hour at noon (12:00-13:00) every day."""
    minutes = np.arange(days * DAY)
    x = 10.0 + np.random.default_rng(seed).normal(size=minutes.size)
    x[(minutes % DAY) // 60 == 12] += 15.0
    return x


def test_seasonal_does_not_flag_the_daily_peak_that_mad_flags() -> None:
    x = _daily_peak(5)
    night = 4 * DAY + 3 * 60
    x[night] += 15.0  # the same bump at 3 am on day 5 is an anomaly
    frame = _frame(x)
    seasonal = SeasonalProfile().score(frame)
    mad = RollingMAD(window=200).score(frame)
    peaks = [d * DAY + 12 * 60 for d in range(2, 5)]
    assert all(mad[p] > 8.0 for p in peaks)
    assert all(seasonal[p : p + 60].max() < 5.0 for p in peaks)
    assert seasonal[night] > 8.0
    assert seasonal[night] > seasonal[2 * DAY :].max() - 1e-12


def test_seasonal_bins_by_time_so_gaps_and_sampling_changes_work() -> None:
    x = _daily_peak(6, seed=1)
    minutes = np.arange(x.size)
    # Day 3 missing, day 4 sampled every 5 minutes, a 3-hour hole on day 5 morning.
    keep = (minutes // DAY != 2) & ((minutes // DAY != 3) | (minutes % 5 == 0))
    keep &= ~((minutes // DAY == 4) & (minutes % DAY >= 6 * 60) & (minutes % DAY < 9 * 60))
    scores = SeasonalProfile().score(_frame(x[keep], minutes[keep]))
    kept = minutes[keep]
    later = kept >= 3 * DAY
    noon = (kept % DAY) // 60 == 12
    assert scores[later & noon].max() < 5.0
    assert np.percentile(scores[later], 99.9) < 5.0


def test_seasonal_falls_back_to_the_global_baseline_on_the_first_day() -> None:
    x = _noise(DAY)
    x[600] += 10.0
    det = SeasonalProfile(window=200)
    scores = det.score(_frame(x))
    reference = RollingMAD(window=200).score(_frame(x))
    np.testing.assert_allclose(scores, reference, rtol=1e-12)


def test_weekly_period_uses_time_of_week() -> None:
    # A busy Monday (2024-01-01 is a Monday): a weekly profile learns it, a daily one cannot.
    minutes = np.arange(0, 4 * 7 * DAY, 10)
    x = 10.0 + np.random.default_rng(2).normal(size=minutes.size)
    monday = (minutes // DAY) % 7 == 0
    x[monday] += 8.0
    frame = _frame(x, minutes)
    weekly = SeasonalProfile(period_s=7 * 86400.0, bins=7 * 24, min_bin_count=3).score(frame)
    daily = SeasonalProfile().score(frame)
    last_monday = monday & (minutes >= 3 * 7 * DAY)
    assert weekly[last_monday].max() < 5.0
    assert np.median(daily[last_monday]) > 3.0


@pytest.mark.parametrize(("det", "field"), [
    (RollingMAD(window=0), "window"),
    (RollingMAD(window=10, min_history=20), "min_history"),
    (RollingIQR(k=-1.0), "k"),
    (RollingIQR(window=2.5), "window"),  # type: ignore[arg-type]
    (EWMA(alpha=1.5), "alpha"),
    (EWMA(min_history=1), "min_history"),
    (SeasonalProfile(period_s=0), "period_s"),
    (SeasonalProfile(bins=0), "bins"),
    (SeasonalProfile(bin_window=5), "min_bin_count"),
    (BOCPD(hazard_lambda=0.5), "hazard_lambda"),
    (BOCPD(kappa0=-1.0), "kappa0"),
])
def test_bad_settings_raise_config_error_naming_the_field(det: Detector, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        det.score(_frame(_noise(10)))
    with pytest.raises(ConfigError, match=field):
        det.learn_one(0.0, 1.0)


@pytest.mark.parametrize("make", BASELINES)
def test_extreme_values_give_finite_scores(make: Callable[[], Detector]) -> None:
    x = _noise(600, seed=10)
    x[300], x[400], x[550] = 1e12, -1e12, 30.0
    det = make()
    scores = det.score(_frame(x))
    assert np.all(np.isfinite(scores))
    assert min(scores[300], scores[400]) > np.delete(scores, [300, 400]).max()
    if not isinstance(det, EWMA):  # the robust ones shrug the outliers off (EWMA's variance needs ~1/alpha rows)
        # (BOCPD takes an extreme value for the start of a new regime: it settles after short_run rows.)
        assert scores[550] > 5.0 and int(np.argmax(scores[410:])) == 140


def test_bocpd_survives_an_overflowing_value() -> None:
    x = _noise(300, seed=11)
    x[200] = 1e200  # (x - mu)^2 overflows
    scores = BOCPD().score(_frame(x))
    assert np.all(np.isfinite(scores)) and int(np.argmax(scores)) == 200
    assert scores[220:].max() < 1.0
