"""Kubernetes executors through the official ``kubernetes`` client: scale, rollout restart, rollback, cordon.

=====================  =====================  ==========================================================
kind                   target                 action
=====================  =====================  ==========================================================
``kubernetes.scale``   ``namespace/name``     ``replicas`` (bounded by the settings' min/max replicas)
``kubernetes.restart`` ``namespace/name``     ``at``: Unix seconds written to the pod template annotation
                                              ``kubectl.kubernetes.io/restartedAt`` (what
                                              ``kubectl rollout restart`` does)
``kubernetes.rollback`` ``namespace/name``    ``to_revision`` (optional; default: the revision before the
                                              current one), as ``kubectl rollout undo`` does
``kubernetes.cordon``  node name              ``unschedulable`` (default true; false uncordons)
=====================  =====================  ==========================================================

A target without a namespace uses the settings' namespace. Every action also takes ``run_id``.

Dry runs read the object and send the patch with ``dryRun=All``, so the API server validates it (admission
included) and persists nothing; ``changed`` then says whether a real run would change something. Real runs are
idempotent: the object is read first and nothing is patched when it is already in the planned state (for a
rollback: when the Deployment carries the plan's key in its ``opsmind.io/rollback`` annotation, or its pod
template already equals the target revision's). Scaling reuses :class:`opsmind.scale.kube.KubernetesScaler`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from opsmind.core.errors import ConfigError, SourceError
from opsmind.remediate.executors._common import ExecutionError, ExecutorBase, Params, plan_key
from opsmind.remediate.executors.base import Outcome, Plan
from opsmind.scale.kube import KubernetesScaler, ScalePlan

__all__ = [
    "KubernetesCordon",
    "KubernetesRestart",
    "KubernetesRollback",
    "KubernetesScale",
    "KubernetesSettings",
    "connect",
]

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
MARKER = "opsmind.io/rollback"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
T = TypeVar("T")


class KubernetesSettings(BaseModel):
    """How to reach the API server: ``host`` (+ ``token``), else a kubeconfig, else the in-cluster account."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    host: str | None = Field(None, description="API server URL, e.g. https://10.0.0.1:6443.")
    token: SecretStr | None = Field(None, description="Bearer token sent to `host`.")
    verify_ssl: bool = Field(True, description="Verify the API server's TLS certificate.")
    ca_cert: str | None = Field(None, description="CA bundle file for `host`.")
    kubeconfig: str | None = Field(None, description="kubeconfig file when no host is given (default ~/.kube/config).")
    context: str | None = Field(None, description="kubeconfig context.")
    namespace: str = Field("default", description="Namespace of targets given without one.")
    timeout_s: float = Field(30.0, gt=0, description="Timeout of one API request, in seconds.")
    field_manager: str = Field("opsmind", description="fieldManager sent with every patch.")
    server_dry_run: bool = Field(True, description="Send dry runs to the API server with dryRun=All.")
    min_replicas: int = Field(0, ge=0, description="Lowest replica count kubernetes.scale sets.")
    max_replicas: int = Field(1000, ge=0, description="Highest replica count kubernetes.scale sets.")


def connect(settings: KubernetesSettings) -> Any:
    """A ``kubernetes.client.ApiClient`` for the settings."""
    from kubernetes import client, config

    if settings.host is not None:
        conf = client.Configuration()
        conf.host = settings.host.rstrip("/")
        conf.verify_ssl = settings.verify_ssl
        if settings.ca_cert:
            conf.ssl_ca_cert = settings.ca_cert
        if settings.token is not None:
            conf.api_key = {"BearerToken": settings.token.get_secret_value()}
            conf.api_key_prefix = {"BearerToken": "Bearer"}
        return client.ApiClient(conf)
    try:
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=settings.kubeconfig, context=settings.context)
    except config.ConfigException:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise ConfigError(f"kubernetes: no host, no usable kubeconfig and not in a cluster: {exc}") from None
        return client.ApiClient()


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_error(what: str, exc: Any) -> str:
    """``HTTP 404 NotFound: <the Status message>`` of an ``ApiException``."""
    import json

    message = ""
    try:
        body = json.loads(exc.body or "null")
        if isinstance(body, dict):
            message = str(body.get("message", ""))
    except ValueError:
        message = str(exc.body or "")[:200]
    return f"kubernetes: {what}: HTTP {exc.status} {exc.reason}" + (f": {message}" if message else "")


class _Kube(ExecutorBase[Any]):
    """The API client, target parsing and error mapping the four executors share."""

    namespaced: ClassVar[bool] = True
    settings_model = KubernetesSettings

    def __init__(self, settings: KubernetesSettings | None = None, *, api_client: Any = None) -> None:
        self.settings = settings or KubernetesSettings()
        self._api_client = api_client

    # -- targets
    def _target(self, target: str) -> str:
        target = super()._target(target)
        parts = target.split("/")
        if not self.namespaced:
            if len(parts) != 1 or not _NAME.match(target):
                raise ConfigError(f"{self.kind}: target must be a node name, got {target!r}")
            return target
        if len(parts) == 1:
            parts = [self.settings.namespace, *parts]
        if len(parts) != 2 or not all(_NAME.match(p) for p in parts):
            raise ConfigError(f"{self.kind}: target must be 'namespace/deployment' (lower-case DNS names), "
                              f"got {target!r}")
        return "/".join(parts)

    # -- API plumbing
    def client(self) -> Any:
        if self._api_client is None:
            self._api_client = connect(self.settings)
        return self._api_client

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.client())

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.client())

    def wire(self, obj: Any) -> dict[str, Any]:
        """The object as the API server sent it (camelCase JSON)."""
        data = self.client().sanitize_for_serialization(obj)
        return data if isinstance(data, dict) else {}

    def call(self, what: str, fn: Callable[[], T]) -> T:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except ApiException as exc:
            raise SourceError(_api_error(what, exc)) from None
        except (HTTPError, OSError) as exc:
            raise SourceError(f"kubernetes: {what}: cannot reach the API server {self.client().configuration.host}: "
                              f"{type(exc).__name__}") from None

    def dry(self, dry_run: bool) -> dict[str, Any]:
        """Keyword arguments of a patch: server-side dry run, field manager, timeout."""
        kwargs: dict[str, Any] = {"field_manager": self.settings.field_manager,
                                  "_request_timeout": self.settings.timeout_s}
        if dry_run and self.settings.server_dry_run:
            kwargs["dry_run"] = "All"
        return kwargs

    def read_deployment(self, target: str) -> dict[str, Any]:
        ns, name = target.split("/")
        return self.wire(self.call(f"read deployment {target}", lambda: self.apps().read_namespaced_deployment(
            name, ns, _request_timeout=self.settings.timeout_s)))

    def patch_deployment(self, target: str, body: Any, content_type: str, dry_run: bool) -> dict[str, Any]:
        ns, name = target.split("/")
        what = f"patch deployment {target}" + (" (dry run)" if dry_run else "")
        return self.wire(self.call(what, lambda: self.apps().patch_namespaced_deployment(
            name, ns, body, _content_type=content_type, **self.dry(dry_run))))

    def outcome(self, plan: Plan, *, dry_run: bool, changed: bool, before: Mapping[str, Any],
                after: Mapping[str, Any] | None, message: str, **details: Any) -> Outcome:
        if dry_run:
            after = None
        return Outcome(plan, ok=True, dry_run=dry_run, changed=changed, before=before, after=after, message=message,
                       details={"plan_key": plan_key(plan), **details})


# ---- kubernetes.scale ------------------------------------------------------------------------------------------

class ScaleParams(Params):
    replicas: int = Field(..., ge=0, le=100_000, description="The Deployment's replica count.")


class KubernetesScale(_Kube):
    """Set a Deployment's ``spec.replicas`` through its ``scale`` subresource."""

    kind = "kubernetes.scale"
    params_model = ScaleParams

    def _scaler(self, target: str, *, api: Any = None) -> KubernetesScaler:
        ns, name = target.split("/")
        return KubernetesScaler(ns, name, api=api, min_replicas=self.settings.min_replicas,
                                max_replicas=max(self.settings.max_replicas, self.settings.min_replicas))

    def _params(self, target: str, action: Mapping[str, Any]) -> Any:
        params = super()._params(target, action)
        bounded = self._scaler(target).plan(params.replicas).replicas
        return params.model_copy(update={"replicas": bounded})

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        return (f"set spec.replicas of deployment {target} to {params.replicas}",)

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        scaler = self._scaler(plan.target, api=self.apps())
        return self._scale(plan, scaler, params.replicas, dry_run)

    def _scale(self, plan: Plan, scaler: KubernetesScaler, replicas: int, dry_run: bool) -> Outcome:
        before = self.call(f"read deployment {plan.target}/scale", scaler.current)
        changed = before != replicas
        if not changed:
            return self.outcome(plan, dry_run=dry_run, changed=False, before={"replicas": before},
                                after={"replicas": before}, message=f"already at {before} replicas")
        if dry_run:
            if self.settings.server_dry_run:
                self.call(f"patch deployment {plan.target}/scale (dry run)",
                          lambda: scaler.api.patch_namespaced_deployment_scale(
                              scaler.deployment, scaler.namespace, {"spec": {"replicas": replicas}},
                              _content_type=MERGE, **self.dry(True)))
            return self.outcome(plan, dry_run=True, changed=True, before={"replicas": before}, after=None,
                                message=f"would scale from {before} to {replicas} replicas")
        result = self.call(f"scale deployment {plan.target}", lambda: scaler.execute(
            ScalePlan(scaler.namespace, scaler.deployment, replicas), dry_run=False))
        return self.outcome(plan, dry_run=False, changed=result.status == "scaled", before={"replicas": result.before},
                            after={"replicas": result.after}, message=f"scaled from {result.before} to {result.after}")

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        before = int((outcome.before or {})["replicas"])
        plan = self.rollback_plan(outcome.plan, (f"set spec.replicas of deployment {outcome.plan.target} back to "
                                                 f"{before}",))
        return self._scale(plan, self._scaler(outcome.plan.target, api=self.apps()), before, dry_run)


# ---- kubernetes.restart ----------------------------------------------------------------------------------------

class RestartParams(Params):
    at: float = Field(..., gt=0, description="Restart time (Unix seconds), written to the pod template annotation "
                      "kubectl.kubernetes.io/restartedAt; the runner passes its clock.")


def _template_annotations(deployment: Mapping[str, Any]) -> dict[str, Any]:
    meta = deployment.get("spec", {}).get("template", {}).get("metadata") or {}
    return dict(meta.get("annotations") or {})


class KubernetesRestart(_Kube):
    """``kubectl rollout restart``: a new pod template annotation makes the Deployment replace its pods."""

    kind = "kubernetes.restart"
    params_model = RestartParams

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        return (f"set pod template annotation {RESTARTED_AT}={_rfc3339(params.at)} on deployment {target} "
                "(rolling restart of its pods)",)

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        return self._set(plan, plan.target, _rfc3339(params.at), dry_run)

    def _set(self, plan: Plan, target: str, value: str | None, dry_run: bool) -> Outcome:
        current = _template_annotations(self.read_deployment(target)).get(RESTARTED_AT)
        before = {"restartedAt": current}
        if current == value:
            return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before,
                                message=f"{RESTARTED_AT} is already {value}")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}
        result = self.patch_deployment(target, body, MERGE, dry_run)
        after = {"restartedAt": _template_annotations(result).get(RESTARTED_AT)}
        verb = "would set" if dry_run else "set"
        return self.outcome(plan, dry_run=dry_run, changed=True, before=before, after=after,
                            message=f"{verb} {RESTARTED_AT} from {current} to {value}")

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        previous = (outcome.before or {}).get("restartedAt")
        plan = self.rollback_plan(outcome.plan, (f"restore pod template annotation {RESTARTED_AT}={previous} on "
                                                 f"deployment {outcome.plan.target} (pods roll again)",))
        return self._set(plan, outcome.plan.target, previous, dry_run)


# ---- kubernetes.rollback ---------------------------------------------------------------------------------------

class RollbackParams(Params):
    to_revision: int | None = Field(None, ge=1, description="Revision to return to; default: the one before the "
                                    "current revision.")


def _selector(selector: Mapping[str, Any]) -> str:
    """A label selector string from a LabelSelector object."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


def _revision(obj: Mapping[str, Any]) -> int | None:
    text = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _clean_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template without the ``pod-template-hash`` label the controller adds to ReplicaSets."""
    out = copy.deepcopy(dict(template))
    labels = dict((out.get("metadata") or {}).get("labels") or {})
    if "pod-template-hash" in labels:
        del labels["pod-template-hash"]
        out["metadata"] = {**out["metadata"], "labels": labels}
    return out


class KubernetesRollback(_Kube):
    """``kubectl rollout undo``: put the pod template of an older ReplicaSet of the Deployment back."""

    kind = "kubernetes.rollback"
    params_model = RollbackParams

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        which = f"revision {params.to_revision}" if params.to_revision else "the previous revision"
        return (f"replace the pod template of deployment {target} with the one of its ReplicaSet at {which} "
                "(kubectl rollout undo)",)

    def _source(self, target: str, deployment: Mapping[str, Any], to_revision: int | None) -> tuple[int, Any]:
        """The revision to return to and its ReplicaSet's pod template."""
        ns = target.split("/")[0]
        uid = deployment.get("metadata", {}).get("uid")
        selector = _selector(deployment.get("spec", {}).get("selector") or {})
        listing = self.wire(self.call(f"list replicasets of {target}", lambda: self.apps().list_namespaced_replica_set(
            ns, label_selector=selector or None, _request_timeout=self.settings.timeout_s)))
        owned: dict[int, Any] = {}
        for rs in listing.get("items") or []:
            owners = rs.get("metadata", {}).get("ownerReferences") or []
            rev = _revision(rs)
            if rev is not None and any(o.get("uid") == uid and o.get("kind") == "Deployment" for o in owners):
                owned[rev] = rs
        current = _revision(deployment) or max(owned, default=0)
        if to_revision is None:
            older = [r for r in owned if r < current]
            if not older:
                raise SourceError(f"kubernetes: deployment {target} has no revision before {current} "
                                  f"(ReplicaSets at revisions {sorted(owned) or 'none'})")
            to_revision = max(older)
        if to_revision not in owned:
            raise SourceError(f"kubernetes: deployment {target} has no ReplicaSet at revision {to_revision} "
                              f"(revisions {sorted(owned) or 'none'})")
        return to_revision, _clean_template(owned[to_revision].get("spec", {}).get("template") or {})

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        key = plan_key(plan)
        deployment = self.read_deployment(plan.target)
        annotations = deployment.get("metadata", {}).get("annotations")
        template = deployment.get("spec", {}).get("template") or {}
        before = {"revision": _revision(deployment), "template": template, "marker": (annotations or {}).get(MARKER)}
        if before["marker"] == key:
            return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before,
                                message=f"already rolled back by this plan ({MARKER}={key})")
        if deployment.get("spec", {}).get("paused"):
            raise ExecutionError(f"deployment {plan.target} is paused; resume it before rolling back", before=before)
        revision, target_template = self._source(plan.target, deployment, params.to_revision)
        if _clean_template(template) == target_template:
            return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before, revision=revision,
                                message=f"the pod template already equals revision {revision}")
        result = self._patch(plan.target, target_template, key, annotations, dry_run)
        after = {"revision": _revision(result), "template": result.get("spec", {}).get("template"),
                 "marker": (result.get("metadata", {}).get("annotations") or {}).get(MARKER)}
        verb = "would roll back" if dry_run else "rolled back"
        return self.outcome(plan, dry_run=dry_run, changed=True, before=before, after=after, revision=revision,
                            message=f"{verb} deployment {plan.target} to the pod template of revision {revision}")

    def _patch(self, target: str, template: Any, marker: str | None, annotations: Mapping[str, str] | None,
               dry_run: bool) -> dict[str, Any]:
        """A JSON patch (as kubectl sends): replace the pod template, set or remove the marker annotation."""
        ops: list[dict[str, Any]] = [{"op": "replace", "path": "/spec/template", "value": template}]
        path = "/metadata/annotations/" + MARKER.replace("~", "~0").replace("/", "~1")
        if marker is None:
            if annotations is not None and MARKER in annotations:
                ops.append({"op": "remove", "path": path})
        elif annotations is None:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {MARKER: marker}})
        else:
            ops.append({"op": "add", "path": path, "value": marker})
        return self.patch_deployment(target, ops, JSON_PATCH, dry_run)

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        before = outcome.before or {}
        target = outcome.plan.target
        plan = self.rollback_plan(outcome.plan, (f"put the pod template of deployment {target} back as it was "
                                                 f"(revision {before.get('revision')})",))
        deployment = self.read_deployment(target)
        annotations = deployment.get("metadata", {}).get("annotations")
        now = {"revision": _revision(deployment), "template": deployment.get("spec", {}).get("template"),
               "marker": (annotations or {}).get(MARKER)}
        if now["template"] == before.get("template") and now["marker"] == before.get("marker"):
            return self.outcome(plan, dry_run=dry_run, changed=False, before=now, after=now,
                                message="the pod template is already as before")
        result = self._patch(target, before.get("template"), before.get("marker"), annotations, dry_run)
        after = {"revision": _revision(result), "template": result.get("spec", {}).get("template"),
                 "marker": (result.get("metadata", {}).get("annotations") or {}).get(MARKER)}
        verb = "would restore" if dry_run else "restored"
        return self.outcome(plan, dry_run=dry_run, changed=True, before=now, after=after,
                            message=f"{verb} the pod template of deployment {target}")


# ---- kubernetes.cordon -----------------------------------------------------------------------------------------

class CordonParams(Params):
    unschedulable: bool = Field(True, description="true cordons the node, false uncordons it.")


class KubernetesCordon(_Kube):
    """Mark a node unschedulable (``kubectl cordon``) or schedulable again. Pods are not evicted."""

    kind = "kubernetes.cordon"
    params_model = CordonParams
    namespaced = False

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        verb = "cordon" if params.unschedulable else "uncordon"
        return (f"{verb} node {target} (set spec.unschedulable to {str(params.unschedulable).lower()})",)

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        return self._set(plan, plan.target, params.unschedulable, dry_run)

    def _set(self, plan: Plan, node: str, value: bool, dry_run: bool) -> Outcome:
        current = bool(self.wire(self.call(f"read node {node}", lambda: self.core().read_node(
            node, _request_timeout=self.settings.timeout_s))).get("spec", {}).get("unschedulable", False))
        before = {"unschedulable": current}
        if current == value:
            return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before,
                                message=f"node {node} already has unschedulable={str(value).lower()}")
        what = f"patch node {node}" + (" (dry run)" if dry_run else "")
        result = self.wire(self.call(what, lambda: self.core().patch_node(
            node, {"spec": {"unschedulable": value}}, _content_type=MERGE, **self.dry(dry_run))))
        after = {"unschedulable": bool(result.get("spec", {}).get("unschedulable", False))}
        verb = "would set" if dry_run else "set"
        return self.outcome(plan, dry_run=dry_run, changed=True, before=before, after=after,
                            message=f"{verb} unschedulable={str(value).lower()} on node {node}")

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        value = bool((outcome.before or {}).get("unschedulable", False))
        plan = self.rollback_plan(outcome.plan, (f"set spec.unschedulable of node {outcome.plan.target} back to "
                                                 f"{str(value).lower()}",))
        return self._set(plan, outcome.plan.target, value, dry_run)
