"""The Prometheus source against a real Prometheus server, and against a scripted HTTP server for failures."""

from __future__ import annotations

import base64
import itertools
import json
import time
from urllib.parse import parse_qs

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmind.core import ConfigError, Frame, SourceError
from opsmind.sources.base import Source
from opsmind.sources.prometheus import BasicAuth, Prometheus, PrometheusSettings, choose_step, plan_chunks, series_name
from opsmind.sources.timeparse import parse_duration, parse_time
from servers import (
    BACKFILL_B_FROM,
    BACKFILL_COUNT,
    BACKFILL_START_S,
    BACKFILL_STEP_S,
    BASIC_PASSWORD,
    BASIC_USER,
    LIVE_VALUES,
    Reply,
    RunningPrometheus,
    ScriptedServer,
    free_port,
    require_binary,
)

HISTORY_END_S = BACKFILL_START_S + BACKFILL_STEP_S * (BACKFILL_COUNT - 1)
A = 'opsmind_test_history{series="a"}'
B = 'opsmind_test_history{series="b"}'


def client(url: str, **settings: object) -> Prometheus:
    return Prometheus(PrometheusSettings(url=url, **settings))


def matrix(*values: tuple[float, str]) -> str:
    result = [{"metric": {"__name__": "m"}, "values": [list(v) for v in values]}]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})


# ---- real Prometheus -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_range_over_11000_points_is_split_and_stitched_exactly(prometheus: RunningPrometheus) -> None:
    with client(prometheus.url) as prom:
        assert len(prom.plan(BACKFILL_START_S, HISTORY_END_S, BACKFILL_STEP_S)) == 2
        frame = prom.query_range("opsmind_test_history", BACKFILL_START_S, HISTORY_END_S, step="15s")
    assert BACKFILL_COUNT > 11_000
    assert frame.columns == (A, B)
    expected_s = BACKFILL_START_S + BACKFILL_STEP_S * np.arange(BACKFILL_COUNT)
    np.testing.assert_array_equal(frame.seconds(), expected_s)
    np.testing.assert_array_equal(frame.column(A), np.arange(BACKFILL_COUNT, dtype=float))
    b = frame.column(B)
    assert np.isnan(b[:BACKFILL_B_FROM]).all()
    np.testing.assert_array_equal(b[BACKFILL_B_FROM:], 2.0 * np.arange(BACKFILL_B_FROM, BACKFILL_COUNT))


@pytest.mark.integration
def test_many_small_chunks_give_the_same_frame(prometheus: RunningPrometheus) -> None:
    args = ("opsmind_test_history", BACKFILL_START_S, HISTORY_END_S, "15s")
    with client(prometheus.url) as whole, client(prometheus.url, max_points=997) as pieces:
        assert len(pieces.plan(BACKFILL_START_S, HISTORY_END_S, 15)) == 12
        split, single = pieces.query_range(*args), whole.query_range(*args)
    assert split.columns == single.columns
    np.testing.assert_array_equal(split.timestamps, single.timestamps)
    np.testing.assert_array_equal(split.values, single.values)


@pytest.mark.integration
def test_unaligned_step_reads_the_latest_sample(prometheus: RunningPrometheus) -> None:
    day_end = BACKFILL_START_S + 86400
    with client(prometheus.url) as prom:
        frame = prom.query_range('opsmind_test_history{series="a"}', BACKFILL_START_S, day_end, step=7)
    expected_s = np.arange(BACKFILL_START_S, day_end + 1, 7)
    assert len(expected_s) > 11_000
    np.testing.assert_array_equal(frame.seconds(), expected_s)
    np.testing.assert_array_equal(frame.values[:, 0], (expected_s - BACKFILL_START_S) // BACKFILL_STEP_S)


@pytest.mark.integration
def test_default_step_fits_one_request(prometheus: RunningPrometheus) -> None:
    with client(prometheus.url) as prom:
        frame = prom.query_range('opsmind_test_history{series="a"}', BACKFILL_START_S, HISTORY_END_S)
    assert len(frame) == 2 * 86400 // 30 + 1  # 30 s: the finest round step under 11,000 points over two days
    np.testing.assert_array_equal(frame.values[:, 0], np.arange(0, BACKFILL_COUNT, 2, dtype=float))


@pytest.mark.integration
def test_live_scrapes_instant_and_relative_range(prometheus: RunningPrometheus) -> None:
    labels = f'instance="127.0.0.1:{prometheus.exporter_port}", job="opsmind-test"'
    names = [f'opsmind_test_live{{{labels}, kind="{k}"}}' for k in sorted(LIVE_VALUES)]
    with client(prometheus.url) as prom:
        now = prom.query("opsmind_test_live")
        assert now.columns == tuple(names) and len(now) == 1
        assert now.values[0].tolist() == [LIVE_VALUES[k] for k in sorted(LIVE_VALUES)]
        recent = prom.query_range("opsmind_test_live", "now-10s", "now", step="1s", now=time.time())
    assert recent.columns == tuple(names)
    assert 1 <= len(recent) <= 11
    np.testing.assert_array_equal(recent.column(names[0]), LIVE_VALUES["a"])


@pytest.mark.integration
def test_scalar_and_empty_results(prometheus: RunningPrometheus) -> None:
    with client(prometheus.url) as prom:
        scalar = prom.query("1 + 1", time=BACKFILL_START_S)
        empty = prom.query_range("no_such_metric_anywhere", BACKFILL_START_S, BACKFILL_START_S + 60, "15s")
    assert scalar.columns == ("scalar",) and scalar.values.tolist() == [[2.0]]
    assert scalar.seconds().tolist() == [BACKFILL_START_S]
    assert len(empty) == 0 and empty.columns == ()


@pytest.mark.integration
@pytest.mark.parametrize("promql", ["sum(rate(", "rate(opsmind_test_history[5m]"])
def test_bad_promql_is_a_clear_source_error(prometheus: RunningPrometheus, promql: str) -> None:
    with client(prometheus.url, retries=3) as prom, pytest.raises(SourceError) as info:
        prom.query_range(promql, BACKFILL_START_S, BACKFILL_START_S + 60, "15s")
    message = str(info.value)
    assert "HTTP 400" in message and "bad_data" in message and "parse error" in message
    assert repr(promql) in message and "\n" not in message


@pytest.mark.integration
def test_basic_auth_against_real_prometheus(prometheus_basic_auth: str) -> None:
    good = BasicAuth(username=BASIC_USER, password=BASIC_PASSWORD)
    with client(prometheus_basic_auth, basic_auth=good) as prom:
        assert prom.query("vector(3)", time=BACKFILL_START_S).values.tolist() == [[3.0]]
    bad = BasicAuth(username=BASIC_USER, password="wrong")
    with client(prometheus_basic_auth, basic_auth=bad) as prom, pytest.raises(SourceError, match="HTTP 401"):
        prom.query("vector(3)")


# ---- scripted HTTP server: headers, retries, timeouts --------------------------------------------------------


def test_bearer_and_basic_headers_are_sent() -> None:
    with ScriptedServer([Reply()]) as server:
        with client(server.url, bearer_token="tok-123") as prom:
            prom.query("up")
        with client(server.url, basic_auth={"username": "u", "password": "p:w"}) as prom:
            prom.query("up")
        with client(server.url) as prom:
            prom.query("up")
    bearer, basic, anonymous = (seen.headers for seen in server.seen)
    assert bearer["Authorization"] == "Bearer tok-123"
    assert basic["Authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()
    assert "Authorization" not in anonymous


def test_both_auth_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        PrometheusSettings(bearer_token="t", basic_auth={"username": "u", "password": "p"})


def test_5xx_is_retried_with_exponential_backoff() -> None:
    replies = [Reply(503, '{"status":"error","errorType":"unavailable","error":"busy"}'), Reply(502, "bad gateway"),
               Reply(200, matrix((100, "1"), (115, "NaN")))]
    sleeps: list[float] = []
    with ScriptedServer(replies) as server:
        prom = Prometheus(PrometheusSettings(url=server.url, retries=3, backoff_s=0.25), sleep=sleeps.append)
        frame = prom.query_range("m", 100, 115, "15s")
    assert len(server.seen) == 3 and sleeps == [0.25, 0.5]
    assert frame.seconds().tolist() == [100.0, 115.0] and np.isnan(frame.values[1, 0])
    sent = parse_qs(server.seen[0].body)
    assert sent == {"query": ["m"], "start": ["100.000"], "end": ["115.000"], "step": ["15.000"]}
    assert server.seen[0].path == "/api/v1/query_range"


def test_retries_are_bounded_and_the_last_error_is_reported() -> None:
    sleeps: list[float] = []
    with ScriptedServer([Reply(500, '{"status":"error","errorType":"internal","error":"disk on fire"}')]) as server:
        prom = Prometheus(PrometheusSettings(url=server.url, retries=2, backoff_s=1.0), sleep=sleeps.append)
        with pytest.raises(SourceError, match=r"failed after 3 attempts.*HTTP 500: internal: disk on fire.*'up'"):
            prom.query("up")
    assert len(server.seen) == 3 and sleeps == [1.0, 2.0]


def test_4xx_is_not_retried_and_keeps_prometheus_message() -> None:
    error = '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"step\\": zero or negative"}'
    with (
        ScriptedServer([Reply(400, error), Reply()]) as server,
        client(server.url, retries=5) as prom,
        pytest.raises(SourceError, match=r'HTTP 400: bad_data: invalid parameter "step".*query: \'up\''),
    ):
        prom.query("up")
    assert len(server.seen) == 1


def test_timeout_is_retried_then_succeeds() -> None:
    with (
        ScriptedServer([Reply(delay_s=2.0), Reply(200, matrix((5, "3")))]) as server,
        client(server.url, timeout_s=0.3, retries=1, backoff_s=0.0) as prom,
    ):
        started = time.monotonic()
        frame = prom.query_range("m", 5, 5, "1s")
        assert time.monotonic() - started < 1.8
    assert frame.values.tolist() == [[3.0]] and len(server.seen) == 2


def test_timeouts_exhaust_retries() -> None:
    with (
        ScriptedServer([Reply(delay_s=1.0)]) as server,
        client(server.url, timeout_s=0.2, retries=1, backoff_s=0.0) as prom,
        pytest.raises(SourceError, match="failed after 2 attempts, last: ReadTimeout"),
    ):
        prom.query("up")


def test_connection_refused_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    prom = Prometheus(PrometheusSettings(url=f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.1),
                      sleep=sleeps.append)
    with pytest.raises(SourceError, match="failed after 3 attempts, last: ConnectError"):
        prom.query("up")
    assert sleeps == [0.1, 0.2]


def test_non_json_answer_is_a_source_error() -> None:
    with (
        ScriptedServer([Reply(200, "<html>proxy login</html>")]) as server,
        client(server.url) as prom,
        pytest.raises(SourceError, match=r"not JSON.*proxy login"),
    ):
        prom.query("up")


def test_prometheus_is_a_source() -> None:
    with client("http://127.0.0.1:1") as prom:
        assert isinstance(prom, Source)


# ---- pure helpers ---------------------------------------------------------------------------------------------


@given(start=st.integers(0, 10**6), points=st.integers(1, 100_000), step=st.sampled_from([1, 7, 15, 60, 0.5]),
       extra=st.floats(0, 0.99), max_points=st.integers(2, 11_000))
def test_plan_covers_the_grid_once(start: int, points: int, step: float, extra: float, max_points: int) -> None:
    step_ms = round(step * 1000)
    chunks = plan_chunks(start, start + (points - 1 + extra) * step, step, max_points)
    assert chunks[0][0] == start * 1000 and chunks[-1][1] == start * 1000 + (points - 1) * step_ms
    for (_, previous_end), (next_start, _) in itertools.pairwise(chunks):
        assert next_start == previous_end + step_ms  # no overlap, no hole
    for lo, hi in chunks:
        assert (hi - lo) % step_ms == 0 and (hi - lo) // step_ms <= max_points - 1
    assert sum((hi - lo) // step_ms + 1 for lo, hi in chunks) == points
    assert len(chunks) == -(-points // max_points)


def test_plan_refuses_bad_ranges() -> None:
    with client("http://127.0.0.1:1") as prom:
        with pytest.raises(ConfigError, match="before start"):
            prom.plan(100, 50, 15)
        with pytest.raises(ConfigError, match="step"):
            prom.plan(0, 50, 0)


@pytest.mark.parametrize(("range_s", "step_s"), [(600, 1), (86400, 10), (7 * 86400, 60), (365 * 86400, 3600),
                                                  (50 * 365 * 86400, 604800)])
def test_choose_step(range_s: float, step_s: float) -> None:
    assert choose_step(range_s) == step_s
    assert range_s / step_s + 1 <= 11_000


def test_series_name_escapes_values() -> None:
    assert series_name({}) == "{}"
    assert series_name({"__name__": "up"}) == "up"
    assert series_name({"path": 'a"b\\c'}) == '{path="a\\"b\\\\c"}'


def test_time_forms() -> None:
    assert parse_time("now", now=1000.0) == 1000.0
    assert parse_time("now-1h30m", now=10_000.0) == 10_000.0 - 5400
    assert parse_time("now+15s", now=10_000.0) == 10_015.0
    assert parse_time("2024-01-01T01:00:00+01:00") == BACKFILL_START_S
    assert parse_time("1704067200.5") == BACKFILL_START_S + 0.5
    assert parse_duration("1d2h") == 93600.0
    with pytest.raises(ConfigError, match="needs the caller's current time"):
        parse_time("now-2h")
    for bad in ("yesterday", "now-2x", "2024-13-01"):
        with pytest.raises(ConfigError, match="cannot read"):
            parse_time(bad, now=0.0)
    with pytest.raises(ConfigError, match="duration"):
        parse_duration("5 minutes")


def test_relative_times_resolve_against_the_callers_now() -> None:
    with ScriptedServer([Reply(200, matrix((940, "1")))]) as server, client(server.url) as prom:
        frame: Frame = prom.query_range("m", "now-1m", "now", now=1000.0)
        prom.fetch("m", 0, 600, 60)
    first, second = (parse_qs(seen.body) for seen in server.seen)
    assert (first["start"], first["end"], first["step"]) == (["940.000"], ["1000.000"], ["1.000"])
    assert (second["start"], second["end"], second["step"]) == (["0.000"], ["600.000"], ["60.000"])
    assert frame.values.tolist() == [[1.0]]


def test_missing_binary_fails_in_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"Debian package 'prometheus'.*CI must install it"):
        require_binary("opsmind-no-such-binary")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y prometheus"):
        require_binary("opsmind-no-such-binary")
