"""Conformance suite: every registered detector honours the contract of ``opsmind.detect.base``.

Adding a detector to ``DETECTORS`` adds it here. Multivariate detectors (``multivariate = True``) get a
three-column frame, the others one column.
"""

from __future__ import annotations

import inspect
import json
import pickle
from functools import cache

import numpy as np
import pytest

import opsmind.detect  # noqa: F401  (registers every detector)
from opsmind.core import DataError, FloatArray, Frame
from opsmind.detect import DETECTORS, Detector

NAMES = list(DETECTORS)
N = 800
WIDTH = 3  # columns given to multivariate detectors
SPIKE, SHIFT, GAP = 250, 550, 400  # the gap: two hours missing before row GAP
NAN_ROWS = (100, 380)
TAIL = 100  # rows streamed after a pickle, a probe or a rejected input (streaming some detectors is slow)
RTOL, ATOL = 1e-9, 1e-12


def _timestamps(n: int) -> np.ndarray:
    minutes = np.arange(n, dtype=np.int64)
    minutes[GAP:] += 120
    return (np.datetime64("2024-03-01T00:00:00", "ns") + minutes * np.timedelta64(60, "s")).astype("datetime64[ns]")


def _values(width: int, seed: int = 0) -> FloatArray:
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    base = 10.0 + 3.0 * np.sin(2 * np.pi * i / 200.0)
    cols = [base * (1.0 + 0.2 * j) + rng.normal(scale=0.5, size=N) for j in range(width)]
    x = np.stack(cols, axis=1)
    x[SPIKE] += 8.0
    x[SHIFT:] += 4.0
    for r in NAN_ROWS:
        x[r, r % width] = np.nan
    return x


def _frame(multivariate: bool) -> Frame:
    width = WIDTH if multivariate else 1
    return Frame(_timestamps(N), _values(width), tuple(f"m{j}" for j in range(width)), "conformance")


def _make(name: str) -> Detector:
    params = inspect.signature(DETECTORS.get(name)).parameters
    return DETECTORS.build({"type": name, "params": {"seed": 7}} if "seed" in params else name)


def _row(det: Detector, x: FloatArray) -> float | FloatArray:
    return x if det.multivariate else float(x[0])


def _stream(det: Detector, frame: Frame, start: int = 0, stop: int | None = None) -> FloatArray:
    ts = frame.seconds()
    stop = len(frame) if stop is None else stop
    out = np.empty(stop - start)
    for i in range(start, stop):
        x = _row(det, frame.values[i])
        out[i - start] = det.score_one(float(ts[i]), x)
        det.learn_one(float(ts[i]), x)
    return out


@cache
def _reference(name: str) -> FloatArray:
    """Pure streaming scores of a fresh detector on its frame (computed once per detector)."""
    det = _make(name)
    return _stream(det, _frame(det.multivariate))


def _close(actual: FloatArray, expected: FloatArray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_registry_has_the_baselines() -> None:
    assert {"mad", "iqr", "ewma", "seasonal", "bocpd"} <= set(NAMES)


def test_scores_finite_nonnegative_and_nan_rows_zero(name: str) -> None:
    scores = _reference(name)
    assert scores.shape == (N,)
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0.0)
    assert all(scores[r] == 0.0 for r in NAN_ROWS)
    assert np.ptp(scores) > 0.0  # it does score something


def test_batch_equals_streaming(name: str) -> None:
    det = _make(name)
    _close(det.score(_frame(det.multivariate)), _reference(name))


def test_batch_then_stream_continues(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    k = N - 150
    head = det.score(frame.slice(0, k))
    tail = _stream(det, frame, k)
    _close(np.concatenate([head, tail]), _reference(name))


def test_stream_then_batch_and_minibatches(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    first = _stream(det, frame, 0, 150)
    middle = det.score(frame.slice(150, 520))
    last = det.score(frame.slice(520))
    _close(np.concatenate([first, middle, last]), _reference(name))


def test_learn_then_score_equals_score_all(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    det.learn(frame.slice(0, 400))
    _close(det.score(frame.slice(400)), _reference(name)[400:])


def test_causal(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    k = 450
    changed = frame.values.copy()
    changed[k + 1 :] = changed[k + 1 :][::-1] * 3.0 + 50.0
    other = Frame(frame.timestamps, changed, frame.columns, frame.name)
    _close(_make(name).score(other)[: k + 1], det.score(frame)[: k + 1])


def test_nan_rows_score_zero_and_are_not_learned(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    keep = np.ones(N, dtype=bool)
    keep[list(NAN_ROWS)] = False
    dropped = Frame(frame.timestamps[keep], frame.values[keep], frame.columns, frame.name)
    _close(_make(name).score(dropped), det.score(frame)[keep])


def test_pickle_round_trip_mid_stream(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    k = 450
    det.score(frame.slice(0, k))
    copy = pickle.loads(pickle.dumps(det))
    _close(_stream(copy, frame, k, k + TAIL), _reference(name)[k : k + TAIL])
    _close(det.score(frame.slice(k)), _reference(name)[k:])


def test_deterministic(name: str) -> None:
    a, b = _make(name), _make(name)
    frame = _frame(a.multivariate)
    np.testing.assert_array_equal(a.score(frame), b.score(frame))


def test_score_one_is_pure(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    ts = frame.seconds()
    k = 350
    det.score(frame.slice(0, k))
    width = frame.ndim
    probes = [frame.values[k], frame.values[k] + 1e6, np.full(width, -3.0), np.full(width, np.nan)]
    for probe in probes:
        first = det.score_one(float(ts[k]), _row(det, probe))
        assert det.score_one(float(ts[k]), _row(det, probe)) == first
        assert np.isfinite(first) and first >= 0.0
    _close(_stream(det, frame, k, k + TAIL), _reference(name)[k : k + TAIL])


def test_clone_is_unfitted_with_equal_params(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    det.learn(frame.slice(0, 400))
    twin = det.clone()
    assert type(twin) is type(det) and twin is not det
    assert twin._params() == det._params()
    _close(twin.score(frame), _reference(name))


def test_registry_spec_round_trip(name: str) -> None:
    det = _make(name)
    spec = json.loads(json.dumps(DETECTORS.spec(det)))  # configuration comes from YAML / JSON
    built = DETECTORS.build(spec)
    assert type(built) is type(det)
    assert json.loads(json.dumps(DETECTORS.spec(built))) == spec
    _close(built.score(_frame(det.multivariate)), _reference(name))


def test_constant_series(name: str) -> None:
    det = _make(name)
    width = WIDTH if det.multivariate else 1
    frame = Frame(_timestamps(300), np.full((300, width), 5.0), tuple(f"m{j}" for j in range(width)))
    scores = det.score(frame)
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0.0)


def test_bad_input_raises_data_error(name: str) -> None:
    det = _make(name)
    frame = _frame(det.multivariate)
    ts = frame.seconds()
    det.score(frame.slice(0, 300))
    with pytest.raises(DataError, match="numeric"):
        det.score_one(float(ts[300]), "high")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="numeric"):
        det.learn_one(float(ts[300]), "high")  # type: ignore[arg-type]
    wide_width = frame.ndim + 1
    wide = Frame(frame.timestamps, np.ones((N, wide_width)), tuple(f"w{j}" for j in range(wide_width)), "wide")
    with pytest.raises(DataError, match=r"\d"):
        det.score_one(float(ts[300]), np.ones(wide_width))
    with pytest.raises(DataError, match=r"\d"):
        det.learn_one(float(ts[300]), np.ones(wide_width))
    with pytest.raises(DataError, match=r"\d"):
        det.score(wide)
    with pytest.raises(DataError, match=r"\d"):
        det.learn(wide)
    # A rejected input leaves the detector as it was.
    _close(_stream(det, frame, 300, 300 + TAIL), _reference(name)[300 : 300 + TAIL])
