"""Request and response models of the API (what /docs and the OpenAPI schema show).

Times are Unix seconds; numbers that were NaN or infinite are ``null``. Records the store returns
(:class:`~opsmind.store.IncidentRecord`, :class:`~opsmind.store.RecommendationRecord`,
:class:`~opsmind.store.FeedbackRecord`) are answered as they are.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from opsmind.store import FeedbackRecord, IncidentRecord, RecommendationRecord

__all__ = [
    "MAX_TIME_S",
    "AnomalyList",
    "AnomalyOut",
    "FeedbackIn",
    "FeedbackList",
    "FeedbackMark",
    "FeedbackMissed",
    "ForecastList",
    "ForecastOut",
    "Health",
    "IncidentList",
    "IngestIn",
    "IngestOut",
    "IngestSeries",
    "RecommendationList",
    "SamplesOut",
    "SeriesList",
    "SeriesOut",
    "SeriesRef",
    "ServiceHealth",
    "ServiceList",
    "StatusIn",
    "WebhookOut",
]

#: Latest time the API accepts (year 5138): keeps milliseconds inside 64-bit integers.
MAX_TIME_S = 1e11
Time = Annotated[float, Strict(), Field(ge=0, le=MAX_TIME_S, allow_inf_nan=False)]
Id = Annotated[int, Strict(), Field(ge=1, le=2**63 - 1)]


def _pair(value: list[float | None]) -> list[float | None]:
    ts = value[0]
    if ts is None or not 0 <= ts <= MAX_TIME_S:
        raise ValueError(f"the first item is the time in Unix seconds, from 0 to {MAX_TIME_S:g}; got {ts!r}")
    return value


#: A sample ``[ts, value]`` (a list, not a tuple: OpenAPI 3.1 has no tuple schema FastAPI writes correctly).
Pair = Annotated[list[Annotated[float, Strict()] | None], Field(min_length=2, max_length=2), AfterValidator(_pair)]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Out):
    status: Literal["ok", "degraded"] = Field(..., description="`degraded` when the store or a source is down.")
    version: str
    store: str = Field(..., description="`ok`, or what is wrong with the store.")
    engine: dict[str, Any] | None = Field(None, description="The engine's status, when it runs in this process.")
    time: float = Field(..., description="The server's clock, Unix seconds (in `opsmind demo`, the simulated time): "
                                         "what the dashboard's relative times count from.")


class RedValues(_Out):
    rate: float | None = Field(None, description="Requests per second (role `load`).")
    errors: float | None = Field(None, description="Errors per second (role `errors`).")
    latency: float | None = Field(None, description="Latency in seconds (role `latency`).")


class UseValues(_Out):
    cpu: float | None = Field(None, description="CPU (role `cpu`).")
    memory: float | None = Field(None, description="Memory (role `memory`).")


class ServiceHealth(_Out):
    service: str
    health: float | None = Field(..., ge=0, le=100, description="0 (down) to 100 (healthy); null when there is "
                                 "no data at all.")
    status: Literal["ok", "warn", "critical", "unknown"]
    red: RedValues
    use: UseValues
    open_incidents: int
    anomalies_1h: int = Field(..., description="Anomalies (not suppressed) in the last hour.")
    max_probability: float | None = Field(..., description="Highest anomaly probability in the last hour.")
    reasons: list[str] = Field(default_factory=list, description="What lowered the health score.")


class ServiceList(_Out):
    services: list[ServiceHealth]


class SeriesOut(_Out):
    id: int
    tenant: str
    name: str
    labels: dict[str, str]
    service: str | None
    created_at: float
    stale_since: float | None
    selector: str = Field(..., description="The series as PromQL writes it: `name{a=\"b\"}`.")
    last: Annotated[list[float | None], Field(min_length=2, max_length=2)] | None = Field(
        None, description="The latest sample `[ts, value]`.")


class SeriesList(_Out):
    series: list[SeriesOut]


class SamplesOut(_Out):
    series_id: int
    ts: list[float]
    values: list[float | None]


class ForecastOut(_Out):
    id: int
    tenant: str
    series_id: int
    issued_at: float
    method: str
    horizon: int
    timestamps: list[float]
    mean: list[float | None]
    intervals: dict[str, Annotated[list[list[float | None]], Field(min_length=2, max_length=2)]] = Field(
        ..., description="Level (\"80\", \"95\") -> [lower[], upper[]].")
    notes: list[str]
    created_at: float


class ForecastList(_Out):
    forecasts: list[ForecastOut]


class SeriesRef(_Out):
    name: str
    service: str | None
    labels: dict[str, str]


class AnomalyOut(_Out):
    id: int
    tenant: str
    series_id: int
    ts: float
    probability: float
    score: float | None
    severity: str | None
    detector: str | None
    suppressed: bool
    evidence: Any
    created_at: float
    series: SeriesRef | None
    feedback: Literal["true_positive", "false_positive"] | None = Field(
        None, description="The latest verdict people gave on this anomaly.")


class AnomalyList(_Out):
    anomalies: list[AnomalyOut]


class RecommendationList(_Out):
    recommendations: list[RecommendationRecord]


class StatusIn(_In):
    status: Literal["open", "accepted", "applied", "dismissed"]


class IncidentList(_Out):
    incidents: list[IncidentRecord]


Comment = Annotated[str, Field(max_length=10_000)]


class FeedbackMark(_In):
    """An anomaly was right (`true_positive`) or wrong (`false_positive`)."""

    anomaly_id: Id
    verdict: Literal["true_positive", "false_positive"]
    comment: Comment | None = None


class FeedbackMissed(_In):
    """The series was anomalous at `ts` and opsmind did not flag it."""

    series_id: Id
    ts: Time
    verdict: Literal["missed"]
    comment: Comment | None = None


FeedbackIn = Annotated[FeedbackMark | FeedbackMissed, Field(discriminator="verdict")]


class FeedbackList(_Out):
    feedback: list[FeedbackRecord]


class IngestSeries(_In):
    name: str = Field(..., min_length=1, max_length=255, description="Metric name.")
    labels: dict[str, str] = Field(default_factory=dict, description="Label names and values.")
    service: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="The series' service (default: its `service`, `app` or `job` label).")
    samples: list[Pair] = Field(..., description="`[ts, value]` pairs: Unix seconds (0 to 1e11) and a number, "
                                "`null` for a missing value.")


class IngestIn(_In):
    series: list[IngestSeries]


class IngestOut(_Out):
    series: int = Field(..., description="Series in the request.")
    samples: int = Field(..., description="Samples in the request.")
    inserted: int = Field(..., description="Samples that were new (a replay inserts nothing).")


class WebhookOut(_Out):
    incidents: list[str] = Field(..., description="Keys of the incidents the alerts opened or updated.")
