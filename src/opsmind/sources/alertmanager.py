"""Alertmanager: its API v2 (post and list alerts) and its webhook payload (version 4), as :class:`Alert` values.

The webhook payload Alertmanager sends to a receiver (``version: "4"``)::

    {"version": "4", "groupKey": "...", "status": "firing", "receiver": "opsmind",
     "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...}, "externalURL": "...",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...}, "startsAt": "<RFC 3339>",
                 "endsAt": "<RFC 3339>", "generatorURL": "...", "fingerprint": "<16 hex>"}]}

``endsAt`` of ``0001-01-01T00:00:00Z`` (Go's zero time) means "not set". A payload that does not have this shape
is rejected with a :class:`~opsmind.core.DataError` naming the field, e.g. ``alerts[2].labels``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsmind.core.alerts import Alert
from opsmind.core.errors import ConfigError, DataError, SourceError
from opsmind.sources.http import ApiClient, HttpSettings
from opsmind.sources.timeparse import parse_time

__all__ = ["Alertmanager", "AlertmanagerSettings", "WebhookBatch", "parse_api_alerts", "parse_webhook", "rfc3339"]

_GO_ZERO = "0001-01-01T00:00:00Z"


class AlertmanagerSettings(HttpSettings):
    """Where Alertmanager is and how to talk to it."""

    url: str = Field("http://127.0.0.1:9093", description="Base URL of the Alertmanager server.")


class _WireAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: str | None = Field(None, alias="startsAt")
    ends_at: str | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    status: Any = "firing"  # webhook: "firing"/"resolved"; API v2: {"state": "active"|"suppressed"|...}
    fingerprint: str | None = None


class _Webhook(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str
    group_key: str = Field("", alias="groupKey")
    status: str = "firing"
    receiver: str = ""
    group_labels: dict[str, str] = Field({}, alias="groupLabels")
    common_labels: dict[str, str] = Field({}, alias="commonLabels")
    common_annotations: dict[str, str] = Field({}, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[_WireAlert]


@dataclass(frozen=True)
class WebhookBatch:
    """One webhook notification: the alerts of one Alertmanager group."""

    group_key: str
    receiver: str
    status: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    warnings: tuple[str, ...] = field(default=())


def rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 in UTC with milliseconds, as Alertmanager prints times."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _where(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    return f"{prefix}{'.' if loc and not loc.startswith('[') and prefix else ''}{loc}: {err['msg']}"


def _to_alert(wire: _WireAlert, where: str, now: float | None, warnings: list[str]) -> Alert:
    try:
        starts = parse_time(wire.starts_at) if wire.starts_at else now
        ends = parse_time(wire.ends_at) if wire.ends_at and wire.ends_at != _GO_ZERO else None
    except ConfigError as exc:
        raise DataError(f"{where}: {exc}") from None
    if starts is None:
        raise DataError(f"{where}.startsAt: missing, and no receive time to use instead")
    state = wire.status if isinstance(wire.status, str) else str(wire.status.get("state", "active"))
    status: Literal["firing", "resolved"] = "resolved" if state == "resolved" else "firing"
    try:
        alert = Alert(labels=wire.labels, starts_at=starts, ends_at=ends, annotations=wire.annotations,
                      generator_url=wire.generator_url, status=status)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    if wire.fingerprint and wire.fingerprint != alert.fingerprint:
        warnings.append(f"{where}: fingerprint {wire.fingerprint} does not match its labels ({alert.fingerprint}); "
                        "using the labels")
    return alert


def parse_webhook(payload: Any, *, now: float | None = None) -> WebhookBatch:
    """Read an Alertmanager webhook payload (version 4). ``now`` stands in for a missing ``startsAt``."""
    if not isinstance(payload, dict):
        raise DataError(f"webhook payload: expected a JSON object, got {type(payload).__name__}")
    try:
        hook = _Webhook.model_validate(payload)
    except ValidationError as exc:
        raise DataError(f"webhook payload: {_where(exc, '')}") from None
    if hook.version != "4":
        raise DataError(f"webhook payload: version {hook.version!r} is not supported (Alertmanager sends '4')")
    warnings: list[str] = []
    alerts = tuple(_to_alert(a, f"alerts[{i}]", now, warnings) for i, a in enumerate(hook.alerts))
    return WebhookBatch(hook.group_key, hook.receiver, hook.status, hook.group_labels, alerts, tuple(warnings))


def parse_api_alerts(payload: Any, *, now: float | None = None) -> tuple[list[Alert], list[str]]:
    """Read the answer of ``GET /api/v2/alerts`` (a list of gettable alerts); returns alerts and warnings."""
    if not isinstance(payload, list):
        raise DataError(f"alerts: expected a JSON list, got {type(payload).__name__}")
    alerts: list[Alert] = []
    warnings: list[str] = []
    for i, item in enumerate(payload):
        try:
            wire = _WireAlert.model_validate(item)
        except ValidationError as exc:
            raise DataError(f"alerts: {_where(exc, f'[{i}]')}") from None
        alerts.append(_to_alert(wire, f"alerts[{i}]", now, warnings))
    return alerts, warnings


class Alertmanager(ApiClient):
    """A client of Alertmanager's API v2: send alerts (firing and resolved) and list them."""

    kind = "alertmanager"
    settings: AlertmanagerSettings

    def __init__(self, settings: AlertmanagerSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(settings, sleep=sleep)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        where = self._where(path)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise SourceError(f"{where}: answer is not JSON: {response.text[:200]!r}") from None

    def post_alerts(self, alerts: Sequence[Alert]) -> None:
        """Send alerts (``POST /api/v2/alerts``). A resolved alert is sent with its end time, which resolves it."""
        body = []
        for a in alerts:
            item: dict[str, Any] = {"labels": dict(a.labels), "annotations": dict(a.annotations),
                                    "startsAt": rfc3339(a.starts_at)}
            if a.ends_at is not None:
                item["endsAt"] = rfc3339(a.ends_at)
            if a.generator_url:
                item["generatorURL"] = a.generator_url
            body.append(item)
        if body:
            self._json("POST", "/api/v2/alerts", json=body)

    def alerts(self, *, active: bool = True, silenced: bool = True, inhibited: bool = True,
               filters: Sequence[str] = ()) -> tuple[list[Alert], list[str]]:
        """``GET /api/v2/alerts``; ``filters`` are matchers such as ``service="checkout"``."""
        params: list[tuple[str, str]] = [("active", str(active).lower()), ("silenced", str(silenced).lower()),
                                         ("inhibited", str(inhibited).lower())]
        params += [("filter", f) for f in filters]
        return parse_api_alerts(self._json("GET", "/api/v2/alerts", params=params))

    def fingerprints(self) -> dict[str, str]:
        """Alertmanager's own fingerprint of each alert it holds, keyed by our fingerprint of the same labels."""
        payload = self._json("GET", "/api/v2/alerts")
        if not isinstance(payload, list):
            raise SourceError("alertmanager: /api/v2/alerts did not answer a list")
        out: dict[str, str] = {}
        for item in payload:
            alert, _ = parse_api_alerts([{**item, "fingerprint": None}])
            out[alert[0].fingerprint] = str(item.get("fingerprint"))
        return out
