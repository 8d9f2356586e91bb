"""Actuation: set a Deployment's replica count through the Kubernetes API, dry-run by default.

:class:`KubernetesScaler` follows the executor contract of the design: :meth:`~KubernetesScaler.plan` is pure (it
says exactly what would change, from a :class:`~opsmind.scale.base.ScalingDecision` or a replica count) and
:meth:`~KubernetesScaler.execute` acts only when asked to (``dry_run=False``): it reads the Deployment's ``scale``
subresource first (``read_namespaced_deployment_scale``), patches ``spec.replicas`` only when it differs
(``patch_namespaced_deployment_scale``, so repeating a plan is harmless) and returns the count before and after,
which is what a rollback needs. It uses the official ``kubernetes`` client (``apps/v1``).

:func:`recommendations` turns decisions into the JSON/YAML records the CLI prints or writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import yaml

from opsmind.core import ConfigError, SourceError
from opsmind.scale.base import ScalingDecision

__all__ = ["KubernetesScaler", "ScaleOutcome", "ScalePlan", "recommendations"]


@dataclass(frozen=True)
class ScalePlan:
    """What would change: the Deployment, the replica count asked for, and why."""

    namespace: str
    deployment: str
    replicas: int
    reason: str = ""
    policy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScaleOutcome:
    """What happened: ``dry_run`` (nothing called), ``unchanged`` (already there) or ``scaled``; before/after."""

    plan: ScalePlan
    status: Literal["dry_run", "unchanged", "scaled"]
    before: int | None
    after: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "status": self.status, "before": self.before, "after": self.after}


class KubernetesScaler:
    """Scale one Deployment. ``api`` is a ``kubernetes.client.AppsV1Api`` (see :meth:`connect`)."""

    def __init__(self, namespace: str, deployment: str, *, api: Any = None, min_replicas: int = 0,
                 max_replicas: int = 1000) -> None:
        if not namespace or not deployment:
            raise ConfigError("kubernetes scaler: namespace and deployment names are required")
        if not 0 <= min_replicas <= max_replicas:
            raise ConfigError(f"kubernetes scaler: need 0 <= min <= max replicas, got {min_replicas}/{max_replicas}")
        self.namespace = namespace
        self.deployment = deployment
        self.api = api
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas

    @classmethod
    def connect(cls, namespace: str, deployment: str, *, host: str | None = None, token: str | None = None,
                kubeconfig: str | None = None, context: str | None = None, verify_ssl: bool = True,
                **kwargs: Any) -> KubernetesScaler:
        """A scaler with an API client from ``host`` (+ bearer ``token``), else a kubeconfig, else in-cluster."""
        from kubernetes import client, config

        try:
            if host is not None:
                conf = client.Configuration()
                conf.host = host
                conf.verify_ssl = verify_ssl
                if token:
                    conf.api_key = {"authorization": token}
                    conf.api_key_prefix = {"authorization": "Bearer"}
                api_client = client.ApiClient(conf)
            else:
                try:
                    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                        config_file=kubeconfig, context=context)
                except config.ConfigException:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                    api_client = client.ApiClient()
        except config.ConfigException as exc:
            raise ConfigError(f"kubernetes: no usable configuration (kubeconfig or in-cluster): {exc}") from None
        return cls(namespace, deployment, api=client.AppsV1Api(api_client), **kwargs)

    def plan(self, decision: ScalingDecision | int) -> ScalePlan:
        """The change a decision (or a replica count) asks for, bounded by min/max. Pure: no API call."""
        if isinstance(decision, ScalingDecision):
            n, reason, policy = decision.desired, decision.explain(), decision.policy
        else:
            n, reason, policy = int(decision), "", ""
        if n < 0:
            raise ConfigError(f"kubernetes scaler: a replica count cannot be negative, got {n}")
        bounded = min(max(n, self.min_replicas), self.max_replicas)
        if bounded != n:
            reason = (reason + "; " if reason else "") + f"bounded to {bounded} by min/max replicas"
        return ScalePlan(self.namespace, self.deployment, bounded, reason, policy)

    def current(self) -> int:
        """The Deployment's ``spec.replicas`` as the API reports it."""
        scale = self._call("read", lambda: self._require_api().read_namespaced_deployment_scale(
            self.deployment, self.namespace))
        return int(scale.spec.replicas or 0)

    def execute(self, plan: ScalePlan, *, dry_run: bool = True) -> ScaleOutcome:
        """Apply ``plan``; with ``dry_run`` (the default) nothing is called and the plan is returned as is."""
        if dry_run:
            return ScaleOutcome(plan, "dry_run", None, None)
        if (plan.namespace, plan.deployment) != (self.namespace, self.deployment):
            raise ConfigError(f"kubernetes scaler: the plan targets {plan.namespace}/{plan.deployment}, this scaler "
                              f"{self.namespace}/{self.deployment}")
        before = self.current()
        if before == plan.replicas:
            return ScaleOutcome(plan, "unchanged", before, before)
        result = self._call("patch", lambda: self._require_api().patch_namespaced_deployment_scale(
            self.deployment, self.namespace, {"spec": {"replicas": plan.replicas}}))
        after = int(result.spec.replicas) if result is not None and result.spec is not None else plan.replicas
        return ScaleOutcome(plan, "scaled", before, after)

    def _require_api(self) -> Any:
        if self.api is None:
            raise ConfigError("kubernetes scaler: no API client (use KubernetesScaler.connect)")
        return self.api

    def _call(self, what: str, fn: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except ApiException as exc:
            raise SourceError(f"kubernetes: {what} deployments/{self.deployment}/scale in {self.namespace} failed: "
                              f"HTTP {exc.status} {exc.reason}") from None
        except (HTTPError, OSError) as exc:  # connection refused, DNS, TLS
            raise SourceError(f"kubernetes: cannot reach the API server: {type(exc).__name__}") from None


def recommendations(decisions: Iterable[ScalingDecision], fmt: Literal["json", "yaml"] = "json",
                    *, changes_only: bool = True) -> str:
    """Decisions as a JSON array or a YAML list (only those that change the replica count, by default)."""
    records: Sequence[dict[str, Any]] = [d.to_dict() for d in decisions if not changes_only or d.action != "hold"]
    if fmt == "yaml":
        return str(yaml.safe_dump(list(records), sort_keys=False))
    if fmt == "json":
        return json.dumps(list(records), indent=2)
    raise ConfigError(f"recommendations: format must be json or yaml, got {fmt!r}")
