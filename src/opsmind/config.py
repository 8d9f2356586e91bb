"""The one ``Settings`` object: a YAML file plus ``OPSMIND_*`` environment variables, built at the edge (the CLI,
``create_app``) and passed down explicitly. No module reads the environment or a global.

Environment variables override the file; nested fields use ``__``: ``OPSMIND_API__PORT=9000``,
``OPSMIND_STORE__URL=postgresql+psycopg://opsmind@db/opsmind``.

>>> s = Settings.model_validate({"services": [{"name": "checkout", "metrics": {"rate": "sum(rate(x[1m]))"}}]})
>>> s.services[0].name, s.api.port, s.engine.executor
('checkout', 8080, 'process')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from opsmind.core.yamlconf import load_model, load_model_text
from opsmind.incidents.correlate import CorrelatorSettings
from opsmind.rca.settings import RcaSettings
from opsmind.remediate.guardrails import GuardPolicy
from opsmind.sources.alertmanager import AlertmanagerSettings
from opsmind.sources.prometheus import PrometheusSettings
from opsmind.store.db import StoreSettings

__all__ = [
    "ApiSettings",
    "EmailSettings",
    "EngineSettings",
    "NotifySettings",
    "RemediationSettings",
    "ServiceConfig",
    "Settings",
    "SloConfig",
    "load_settings",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
Scope = Literal["read", "write", "admin"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SloConfig(_Model):
    """A service's objectives: the engine predicts breaches and the scaler sizes replicas against them."""

    latency_ms: float | None = Field(None, gt=0, description="Latency objective in milliseconds.")
    latency_quantile: float = Field(0.99, gt=0, lt=1, description="Quantile the latency objective applies to.")
    availability: float | None = Field(None, gt=0, lt=1, description="Availability objective, e.g. 0.999.")
    window_s: float = Field(30 * 86400.0, gt=0, description="SLO window for the error budget, seconds.")


# Roles of a service that sets no `roles` (or is not configured at all): the metric with the role's name, `rate`
# for the load.
DEFAULT_ROLES: dict[str, str] = {"load": "rate", "errors": "errors", "latency": "latency", "cpu": "cpu",
                                 "memory": "memory"}


class ServiceConfig(_Model):
    """One service: the PromQL selectors of its metrics, its objectives and what it calls."""

    name: str = Field(..., description="Service name, as it appears in the `service` label of findings.")
    metrics: dict[str, str] = Field(default_factory=dict, description="Metric name -> PromQL query returning "
                                    "one or more series (each becomes a stored series).")
    roles: dict[str, str] = Field(default_factory=dict, description="Which metric is the load (`load`), latency "
                                  "(`latency`), errors (`errors`), CPU (`cpu`), memory (`memory`), replicas "
                                  "(`replicas`): role -> metric name.")
    slo: SloConfig | None = Field(None, description="The service's objectives.")
    calls: list[str] = Field(default_factory=list, description="Services this one calls (the call graph for "
                             "incident grouping and root-cause analysis).")
    deployment: str | None = Field(None, description="Kubernetes Deployment to scale (namespace/name).")
    min_replicas: int = Field(1, ge=0, description="Lowest replica count the scaler may recommend.")
    max_replicas: int = Field(50, ge=1, description="Highest replica count the scaler may recommend.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits and _ . : - (at most 200 characters)")
        return v

    def role_map(self) -> dict[str, str]:
        """Role -> metric name: ``roles`` when set, else :data:`DEFAULT_ROLES`."""
        return dict(self.roles) if self.roles else dict(DEFAULT_ROLES)

    @model_validator(mode="after")
    def _roles(self) -> ServiceConfig:
        missing = sorted(m for m in self.roles.values() if m not in self.metrics)
        if missing:
            raise ValueError(f"roles name metrics that are not in `metrics`: {', '.join(missing)}")
        return self


class EngineSettings(_Model):
    """How often the engine runs each analysis, and where the work runs."""

    scrape_interval_s: float = Field(15.0, gt=0, description="How often series are pulled and detection runs.")
    history_s: float = Field(6 * 3600.0, gt=0, description="History pulled for a series seen for the first time.")
    detector: dict[str, Any] = Field(default_factory=lambda: {"type": "opsmind"},
                                     description="Detector spec ({type, params}) built for every series.")
    forecast_every_s: float = Field(3600.0, gt=0, description="How often load forecasts are refitted.")
    forecast_horizon_s: float = Field(6 * 3600.0, gt=0, description="How far ahead forecasts reach.")
    capacity_every_s: float = Field(900.0, gt=0, description="How often capacity and SLO-breach checks run.")
    scale_every_s: float = Field(60.0, gt=0, description="How often replica recommendations are made.")
    rightsize_every_s: float = Field(86400.0, gt=0, description="How often rightsizing recommendations are made.")
    threshold: float = Field(0.5, gt=0, le=1, description="Anomaly probability at which a series alert opens "
                             "(moved per series by feedback calibration).")
    refractory_s: float | None = Field(600.0, ge=0, description="No new alert on a series within this many seconds "
                                       "of its last one.")
    clear: float | None = Field(0.2, ge=0, le=1, description="The probability must fall below this before a series "
                                "can alert again (hysteresis).")
    resolve_after_s: float = Field(300.0, gt=0, description="A series alert resolves this long after its "
                                   "probability was last at the threshold.")
    stale_after_s: float = Field(300.0, gt=0, description="A series with no new sample for this long is marked stale.")
    state_every_s: float = Field(300.0, ge=0, description="How often each series' detector state is saved (0: every "
                                 "cycle). After a crash the samples since the last save are scored again from the "
                                 "store; anomalies are kept once per series and time, so nothing is recorded twice.")
    backoff_max_s: float = Field(300.0, gt=0, description="Longest wait between retries of a source that is down.")
    executor: Literal["process", "thread", "dask"] = Field(
        "process", description="Where per-series work runs: a local process pool, threads, or a Dask cluster.")
    workers: int | None = Field(None, ge=1, description="Workers of the local pool (default: CPU count).")
    dask_address: str | None = Field(None, description="Dask scheduler address (tcp://host:8786) for `dask`.")
    correlator: CorrelatorSettings = Field(default_factory=CorrelatorSettings,
                                           description="How alerts and anomalies become incidents.")
    rca: RcaSettings = Field(default_factory=RcaSettings, description="Root-cause analysis settings.")

    @model_validator(mode="after")
    def _dask(self) -> EngineSettings:
        if self.executor == "dask" and not self.dask_address:
            raise ValueError("executor 'dask' needs dask_address")
        return self


class ApiSettings(_Model):
    """The HTTP server: API, dashboard, /metrics, webhooks and remote_write."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on (0 picks a free one).")
    anonymous_scopes: list[Scope] = Field(default_factory=list, description="Scopes granted without a token, for "
                                          "the `tenant` (the demo grants read and write on loopback).")
    max_body_bytes: int = Field(10 * 2**20, ge=1024, description="Largest request body accepted.")
    admin_token: SecretStr | None = Field(None, description="A token with every scope on every tenant, for "
                                          "bootstrapping (prefer tokens created with `opsmind token create`).")


class EmailSettings(_Model):
    """SMTP delivery of notifications."""

    host: str = Field(..., description="SMTP server.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS.")
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(..., description="From address.")
    recipients: list[str] = Field(..., min_length=1, description="To addresses.")


class NotifySettings(_Model):
    """Where findings are sent."""

    min_severity: Literal["low", "medium", "high", "critical"] = Field(
        "high", description="Anomalies below this severity are stored but not sent.")
    resend_interval_s: float = Field(60.0, gt=0, description="Firing alerts are re-sent to Alertmanager this often "
                                     "(keep it below Alertmanager's resolve_timeout).")
    slack_webhook_url: SecretStr | None = Field(None, description="Slack incoming-webhook URL.")
    teams_webhook_url: SecretStr | None = Field(None, description="Microsoft Teams incoming-webhook URL.")
    email: EmailSettings | None = None


class RemediationSettings(_Model):
    """Remediation playbooks and their global guardrails."""

    playbooks: list[Path] = Field(default_factory=list, description="Playbook files or folders of *.yaml files.")
    dry_run: bool = Field(True, description="Plan and record actions without executing them.")
    guardrails: GuardPolicy = Field(default_factory=GuardPolicy, description="Guardrails for every playbook: "
                                    "allow-list of action kinds per target, approval tier, maintenance windows.")
    executors: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Executor settings by kind, "
                                                 "e.g. `kubernetes.scale: {namespace: shop}`.")


class Settings(BaseSettings):
    """Everything opsmind is configured with. Built by :func:`load_settings` from a YAML file and the
    environment."""

    model_config = SettingsConfigDict(env_prefix="OPSMIND_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    tenant: str = Field("default", description="Tenant the engine's own records belong to.")
    store: StoreSettings = Field(default_factory=lambda: StoreSettings(), description="Where records are kept.")
    api: ApiSettings = Field(default_factory=ApiSettings)
    prometheus: PrometheusSettings | None = Field(None, description="Prometheus to pull metrics from.")
    scrape: list[str] = Field(default_factory=list, description="Prometheus text-format endpoints "
                              "(http://host:port/metrics) the engine scrapes itself instead of querying `prometheus`; "
                              "queries are then selectors or rate/irate/increase(selector[window]).")
    alertmanager: AlertmanagerSettings | None = Field(None, description="Alertmanager to send alerts to.")
    services: list[ServiceConfig] = Field(default_factory=list, description="The services to watch.")
    engine: EngineSettings = Field(default_factory=EngineSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment overrides the file (which arrives as init arguments)
        return env_settings, init_settings

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        names = [s.name for s in self.services]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"service names must be unique: {', '.join(dup)}")
        return self


def load_settings(path: Path | str | None = None, text: str | None = None) -> Settings:
    """Settings from a YAML file (or YAML ``text``) and ``OPSMIND_*`` variables; ``ConfigError`` names
    file:line: field. With neither, the environment and the defaults."""
    if text is not None:
        return load_model_text(text, Settings, where="<config>", build=lambda d: Settings(**d))
    if path is None:
        return Settings()
    return load_model(path, Settings, build=lambda d: Settings(**d))
